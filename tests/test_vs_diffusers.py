"""Plume's samplers against diffusers' schedulers driven by the same model: whole trajectories must agree.

Every scheduler runs on DDPM's linear table (or the cosine one) through `plume.compat.diffusers_bridge`, and Plume
gets the scheduler's own grid (times= or sigmas=), start state and noise, so only the update rules are compared,
state after state:

  diffusers 0.42                                    Plume
  DDIMScheduler eta = 0, leading / trailing         "ddim", times = scheduler.timesteps (linear and cosine betas)
  DDIMScheduler eta = 1, variance_noise             the "ddim" sampler function, eta = 1, fed the same draws
  DDPMScheduler fixed_small, 3 spacings + custom    "ddpm"; diffusers gets per-sample generators seeded as Plume's
  DPMSolverMultistep order 1, linspace              "ddim" (first-order DPM-Solver++ is DDIM; Lu et al. 2022b)
  EulerDiscreteScheduler, 3 spacings and Karras     "euler", sigmas = scheduler.sigmas
  EulerAncestralDiscreteScheduler                   "ddim" eta = 1: the same ancestral step in scaled coordinates
  HeunDiscreteScheduler, linspace and Karras        "heun" (diffusers makes two `step` calls per Heun step)
  DPMSolverMultistep dpmsolver++ order 2 and 3      "dpm++2m" / "dpm++3m", 5 to 25 steps (the < 15 rule), sigma_min end
  scheduler timesteps and sigmas                    time_grid "leading", "trailing", "karras", "logsnr"

Models: the exact E[x0 | x_t] of Gaussian mixtures (2-D ring, 16-D random) and a random MLP of (x, t) predicting eps.
diffusers keeps alpha-bar in float32 (a float32 cumprod of 1000 factors) and its Euler, Euler-ancestral and
DPM-Solver steps cast the state to float32, so those comparisons hold to |diff| <= 5e-5 (1 + |x|) (seen: 1.3e-5).
Where diffusers computes in the state's dtype (DDIM, DDPM), it is also run on Plume's float64 table, to 1e-10.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

import plume
from plume.compat.diffusers_bridge import diffusers_sample, eps_model
from plume.points.gaussian_mixture import random_mixture, ring_mixture
from plume.samplers import SAMPLERS, grid_from_times, time_grid

pytest.importorskip("diffusers")
from diffusers import (  # noqa: E402
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers + numpy 2

BATCH = 8
F32 = dict(rtol=5e-5, atol=5e-5)  # diffusers' float32 alpha-bar and float32 steps
F64 = dict(rtol=1e-10, atol=1e-10)  # one float64 table on both sides
LINEAR = plume.process("ddpm")  # betas = linspace(1e-4, 0.02, 1000)
COSINE = plume.process("ddpm", schedule="cosine")  # Nichol & Dhariwal's alpha-bar, betas clipped at 0.999
BETAS = {"linear": dict(beta_start=1e-4, beta_end=0.02, beta_schedule="linear"),  # explicit: Heun's defaults differ
         "cosine": dict(beta_schedule="squaredcos_cap_v2")}



def make(cls, betas: str = "linear", table: str = "float32", **config):
    """A scheduler on DDPM's table with clipping off (the data leave [-1, 1]); table="float64" gives it Plume's."""
    if "clip_sample" in inspect.signature(cls.__init__).parameters:
        config.setdefault("clip_sample", False)
    scheduler = cls(num_train_timesteps=1000, **BETAS[betas], **config)
    if table == "float64":  # the same alpha-bar numbers, so any difference left is in the algorithm
        scheduler.alphas_cumprod = (COSINE if betas == "cosine" else LINEAR).alphas_cumprod.clone()
    return scheduler


# --- models -------------------------------------------------------------------------------------------------------
class RandomMLP(torch.nn.Module):
    """A small randomly initialised eps-predictor of (x, t), float64 inside; nobody fitted it."""

    def __init__(self, dim: int, hidden: int = 32, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = torch.nn.Sequential(
                torch.nn.Linear(dim + 1, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
                torch.nn.Linear(hidden, dim),
            ).double()

    @torch.no_grad()
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).expand(x.shape[0])[:, None] / 1000  # (B, 1)
        return self.net(torch.cat([x.to(torch.float64), t], dim=1)).to(x.dtype)  # (B, D)


MODELS = ["ring", "mixture16", "mlp"]


def make_model(name: str, process=LINEAR):
    """(fn, prediction, dim) for a model name."""
    if name == "ring":
        return ring_mixture().denoiser(process), "x0", 2
    if name == "mixture16":
        return random_mixture(16, seed=3).denoiser(process), "x0", 16
    return RandomMLP(16), "eps", 16


def start_noise(dim: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(BATCH, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)  # (B, D)


# --- running both sides -------------------------------------------------------------------------------------------
class Counted:
    """A model that counts its evaluations."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.fn(x, t)


