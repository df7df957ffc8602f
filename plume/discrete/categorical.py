"""Categorical distributions over tokens: per-sequence uniforms, inverse-CDF draws, temperature and nucleus (top-p).

Every draw is an inverse-CDF draw from one uniform per position, and the uniforms of sequence k come from generator
k of a SeedNoise (plume.samplers.noise), so sequence k is the same drawn alone or in a batch.
Temperature: p_T(x) proportional to p(x)^(1/T). Nucleus (Holtzman et al. 2020, "The curious case of neural text
degeneration", sec. 3.1): keep the most probable tokens whose mass, before each, is below top_p (the smallest set with
mass >= top_p), renormalised.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import PlumeError
from ..samplers.noise import SeedNoise


def uniforms(noise: SeedNoise, shape: Sequence[int]) -> torch.Tensor:
    """(B, *shape) float64 uniforms on [0, 1), row k from generator k."""
    rows = [torch.rand(tuple(shape), generator=g, device=noise.device, dtype=torch.float64) for g in noise.generators]
    return torch.stack(rows)


def draw(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Tokens (...) drawn from probs (..., V) by inverse CDF at u (...); a zero-probability token is never drawn."""
    cdf = probs.to(torch.float64).cumsum(-1)  # (..., V)
    target = (u.to(torch.float64) * cdf[..., -1]).unsqueeze(-1)  # (..., 1) in [0, total)
    index = (cdf <= target).sum(-1)  # (...) first token whose cdf exceeds the target
    arange = torch.arange(probs.shape[-1], device=probs.device)
    last = torch.where(probs > 0, arange, 0).amax(-1)  # (...) last token of positive probability
    return torch.minimum(index, last)  # the target can round up to the total


def check_tempering(temperature: float, top_p: float) -> None:
    """An error unless temperature > 0 and 0 < top_p <= 1."""
    if not temperature > 0:
        raise PlumeError(f"temperature must be > 0, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise PlumeError(f"top_p must be in (0, 1], got {top_p!r}")


def tempered(probs: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0) -> torch.Tensor:
    """probs (..., V) raised to 1 / temperature, then cut to the nucleus of mass top_p, renormalised."""
    check_tempering(temperature, top_p)
    if temperature != 1.0:
        probs = torch.softmax(torch.log(probs) / temperature, dim=-1)  # (..., V) zeros stay zero
    if top_p < 1.0:
        ranked, order = probs.sort(dim=-1, descending=True, stable=True)  # (..., V)
        keep_ranked = ranked.cumsum(-1) - ranked < top_p  # mass ranked above each token
        keep = torch.zeros_like(keep_ranked).scatter(-1, order, keep_ranked)  # (..., V) back in token order
        probs = torch.where(keep, probs, torch.zeros_like(probs))
        probs = probs / probs.sum(-1, keepdim=True)
    return probs
