"""Times for discrete diffusion: training times t in [0, 1) and the sampling grids 1 = t_0 > ... > t_N >= 0.

Training times are uniform; `antithetic` is MDLM's low-discrepancy sampler (Sahoo et al. 2024, sec. 3.5; Kingma et
al. 2021, VDM appendix): t_i = (u_i + i) / B for i = 0..B-1, one draw in each of B equal strata, so a batch covers
[0, 1) evenly and the NELBO's variance drops while each t_i stays uniform on average.
"""
from __future__ import annotations

import torch

from ..errors import PlumeError


def training_times(batch: int, generator: torch.Generator, antithetic: bool = True,
                   dtype: torch.dtype = torch.float32, device: "torch.device | str" = "cpu") -> torch.Tensor:
    """(batch,) times in [0, 1): i.i.d. uniform, or stratified t_i = (u_i + i) / batch when `antithetic` (MDLM)."""
    u = torch.rand(batch, generator=generator, dtype=torch.float64, device=device)  # (B,)
    if antithetic:
        u = (u + torch.arange(batch, dtype=torch.float64, device=device)) / batch  # (B,) one per stratum
    return u.to(dtype)


def uniform_grid(steps: int, end: float = 0.0) -> torch.Tensor:
    """(steps + 1,) float64 times from 1 down to `end`, evenly spaced."""
    if steps < 1:
        raise PlumeError(f"a sampling grid needs at least 1 step, got {steps}")
    if not 0.0 <= end < 1.0:
        raise PlumeError(f"a sampling grid must end in [0, 1), got {end!r}")
    return torch.linspace(1.0, end, steps + 1, dtype=torch.float64)


def checked_grid(times: "torch.Tensor | list[float]") -> torch.Tensor:
    """The grid as float64 (N + 1,), or an error unless it decreases strictly inside [0, 1]."""
    times = torch.as_tensor(times, dtype=torch.float64).flatten()
    if len(times) < 2:
        raise PlumeError(f"a sampling grid needs at least 2 times (1 step), got {len(times)}")
    if not (bool((times[1:] < times[:-1]).all()) and float(times[0]) <= 1.0 and float(times[-1]) >= 0.0):
        raise PlumeError(f"sampling times must decrease strictly within [0, 1], got {times.tolist()}")
    return times
