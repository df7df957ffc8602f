"""DDPM's discrete Markov chain as a process: a table of 1000 alpha-bar values (Ho et al. 2020, sec. 4).

Linear betas (Ho et al. 2020) or cosine alpha-bar (Nichol & Dhariwal 2021, eq. 17). Between integer
steps, log s(t) is interpolated linearly, as k-diffusion's discrete wrapper and diffusers' Karras path
do, so continuous-time samplers and grids apply unchanged. t = -1 is the clean end (alpha-bar = 1).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import PlumeError
from .base import GaussianProcess

BETA_SCHEDULES = ("linear", "cosine")


def ddpm_alphas_cumprod(steps: int, schedule: str, beta_start: float, beta_end: float) -> torch.Tensor:
    """alpha-bar_t for t = 0..steps-1 in float64."""
    if schedule == "linear":  # Ho et al. 2020, sec. 4: beta_1 = 1e-4 ... beta_T = 0.02
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    elif schedule == "cosine":  # Nichol & Dhariwal 2021, eq. 17, betas clipped at 0.999
        grid = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((grid + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = torch.clamp(1 - f[1:] / f[:-1], max=0.999)
    else:
        raise PlumeError(f"unknown beta schedule {schedule!r}; valid: {', '.join(BETA_SCHEDULES)}")
    return torch.cumprod(1 - betas, dim=0)


class DDPM(GaussianProcess):
    """Discrete-time DDPM; `t` is the step index in [0, steps - 1] (float tensors interpolate)."""

    name = "ddpm"

    def __init__(self, steps: int = 1000, schedule: str = "linear", beta_start: float = 1e-4, beta_end: float = 0.02):
        if steps < 2:
            raise PlumeError(f"ddpm needs at least 2 steps, got steps={steps}")
        self.steps, self.schedule, self.beta_start, self.beta_end = steps, schedule, beta_start, beta_end
        self.alphas_cumprod = ddpm_alphas_cumprod(steps, schedule, beta_start, beta_end)  # (T,)
        # log s at t = 0..T-1; t = -1 is the clean end, s = 0
        self.log_sigma_ratios = 0.5 * torch.log((1 - self.alphas_cumprod) / self.alphas_cumprod)  # (T,)
        self.t_min, self.t_max = 0.0, float(steps - 1)
        self.clean_time = -1.0

    def options(self) -> dict[str, Any]:
        return {"steps": self.steps, "schedule": self.schedule, "beta_start": self.beta_start, "beta_end": self.beta_end}

    def sigma_ratio(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        dtype = t.dtype if t.is_floating_point() else torch.float64
        table = self.log_sigma_ratios.to(device=t.device, dtype=dtype)
        tc = t.to(dtype).clamp(0, self.steps - 1)
        low = tc.floor().clamp(max=self.steps - 2)
        w = tc - low
        idx = low.long()
        log_s = torch.lerp(table[idx], table[idx + 1], w)
        s = torch.exp(log_s)
        return torch.where(t.to(dtype) < 0, torch.zeros_like(s), s)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.rsqrt(1 + self.sigma_ratio(t) ** 2)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        s = self.sigma_ratio(t)
        return s * torch.rsqrt(1 + s**2)

    def time_of_sigma_ratio(self, s: torch.Tensor) -> torch.Tensor:
        """Exact inverse of the piecewise log-linear s(t)."""
        s = torch.as_tensor(s)
        dtype = s.dtype if s.is_floating_point() else torch.float64
        table = self.log_sigma_ratios.to(device=s.device, dtype=dtype)
        log_s = torch.log(s.to(dtype)).clamp(table[0], table[-1])
        high = torch.searchsorted(table, log_s.reshape(-1)).reshape(log_s.shape).clamp(1, self.steps - 1)
        low = high - 1
        w = (log_s - table[low]) / (table[high] - table[low])
        return low.to(dtype) + w

    def uniform_time(self, u: torch.Tensor) -> torch.Tensor:
        """Training draws integer steps uniformly, as in Ho et al. 2020, Algorithm 1."""
        return torch.floor(u * self.steps).clamp(max=self.steps - 1)
