"""Noise schedules alpha(t) of discrete diffusion: the probability that a token is still clean at time t.

t runs over [0, 1]: alpha(0) = 1 (clean data) and alpha(1) = eps (almost all noise). Each schedule gives alpha and
its derivative alpha' in closed form; sigma(t) = -log alpha(t) is MDLM's "total noise" (Sahoo et al. 2024, sec. 3.1).
  loglinear  alpha_t = 1 - (1 - eps) t,  i.e. sigma(t) = -log(1 - (1 - eps) t)   (MDLM; Lou et al. 2024, SEDD)
  cosine     alpha_t = eps + (1 - eps) cos(pi t / 2)                             (MDLM's noise_schedule.py)
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import PlumeError
from ..registry import Registry, build


class DiscreteSchedule:
    """alpha(t) on t in [0, 1], decreasing from 1 to eps; subclasses define alpha and d_alpha."""

    name = "discrete schedule"

    def __init__(self, eps: float = 1e-3):
        if not 0.0 <= eps < 1.0:
            raise PlumeError(f"{self.name} schedule: eps must be in [0, 1), got {eps!r}")
        self.eps = float(eps)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """alpha(t) = P(z_t = x), the clean fraction at time t."""
        raise NotImplementedError

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """alpha'(t), negative on (0, 1]."""
        raise NotImplementedError

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """MDLM's total noise sigma(t) = -log alpha(t)."""
        return -torch.log(self.alpha(t))

    def options(self) -> dict[str, Any]:
        """The constructor options that rebuild this schedule."""
        return {"eps": self.eps}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps!r})"


class LogLinear(DiscreteSchedule):
    """alpha_t = 1 - (1 - eps) t: sigma(t) = -log(1 - (1 - eps) t) is linear in log(1 - t) (MDLM, sec. 3.5)."""

    name = "loglinear"

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - (1.0 - self.eps) * torch.as_tensor(t)

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(torch.as_tensor(t), -(1.0 - self.eps))


class Cosine(DiscreteSchedule):
    """alpha_t = eps + (1 - eps) cos(pi t / 2) (MDLM's CosineNoise: sigma = -log(eps + (1 - eps) cos(pi t / 2)))."""

    name = "cosine"

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return self.eps + (1.0 - self.eps) * torch.cos(torch.as_tensor(t) * (math.pi / 2))

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -(1.0 - self.eps) * (math.pi / 2) * torch.sin(torch.as_tensor(t) * (math.pi / 2))


SCHEDULES: Registry[type[DiscreteSchedule]] = Registry("discrete schedule", {"loglinear": LogLinear, "cosine": Cosine})


def schedule(name: str, **options: Any) -> DiscreteSchedule:
    """Build a discrete schedule by name ("loglinear" or "cosine") with its options (eps)."""
    return build("discrete schedule", SCHEDULES, name, **options)
