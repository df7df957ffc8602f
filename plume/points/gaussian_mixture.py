"""Isotropic Gaussian mixtures with a closed-form denoiser: the exact answer samplers are tested against.

For x0 ~ sum_k pi_k N(mu_k, c_k^2 I) and x_t = alpha x0 + sigma eps, component k gives
x_t ~ N(alpha mu_k, (alpha^2 c_k^2 + sigma^2) I) and E[x0 | x_t, k] = mu_k + alpha c_k^2 / (alpha^2 c_k^2 + sigma^2) (x_t - alpha mu_k);
E[x0 | x_t] averages those with the posterior responsibilities (Bishop 2006, sec. 2.3.3 and 9.2).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from ..processes import GaussianProcess


class GaussianMixture:
    """A mixture of K isotropic Gaussians in D dimensions, float64 throughout."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, stds: torch.Tensor):
        self.weights = torch.as_tensor(weights, dtype=torch.float64) / torch.as_tensor(weights, dtype=torch.float64).sum()  # (K,)
        self.means = torch.as_tensor(means, dtype=torch.float64)  # (K, D)
        self.stds = torch.as_tensor(stds, dtype=torch.float64).expand(len(self.weights))  # (K,)
        self.dim = self.means.shape[1]

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n exact samples (n, D) and their component labels (n,)."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, dtype=torch.float64, generator=generator)
        return self.means[labels] + self.stds[labels, None] * z, labels

    def _component_log_probs(self, x: torch.Tensor, scale: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """log pi_k + log N(x; scale mu_k, var_k I), shape (B, K); scale (B, 1), var (B, K)."""
        x = x.to(torch.float64).flatten(1)
        sq = ((x[:, None, :] - scale[:, :, None] * self.means[None]) ** 2).sum(-1)  # (B, K)
        return torch.log(self.weights)[None] - 0.5 * sq / var - 0.5 * self.dim * torch.log(2 * math.pi * var)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x0) under the mixture, (B,)."""
        ones = torch.ones(x.shape[0], 1, dtype=torch.float64)
        return torch.logsumexp(self._component_log_probs(x, ones, (self.stds**2)[None].expand(x.shape[0], -1)), dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities of clean points, (B, K)."""
        ones = torch.ones(x.shape[0], 1, dtype=torch.float64)
        logits = self._component_log_probs(x, ones, (self.stds**2)[None].expand(x.shape[0], -1))
        return torch.softmax(logits, dim=1)

    def posterior_mean(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """E[x0 | x_t] for per-sample alpha, sigma (B,); returns x_t's shape and dtype."""
        shape, dtype = x_t.shape, x_t.dtype
        x = x_t.to(torch.float64).flatten(1)  # (B, D)
        a = torch.as_tensor(alpha, dtype=torch.float64).reshape(-1, 1).expand(x.shape[0], 1)
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1).expand(x.shape[0], 1)
        var = a**2 * self.stds[None] ** 2 + s**2  # (B, K)
        resp = torch.softmax(self._component_log_probs(x, a, var), dim=1)  # (B, K)
        gain = a * self.stds[None] ** 2 / var  # (B, K)
        per_component = self.means[None] + gain[:, :, None] * (x[:, None, :] - a[:, :, None] * self.means[None])  # (B, K, D)
        return (resp[:, :, None] * per_component).sum(1).reshape(shape).to(dtype)

    def denoiser(self, process: GaussianProcess) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The exact x0 predictor fn(x_t, t) = E[x0 | x_t] under `process`."""

        def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            t64 = torch.as_tensor(t, dtype=torch.float64)
            return self.posterior_mean(x_t, process.alpha(t64), process.sigma(t64))

        return fn


def ring_mixture(count: int = 8, radius: float = 2.0, std: float = 0.15) -> GaussianMixture:
    """The 2-D ring of `count` Gaussians (the "8 Gaussians" toy set)."""
    angles = torch.arange(count, dtype=torch.float64) * 2 * math.pi / count
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture(torch.ones(count), means, torch.full((count,), std))


def random_mixture(dim: int, components: int = 8, spread: float = 1.0, std: float = 0.3, seed: int = 0) -> GaussianMixture:
    """Unequal-weight components with means spread * N(0, I) in `dim` dimensions and a common std."""
    g = torch.Generator().manual_seed(seed)
    means = spread * torch.randn(components, dim, dtype=torch.float64, generator=g)
    weights = 0.5 + torch.rand(components, dtype=torch.float64, generator=g)
    return GaussianMixture(weights, means, torch.full((components,), std, dtype=torch.float64))
