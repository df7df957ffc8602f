"""Processes with alpha = 1 or alpha + sigma = 1: VE (NCSN / score SDE), EDM, linear flow.

VE: sigma(t) = sigma_min (sigma_max / sigma_min)^t (Song et al. 2021, eq. 9; NCSN's geometric sigmas).
EDM: alpha = 1, sigma = t (Karras et al. 2022, Table 1).
Flow: alpha = 1 - t, sigma = t (rectified flow, Liu et al. 2022; flow matching, Lipman et al. 2023).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .base import GaussianProcess


class VE(GaussianProcess):
    """Variance-exploding SDE; t in [0, 1]."""

    name = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.t_min, self.t_max = 0.0, 1.0
        self.clean_time = None  # sigma(0) = sigma_min > 0

    def options(self) -> dict[str, Any]:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max}

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(torch.as_tensor(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** torch.as_tensor(t)

    def time_of_sigma_ratio(self, s: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.as_tensor(s) / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)


class EDM(GaussianProcess):
    """EDM's process: t is the noise level sigma itself, in [sigma_min, sigma_max]."""

    name = "edm"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        self.t_min, self.t_max = sigma_min, sigma_max
        self.clean_time = 0.0

    def options(self) -> dict[str, Any]:
        return {"sigma_min": self.t_min, "sigma_max": self.t_max}

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(torch.as_tensor(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(t).clone()

    def time_of_sigma_ratio(self, s: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(s).clone()


class Flow(GaussianProcess):
    """Linear interpolation x_t = (1 - t) x0 + t eps; t_max < 1 keeps s = t / (1 - t) finite."""

    name = "flow"

    def __init__(self, t_min: float = 1e-3, t_max: float = 0.999):
        self.t_min, self.t_max = t_min, t_max
        self.clean_time = 0.0

    def options(self) -> dict[str, Any]:
        return {"t_min": self.t_min, "t_max": self.t_max}

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1 - torch.as_tensor(t)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(t).clone()

    def time_of_sigma_ratio(self, s: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(s)
        return s / (1 + s)
