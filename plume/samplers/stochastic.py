"""Reverse-SDE samplers (Song et al. 2021): Euler-Maruyama and predictor-corrector with Langevin dynamics.

In scaled coordinates every process is the VE SDE dy = sqrt(d s^2) dw, whose reverse is
dy = -d(s^2) grad log p_s(y) + sqrt(-d s^2) dw_bar, with grad log p_s(y) = (D(y, s) - y) / s^2.
Euler-Maruyama in the variable s^2 is the reverse-diffusion predictor (Song et al. 2021, eq. 45-47):
y_next = y + (s^2 - s_next^2) score + sqrt(s^2 - s_next^2) z. The last step to s = 0 returns the mean.
The corrector is Langevin MCMC with step 2 (r ||z|| / ||score||)^2 (Song et al. 2021, Alg. 4-5), where the
norms take their typical values ||z|| = sqrt(d), ||score|| = sqrt(d) / s: step = 2 (r s)^2, the annealed
schedule of NCSN (Song & Ermon 2019, Alg. 1). Per-sample norm ratios blow up in low dimension, where a
sample near a mode has a tiny score; batch-averaged ones would couple samples to their batch.
"""
from __future__ import annotations

import torch

from .loop import Hook, ScaledDenoiser, apply_hook, step_pairs
from .noise import SeedNoise


def _reverse_sde_step(score: torch.Tensor, y: torch.Tensor, s: torch.Tensor, s_next: torch.Tensor, noise: SeedNoise) -> torch.Tensor:
    variance = (s**2 - s_next**2).to(y.dtype)
    mean = y + variance * score
    if bool(s_next == 0):
        return mean
    return mean + torch.sqrt(variance) * noise.randn_like(y)


def euler_maruyama(denoise: ScaledDenoiser, y: torch.Tensor, sigmas: torch.Tensor, noise: SeedNoise, hook: Hook = None,
                   progress: bool = False) -> torch.Tensor:
    """Euler-Maruyama on the reverse SDE; one model evaluation per step."""
    for _, s, s_next in step_pairs(sigmas, progress, "euler-maruyama"):
        score = (denoise(y, s) - y) / (s**2).to(y.dtype)
        y = apply_hook(hook, _reverse_sde_step(score, y, s, s_next, noise), s_next)
    return y


def langevin_correct(denoise: ScaledDenoiser, y: torch.Tensor, s: torch.Tensor, noise: SeedNoise, snr: float, steps: int) -> torch.Tensor:
    """`steps` Langevin MCMC steps targeting p_s with signal-to-noise ratio `snr` (Song et al. 2021, Alg. 4)."""
    for _ in range(steps):
        score = (denoise(y, s) - y) / (s**2).to(y.dtype)
        step = (2 * (snr * s) ** 2).to(y.dtype)
        y = y + step * score + torch.sqrt(2 * step) * noise.randn_like(y)
    return y


def predictor_corrector(denoise: ScaledDenoiser, y: torch.Tensor, sigmas: torch.Tensor, noise: SeedNoise, hook: Hook = None,
                        snr: float = 0.16, corrector_steps: int = 1, progress: bool = False) -> torch.Tensor:
    """PC sampling: Langevin corrector at s, then a reverse-SDE predictor step to s_next. NFE = N (1 + corrector_steps)."""
    for _, s, s_next in step_pairs(sigmas, progress, "pc"):
        y = langevin_correct(denoise, y, s, noise, snr, corrector_steps)
        score = (denoise(y, s) - y) / (s**2).to(y.dtype)
        y = apply_hook(hook, _reverse_sde_step(score, y, s, s_next, noise), s_next)
    return y
