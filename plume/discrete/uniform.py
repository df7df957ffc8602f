"""Uniform-noise discrete diffusion: D3PM's uniform process (Austin et al. 2021, sec. 3.1, appendix A.2) in
continuous time, with the x0-parametrized reverse step.

Per position, with pi = 1/K uniform and alpha_{t|s} = alpha_t / alpha_s:
  q(z_t | x)       = Cat(alpha_t x + (1 - alpha_t) / K)      (D3PM eq. 2, Q_t = alpha_t I + (1 - alpha_t) 11^T / K)
  q(z_t | z_s)     = Cat(alpha_{t|s} z_s + (1 - alpha_{t|s}) / K)
  q(z_s | z_t, x)  = q(z_t | z_s) q(z_s | x) / q(z_t | x)                      (D3PM eq. 3, Bayes)
                   = [alpha_{t|s} [z_s = z_t] + (1 - alpha_{t|s}) / K] [alpha_s [z_s = x] + (1 - alpha_s) / K]
                     / (alpha_t [z_t = x] + (1 - alpha_t) / K)
  p_theta(z_s | z_t) = sum_x q(z_s | z_t, x) x_theta(x | z_t)
                   = A(z_s) [alpha_s w(z_s) + (1 - alpha_s) / K sum_j w_j],  w_j = x_theta(j) / q(z_t | x = j),
with A(z_s) the first bracket: O(K) per position, never a K x K matrix. At s = 0 the step is x_theta itself.
(D3PM eq. 4 weights x_theta by q(z_t | x) instead; with the true posterior as x_theta both are the exact reverse.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..broadcast import append_dims
from .base import DiscreteProcess


class UniformProcess(DiscreteProcess):
    """Uniform-noise diffusion over K tokens (D3PM uniform)."""

    name = "uniform"

    def __init__(self, vocab_size: int, schedule: str = "loglinear", eps: float = 1e-3):
        super().__init__(vocab_size, schedule, eps)
        self.states = self.vocab_size

    def q_sample(self, x: torch.Tensor, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self.check_tokens(x, "x")
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64, device=x.device)  # (B, L)
        noise = torch.randint(self.vocab_size, x.shape, generator=generator, device=x.device)  # (B, L) uniform tokens
        alpha = append_dims(self.alpha(torch.as_tensor(t, dtype=torch.float64, device=x.device)), u)  # (B, 1)
        return torch.where(u < alpha, x, noise)  # kept w.p. alpha_t, else uniform: Cat(alpha x + (1 - alpha) / K)

    def prior(self, tokens: torch.Tensor, fixed: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        noise = (u * self.vocab_size).long().clamp(max=self.vocab_size - 1)  # (B, L) uniform tokens
        return torch.where(fixed, tokens, noise)

    def denoising(self, logits: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        self.check_logits(logits, z_t)
        return torch.softmax(logits, dim=-1)  # (B, L, K)

    def _kernels(self, z_t: torch.Tensor, like: torch.Tensor, s: torch.Tensor, t: torch.Tensor):
        """A(z_s) = q(z_t | z_s) (B, L, K), q(z_t | x = j) (B, L, K), and alpha_s broadcast like `like`."""
        a_s = append_dims(self.alpha(torch.as_tensor(s, dtype=torch.float64)), like)
        a_t = append_dims(self.alpha(torch.as_tensor(t, dtype=torch.float64)), like)
        a_ts = a_t / a_s  # alpha_{t|s}
        onehot_t = F.one_hot(z_t, self.vocab_size).to(like.dtype)  # (B, L, K)
        K = self.vocab_size
        return a_ts * onehot_t + (1 - a_ts) / K, a_t * onehot_t + (1 - a_t) / K, a_s

    def posterior(self, z_t: torch.Tensor, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(z_s | z_t, x) (B, L, K) for clean tokens x (B, L), s < t (D3PM eq. 3)."""
        onehot_x = F.one_hot(x, self.vocab_size).to(torch.float64)  # (B, L, K)
        from_t, to_t, a_s = self._kernels(z_t, onehot_x, s, t)
        q_s = a_s * onehot_x + (1 - a_s) / self.vocab_size  # (B, L, K) q(z_s | x)
        evidence = (to_t * onehot_x).sum(-1, keepdim=True)  # (B, L, 1) q(z_t | x)
        return from_t * q_s / evidence

    def reverse(self, z_t: torch.Tensor, x_probs: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        from_t, to_t, a_s = self._kernels(z_t, x_probs, s, t)
        w = x_probs / to_t  # (B, L, K) x_theta(j) / q(z_t | j)
        return from_t * (a_s * w + (1 - a_s) / self.vocab_size * w.sum(-1, keepdim=True))  # (B, L, K)
