"""Euler and Heun on the probability-flow ODE dy/ds = (y - D(y, s)) / s (Karras et al. 2022, eq. 4 and Alg. 2).

Heun optionally adds EDM's stochastic churn: raise s to s_hat = s (1 + gamma), add noise of variance
s_hat^2 - s^2, then take the second-order step from s_hat (Alg. 2, lines 4-8).
"""
from __future__ import annotations

import math

import torch

from .loop import Hook, ScaledDenoiser, apply_hook, step_pairs
from .noise import SeedNoise


def euler(denoise: ScaledDenoiser, y: torch.Tensor, sigmas: torch.Tensor, noise: SeedNoise, hook: Hook = None,
          progress: bool = False) -> torch.Tensor:
    """First-order Euler steps; one model evaluation per step."""
    for _, s, s_next in step_pairs(sigmas, progress, "euler"):
        slope = (y - denoise(y, s)) / s.to(y.dtype)  # dy/ds, (B, ...)
        y = apply_hook(hook, y + (s_next - s).to(y.dtype) * slope, s_next)
    return y


def heun(denoise: ScaledDenoiser, y: torch.Tensor, sigmas: torch.Tensor, noise: SeedNoise, hook: Hook = None,
         churn: float = 0.0, churn_min: float = 0.0, churn_max: float = math.inf, churn_noise: float = 1.0,
         progress: bool = False) -> torch.Tensor:
    """Heun's second-order method (EDM Alg. 2); the last step to s = 0 is an Euler step. NFE = 2N - 1."""
    steps = len(sigmas) - 1
    for _, s, s_next in step_pairs(sigmas, progress, "heun"):
        gamma = min(churn / steps, math.sqrt(2) - 1) if churn_min <= float(s) <= churn_max else 0.0
        s_hat = s * (1 + gamma)
        if gamma > 0:
            y = y + (churn_noise * torch.sqrt(s_hat**2 - s**2)).to(y.dtype) * noise.randn_like(y)
        slope = (y - denoise(y, s_hat)) / s_hat.to(y.dtype)
        y_next = y + (s_next - s_hat).to(y.dtype) * slope
        if bool(s_next > 0):
            slope_next = (y_next - denoise(y_next, s_next)) / s_next.to(y.dtype)
            y_next = y + (s_next - s_hat).to(y.dtype) * 0.5 * (slope + slope_next)
        y = apply_hook(hook, y_next, s_next)
    return y
