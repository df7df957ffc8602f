"""Variance-preserving and sub-VP processes of the score SDE (Song et al. 2021, eq. 11 and 29).

VP linear: beta(t) = beta_min + t (beta_max - beta_min), log alpha = -t^2 (beta_max - beta_min)/4 - t beta_min/2.
VP cosine: alpha(t) = cos(pi/2 (t + s0)/(1 + s0)) / cos(pi/2 s0/(1 + s0)) (Nichol & Dhariwal 2021).
sub-VP: same alpha, sigma = 1 - alpha^2 (Song et al. 2021, eq. 29: variance (1 - e^{-int beta})^2).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import PlumeError
from .base import GaussianProcess


class VP(GaussianProcess):
    """Continuous VP SDE, t in [t_min, 1]; schedule "linear" (DDPM's limit) or "cosine"."""

    name = "vp"

    def __init__(self, schedule: str = "linear", beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3):
        if schedule not in ("linear", "cosine"):
            raise PlumeError(f"unknown vp schedule {schedule!r}; valid: cosine, linear")
        self.schedule, self.beta_min, self.beta_max = schedule, beta_min, beta_max
        self.t_min = t_min
        # cosine alpha reaches 0 at t = 1; stop where lambda is still finite, as DPM-Solver does (T = 0.9946)
        self.t_max = 1.0 if schedule == "linear" else 0.9946
        self.clean_time = 0.0
        self._cos_s0 = 0.008

    def options(self) -> dict[str, Any]:
        return {"schedule": self.schedule, "beta_min": self.beta_min, "beta_max": self.beta_max, "t_min": self.t_min}

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """log alpha(t), the closed form of -1/2 int_0^t beta."""
        t = torch.as_tensor(t)
        if self.schedule == "linear":
            return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
        s0 = self._cos_s0
        return torch.log(torch.cos((t + s0) / (1 + s0) * math.pi / 2)) - math.log(math.cos(s0 / (1 + s0) * math.pi / 2))

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(2 * self.log_alpha(t)))

    def sigma_ratio(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.expm1(-2 * self.log_alpha(t)))

    def time_of_log_alpha(self, log_alpha: torch.Tensor) -> torch.Tensor:
        """Inverse of log alpha(t) in closed form."""
        if self.schedule == "linear":
            integral = -2 * log_alpha  # int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / 2
            d = self.beta_max - self.beta_min
            return (-self.beta_min + torch.sqrt(self.beta_min**2 + 2 * d * integral)) / d
        s0 = self._cos_s0
        c = torch.exp(log_alpha) * math.cos(s0 / (1 + s0) * math.pi / 2)
        return torch.acos(c.clamp(-1, 1)) * 2 / math.pi * (1 + s0) - s0

    def time_of_sigma_ratio(self, s: torch.Tensor) -> torch.Tensor:
        return self.time_of_log_alpha(-0.5 * torch.log1p(torch.as_tensor(s) ** 2))


class SubVP(VP):
    """Sub-VP SDE: alpha as VP linear, sigma(t) = 1 - alpha(t)^2."""

    name = "subvp"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3):
        super().__init__("linear", beta_min, beta_max, t_min)

    def options(self) -> dict[str, Any]:
        return {"beta_min": self.beta_min, "beta_max": self.beta_max, "t_min": self.t_min}

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.expm1(2 * self.log_alpha(t))

    def sigma_ratio(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma(t) / self.alpha(t)

    def time_of_sigma_ratio(self, s: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(s)
        alpha = 0.5 * (torch.sqrt(s**2 + 4) - s)  # root of alpha^2 + s alpha - 1 = 0
        return self.time_of_log_alpha(torch.log(alpha))
