"""Exact likelihood through the probability-flow ODE, and DDPM's discrete-time variational bound.

PF-ODE (Song et al. 2021, sec. 4.3 and appendix D.2; Chen et al. 2018, instantaneous change of variables):
in scaled coordinates with u = ln s the ODE is dy/du = v(y, u) = y - D(y, e^u), so
  log p_{s_min}(y(u_min)) = log p_{s_max}(y(u_max)) + int_{u_min}^{u_max} div_y v du,  div_y v = d - div_y D,
with the prior y(u_max) ~ N(0, (1 + s_max^2) I) (x_T ~ N(0, sigma^2 + alpha^2)). The divergence is exact
(d backward passes, for low dimension) or Hutchinson's estimate z^T (dD/dy) z with Rademacher z
(Hutchinson 1989; Grathwohl et al. 2019, FFJORD).

DDPM bound (Ho et al. 2020, eq. 5): L = L_T + sum_{t>1} KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)) + L_0, with
p's variance beta-tilde, KL_t = c0_t^2 ||x0 - x0_hat||^2 / (2 beta-tilde_t), c0_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t)
(eq. 7), and L_0 a Gaussian decoder of variance beta_1 (continuous data) or its discretization over 256 bins
(eq. 13, 8-bit data in [-1, 1]).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from .progress import progress_bar

from .errors import PlumeError
from .ode import solve_ode
from .predictions import Prediction, prediction as build_prediction
from .processes import DDPM, GaussianProcess, process as build_process
from .sampling import ModelFn, resolve_seeds, scaled_denoiser
from .samplers import SeedNoise


@dataclass
class Likelihood:
    """Per-sample negative log-likelihood in nats and bits per dimension, and the work it took."""

    nll: torch.Tensor  # (B,) nats
    bits_per_dim: torch.Tensor  # (B,)
    evaluations: int
    method: str


def to_bits_per_dim(nll: torch.Tensor, dims: int) -> torch.Tensor:
    """Nats per sample to bits per dimension: nll / (d ln 2)."""
    return nll / (dims * math.log(2.0))


def _divergence(denoise_out: torch.Tensor, y: torch.Tensor, probe: Optional[torch.Tensor]) -> torch.Tensor:
    """div_y D per sample (B,): Hutchinson with `probe`, or exact over every dimension if probe is None."""
    if probe is not None:
        (grad,) = torch.autograd.grad((denoise_out * probe).sum(), y)
        return (grad * probe).flatten(1).sum(1)
    flat = denoise_out.flatten(1)  # (B, d)
    total = torch.zeros(flat.shape[0], dtype=y.dtype, device=y.device)
    for i in range(flat.shape[1]):
        (grad,) = torch.autograd.grad(flat[:, i].sum(), y, retain_graph=i + 1 < flat.shape[1])
        total = total + grad.flatten(1)[:, i]
    return total


def ode_likelihood(fn: ModelFn, process: "str | GaussianProcess", x0: torch.Tensor, prediction: "str | Prediction" = "x0",
                   exact_trace: Optional[bool] = None, seed: int = 0, seeds: Optional[Sequence[int]] = None,
                   rtol: float = 1e-5, atol: float = 1e-5, s_min: Optional[float] = None,
                   prior_log_prob: Optional[Callable[[torch.Tensor, float], torch.Tensor]] = None) -> Likelihood:
    """-log p(x0) of each sample by the probability-flow ODE; exact trace by default up to 64 dimensions.

    The density is that of the data smoothed to the smallest noise level s_min (default s(t_min)).
    `prior_log_prob(y, s_max) -> (B,)` replaces the default prior N(0, (1 + s_max^2) I) in scaled coordinates;
    the default's mismatch to the true marginal is O(|mean| / s_max) per sample and averages out over data.
    """
    process = build_process(process)
    pred = build_prediction(prediction)
    if not bool(torch.isfinite(x0).all()):
        bad = int((~torch.isfinite(x0.flatten(1))).any(1).nonzero()[0])
        raise PlumeError(f"data row {bad} contains NaN or inf")
    batch, dims = x0.shape[0], x0[0].numel()
    exact_trace = dims <= 64 if exact_trace is None else exact_trace
    probe = None
    if not exact_trace:  # Rademacher probes, one stream per sample
        probe = torch.sign(SeedNoise(resolve_seeds(batch, seed, seeds), x0.device).randn(x0.shape[1:], x0.dtype))
    denoise = scaled_denoiser(fn, process, pred)
    s_lo = float(process.sigma_ratio(torch.tensor(process.t_min, dtype=torch.float64))) if s_min is None else s_min
    s_hi = float(process.sigma_ratio(torch.tensor(process.t_max, dtype=torch.float64)))

    def augmented(state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            y = state[:, :dims].reshape(x0.shape).detach().requires_grad_(True)
            d_out = denoise(y, torch.exp(u))
            div_v = dims - _divergence(d_out, y, probe)  # (B,)
        velocity = (y - d_out).detach().flatten(1)  # (B, d)
        return torch.cat([velocity, div_v.detach()[:, None]], dim=1)

    state = torch.cat([x0.flatten(1), torch.zeros(batch, 1, dtype=x0.dtype, device=x0.device)], dim=1)
    state, evaluations = solve_ode(augmented, state, math.log(s_lo), math.log(s_hi), rtol=rtol, atol=atol)
    y_end, integral = state[:, :dims], state[:, dims]
    if prior_log_prob is None:
        prior_var = 1.0 + s_hi**2
        log_prior = -0.5 * (y_end**2).sum(1) / prior_var - 0.5 * dims * math.log(2 * math.pi * prior_var)
    else:
        log_prior = prior_log_prob(y_end.reshape(x0.shape), s_hi)
    nll = -(log_prior + integral)
    return Likelihood(nll, to_bits_per_dim(nll, dims), evaluations, "exact trace" if exact_trace else "hutchinson")


def _gaussian_kl_to_standard(mean: torch.Tensor, var: float) -> torch.Tensor:
    return 0.5 * (var + mean**2 - 1.0 - math.log(var)).flatten(1).sum(1)


def _discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log P(bin of x) for 8-bit data in [-1, 1] under N(mean, std^2) (Ho et al. 2020, eq. 13)."""
    normal = torch.distributions.Normal(mean, std)
    upper = torch.where(x > 0.999, torch.ones_like(x), normal.cdf(x + 1 / 255))
    lower = torch.where(x < -0.999, torch.zeros_like(x), normal.cdf(x - 1 / 255))
    return torch.log((upper - lower).clamp_min(1e-12)).flatten(1).sum(1)


