"""Core formulas against answers written outside Plume: the papers' formulas typed out here, diffusers, scipy.

Nothing on the expected side of an assertion calls the code under test (plume.objective.x0_weight, a Prediction's
conversions, a process's alpha/sigma, the mixture's densities); every schedule below is the paper's closed form with
its published constants as literals.

References
  Ho et al. 2020, "Denoising diffusion probabilistic models": linear betas 1e-4 .. 0.02 over T = 1000 (sec. 4),
      L_simple = ||eps - eps_hat||^2 (eq. 14), x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) (eq. 4, 15).
  Nichol & Dhariwal 2021, "Improved DDPM": cosine abar(t) = f(t) / f(0), f = cos^2((t/T + s)/(1 + s) pi/2),
      s = 0.008, betas clipped at 0.999 (eq. 17).
  Song et al. 2021, "Score-based generative modeling through SDEs": VE, VP and sub-VP SDEs (sec. 3.4) and their
      perturbation kernels (appendix B); beta_min = 0.1, beta_max = 20, sigma_min = 0.01, sigma_max = 50
      (CIFAR-10, appendix C); the same constants and kernels as `marginal_prob` in the authors' code (score_sde).
  Song et al. 2021b, "Maximum likelihood training of score-based diffusion models": lambda(t) = g(t)^2 (thm. 1).
  Kingma et al. 2021, "Variational diffusion models": SNR = alpha^2 / sigma^2 (sec. 2).
  Salimans & Ho 2022, "Progressive distillation": v = alpha eps - sigma x0, x0 = alpha z - sigma v (sec. 4, app. D).
  Karras et al. 2022, "Elucidating the design space" (EDM): alpha = 1, sigma = t, sigma in [0.002, 80], rho = 7
      and the time steps of eq. 5; D = c_skip x + c_out F (eq. 7), the loss lambda(sigma) ||D - x0||^2 and the F
      target (eq. 8), c_skip, c_out, lambda = 1 / c_out^2 (Table 1), sigma_data = 0.5.
  Hang et al. 2023, "Efficient diffusion training via Min-SNR weighting": w = min(SNR, gamma) on the x0 error,
      gamma = 5; the same weighting is min(SNR, gamma) / SNR on the eps error and min(SNR, gamma) / (SNR + 1) on
      the v error (sec. 3.4).
  Lipman et al. 2023, "Flow matching": x_t = (1 - t) x0 + t eps, target u = eps - x0 (eq. 20-23, with Plume's
      direction of time); Liu et al. 2022, "Rectified flow", the same.
  Efron 2011, "Tweedie's formula and selection bias": E[x0 | y] = y + s^2 grad log p_s(y) for y = x0 + s eps.
  diffusers' DDPMScheduler (get_velocity, step's pred_original_sample, alphas_cumprod); scipy.stats and
      scipy.special for the mixture's density.

Tolerances: both sides run in float64 and differ only by rounding in a handful of operations, so 1e-10 relative
(1e-12 for plain schedules); against diffusers' own float32 alpha-bar table (a float32 cumprod of 1000 factors),
2e-6 relative on the table and 1e-5 on v and x0 computed from it.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import plume
from plume.denoiser import Denoiser
from plume.points import GaussianMixture, random_mixture, ring_mixture

F64 = dict(rtol=1e-10, atol=1e-12)  # float64 on both sides, a few operations apart
EXACT = dict(rtol=1e-12, atol=1e-14)  # a closed form against the same closed form, rearranged
F32_TABLE = dict(rtol=2e-6, atol=1e-9)  # diffusers' float32 cumprod of 1000 factors (seen: 3.6e-7 relative)
F32_V = dict(rtol=1e-5, atol=1e-5)  # v and x0 from that float32 table, |x| ~ 3 (seen: 1.4e-6)
SIGMA_DATA = 0.5  # Karras et al. 2022, Table 1
GAMMA = 5.0  # Hang et al. 2023, min-SNR-5
B, D = 6, 3  # one time per sample


# --- the papers' schedules, written out -----------------------------------------------------------------------------
def _vp_linear(t: torch.Tensor) -> SimpleNamespace:
    """Song et al. 2021, VP SDE with beta(t) = 0.1 + t (20 - 0.1): dx = -1/2 beta x dt + sqrt(beta) dw."""
    beta = 0.1 + t * (20.0 - 0.1)
    alpha = torch.exp(-0.25 * t**2 * (20.0 - 0.1) - 0.5 * t * 0.1)  # perturbation kernel's mean coefficient
    sigma = torch.sqrt(1 - alpha**2)  # kernel variance 1 - e^{-int beta}
    d_alpha = -0.5 * beta * alpha
    return SimpleNamespace(alpha=alpha, sigma=sigma, d_alpha=d_alpha, d_sigma=-alpha * d_alpha / sigma,
                           f=-0.5 * beta, g2=beta)


def _subvp(t: torch.Tensor) -> SimpleNamespace:
    """Song et al. 2021, sub-VP: dx = -1/2 beta x dt + sqrt(beta (1 - e^{-2 int beta})) dw; std 1 - e^{-int beta}."""
    beta = 0.1 + t * (20.0 - 0.1)
    integral = 0.1 * t + 0.5 * t**2 * (20.0 - 0.1)  # int_0^t beta
    alpha = torch.exp(-0.5 * integral)
    return SimpleNamespace(alpha=alpha, sigma=1 - torch.exp(-integral), d_alpha=-0.5 * beta * alpha,
                           d_sigma=beta * torch.exp(-integral), f=-0.5 * beta, g2=beta * (1 - torch.exp(-2 * integral)))


def _ve(t: torch.Tensor) -> SimpleNamespace:
    """Song et al. 2021, VE SDE: sigma(t) = 0.01 (50 / 0.01)^t, g = sigma(t) sqrt(2 ln(50 / 0.01)), alpha = 1."""
    sigma = 0.01 * (50.0 / 0.01) ** t
    one = torch.ones_like(t)
    return SimpleNamespace(alpha=one, sigma=sigma, d_alpha=0 * t, d_sigma=sigma * math.log(50.0 / 0.01), f=0 * t,
                           g2=sigma**2 * 2 * math.log(50.0 / 0.01))


def _edm(t: torch.Tensor) -> SimpleNamespace:
    """Karras et al. 2022, Table 1: alpha = 1, sigma = t; their f = s'/s = 0, g = s sqrt(2 sigma' sigma) = sqrt(2 t)."""
    return SimpleNamespace(alpha=torch.ones_like(t), sigma=t.clone(), d_alpha=0 * t, d_sigma=torch.ones_like(t),
                           f=0 * t, g2=2 * t)


def _flow(t: torch.Tensor) -> SimpleNamespace:
    """Linear flow alpha = 1 - t, sigma = t (Lipman et al. 2023; Liu et al. 2022); its SDE from the general
    f = d log alpha / dt = -1 / (1 - t), g^2 = d sigma^2 / dt - 2 f sigma^2 = 2t + 2t^2 / (1 - t) = 2t / (1 - t)."""
    return SimpleNamespace(alpha=1 - t, sigma=t.clone(), d_alpha=-torch.ones_like(t), d_sigma=torch.ones_like(t),
                           f=-1 / (1 - t), g2=2 * t / (1 - t))


def _vp_cosine(t: torch.Tensor) -> SimpleNamespace:
    """Nichol & Dhariwal 2021, eq. 17 in continuous time: abar = f(t) / f(0), f(t) = cos^2((t + 0.008) / 1.008 pi/2);
    beta(t) = -d ln abar / dt = pi / 1.008 tan((t + 0.008) / 1.008 pi/2)."""
    u = (t + 0.008) / 1.008 * math.pi / 2
    abar = torch.cos(u) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    alpha, sigma = torch.sqrt(abar), torch.sqrt(1 - abar)
    beta = math.pi / 1.008 * torch.tan(u)
    d_alpha = -0.5 * beta * alpha
    return SimpleNamespace(alpha=alpha, sigma=sigma, d_alpha=d_alpha, d_sigma=-alpha * d_alpha / sigma,
                           f=-0.5 * beta, g2=beta)


def _ho_alphas_cumprod() -> np.ndarray:
    """Ho et al. 2020, sec. 4: betas linear from 1e-4 to 0.02 over T = 1000, abar_t = prod_{s <= t} (1 - beta_s)."""
    return np.cumprod(1 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))


def _ddpm(t: torch.Tensor) -> SimpleNamespace:
    """DDPM at whole steps t = 0..999 (Ho et al. 2020): alpha = sqrt(abar_t), sigma = sqrt(1 - abar_t)."""
    abar = torch.from_numpy(_ho_alphas_cumprod())[t.long()]
    return SimpleNamespace(alpha=torch.sqrt(abar), sigma=torch.sqrt(1 - abar))


PAPER = {"vp": _vp_linear, "subvp": _subvp, "ve": _ve, "edm": _edm, "flow": _flow, "vp-cosine": _vp_cosine,
         "ddpm": _ddpm}
PLUME = {"vp": lambda: plume.process("vp"), "subvp": lambda: plume.process("subvp"), "ve": lambda: plume.process("ve"),
         "edm": lambda: plume.process("edm"), "flow": lambda: plume.process("flow"),
         "vp-cosine": lambda: plume.process("vp", schedule="cosine"), "ddpm": lambda: plume.process("ddpm")}
TIMES = {  # B times across each process's whole range, ends included
    "vp": [1e-3, 0.02, 0.1, 0.3, 0.6, 1.0],
    "subvp": [1e-3, 0.02, 0.1, 0.3, 0.6, 1.0],
    "ve": [0.0, 0.1, 0.3, 0.5, 0.8, 1.0],
    "edm": [0.002, 0.05, 0.5, 2.0, 10.0, 80.0],
    "flow": [1e-3, 0.1, 0.3, 0.5, 0.8, 0.999],
    "vp-cosine": [1e-3, 0.1, 0.4, 0.7, 0.9, 0.9946],
    "ddpm": [0.0, 1.0, 10.0, 250.0, 500.0, 999.0],
}
ALL = list(PAPER)
CONTINUOUS = [name for name in ALL if name != "ddpm"]  # those with a derivative in t (an SDE, a flow velocity)
UNIT_VARIANCE = ["vp", "vp-cosine", "ddpm"]  # alpha^2 + sigma^2 = 1, where Hang et al.'s v form holds


def _setting(name: str, seed: int = 0) -> SimpleNamespace:
    """t (B,), the paper's coefficients as (B, 1) columns, and x0, eps (B, D), float64."""
    t = torch.tensor(TIMES[name], dtype=torch.float64)
    q = PAPER[name](t)
    cols = SimpleNamespace(**{k: v[:, None] for k, v in vars(q).items()})
    g = torch.Generator().manual_seed(seed)
    cols.t, cols.flat = t, q
    cols.x0 = torch.randn(B, D, generator=g, dtype=torch.float64)
    cols.eps = torch.randn(B, D, generator=g, dtype=torch.float64)
    cols.x_t = cols.alpha * cols.x0 + cols.sigma * cols.eps
    return cols


