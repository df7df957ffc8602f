"""2-D toy data sets for diffusion, each scaled to mean ~0 and average per-coordinate variance ~1.

swissroll    the Swiss roll's (x, z) plane (Marsland 2009; FFJORD, Grathwohl et al. 2019, toy data)
moons        two interleaving half circles (scikit-learn's make_moons, noise 0.05)
8gaussians   8 Gaussians on a ring (FFJORD's "8gaussians"), a GaussianMixture with an exact denoiser
checkerboard uniform on the 8 dark squares of a 4 x 4 board (FFJORD's "checkerboard")
gmm          three unequal Gaussians with unequal weights, a GaussianMixture with an exact denoiser
Every set is a function of (n, seed): the same seed gives the same points.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import PlumeError, unknown_name
from .gaussian_mixture import GaussianMixture, ring_mixture


def _swissroll(n: int, g: torch.Generator) -> torch.Tensor:
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g, dtype=torch.float64))  # (n,) angle = radius
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)  # (n, 2)
    x = x + 0.5 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return (x - torch.tensor([2.0, 0.2], dtype=torch.float64)) / 6.8  # measured mean and rms std


def _moons(n: int, g: torch.Generator) -> torch.Tensor:
    theta = math.pi * torch.rand(n, generator=g, dtype=torch.float64)  # (n,)
    upper = torch.rand(n, generator=g, dtype=torch.float64)[:, None] < 0.5  # (n, 1)
    outer = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)  # (n, 2)
    inner = torch.stack([1 - torch.cos(theta), 0.5 - torch.sin(theta)], dim=1)  # (n, 2)
    x = torch.where(upper, outer, inner) + 0.05 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return (x - torch.tensor([0.5, 0.25], dtype=torch.float64)) * math.sqrt(2.0)  # rms std 1 / sqrt(2) -> 1


def _checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    x1 = 4 * torch.rand(n, generator=g, dtype=torch.float64) - 2  # (n,) uniform on [-2, 2)
    x2 = torch.rand(n, generator=g, dtype=torch.float64) - 2 * torch.randint(0, 2, (n,), generator=g)
    x2 = x2 + torch.floor(x1) % 2  # (n,) shifted to the dark squares; marginally uniform on [-2, 2)
    return torch.stack([x1, x2], dim=1) * math.sqrt(3.0) / 2  # variance of U[-2, 2) is 4/3


def toy_mixture(name: str) -> GaussianMixture:
    """The Gaussian mixture behind "8gaussians" or "gmm", whose exact denoiser E[x0 | x_t] is known."""
    if name == "8gaussians":  # per-coordinate variance r^2 / 2 + std^2 = 1.01
        return ring_mixture(8, radius=math.sqrt(2.0), std=0.1)
    if name == "gmm":  # per-coordinate variance ~1.07
        means = torch.tensor([[-1.0, -0.5], [1.2, -0.4], [0.7, 1.85]], dtype=torch.float64)  # weighted mean 0
        return GaussianMixture(torch.tensor([0.5, 0.3, 0.2]), means, torch.tensor([0.35, 0.2, 0.5]))
    raise unknown_name("mixture toy set", name, MIXTURES)


MIXTURES = ("8gaussians", "gmm")


def _mixture_set(name: str) -> Callable[[int, torch.Generator], torch.Tensor]:
    return lambda n, g: toy_mixture(name).sample(n, generator=g)[0]


TOY_SETS: dict[str, Callable[[int, torch.Generator], torch.Tensor]] = {
    "swissroll": _swissroll,
    "moons": _moons,
    "8gaussians": _mixture_set("8gaussians"),
    "checkerboard": _checkerboard,
    "gmm": _mixture_set("gmm"),
}


def toy_data(name: str, n: int = 10_000, seed: int = 0) -> torch.Tensor:
    """n points (n, 2) float32 of toy set `name`, a function of (name, n, seed)."""
    if name not in TOY_SETS:
        raise unknown_name("toy data set", name, list(TOY_SETS))
    if int(n) < 1:
        raise PlumeError(f"toy data needs n >= 1 points, got {n}")
    g = torch.Generator().manual_seed(int(seed))
    return TOY_SETS[name](int(n), g).to(torch.float32)
