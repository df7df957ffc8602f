"""`plume.sample`: any callable fn(x_t, t), any process, any sampler, as a function of the seeds.

The model is wrapped once into a denoiser in scaled coordinates, D(y, s) = x0_hat(alpha y, t(s)), which
is all a sampler sees (Karras et al. 2022, sec. 2: every Gaussian process is y = x0 + s eps).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import torch

from .broadcast import append_dims
from .errors import PlumeError
from .predictions import Prediction, prediction as build_prediction
from .processes import GaussianProcess, process as build_process
from .samplers import Grid, SeedNoise, grid_from_sigmas, grid_from_times, sampler_spec, time_grid

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def time_on_grid(process: GaussianProcess, s: torch.Tensor, grid: Optional[Grid] = None) -> torch.Tensor:
    """t(s), exact on grid points (e.g. whole DDPM steps, the clean end) instead of the inverse's rounding."""
    t = process.time_of_sigma_ratio(s)
    if grid is None:
        return t
    flat = s.reshape(-1)
    match = flat[:, None] == grid.sigmas.to(s.device)[None, :]  # (B, N + 1)
    exact = grid.times.to(s.device)[match.float().argmax(1)]
    return torch.where(match.any(1), exact, t.reshape(-1)).reshape(s.shape)


class FiniteCheck:
    """Whether every model output of one sampling call was finite. Each output is checked at once (the error
    names its t), except with defer=True on a GPU: there the checks pile up on the device and are read once by
    raise_if_not_finite(), so the loop never waits for the GPU between model calls."""

    def __init__(self, defer: bool = False) -> None:
        self.defer, self.finite = defer, None

    def __call__(self, out: torch.Tensor, t: torch.Tensor) -> None:
        if out.device.type == "cpu" or not self.defer:
            if not bool(torch.isfinite(out).all()):
                raise PlumeError(f"the model returned NaN or inf at t = {float(t.flatten()[0]):.6g}")
            return
        ok = torch.isfinite(out).all()
        self.finite = ok if self.finite is None else self.finite & ok

    def raise_if_not_finite(self) -> None:
        if self.finite is not None and not bool(self.finite):
            raise PlumeError("the model returned NaN or inf during sampling")


def scaled_denoiser(fn: ModelFn, process: GaussianProcess, prediction: Prediction, grid: Optional[Grid] = None,
                    finite: Optional[FiniteCheck] = None) -> Callable:
    """Wrap fn(x_t, t) -> prediction into D(y, s) -> x0_hat; grid points get their exact times. Non-finite
    outputs raise at once, or, given a FiniteCheck, when its raise_if_not_finite() is called."""
    finite = finite or FiniteCheck()

    def denoise(y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(s, dtype=torch.float64, device=y.device).expand(y.shape[0])  # (B,)
        t = time_on_grid(process, s, grid).to(y.dtype)
        x = append_dims(process.alpha(t), y) * y
        out = fn(x, t)
        check_model_output(out, x, t)
        finite(out, t)
        return prediction.to_x0(out, x, process, t)

    return denoise


def check_model_output(out: Any, x: torch.Tensor, t: torch.Tensor) -> None:
    """One readable message for a model that returns the wrong thing."""
    if not torch.is_tensor(out):
        raise PlumeError(f"the model returned {type(out).__name__}, expected a tensor shaped like x {tuple(x.shape)}")
    if out.shape != x.shape:
        raise PlumeError(f"the model returned shape {tuple(out.shape)} for input shape {tuple(x.shape)}; they must match")


def resolve_seeds(n: int, seed: int, seeds: Optional[Sequence[int]]) -> list[int]:
    """Seeds for n samples: explicit `seeds`, or seed, seed + 1, ..., seed + n - 1."""
    if seeds is None:
        return list(range(seed, seed + n))
    seeds = [int(s) for s in seeds]
    if len(seeds) != n:
        raise PlumeError(f"got {len(seeds)} seeds for {n} samples; give one seed per sample")
    return seeds


def build_grid(process: GaussianProcess, sampler: str, steps: int, grid: Optional[str], sigmas, times) -> Grid:
    """The sampling grid: explicit sigmas or times, else a named grid (the sampler's default if None)."""
    if sigmas is not None:
        return grid_from_sigmas(process, sigmas)
    if times is not None:
        return grid_from_times(process, times)
    spec = sampler_spec(sampler)
    return time_grid(process, spec.grid_steps or steps, grid or spec.default_grid)


def sample(
    fn: ModelFn,
    process: "str | GaussianProcess" = "vp",
    shape: Sequence[int] = (1,),
    sampler: str = "dpm++2m",
    steps: int = 10,
    prediction: "str | Prediction" = "x0",
    seed: int = 0,
    seeds: Optional[Sequence[int]] = None,
    grid: Optional[str] = None,
    sigmas: "Optional[Sequence[float] | torch.Tensor]" = None,
    times: "Optional[Sequence[float] | torch.Tensor]" = None,
    hook: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    x_start: Optional[torch.Tensor] = None,
    device: "str | torch.device" = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    **sampler_options: Any,
) -> torch.Tensor:
    """Draw samples of `shape` = (n, ...) from fn(x_t, t) -> `prediction` under `process` with `sampler`.

    hook(x, t) -> x, if given, sees the state in x-space after each step and may replace it.
    x_start overrides the prior draw (in x-space, at the first grid time).
    """
    process = build_process(process)
    spec = sampler_spec(sampler)
    pred = build_prediction(prediction)
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2 and not (len(shape) == 1 and shape[0] >= 1):
        raise PlumeError(f"shape must be (n, ...) with n >= 1, got {shape}")
    if shape[0] < 1:
        raise PlumeError(f"shape must start with the number of samples n >= 1, got {shape}")
    the_grid = build_grid(process, sampler, steps, grid, sigmas, times)
    noise = SeedNoise(resolve_seeds(shape[0], seed, seeds), device)
    s0 = the_grid.sigmas[0]
    if x_start is None:
        y = noise.randn(shape[1:], dtype).to(device) * math.sqrt(float(s0) ** 2 + 1.0)  # x_T ~ N(0, sigma^2 + alpha^2)
    else:
        if tuple(x_start.shape) != shape:
            raise PlumeError(f"x_start has shape {tuple(x_start.shape)}, expected {shape}")
        y = x_start.to(device=device, dtype=dtype) / process.alpha(the_grid.times[0]).to(dtype)
    finite = FiniteCheck(defer=True)
    denoise = scaled_denoiser(fn, process, pred, the_grid, finite)
    sigmas_dev = the_grid.sigmas.to(device)
    y = spec.function(denoise, y, sigmas_dev, noise, _scaled_hook(hook, process, the_grid), progress=progress, **sampler_options)
    finite.raise_if_not_finite()
    last_alpha = process.alpha(the_grid.times[-1]) if float(the_grid.sigmas[-1]) > 0 else torch.tensor(1.0)
    return y * last_alpha.to(dtype)


def _scaled_hook(hook, process: GaussianProcess, grid: Grid):
    """Present an x-space hook(x, t) to samplers, which step in scaled coordinates."""
    if hook is None:
        return None

    def scaled(y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(s, dtype=torch.float64)
        t = time_on_grid(process, s, grid)
        alpha = process.alpha(t).to(y.dtype) if float(s) > 0 else torch.ones((), dtype=y.dtype)
        out = hook(y * alpha, t.to(y.dtype))
        return None if out is None else out / alpha

    return scaled