def _edm_coefficients(q: SimpleNamespace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EDM's sigma in scaled coordinates (eq. 4: x = s(t) x_hat, s = alpha) and c_skip, c_out (Table 1)."""
    sig = q.sigma / q.alpha
    return sig, SIGMA_DATA**2 / (sig**2 + SIGMA_DATA**2), sig * SIGMA_DATA / torch.sqrt(sig**2 + SIGMA_DATA**2)


def _edm_f_target(q: SimpleNamespace) -> torch.Tensor:
    """Karras et al. 2022, eq. 8: F target = (x0 - c_skip (x0 + sigma eps)) / c_out."""
    sig, c_skip, c_out = _edm_coefficients(q)
    return (q.x0 - c_skip * (q.x0 + sig * q.eps)) / c_out


# What each prediction kind is trained to output, from its paper.
TARGETS = {
    "eps": lambda q: q.eps,  # Ho et al. 2020
    "x0": lambda q: q.x0,
    "v": lambda q: q.alpha * q.eps - q.sigma * q.x0,  # Salimans & Ho 2022, sec. 4
    "score": lambda q: -q.eps / q.sigma,  # grad log q(x_t | x0) (Vincent 2011; Song et al. 2021)
    "flow": lambda q: q.d_alpha * q.x0 + q.d_sigma * q.eps,  # d x_t / dt (Lipman et al. 2023)
    "edm": _edm_f_target,  # Karras et al. 2022, eq. 8
}


def _x0_from_v(out, q):
    """Salimans & Ho 2022, sec. 4: x0 = alpha z - sigma v when alpha^2 + sigma^2 = 1; in general, solving
    z = alpha x0 + sigma eps and v = alpha eps - sigma x0 for x0 gives (alpha z - sigma v) / (alpha^2 + sigma^2)."""
    return (q.alpha * q.x_t - q.sigma * out) / (q.alpha**2 + q.sigma**2)


def _x0_from_flow(out, q):
    """Solve x_t = alpha x0 + sigma eps and u = alpha' x0 + sigma' eps for x0; x_t - t u for the linear flow."""
    return (q.sigma * out - q.d_sigma * q.x_t) / (q.d_alpha * q.sigma - q.d_sigma * q.alpha)


def _x0_from_edm(out, q):
    """Karras et al. 2022, eq. 7, in scaled coordinates: D = c_skip x_t / alpha + c_out F."""
    _, c_skip, c_out = _edm_coefficients(q)
    return c_skip * q.x_t / q.alpha + c_out * out


# x0_hat from a network output at x_t, from each paper.
TO_X0 = {
    "eps": lambda out, q: (q.x_t - q.sigma * out) / q.alpha,  # Ho et al. 2020, eq. 4 solved for x0 (eq. 15)
    "x0": lambda out, q: out,
    "v": _x0_from_v,
    "score": lambda out, q: (q.x_t + q.sigma**2 * out) / q.alpha,  # Tweedie: E[x0|x_t] = (x_t + sigma^2 score) / alpha
    "flow": _x0_from_flow,
    "edm": _x0_from_edm,
}
PREDICTION_PROCESSES = {name: (CONTINUOUS if name == "flow" else ALL) for name in TARGETS}  # DDPM's table has no d/dt


def _prediction(name: str) -> plume.Prediction:
    return plume.prediction(name, **({"sigma_data": SIGMA_DATA} if name == "edm" else {}))


# --- 1. loss weightings ----------------------------------------------------------------------------------------------
class _Recording(torch.nn.Module):
    """A fixed random map of (x, noise level) that keeps its last output: the `out` the loss was computed on."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.weight = torch.randn(D, D, generator=g, dtype=torch.float64)
        self.bias = torch.randn(D, generator=g, dtype=torch.float64)
        self.last = None

    def forward(self, x, noise_level, cond=None):
        self.last = x @ self.weight + noise_level[:, None] * self.bias  # (B, D)
        return self.last


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).mean(1)  # (B,): Plume's per-sample loss averages over the data's dimensions


def _snr(q):
    return (q.alpha**2 / q.sigma**2)[:, 0]  # Kingma et al. 2021, eq. 2


def _min_snr_eps(out, q):
    """Hang et al. 2023, sec. 3.4, eps form: min(SNR, gamma) / SNR ||eps_hat - eps||^2, since
    eps_hat - eps = -(alpha / sigma)(x0_hat - x0) makes ||eps_hat - eps||^2 = SNR ||x0_hat - x0||^2."""
    return torch.clamp(_snr(q), max=GAMMA) / _snr(q) * _mse(out, q.eps)


def _min_snr_v(out, q):
    """Hang et al. 2023, sec. 3.4, v form: min(SNR, gamma) / (SNR + 1) ||v_hat - v||^2, since with alpha^2 + sigma^2 = 1
    v_hat - v = -(1 / sigma)(x0_hat - x0) and 1 / sigma^2 = SNR + 1."""
    v = q.alpha * q.eps - q.sigma * q.x0
    return torch.clamp(_snr(q), max=GAMMA) / (_snr(q) + 1) * _mse(out, v)


def _edm_lambda_x0(out, q):
    """Karras et al. 2022, eq. 8 and Table 1: lambda(sigma) ||D - x0||^2, lambda = (sigma^2 + sd^2) / (sigma sd)^2."""
    sig = (q.sigma / q.alpha)[:, 0]
    return (sig**2 + SIGMA_DATA**2) / (sig * SIGMA_DATA) ** 2 * _mse(out, q.x0)


def _likelihood_x0(out, q):
    """Song et al. 2021b: g^2 ||s_hat - s||^2 with score_hat - score = (alpha / sigma^2)(x0_hat - x0), by Tweedie."""
    return q.g2[:, 0] * (q.alpha**2 / q.sigma**4)[:, 0] * _mse(out, q.x0)


# (weighting, prediction, processes, the paper's per-sample loss of the network output)
LOSSES = [
    *[("simple", p, PREDICTION_PROCESSES[p], lambda out, q, p=p: _mse(out, TARGETS[p](q))) for p in TARGETS],
    ("snr", "eps", ALL, lambda out, q: _mse(out, q.eps)),  # Kingma et al. 2021: the eps-MSE is SNR-weighted x0
    ("snr", "x0", ALL, lambda out, q: _snr(q) * _mse(out, q.x0)),
    ("min-snr", "x0", ALL, lambda out, q: torch.clamp(_snr(q), max=GAMMA) * _mse(out, q.x0)),  # Hang et al. sec. 3.4
    ("min-snr", "eps", ALL, _min_snr_eps),
    ("min-snr", "v", UNIT_VARIANCE, _min_snr_v),
    ("edm", "x0", ALL, _edm_lambda_x0),
    ("edm", "edm", ALL, lambda out, q: _mse(out, _edm_f_target(q))),  # lambda c_out^2 = 1: unit weight on F (sec. 5)
    ("likelihood", "score", CONTINUOUS, lambda out, q: q.g2[:, 0] * _mse(out, -q.eps / q.sigma)),  # Song et al. 2021b
    ("likelihood", "x0", CONTINUOUS, _likelihood_x0),
]
LOSS_CASES = [pytest.param(w, p, name, fn, id=f"{w}-{p}-{name}") for w, p, names, fn in LOSSES for name in names]


@pytest.mark.parametrize("weighting, prediction_name, process_name, paper_loss", LOSS_CASES)
def test_loss_weighting_matches_the_paper(weighting, prediction_name, process_name, paper_loss):
    """Denoiser.loss = the paper's weighted loss of the same network output: Ho et al. 2020 eq. 14 (simple), Kingma
    et al. 2021 (snr), Hang et al. 2023 sec. 3.4 (min-snr), Karras et al. 2022 eq. 8 (edm), Song et al. 2021b thm. 1
    (likelihood, lambda = g^2 on the score error; Plume drops the paper's global factor 1/2)."""
    q = _setting(process_name)
    backbone = _Recording()
    model = Denoiser(backbone, PLUME[process_name](), prediction_name, weighting, sigma_data=SIGMA_DATA)
    loss = model.loss(q.x0, t=q.t, noise=q.eps)
    torch.testing.assert_close(loss, paper_loss(backbone.last, q), **F64)


# --- 2. prediction targets and conversions ---------------------------------------------------------------------------
PREDICTION_CASES = [pytest.param(p, name, id=f"{p}-{name}") for p in TARGETS for name in PREDICTION_PROCESSES[p]]


@pytest.mark.parametrize("prediction_name, process_name", PREDICTION_CASES)
def test_training_target_matches_the_paper(prediction_name, process_name):
    """Prediction.target = eps (Ho et al. 2020), v = alpha eps - sigma x0 (Salimans & Ho 2022), score = -eps / sigma,
    u = alpha' x0 + sigma' eps (Lipman et al. 2023), F = (x0 - c_skip y) / c_out (Karras et al. 2022, eq. 8)."""
    q = _setting(process_name)
    target = _prediction(prediction_name).target(q.x0, q.eps, PLUME[process_name](), q.t)
    torch.testing.assert_close(target, TARGETS[prediction_name](q), **F64)


def test_linear_flow_target_is_eps_minus_x0():
    """Lipman et al. 2023 / Liu et al. 2022: for x_t = (1 - t) x0 + t eps the velocity target is eps - x0."""
    q = _setting("flow")
    target = _prediction("flow").target(q.x0, q.eps, plume.process("flow"), q.t)
    torch.testing.assert_close(target, q.eps - q.x0, **F64)
    torch.testing.assert_close(_prediction("flow").to_x0(target, q.x_t, plume.process("flow"), q.t),
                               q.x_t - q.t[:, None] * target, **F64)


@pytest.mark.parametrize("prediction_name, process_name", PREDICTION_CASES)
def test_x0_conversion_matches_the_paper(prediction_name, process_name):
    """Prediction.to_x0 of an arbitrary output = the paper's x0_hat (Ho et al. 2020 eq. 15, Salimans & Ho 2022 sec. 4,
    Tweedie, Karras et al. 2022 eq. 7)."""
    q = _setting(process_name)
    out = torch.randn(B, D, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x0_hat = _prediction(prediction_name).to_x0(out, q.x_t, PLUME[process_name](), q.t)
    torch.testing.assert_close(x0_hat, TO_X0[prediction_name](out, q), **F64)


def _diffusers_v_scheduler(table: str):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                        beta_schedule="linear", prediction_type="v_prediction", clip_sample=False)
    if table == "float64":  # Ho et al.'s table, computed here in float64: what is left is the v algebra alone
        scheduler.alphas_cumprod = torch.from_numpy(_ho_alphas_cumprod())
    return scheduler


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers + numpy 2
@pytest.mark.parametrize("table, tol", [("float64", F64), ("float32", F32_V)])
def test_v_prediction_matches_diffusers(table, tol):
    """diffusers' DDPMScheduler(prediction_type="v_prediction"): get_velocity is Plume's v target and step's
    pred_original_sample is Plume's x0 from a v output, on DDPM's linear table; to 1e-10 on a float64 copy of the
    table, to 1e-5 on diffusers' own float32 one."""
    scheduler, process, v = _diffusers_v_scheduler(table), plume.process("ddpm"), plume.prediction("v")
    q = _setting("ddpm")
    steps = q.t.long()
    torch.testing.assert_close(v.target(q.x0, q.eps, process, q.t), scheduler.get_velocity(q.x0, q.eps, steps), **tol)
    out = torch.randn(B, D, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    for step in steps.tolist():
        x_t = process.add_noise(q.x0, torch.full((B,), float(step), dtype=torch.float64), q.eps)
        theirs = scheduler.step(out, step, x_t, generator=torch.Generator().manual_seed(0)).pred_original_sample
        ours = v.to_x0(out, x_t, process, torch.full((B,), float(step), dtype=torch.float64))
        torch.testing.assert_close(ours, theirs, **tol)


# --- 3. schedules --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("process_name", ALL)
def test_schedule_matches_the_paper(process_name):
    """alpha(t), sigma(t) of Plume's default processes = the papers' closed forms with their published constants:
    VP and sub-VP beta in [0.1, 20], VE sigma in [0.01, 50] (Song et al. 2021), EDM alpha = 1, sigma = t (Karras et al.
    2022), flow 1 - t and t, cosine (Nichol & Dhariwal 2021, s = 0.008), DDPM's linear table (Ho et al. 2020)."""
    q, process = _setting(process_name), PLUME[process_name]()
    torch.testing.assert_close(process.alpha(q.t), q.flat.alpha, **EXACT)
    torch.testing.assert_close(process.sigma(q.t), q.flat.sigma, **EXACT)
    torch.testing.assert_close(process.sigma_ratio(q.t), q.flat.sigma / q.flat.alpha, **EXACT)


@pytest.mark.parametrize("process_name", CONTINUOUS)
def test_sde_matches_the_paper(process_name):
    """process.sde(t) = (f, g) of the papers' SDEs: VP (-beta/2, sqrt(beta)), sub-VP (-beta/2, sqrt(beta (1 -
    e^{-2 int beta}))), VE (0, sqrt(d sigma^2/dt)) (Song et al. 2021, sec. 3.4), EDM (0, sqrt(2 t)) (Karras et al. 2022,
    appendix B), the linear flow and the cosine VP from f = d ln alpha / dt, g^2 = d sigma^2 / dt - 2 f sigma^2."""
    q = _setting(process_name)
    f, g = PLUME[process_name]().sde(q.t)
    torch.testing.assert_close(f, q.flat.f, **F64)
    torch.testing.assert_close(g, torch.sqrt(q.flat.g2), **F64)


@pytest.mark.parametrize("steps", [2, 5, 18])
def test_karras_grid_matches_edm_eq5(steps):
    """Karras et al. 2022, eq. 5: sigma_i = (80^(1/7) + i/(N-1) (0.002^(1/7) - 80^(1/7)))^7 for i < N, sigma_N = 0;
    for EDM's process the times are the sigmas (N = 18 is EDM's CIFAR-10 setting)."""
    grid = plume.time_grid(plume.process("edm"), steps, "karras")
    i = torch.arange(steps, dtype=torch.float64)
    expected = (80.0 ** (1 / 7) + i / (steps - 1) * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    expected = torch.cat([expected, torch.zeros(1, dtype=torch.float64)])
    torch.testing.assert_close(grid.sigmas, expected, **EXACT)
    torch.testing.assert_close(grid.times, expected, **EXACT)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_ddpm_linear_table_matches_ho_and_diffusers():
    """DDPM's abar_t = prod (1 - beta_s), betas linspace(1e-4, 0.02, 1000) (Ho et al. 2020, sec. 4), in float64 here
    and in diffusers' DDPMScheduler (float32); alpha(t)^2 at whole steps reads the same table."""
    diffusers = pytest.importorskip("diffusers")
    process = plume.process("ddpm")
    ho = torch.from_numpy(_ho_alphas_cumprod())
    torch.testing.assert_close(process.alphas_cumprod, ho, **EXACT)
    steps = torch.arange(1000, dtype=torch.float64)
    torch.testing.assert_close(process.alpha(steps) ** 2, ho, **EXACT)
    theirs = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    torch.testing.assert_close(process.alphas_cumprod, theirs.alphas_cumprod.double(), **F32_TABLE)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_ddpm_cosine_table_matches_nichol_and_diffusers():
    """Nichol & Dhariwal 2021, eq. 17: abar_t = f(t) / f(0), f(t) = cos^2((t/T + 0.008)/1.008 pi/2), step t = 1..T
    stored at index t - 1; betas clipped at 0.999, which only touches the last steps. diffusers calls it
    "squaredcos_cap_v2" (float32)."""
    diffusers = pytest.importorskip("diffusers")
    table = plume.process("ddpm", schedule="cosine").alphas_cumprod
    t = np.arange(1, 1001) / 1000
    f = np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
    unclipped = slice(0, 990)  # beta_t = 1 - abar_t / abar_{t-1} < 0.999 here
    torch.testing.assert_close(table[unclipped], torch.from_numpy(f)[unclipped], **F64)
    theirs = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    torch.testing.assert_close(table, theirs.alphas_cumprod.double(), **F32_TABLE)


# --- 4. the Gaussian-mixture denoiser -------------------------------------------------------------------------------
def _mixtures() -> dict[str, GaussianMixture]:
    unequal = GaussianMixture(torch.tensor([0.1, 0.2, 0.3, 0.4]),  # K = 4 with its own weights, means and stds
                              torch.tensor([[-1.0, 0.5, 0.0], [1.0, -0.5, 0.3], [0.0, 1.5, -1.0], [0.5, 0.5, 1.0]]),
                              torch.tensor([0.2, 0.5, 0.8, 0.35]))
    return {"unequal": unequal, "random": random_mixture(5, components=6, seed=2), "ring": ring_mixture()}


MIXTURES = list(_mixtures())


def _points(mixture: GaussianMixture, n: int = 16, seed: int = 3) -> torch.Tensor:
    """Mixture samples plus a few points between and beyond the components."""
    g = torch.Generator().manual_seed(seed)
    x, _ = mixture.sample(n - 4, generator=g)
    return torch.cat([x, 2.5 * torch.randn(4, mixture.dim, generator=g, dtype=torch.float64)])


def _smoothed_log_density(y: torch.Tensor, mixture: GaussianMixture, s: torch.Tensor) -> torch.Tensor:
    """log p_s(y), the mixture convolved with N(0, s^2 I): logsumexp_k [log pi_k + log N(y; mu_k, (c_k^2 + s^2) I)]."""
    w, mu, c = mixture.weights.tolist(), mixture.means, mixture.stds.tolist()
    var = torch.stack([ck**2 + s**2 for ck in c], dim=1)  # (B, K)
    sq = torch.stack([((y - mu[k]) ** 2).sum(1) for k in range(len(w))], dim=1)  # (B, K)
    log_pi = torch.log(torch.tensor(w, dtype=torch.float64))  # (K,)
    log_terms = log_pi - 0.5 * sq / var - 0.5 * y.shape[1] * torch.log(2 * math.pi * var)  # (B, K)
    return torch.logsumexp(log_terms, dim=1)


@pytest.mark.parametrize("process_name", ["vp", "edm"])
@pytest.mark.parametrize("mixture_name", MIXTURES)
def test_mixture_posterior_mean_is_tweedie(mixture_name, process_name):
    """E[x0 | x_t] = y + s^2 grad_y log p_s(y) with y = x_t / alpha, s = sigma / alpha (Efron 2011), the gradient by
    autograd of the mixture's smoothed log-density written here; through posterior_mean and denoiser(process)."""
    mixture = _mixtures()[mixture_name]
    x0 = _points(mixture)
    n = x0.shape[0]
    t = torch.tensor(TIMES[process_name], dtype=torch.float64).repeat(n // B + 1)[:n]
    q = PAPER[process_name](t)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x_t = q.alpha[:, None] * x0 + q.sigma[:, None] * eps
    s = q.sigma / q.alpha
    y = (x_t / q.alpha[:, None]).requires_grad_(True)
    (grad,) = torch.autograd.grad(_smoothed_log_density(y, mixture, s).sum(), y)
    tweedie = y.detach() + s[:, None] ** 2 * grad
    torch.testing.assert_close(mixture.posterior_mean(x_t, q.alpha, q.sigma), tweedie, **F64)
    torch.testing.assert_close(mixture.denoiser(PLUME[process_name]())(x_t, t), tweedie, **F64)


def _scipy_component_log_pdfs(mixture: GaussianMixture, x: np.ndarray) -> np.ndarray:
    """(B, K): scipy.stats.multivariate_normal.logpdf of each component N(mu_k, c_k^2 I)."""
    from scipy.stats import multivariate_normal

    return np.stack([multivariate_normal(mean=mu, cov=c**2 * np.eye(mixture.dim)).logpdf(x)
                     for mu, c in zip(mixture.means.numpy(), mixture.stds.numpy())], axis=1)


@pytest.mark.parametrize("mixture_name", MIXTURES)
def test_mixture_log_prob_matches_scipy(mixture_name):
    """log p(x) = logsumexp_k (log pi_k + log N(x; mu_k, c_k^2 I)), with scipy's logpdf and logsumexp."""
    from scipy.special import logsumexp

    mixture = _mixtures()[mixture_name]
    x = _points(mixture)
    expected = logsumexp(_scipy_component_log_pdfs(mixture, x.numpy()), b=mixture.weights.numpy()[None], axis=1)
    torch.testing.assert_close(mixture.log_prob(x), torch.from_numpy(expected), **F64)


@pytest.mark.parametrize("mixture_name", MIXTURES)
def test_mixture_responsibilities_match_scipy(mixture_name):
    """p(k | x) = pi_k N(x; mu_k, c_k^2 I) / sum_j pi_j N(x; mu_j, c_j^2 I), densities by scipy.stats (Bishop 2006,
    sec. 9.2), on points near the components where no density underflows."""
    from scipy.stats import multivariate_normal

    mixture = _mixtures()[mixture_name]
    x, _ = mixture.sample(16, generator=torch.Generator().manual_seed(3))
    components = zip(mixture.weights.numpy(), mixture.means.numpy(), mixture.stds.numpy())
    weighted = np.stack([w * multivariate_normal(mean=mu, cov=c**2 * np.eye(mixture.dim)).pdf(x.numpy())
                         for w, mu, c in components], axis=1)  # (B, K)
    expected = weighted / weighted.sum(1, keepdims=True)
    torch.testing.assert_close(mixture.responsibilities(x), torch.from_numpy(expected), **F64)
