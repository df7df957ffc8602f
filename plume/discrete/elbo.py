"""Likelihood bounds of discrete diffusion, per sequence in nats, and their conversion to bits.

Masked (MDLM, Sahoo et al. 2024, eq. 10-11): one time t per sequence (times.py, antithetic by default) and one draw
z_t ~ q(z_t | x) give an unbiased estimate of the continuous-time NELBO (masked.py's integrand).
Uniform D3PM (Austin et al. 2021, eq. 1-5) on T steps t_i = i / T:
  L = KL(q(z_1 | x) || Cat(1/K))                                   prior, closed form
    + sum_{i=2}^{T} E_q KL(q(z_{t_{i-1}} | z_{t_i}, x) || p_theta(z_{t_{i-1}} | z_{t_i}))
    - E_q log p_theta(x | z_{t_1})                                 reconstruction (the step to t_0 = 0 is x_theta)
with the T - 1 step terms estimated by one step i ~ U{2..T} per sequence times T - 1.
A model is model(z_t (B, L) long, t (B,) float32) -> logits (B, L, states).
Since alpha(1) = eps > 0, the masked NELBO covers alpha in [eps, 1]: for a model that knows the data it is
(1 - eps) times the entropy, the part below eps being MDLM's neglected prior term.
"""
from __future__ import annotations

import math
from typing import Union

import torch

from ..errors import PlumeError
from .base import TokenModel
from .masked import MaskedProcess
from .times import training_times
from .uniform import UniformProcess


def masked_nelbo(process: MaskedProcess, model: TokenModel, x: torch.Tensor, generator: torch.Generator,
                 antithetic: bool = True) -> torch.Tensor:
    """MDLM's continuous-time NELBO (eq. 11), one (t, z_t) draw per sequence: (B,) nats."""
    x = process.check_tokens(x, "x")
    t = training_times(x.shape[0], generator, antithetic, device=x.device)  # (B,)
    z_t = process.q_sample(x, t, generator)  # (B, L)
    return process.nelbo_term(model(z_t, t), x, z_t, t)


def uniform_nelbo(process: UniformProcess, model: TokenModel, x: torch.Tensor, steps: int,
                  generator: torch.Generator) -> torch.Tensor:
    """D3PM's discrete-time NELBO on `steps` steps (eq. 5), one step term drawn per sequence: (B,) nats."""
    x = process.check_tokens(x, "x")
    if steps < 1:
        raise PlumeError(f"the uniform NELBO needs steps >= 1, got {steps}")
    (B, L), K = x.shape, process.vocab_size
    times = torch.arange(steps + 1, dtype=torch.float64, device=x.device) / steps  # (T + 1,) t_i = i / T
    a1 = float(process.alpha(torch.tensor(1.0, dtype=torch.float64)))
    hit, miss = a1 + (1 - a1) / K, (1 - a1) / K  # q(z_1 = x | x), q(z_1 = j != x | x)
    prior = L * (math.log(hit * K) * hit + (K - 1) * (math.log(miss * K) * miss if miss > 0 else 0.0))
    total = torch.full((B,), prior, dtype=torch.float64, device=x.device)  # (B,)
    if steps > 1:
        i = torch.randint(2, steps + 1, (B,), generator=generator, device=x.device)  # (B,) step t_i -> t_{i-1}
        t, s = times[i], times[i - 1]  # (B,), (B,)
        z_t = process.q_sample(x, t, generator)  # (B, L)
        p = process.reverse(z_t, process.denoising(model(z_t, t.float()), z_t).double(), s, t)  # (B, L, K)
        q = process.posterior(z_t, x, s, t)  # (B, L, K)
        kl = (torch.xlogy(q, q) - torch.xlogy(q, p)).sum((-2, -1))  # (B,)
        total = total + (steps - 1) * kl
    t1 = times[1].expand(B)  # (B,)
    z_1 = process.q_sample(x, t1, generator)  # (B, L)
    logits = model(z_1, t1.float())
    process.check_logits(logits, z_1)
    log_x = torch.log_softmax(logits.double(), -1).gather(-1, x.unsqueeze(-1)).squeeze(-1)  # (B, L)
    return total - log_x.sum(-1)


def _bits(nelbo: torch.Tensor, count: Union[int, torch.Tensor], unit: str) -> float:
    count = torch.as_tensor(count, dtype=torch.float64).expand(nelbo.shape)  # (B,)
    if bool((count <= 0).any()):
        raise PlumeError(f"bits per {unit} need a positive {unit} count per sequence, got {count.tolist()}")
    return float(nelbo.double().sum() / (count.sum() * math.log(2)))


def bits_per_token(nelbo: torch.Tensor, tokens: Union[int, torch.Tensor]) -> float:
    """Total NELBO (B,) nats over the total tokens (an int per sequence or (B,)), in bits: the usual BPT/BPD."""
    return _bits(nelbo, tokens, "token")


def bits_per_character(nelbo: torch.Tensor, characters: Union[int, torch.Tensor]) -> float:
    """Total NELBO (B,) nats over the characters the sequences encode (an int each or (B,)), in bits (BPC)."""
    return _bits(nelbo, characters, "character")