def ddpm_elbo(fn: ModelFn, process: "str | DDPM", x0: torch.Tensor, prediction: "str | Prediction" = "x0",
              decoder: str = "gaussian", seed: int = 0, seeds: Optional[Sequence[int]] = None,
              progress: bool = False) -> Likelihood:
    """DDPM's variational bound on -log p(x0) over all T terms (one noise draw per term and sample)."""
    process = build_process(process)
    if not isinstance(process, DDPM):
        raise PlumeError(f"the discrete ELBO needs the 'ddpm' process, got {process.name!r}; use ode_likelihood")
    if decoder not in ("gaussian", "discretized"):
        raise PlumeError(f"unknown decoder {decoder!r}; valid: discretized, gaussian")
    pred = build_prediction(prediction)
    batch, dims = x0.shape[0], x0[0].numel()
    abar = process.alphas_cumprod.to(x0.dtype)  # (T,)
    betas = 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])  # (T,)
    noise = SeedNoise(resolve_seeds(batch, seed, seeds), x0.device)
    total = _gaussian_kl_to_standard(abar[-1].sqrt() * x0, float(1 - abar[-1]))  # L_T

    for step in progress_bar(range(process.steps), desc="ddpm elbo", enabled=progress, leave=False):
        t = torch.full((batch,), float(step), dtype=x0.dtype, device=x0.device)
        x_t = process.add_noise(x0, t, noise.randn_like(x0))
        with torch.no_grad():
            x0_hat = pred.to_x0(fn(x_t, t), x_t, process, t)
        if step == 0:  # L_0: decoder with variance beta_1
            std = float(betas[0].sqrt())
            if decoder == "gaussian":
                log_lik = (-0.5 * ((x0 - x0_hat) / std) ** 2 - 0.5 * math.log(2 * math.pi * std**2)).flatten(1).sum(1)
            else:
                log_lik = _discretized_gaussian_log_likelihood(x0, x0_hat, std)
            total = total - log_lik
            continue
        posterior_var = float((1 - abar[step - 1]) / (1 - abar[step]) * betas[step])
        c0 = float(abar[step - 1].sqrt() * betas[step] / (1 - abar[step]))
        total = total + c0**2 * ((x0 - x0_hat) ** 2).flatten(1).sum(1) / (2 * posterior_var)
    return Likelihood(total, to_bits_per_dim(total, dims), process.steps, f"ddpm elbo ({decoder} decoder)")
