"""Starting the reverse process part-way, from a given image: the shared core of image-to-image (SDEdit, Meng et
al. 2022), denoising a noisy image, inpainting and anomaly scores.

All levels are in scaled coordinates, s = sigma / alpha (plume.sampling), where a process's noisy image is
x_t = alpha(t) (x0 + s eps). `partial_sigmas` cuts the sampler's own grid: `strength` in (0, 1] keeps the last
ceil(strength * N) of N' = steps / strength steps, so strength 1 is ordinary sampling and strength 0.3 starts
where a full-length run is 70% done (diffusers' img2img convention). `sigmas_below` is a Karras grid (eq. 5)
from a given level down, for an image whose noise level is known or estimated. `noise_to` draws x_t for given x0
and a level, one generator per seed, and `denoise_from` runs any sampler from x_t down the given levels, with an
optional hook (plume.sampling.sample) that may replace the state after each step.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import torch

from ..errors import PlumeError
from ..processes import GaussianProcess, process as build_process
from ..samplers.grids import time_grid
from ..samplers.noise import SeedNoise
from ..sampling import sample

ModelFn = Callable[..., torch.Tensor]


def partial_sigmas(process: "str | GaussianProcess", steps: int, strength: float, grid: str = "karras") -> torch.Tensor:
    """Decreasing levels (steps + 1,) ending at 0: the last `steps` steps of the grid of steps / strength steps."""
    if not 0.0 < strength <= 1.0:
        raise PlumeError(f"strength must be in (0, 1] (1: start from pure noise), got {strength}")
    if not isinstance(steps, int) or steps < 1:
        raise PlumeError(f"steps must be a whole number >= 1, got {steps!r}")
    full = max(steps, math.ceil(steps / strength - 1e-9))
    return time_grid(build_process(process), full, grid).sigmas[full - steps:]  # (steps + 1,)


def sigmas_below(process: "str | GaussianProcess", steps: int, s_start: float) -> torch.Tensor:
    """Decreasing levels (steps + 1,): Karras et al.'s grid (eq. 5) from s_start down to the process's floor, then 0."""
    if not s_start > 0.0:
        raise PlumeError(f"the starting noise level must be > 0, got {s_start}")
    return time_grid(build_process(process), steps, "karras", s_max=float(s_start)).sigmas  # (steps + 1,)


def noise_to(process: "str | GaussianProcess", x0: torch.Tensor, s: float, seeds: Sequence[int]) -> torch.Tensor:
    """x_t (B, ...) = alpha(t) (x0 + s eps) at scaled level s, eps from one generator per seed (B seeds)."""
    process = build_process(process)
    if len(seeds) != len(x0):
        raise PlumeError(f"got {len(seeds)} seeds for {len(x0)} images; give one seed per image")
    eps = SeedNoise(seeds, x0.device).randn(x0.shape[1:], x0.dtype)  # (B, ...)
    t = process.time_of_sigma_ratio(torch.tensor(float(s), dtype=torch.float64))
    return float(process.alpha(t)) * (x0 + float(s) * eps)  # (B, ...)


def denoise_from(fn: ModelFn, process: "str | GaussianProcess", x_t: torch.Tensor, sigmas: torch.Tensor,
                 seeds: Sequence[int], sampler: str = "dpm++2m", prediction: str = "x0",
                 hook: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
                 **sampler_options: Any) -> torch.Tensor:
    """Run `sampler` from x_t (B, ...) at level sigmas[0] down the levels `sigmas` (ending at 0): x0 (B, ...)."""
    return sample(fn, process, tuple(x_t.shape), sampler=sampler, prediction=prediction, seeds=list(seeds),
                  sigmas=sigmas, x_start=x_t, hook=hook, device=x_t.device, dtype=x_t.dtype, **sampler_options)


__all__ = ["partial_sigmas", "sigmas_below", "noise_to", "denoise_from"]
