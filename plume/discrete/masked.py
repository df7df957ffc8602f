"""Masked (absorbing-state) diffusion: D3PM's absorbing process (Austin et al. 2021, sec. 3.1) in MDLM's continuous
time with the SUBS parametrization (Sahoo et al. 2024, "Simple and effective masked diffusion language models").

Tokens are 0..K-1 and the mask m is token K. Per position (MDLM eq. 2, 7):
  q(z_t | x)       = Cat(alpha_t x + (1 - alpha_t) m)
  q(z_s | z_t, x)  = Cat(z_t)                                                         if z_t != m
                   = Cat(((alpha_s - alpha_t) x + (1 - alpha_s) m) / (1 - alpha_t))    if z_t = m,   s < t
The reverse step p_theta(z_s | z_t) puts x_theta(z_t, t) in place of x (MDLM eq. 8); the masked case is linear in x,
so it equals sum_x q(z_s | z_t, x) x_theta(x). SUBS (MDLM sec. 3.2.3): x_theta gives the mask zero probability (its
logit is -inf) and copies an unmasked z_t ("carry-over unmasking").
Continuous-time NELBO (MDLM eq. 10-11), per sequence, in nats, alpha' < 0:
  L = E_t E_q [ alpha'_t / (1 - alpha_t) sum_{l: z_t^l = m} log <x_theta(z_t, t)^l, x^l> ]
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..broadcast import append_dims
from .base import DiscreteProcess


class MaskedProcess(DiscreteProcess):
    """Absorbing diffusion over K tokens plus the mask token K (MDLM)."""

    name = "masked"

    def __init__(self, vocab_size: int, schedule: str = "loglinear", eps: float = 1e-3):
        super().__init__(vocab_size, schedule, eps)
        self.mask_index = self.vocab_size
        self.states = self.vocab_size + 1

    def q_sample(self, x: torch.Tensor, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self.check_tokens(x, "x")
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64, device=x.device)  # (B, L)
        alpha = append_dims(self.alpha(torch.as_tensor(t, dtype=torch.float64, device=x.device)), u)  # (B, 1)
        return torch.where(u < 1.0 - alpha, torch.full_like(x, self.mask_index), x)  # (B, L) masked w.p. 1 - alpha_t

    def prior(self, tokens: torch.Tensor, fixed: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.where(fixed, tokens, torch.full_like(tokens, self.mask_index))  # (B, L) all masked but the given

    def subs(self, logits: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        """SUBS log-probabilities (B, L, K + 1): the mask at -inf, an unmasked z_t carried over with probability 1."""
        self.check_logits(logits, z_t)
        logits = logits.clone()
        logits[..., self.mask_index] = float("-inf")  # zero masking probability
        log_probs = torch.log_softmax(logits, dim=-1)  # (B, L, K + 1)
        carried = torch.where(F.one_hot(z_t, self.states).bool(), 0.0, float("-inf")).to(log_probs.dtype)  # (B, L, K+1)
        return torch.where((z_t == self.mask_index).unsqueeze(-1), log_probs, carried)

    def denoising(self, logits: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        return self.subs(logits, z_t).exp()

    def reverse(self, z_t: torch.Tensor, x_probs: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a_s = self.alpha(torch.as_tensor(s, dtype=torch.float64))
        a_t = self.alpha(torch.as_tensor(t, dtype=torch.float64))
        unmask = append_dims((a_s - a_t) / (1.0 - a_t), x_probs)  # a masked position unmasks w.p. this (MDLM eq. 7)
        stay = append_dims((1.0 - a_s) / (1.0 - a_t), x_probs)
        mask = F.one_hot(torch.full_like(z_t, self.mask_index), self.states).to(x_probs.dtype)  # (B, L, K + 1)
        masked_step = unmask * x_probs + stay * mask  # (B, L, K + 1)
        carried = F.one_hot(z_t, self.states).to(x_probs.dtype)  # (B, L, K + 1)
        return torch.where((z_t == self.mask_index).unsqueeze(-1), masked_step, carried)

    def posterior(self, z_t: torch.Tensor, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(z_s | z_t, x) (B, L, K + 1) for clean tokens x (B, L), s < t."""
        return self.reverse(z_t, F.one_hot(x, self.states).to(torch.float64), s, t)

    def nelbo_term(self, logits: torch.Tensor, x: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The NELBO's integrand at drawn (t, z_t): alpha'_t / (1 - alpha_t) sum_{masked l} log x_theta(x^l), (B,)."""
        log_probs = self.subs(logits, z_t)  # (B, L, K + 1)
        log_x = log_probs.gather(-1, x.unsqueeze(-1)).squeeze(-1)  # (B, L) log <x_theta^l, x^l>
        masked_sum = torch.where(z_t == self.mask_index, log_x, torch.zeros_like(log_x)).sum(-1)  # (B,)
        t64 = torch.as_tensor(t, dtype=torch.float64, device=logits.device)
        weight = self.d_alpha(t64) / (1.0 - self.alpha(t64)).clamp_min(torch.finfo(torch.float64).tiny)  # (B,)
        return (weight * masked_sum.double()).to(masked_sum.dtype)  # (B,) nats; nothing is masked where alpha_t = 1
