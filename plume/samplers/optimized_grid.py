"""Time grids fitted to a model: choose the N noise levels that make a sampler's few steps follow the exact ODE.

In the spirit of "Align Your Steps" (Sabour et al. 2024): the levels are parameters, the sampler is
differentiable in them, and the loss is the squared distance between the sampler's output and an accurate
probability-flow ODE solution from the same starting noise, over a batch of pilot draws. Levels are
parametrized as lambda_0 = -ln s_max fixed and positive gaps in lambda = -ln s (softplus), so they stay
ordered; the last step lands on s = 0 as usual. The fit is a one-time cost per (model, sampler, steps):
`iterations` x (sampler NFE) evaluations with gradients on `pilot` samples.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from ..progress import progress_bar

from ..errors import PlumeError
from ..predictions import Prediction, prediction as build_prediction
from ..processes import GaussianProcess, process as build_process
from . import SAMPLERS, sampler_spec
from .adaptive import adaptive_ode
from .grids import Grid, grid_from_sigmas, time_grid
from .noise import SeedNoise

DETERMINISTIC = ("ddim", "euler", "heun", "dpm++2m", "dpm++3m", "adams")


def _levels(lambda_start: float, raw_gaps: torch.Tensor) -> torch.Tensor:
    lambdas = lambda_start + torch.cat([raw_gaps.new_zeros(1), torch.cumsum(torch.nn.functional.softplus(raw_gaps), 0)])
    return torch.cat([torch.exp(-lambdas), raw_gaps.new_zeros(1)])  # (N + 1,), decreasing, ends at 0


def optimize_grid(fn: Callable, process: "str | GaussianProcess", shape: tuple, sampler: str = "dpm++3m", steps: int = 10,
                  prediction: "str | Prediction" = "x0", init_grid: Optional[str] = None, pilot_seed: int = 1_000_000,
                  iterations: int = 300, lr: float = 0.1, reference_tolerance: float = 1e-7,
                  dtype: torch.dtype = torch.float64, progress: bool = False, **sampler_options) -> Grid:
    """Fit the `steps`-step grid of a deterministic `sampler` to fn on pilot draws of `shape` (n, ...)."""
    if sampler not in DETERMINISTIC:
        raise PlumeError(f"grids are fitted for deterministic fixed-step samplers ({', '.join(DETERMINISTIC)}), not {sampler!r}")
    process, pred, spec = build_process(process), build_prediction(prediction), sampler_spec(sampler)
    from ..sampling import scaled_denoiser  # late: sampling imports this package

    denoise = scaled_denoiser(fn, process, pred)
    start = time_grid(process, steps, init_grid or spec.default_grid).sigmas.to(dtype)  # (N + 1,)
    noise = SeedNoise(range(pilot_seed, pilot_seed + shape[0]))
    y_start = noise.randn(shape[1:], dtype) * math.sqrt(float(start[0]) ** 2 + 1)
    with torch.no_grad():
        reference = adaptive_ode(denoise, y_start, time_grid(process, 2, "karras").sigmas.to(dtype), noise,
                                 rtol=reference_tolerance, atol=reference_tolerance)
    positive = start[:-1]
    lambda_start = -math.log(float(positive[0]))
    gaps = -torch.log(positive[1:]) + torch.log(positive[:-1])  # (N - 1,) > 0
    raw = torch.log(torch.expm1(gaps)).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([raw], lr=lr)
    for _ in progress_bar(range(iterations), desc=f"fitting a {steps}-step {sampler} grid", enabled=progress, leave=False):
        optimizer.zero_grad()
        sigmas = _levels(lambda_start, raw)
        y = SAMPLERS[sampler].function(denoise, y_start, sigmas, noise, **sampler_options)  # sigmas[0] = start[0], fixed
        loss = (y - reference).pow(2).mean()
        loss.backward()
        optimizer.step()
    return grid_from_sigmas(process, _levels(lambda_start, raw).detach())
