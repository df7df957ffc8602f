"""Time grids: N steps as N + 1 noise levels s_0 > ... > s_{N-1} > s_N = 0 in scaled coordinates.

uniform / trailing: t uniform from t_max to the clean end (diffusers' "trailing"; Lin et al. 2024, table 2)
leading:  DDPM/DDIM's t_i = i * (T // N) (Song et al. 2021 DDIM; diffusers' "leading")
karras:   s_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho (Karras et al. 2022, eq. 5)
logsnr:   lambda = -log s uniform (Lu et al. 2022, DPM-Solver sec. 3.3)
Each grid returns the times t_i (where the model is evaluated) and the levels s_i = s(t_i), with s_N = 0.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from ..errors import PlumeError, unknown_name
from ..processes import GaussianProcess


class Grid(NamedTuple):
    """Times (N + 1,) and scaled noise levels sigmas (N + 1,), float64; sigmas[-1] = 0 is the clean end."""

    times: torch.Tensor
    sigmas: torch.Tensor


def _from_times(process: GaussianProcess, times: torch.Tensor) -> Grid:
    sigmas = process.sigma_ratio(times[:-1])
    return Grid(times, torch.cat([sigmas, sigmas.new_zeros(1)]))


def _from_sigmas(process: GaussianProcess, sigmas: torch.Tensor) -> Grid:
    times = process.time_of_sigma_ratio(sigmas)
    sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    return Grid(torch.cat([times, times.new_full((1,), process.clean_end())]), sigmas)


def uniform(process: GaussianProcess, steps: int) -> Grid:
    return _from_times(process, torch.linspace(process.t_max, process.clean_end(), steps + 1, dtype=torch.float64))


def trailing(process: GaussianProcess, steps: int) -> Grid:
    """Uniform in t, rounded to whole steps for discrete processes (diffusers' "trailing")."""
    if process.steps is None:
        return uniform(process, steps)
    # t_i = round(T - i T / N) - 1 (Lin et al. 2024, table 2), in numpy.arange's arithmetic so ties round as diffusers'
    end = process.clean_end()
    span = process.t_max - end  # T
    delta = (span - span / steps) - span
    return _from_times(process, torch.round(span + torch.arange(steps + 1, dtype=torch.float64) * delta) + end)


def leading(process: GaussianProcess, steps: int) -> Grid:
    """t_i = (N - 1 - i) * (T // N) for discrete processes; for continuous ones the same fractions of t_max."""
    total = process.steps
    if total is None:
        span = process.t_max - process.t_min
        times = process.t_min + span * torch.arange(steps - 1, -1, -1, dtype=torch.float64) / steps
    else:
        if steps > total:
            raise PlumeError(f"leading spacing needs steps <= {total}, got {steps}")
        times = torch.arange(steps - 1, -1, -1, dtype=torch.float64) * (total // steps)
    return _from_times(process, torch.cat([times, times.new_full((1,), process.clean_end())]))


def karras(process: GaussianProcess, steps: int, rho: float = 7.0, s_max: "float | None" = None) -> Grid:
    """Karras et al.'s grid (eq. 5) from the process's largest level, or from s_max if given, to its smallest."""
    s_min, s_top = (float(process.sigma_ratio(torch.tensor(t, dtype=torch.float64))) for t in (process.t_min, process.t_max))
    s_max = s_top if s_max is None else s_max
    if not s_max > s_min:
        raise PlumeError(f"the starting noise level {s_max:g} must exceed the process's smallest, {s_min:g}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    sigmas = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    return _from_sigmas(process, sigmas)


def logsnr(process: GaussianProcess, steps: int) -> Grid:
    ends = process.sigma_ratio(torch.tensor([process.t_max, process.t_min], dtype=torch.float64))
    log_s = torch.linspace(float(torch.log(ends[0])), float(torch.log(ends[1])), steps, dtype=torch.float64)
    return _from_sigmas(process, torch.exp(log_s))


GRIDS: dict[str, Callable[..., Grid]] = {
    "uniform": uniform,
    "trailing": trailing,
    "leading": leading,
    "karras": karras,
    "logsnr": logsnr,
}


def time_grid(process: GaussianProcess, steps: int, kind: str = "karras", **options) -> Grid:
    """Build a named grid of `steps` steps for `process`."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise PlumeError(f"steps must be a whole number >= 1, got {steps!r}")
    if kind not in GRIDS:
        raise unknown_name("grid", kind, list(GRIDS))
    return GRIDS[kind](process, steps, **options)


def grid_from_sigmas(process: GaussianProcess, sigmas: "torch.Tensor | list[float]") -> Grid:
    """A grid from explicit decreasing noise levels (the last should be 0)."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.ndim != 1 or len(sigmas) < 2 or bool((sigmas[1:] >= sigmas[:-1]).any()):
        raise PlumeError("sigmas must be a 1-D, strictly decreasing list of at least 2 noise levels")
    positive = sigmas[sigmas > 0]
    times = process.time_of_sigma_ratio(positive)
    if len(positive) < len(sigmas):
        times = torch.cat([times, times.new_full((1,), process.clean_end())])
    return Grid(times, sigmas)


def grid_from_times(process: GaussianProcess, times: "torch.Tensor | list[float]") -> Grid:
    """A grid from explicit decreasing times; the step after the last time lands on the clean end."""
    times = torch.as_tensor(times, dtype=torch.float64)
    if times.ndim != 1 or len(times) < 1 or bool((times[1:] >= times[:-1]).any()):
        raise PlumeError("times must be a 1-D, strictly decreasing list")
    return _from_times(process, torch.cat([times, times.new_full((1,), process.clean_end())]))
