"""DDIM with eta (Song, Meng & Ermon 2021, eq. 12) and DDPM ancestral sampling (Ho et al. 2020, eq. 6-7, Alg. 2).

Divided by alpha_{t-1}, DDIM's update x_{t-1} = alpha_{t-1} x0 + sqrt(1 - alpha_{t-1}^2 - sigma_t^2) eps + sigma_t z
reads y_next = x0 + s_down eps_hat + s_up z with eps_hat = (y - x0) / s, s_up = sigma_t / alpha_{t-1}.
eta = 1 gives DDPM's posterior variance beta-tilde, so DDPM ancestral sampling is this update with eta = 1.
"""
from __future__ import annotations

import torch

from .loop import Hook, ScaledDenoiser, ancestral_split, apply_hook, step_pairs
from .noise import SeedNoise


def ddim(denoise: ScaledDenoiser, y: torch.Tensor, sigmas: torch.Tensor, noise: SeedNoise, hook: Hook = None,
         eta: float = 0.0, progress: bool = False) -> torch.Tensor:
    """DDIM; eta = 0 is deterministic, eta = 1 is DDPM ancestral sampling."""
    for _, s, s_next in step_pairs(sigmas, progress, "ddim"):
        x0 = denoise(y, s)  # (B, ...)
        s_down, s_up = ancestral_split(s, s_next, eta)
        y = x0 + (s_down / s).to(y.dtype) * (y - x0)
        if bool(s_up > 0):
            y = y + s_up.to(y.dtype) * noise.randn_like(y)
        y = apply_hook(hook, y, s_next)
    return y


def ddpm(denoise: ScaledDenoiser, y: torch.Tensor, sigmas: torch.Tensor, noise: SeedNoise, hook: Hook = None,
         progress: bool = False) -> torch.Tensor:
    """Ancestral sampling from DDPM's posterior q(x_{t-1} | x_t, x0_hat) with variance beta-tilde (Ho et al. eq. 7)."""
    return ddim(denoise, y, sigmas, noise, hook, eta=1.0, progress=progress)