def plume_path(fn, pred, process, sampler, x_start, **kwargs):
    """Plume's x-space states after every step (recorded by the hook) and the number of model evaluations."""
    states, counted = [], Counted(fn)

    def record(x, t):
        states.append(x.clone())
        return x

    out = plume.sample(counted, process, tuple(x_start.shape), sampler=sampler, prediction=pred, x_start=x_start,
                       hook=record, dtype=torch.float64, **kwargs)
    assert torch.equal(out, states[-1])
    return states, counted.calls


def diffusers_path(scheduler, fn, pred, process, x_start, steps, generator=None):
    """diffusers' states after every `step` call and the model evaluations, through the bridge."""
    states = []
    _, calls = diffusers_sample(scheduler, eps_model(fn, process, pred), x_start, steps, generator, states)
    return states, calls


def scheduler_loop(scheduler, fn, pred, process, x, variance_noise=None, **step_options):
    """diffusers' states after every `step` call over the timesteps already set, for what the bridge cannot drive
    (custom timesteps, step options, per-step variance_noise, schedulers whose `step` takes no generator)."""
    eps, states = eps_model(fn, process, pred), []
    x = x * scheduler.init_noise_sigma
    for i, t in enumerate(scheduler.timesteps):
        if variance_noise is not None:
            step_options["variance_noise"] = variance_noise[i]
        x = scheduler.step(eps(scheduler.scale_model_input(x, t), t), t, x, **step_options).prev_sample
        states.append(x)
    return states


def to_x(scaled_states, sigmas):
    """States y of the scaled-coordinate schedulers (Euler, Heun, ancestral) to x = y / sqrt(1 + s^2)."""
    return [y / math.sqrt(1.0 + float(s) ** 2) for y, s in zip(scaled_states, sigmas)]


def scaled_start(scheduler, noise):
    """Plume's x_start for the start of a scaled-coordinate scheduler, y0 = noise * init_noise_sigma."""
    return noise * scheduler.init_noise_sigma / math.sqrt(1.0 + float(scheduler.sigmas[0]) ** 2)


def assert_paths_close(ours, theirs, rtol, atol, min_travel=0.1):
    """As many states, each within atol + rtol |x|; the path must move, or agreeing would prove nothing."""
    assert len(ours) == len(theirs), f"{len(ours)} Plume states vs {len(theirs)} diffusers states"
    worst = 0.0
    for k, (a, b) in enumerate(zip(ours, theirs)):
        a, b = a.to(torch.float64), b.to(torch.float64)
        diff = (a - b).abs()
        ok = bool((diff <= atol + rtol * b.abs()).all())
        assert ok, f"state {k} of {len(ours)}: max |diff| {float(diff.max()):.3g}"
        worst = max(worst, float((diff / (1 + b.abs())).max()))
    assert min_travel == 0 or float((theirs[-1] - theirs[0]).abs().max()) > min_travel, "the trajectory hardly moves"
    print(f"max |diff| / (1 + |x|) = {worst:.2g}")


class ReplayNoise:
    """A Plume noise source handing out a prepared list of draws in order."""

    def __init__(self, draws):
        self.draws, self.used = list(draws), 0

    def randn_like(self, y):
        z = self.draws[self.used]
        assert z.shape == y.shape
        self.used += 1
        return z.to(y.dtype)


def seeded_generators(seed: int):
    """Generator k seeded seed + k, as plume.sample seeds sample k: diffusers then draws exactly Plume's noise."""
    return [torch.Generator().manual_seed(seed + k) for k in range(BATCH)]


