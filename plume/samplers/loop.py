"""The loop every fixed-grid sampler shares: step pairs, progress bar, and the state hook.

A sampler is a plain function `(denoise, y, sigmas, noise, hook, **options) -> y` in scaled coordinates
y = x / alpha, s = sigma / alpha, where `denoise(y, s) -> x0_hat`. It keeps no state between calls.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional

import torch
from ..progress import progress_bar

ScaledDenoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Hook = Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


def step_pairs(sigmas: torch.Tensor, progress: bool = False, desc: str = "sampling") -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield (i, s_i, s_{i+1}) over a decreasing grid of noise levels, with a progress bar if asked."""
    indices = range(len(sigmas) - 1)
    for i in progress_bar(indices, desc=desc, enabled=progress, leave=False):
        yield i, sigmas[i], sigmas[i + 1]


def apply_hook(hook: Hook, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Let the hook replace the state after a step (inpainting, guidance); None leaves it."""
    if hook is None:
        return y
    out = hook(y, s)
    return y if out is None else out


def ancestral_split(s: torch.Tensor, s_next: torch.Tensor, eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(s_down, s_up) with s_down^2 + s_up^2 = s_next^2; eta = 1 is the DDPM posterior (DDIM eq. 16)."""
    if bool(s_next == 0):
        return s_next, s_next
    s_up = torch.clamp(eta * torch.sqrt(s_next**2 * (s**2 - s_next**2) / s**2), max=s_next)
    return torch.sqrt(s_next**2 - s_up**2), s_up
