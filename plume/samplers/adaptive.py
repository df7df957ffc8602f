"""Adaptive-step probability-flow ODE sampler: DOPRI5 in u = log s, where dy/du = y - D(y, e^u).

The change of variable makes the ODE smooth over the many decades of s (Karras et al. 2022, eq. 4 with
s = e^u). The final jump from the smallest level to s = 0 is one denoiser call.
"""
from __future__ import annotations

import math

import torch

from ..ode import solve_ode
from .loop import Hook, ScaledDenoiser, apply_hook
from .noise import SeedNoise


def adaptive_ode(denoise: ScaledDenoiser, y: torch.Tensor, sigmas: torch.Tensor, noise: SeedNoise, hook: Hook = None,
                 rtol: float = 1e-4, atol: float = 1e-4, progress: bool = False) -> torch.Tensor:
    """Solve the PF-ODE from sigmas[0] to the smallest positive sigma with error control, then denoise."""
    positive = sigmas[sigmas > 0]
    s_start, s_end = float(positive[0]), float(positive[-1])

    def velocity(state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return state - denoise(state, torch.exp(u))

    y, _ = solve_ode(velocity, y, math.log(s_start), math.log(s_end), rtol=rtol, atol=atol)
    y = apply_hook(hook, y, positive[-1])
    if float(sigmas[-1]) == 0.0:
        y = apply_hook(hook, denoise(y, positive[-1]), sigmas[-1])
    return y