# --- the process itself -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("betas,process", [("linear", LINEAR), ("cosine", COSINE)])
def test_ddpm_table_is_diffusers_table(betas, process):
    theirs = make(DDIMScheduler, betas).alphas_cumprod.double()
    torch.testing.assert_close(process.alphas_cumprod, theirs, rtol=2e-5, atol=1e-7)  # float32 cumprod
    s_theirs = ((1 - theirs) / theirs).sqrt()  # 1 - alpha-bar_0 ~ 1e-4 (linear), 4e-5 (cosine) in float32: 3e-4 rel.
    s_ours = process.sigma_ratio(torch.arange(1000.0, dtype=torch.float64))
    torch.testing.assert_close(s_ours, s_theirs, rtol=1e-3, atol=0)


# --- DDIM / DDPM / DPM-Solver (schedulers in x-space) ----------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("spacing,steps", [("leading", 10), ("leading", 50), ("trailing", 8), ("trailing", 25)])
def test_ddim(model, spacing, steps):
    fn, pred, dim = make_model(model)
    noise = start_noise(dim)
    sched = make(DDIMScheduler, set_alpha_to_one=True, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    theirs, n_theirs = diffusers_path(sched, fn, pred, LINEAR, noise, steps)
    ours, n_ours = plume_path(fn, pred, LINEAR, "ddim", noise, times=sched.timesteps)
    assert n_ours == n_theirs == steps
    assert_paths_close(ours, theirs, **F32)


@pytest.mark.parametrize("betas,process", [("linear", LINEAR), ("cosine", COSINE)])
@pytest.mark.parametrize("table,tolerance", [("float32", dict(rtol=1e-4, atol=1e-4)), ("float64", F64)])
@pytest.mark.parametrize("spacing,steps", [("leading", 20), ("trailing", 10)])
def test_ddim_tables(betas, process, table, tolerance, spacing, steps):
    """Cosine betas on diffusers' float32 table are looser: eps -> x0 divides by sqrt(alpha-bar_999) ~ 6e-3."""
    fn, pred, dim = make_model("mixture16", process)
    noise = start_noise(dim)
    sched = make(DDIMScheduler, betas, table, set_alpha_to_one=True, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    theirs, _ = diffusers_path(sched, fn, pred, process, noise, steps)
    ours, _ = plume_path(fn, pred, process, "ddim", noise, times=sched.timesteps)
    assert_paths_close(ours, theirs, **tolerance)


@pytest.mark.parametrize("model", ["ring", "mlp"])
@pytest.mark.parametrize("table", ["float32", "float64"])
def test_ddim_eta1_same_noise(model, table):
    """DDIM eta = 1: diffusers' variance_noise and Plume's ddim function get the same draws."""
    steps = 10
    fn, pred, dim = make_model(model)
    x_start = start_noise(dim)
    draws = [start_noise(dim, seed=100 + i) for i in range(steps)]
    sched = make(DDIMScheduler, table=table, set_alpha_to_one=True, timestep_spacing="leading")
    sched.set_timesteps(steps)
    theirs = scheduler_loop(sched, fn, pred, LINEAR, x_start, eta=1.0, variance_noise=draws)

    grid = grid_from_times(LINEAR, sched.timesteps)
    denoise = plume.scaled_denoiser(fn, LINEAR, plume.prediction(pred), grid)
    alphas = LINEAR.alpha(grid.times[1:])  # (N,), x = alpha y
    ours, noise = [], ReplayNoise(draws)

    def record(y, s):
        ours.append(y * (alphas[len(ours)] if float(s) > 0 else 1.0))
        return y

    SAMPLERS["ddim"].function(denoise, x_start / LINEAR.alpha(grid.times[0]), grid.sigmas, noise, hook=record, eta=1.0)
    assert noise.used == steps - 1  # no noise on the step into the clean end
    assert_paths_close(ours, theirs, **(F64 if table == "float64" else F32))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("spacing,steps", [("leading", 10), ("trailing", 20), ("linspace", 12)])
def test_ddpm(model, spacing, steps):
    """DDPMScheduler (fixed_small, beta-tilde) vs plume.sample "ddpm" with the same per-sample noise streams."""
    fn, pred, dim = make_model(model)
    x_start = start_noise(dim)
    sched = make(DDPMScheduler, variance_type="fixed_small", timestep_spacing=spacing)
    sched.set_timesteps(steps)
    theirs, _ = diffusers_path(sched, fn, pred, LINEAR, x_start, steps, generator=seeded_generators(5))
    ours, _ = plume_path(fn, pred, LINEAR, "ddpm", x_start, times=sched.timesteps, seed=5)
    assert_paths_close(ours, theirs, **F32)


@pytest.mark.parametrize("timesteps", [[999, 900, 700, 500, 300, 200, 100, 50, 20, 5], [950, 421, 77, 3]])
def test_ddpm_custom_timesteps_float64(timesteps):
    fn, pred, dim = make_model("mixture16")
    x_start = start_noise(dim)
    sched = make(DDPMScheduler, table="float64", variance_type="fixed_small")
    sched.set_timesteps(timesteps=timesteps)
    theirs = scheduler_loop(sched, fn, pred, LINEAR, x_start, generator=seeded_generators(9))
    ours, _ = plume_path(fn, pred, LINEAR, "ddpm", x_start, times=timesteps, seed=9)
    # from t > 0 into the clean end diffusers still adds sqrt(clamp(0, min=1e-20)) = 1e-10 times a draw
    assert_paths_close(ours[:-1], theirs[:-1], **F64)
    assert_paths_close(ours[-1:], theirs[-1:], rtol=0, atol=1e-9, min_travel=0)


@pytest.mark.parametrize("steps", [6, 25])
def test_ddim_linspace_as_first_order_dpm_solver(steps):
    """DDIMScheduler steps from t to t - T // N, not to the next listed time, so its "linspace" (and "trailing" with
    N not dividing T) are not grids Plume can be given; DDIM on a linspace grid is first-order DPM-Solver++."""
    fn, pred, dim = make_model("mixture16")
    noise = start_noise(dim)
    sched = make(DPMSolverMultistepScheduler, solver_order=1, timestep_spacing="linspace", final_sigmas_type="zero")
    sched.set_timesteps(steps)
    theirs, _ = diffusers_path(sched, fn, pred, LINEAR, noise, steps)
    ours, _ = plume_path(fn, pred, LINEAR, "ddim", noise, times=sched.timesteps)
    assert_paths_close(ours, theirs, **F32)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("steps", [5, 10, 14, 15, 25])
def test_dpm_solver_multistep(model, order, steps):
    """Below 15 steps both drop to second order on the step before last; the last step (into s = 0) is first order."""
    fn, pred, dim = make_model(model)
    noise = start_noise(dim)
    sched = make(DPMSolverMultistepScheduler, solver_order=order, algorithm_type="dpmsolver++",
                 final_sigmas_type="zero")
    sched.set_timesteps(steps)
    theirs, n_theirs = diffusers_path(sched, fn, pred, LINEAR, noise, steps)
    ours, n_ours = plume_path(fn, pred, LINEAR, f"dpm++{order}m", noise, times=sched.timesteps)
    assert n_ours == n_theirs == steps
    assert_paths_close(ours, theirs, **F32)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_dpm_solver_multistep_spacings(order, spacing):
    fn, pred, dim = make_model("ring")
    noise = start_noise(dim)
    sched = make(DPMSolverMultistepScheduler, solver_order=order, timestep_spacing=spacing, final_sigmas_type="zero")
    sched.set_timesteps(20)
    theirs, _ = diffusers_path(sched, fn, pred, LINEAR, noise, 20)
    ours, _ = plume_path(fn, pred, LINEAR, f"dpm++{order}m", noise, times=sched.timesteps)
    assert_paths_close(ours, theirs, **F32)


@pytest.mark.parametrize("order", [2, 3])
def test_dpm_solver_multistep_sigma_min_end(order):
    """A grid ending at sigma_min > 0 (final_sigmas_type="sigma_min") with >= 15 steps, where diffusers keeps the full
    order on the last step as Plume does. (Below 15 steps diffusers makes that last step first order; Plume and
    k-diffusion do not.)"""
    steps = 16
    fn, pred, dim = make_model("mixture16")
    noise = start_noise(dim)
    sched = make(DPMSolverMultistepScheduler, solver_order=order, final_sigmas_type="sigma_min")
    sched.set_timesteps(steps)
    sigmas = sched.sigmas.clone()
    assert float(sigmas[-1]) > 0
    theirs, _ = diffusers_path(sched, fn, pred, LINEAR, noise, steps)
    ours, _ = plume_path(fn, pred, LINEAR, f"dpm++{order}m", noise, sigmas=sigmas)
    assert_paths_close(ours, theirs, **F32)


# --- Euler, Euler ancestral, Heun (schedulers in scaled coordinates) ------------------------------------------
EULER_CONFIGS = [{}, dict(use_karras_sigmas=True), dict(timestep_spacing="leading"), dict(timestep_spacing="trailing")]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("config", EULER_CONFIGS, ids=["linspace", "karras", "leading", "trailing"])
@pytest.mark.parametrize("steps", [10, 30])
def test_euler(model, config, steps):
    fn, pred, dim = make_model(model)
    noise = start_noise(dim)
    sched = make(EulerDiscreteScheduler, **config)
    sched.set_timesteps(steps)
    sigmas = sched.sigmas.clone()
    theirs, n_theirs = diffusers_path(sched, fn, pred, LINEAR, noise, steps)
    ours, n_ours = plume_path(fn, pred, LINEAR, "euler", scaled_start(sched, noise), sigmas=sigmas)
    assert n_ours == n_theirs == steps
    assert_paths_close(ours, to_x(theirs, sigmas[1:]), **F32)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("spacing", ["linspace", "trailing"])
def test_euler_ancestral_is_ddim_eta1(model, spacing):
    """EulerAncestral (Euler to sigma_down, then sigma_up noise) is DDIM eta = 1 in scaled coordinates; diffusers'
    per-sample generators draw what plume.sample's seeds draw."""
    steps = 15
    fn, pred, dim = make_model(model)
    noise = start_noise(dim)
    sched = make(EulerAncestralDiscreteScheduler, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    sigmas = sched.sigmas.clone()
    theirs, _ = diffusers_path(sched, fn, pred, LINEAR, noise, steps, generator=seeded_generators(11))
    ours, _ = plume_path(fn, pred, LINEAR, "ddim", scaled_start(sched, noise), sigmas=sigmas, seed=11, eta=1.0)
    assert_paths_close(ours, to_x(theirs, sigmas[1:]), **F32)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("config", [{}, dict(use_karras_sigmas=True)], ids=["linspace", "karras"])
@pytest.mark.parametrize("steps", [5, 18])
def test_heun(model, config, steps):
    """diffusers' Heun: a predictor and a corrector `step` call per step, then one Euler call into s = 0."""
    fn, pred, dim = make_model(model)
    noise = start_noise(dim)
    sched = make(HeunDiscreteScheduler, **config)
    sched.set_timesteps(steps)
    levels = torch.unique_consecutive(sched.sigmas)  # (N + 1,): diffusers lists each inner level twice
    assert len(levels) == steps + 1
    counted = Counted(fn)
    theirs = scheduler_loop(sched, counted, pred, LINEAR, noise)  # HeunDiscreteScheduler.step takes no generator
    assert len(theirs) == 2 * steps - 1
    heun_states = theirs[1::2] + [theirs[-1]]
    ours, n_ours = plume_path(fn, pred, LINEAR, "heun", scaled_start(sched, noise), sigmas=levels)
    assert n_ours == counted.calls == 2 * steps - 1
    assert_paths_close(ours, to_x(heun_states, levels[1:]), **F32)

    # each predictor state is Plume's Euler step from the Heun state before it
    denoise = plume.scaled_denoiser(fn, LINEAR, plume.prediction(pred))
    previous = [noise * sched.init_noise_sigma] + heun_states[:-1]
    for k in range(steps - 1):
        euler = SAMPLERS["euler"].function(denoise, previous[k], levels[k:k + 2].double(), None)
        torch.testing.assert_close(euler, theirs[2 * k], rtol=F32["rtol"], atol=F32["atol"] * float(levels[k + 1]))


def test_comparison_can_fail():
    """The tolerance separates algorithms: Plume's dpm++2m vs diffusers' order 3, Euler vs Heun, are far apart."""
    fn, pred, dim = make_model("mixture16")
    noise = start_noise(dim)
    sched = make(DPMSolverMultistepScheduler, solver_order=3, final_sigmas_type="zero")
    sched.set_timesteps(10)
    theirs, _ = diffusers_path(sched, fn, pred, LINEAR, noise, 10)
    ours, _ = plume_path(fn, pred, LINEAR, "dpm++2m", noise, times=sched.timesteps)
    with pytest.raises(AssertionError, match="max"):
        assert_paths_close(ours, theirs, **F32)

    sched = make(HeunDiscreteScheduler)
    sched.set_timesteps(10)
    levels = torch.unique_consecutive(sched.sigmas)
    theirs = scheduler_loop(sched, fn, pred, LINEAR, noise)
    ours, _ = plume_path(fn, pred, LINEAR, "euler", scaled_start(sched, noise), sigmas=levels)
    with pytest.raises(AssertionError, match="max"):
        assert_paths_close(ours, to_x(theirs[1::2] + [theirs[-1]], levels[1:]), **F32)


# --- named grids --------------------------------------------------------------------------------------------------
STEP_COUNTS = list(range(1, 130)) + [144, 176, 192, 208, 250, 333, 500, 999, 1000]  # halves and near-halves of T / N


@pytest.mark.parametrize("cls", [DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_leading_and_trailing_grids_are_diffusers_timesteps(cls, spacing):
    """Exact equality, including N = 16, 32, 48, 80, 96 ... where T / N leaves a half (or nearly) to round."""
    sched = make(cls, timestep_spacing=spacing)
    compared = 0
    for steps in STEP_COUNTS:
        sched.set_timesteps(steps)
        if len(sched.timesteps) != steps:  # numpy.arange overshoots for some N (61, 103, ...): diffusers' bug
            continue
        grid = time_grid(LINEAR, steps, spacing)
        assert torch.equal(grid.times[:-1], sched.timesteps.double()), steps
        assert float(grid.times[-1]) == -1.0 and float(grid.sigmas[-1]) == 0.0
        compared += 1
    assert compared >= len(STEP_COUNTS) - 5


@pytest.mark.parametrize("table,rtol", [("float32", 2e-4), ("float64", 1e-6)])
@pytest.mark.parametrize("steps", [4, 10, 25, 60])
def test_karras_and_logsnr_grids_are_diffusers_sigmas(table, rtol, steps):
    """"karras" = use_karras_sigmas (Euler, Heun, DPM-Solver); "logsnr" = use_exponential_sigmas / use_lu_lambdas.
    On diffusers' float32 table s_min = s(0) carries the rounding of 1 - 0.9999 (~1e-4); on Plume's table the grids
    agree to the float32 diffusers stores them in."""
    pairs = [("karras", EulerDiscreteScheduler, dict(use_karras_sigmas=True)),
             ("karras", HeunDiscreteScheduler, dict(use_karras_sigmas=True)),
             ("karras", DPMSolverMultistepScheduler, dict(use_karras_sigmas=True)),
             ("logsnr", EulerDiscreteScheduler, dict(use_exponential_sigmas=True)),
             ("logsnr", DPMSolverMultistepScheduler, dict(use_lu_lambdas=True))]
    for kind, cls, config in pairs:
        sched = make(cls, table=table, **config)
        sched.set_timesteps(steps)
        theirs = torch.unique_consecutive(sched.sigmas).double()
        ours = time_grid(LINEAR, steps, kind).sigmas
        torch.testing.assert_close(ours, theirs, rtol=rtol, atol=0, msg=f"{kind} vs {cls.__name__}, {steps} steps")


def test_euler_timesteps_are_plume_times_of_sigmas():
    """The model times diffusers uses for Karras sigmas are Plume's inverse of s(t): both interpolate log s linearly."""
    sched = make(EulerDiscreteScheduler, table="float64", use_karras_sigmas=True)
    sched.set_timesteps(20)
    ours = LINEAR.time_of_sigma_ratio(sched.sigmas[:-1].double())
    np.testing.assert_allclose(ours.numpy(), sched.timesteps.double().numpy(), rtol=0, atol=2e-4)
