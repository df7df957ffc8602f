"""Ancestral sampling of discrete diffusion, one function for every discrete process (MDLM Alg. 2; D3PM sec. 3).

On a grid 1 = t_0 > t_1 > ... > t_N, each step draws z_s ~ p_theta(z_s | z_t) = process.reverse(z_t, x_theta, s, t):
for the masked process a masked position unmasks with probability (alpha_s - alpha_t) / (1 - alpha_t), its token
drawn from x_theta, and unmasked positions stay (MDLM eq. 7-8); for the uniform process the step is D3PM's posterior
mixed over x_theta. A grid that ends at t_N = 0 ends clean (the last step draws every position still noisy from
x_theta). A grid that ends above 0 is followed by one step to t = 0 by `final`: "argmax" (MDLM's noise removal:
each noisy position takes x_theta's most probable token) or "draw" (from x_theta, as a last step to 0 would).

- temperature / top_p reshape x_theta before each draw (categorical.py);
- `fixed` (B, L) marks positions whose `tokens` are given: they start clean and are re-imposed after every step, so
  they come back unchanged (infilling; a prompt is a fixed prefix); the other entries of `tokens` are ignored;
- caching (MDLM sec. 4.2, "efficient sampling"): a model that does not read t (time_conditioned=False) is not called
  again while no token has changed; x_theta from the last call is reused. Model calls are counted and returned;
- sequence k draws its uniforms from generator k of `noise` (one per seed), the same number in every step, so it is
  the same alone or in a batch (for a model that treats rows independently).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from ..errors import PlumeError, unknown_name
from ..samplers.loop import step_pairs
from ..samplers.noise import SeedNoise
from .base import DiscreteProcess, TokenModel
from .categorical import check_tempering, draw, tempered, uniforms
from .times import checked_grid
FINALS = ("argmax", "draw")


class Sampled(NamedTuple):
    """Sampled tokens (B, L) and the number of model calls it took."""

    tokens: torch.Tensor
    model_calls: int


def ancestral(model: TokenModel, process: DiscreteProcess, tokens: torch.Tensor, times: torch.Tensor,
              noise: SeedNoise, fixed: Optional[torch.Tensor] = None, time_conditioned: bool = True,
              temperature: float = 1.0, top_p: float = 1.0, final: str = "argmax", progress: bool = False) -> Sampled:
    """Draw tokens (B, L) by ancestral sampling from model(z_t, t) -> logits on the grid `times` (N + 1,)."""
    times, fixed = checked_grid(times), _checked_fixed(fixed, tokens)
    check_tempering(temperature, top_p)
    if final not in FINALS:
        raise unknown_name("final step", final, FINALS)
    if len(noise.generators) != tokens.shape[0]:
        raise PlumeError(f"{len(noise.generators)} seeds for {tokens.shape[0]} sequences; give one seed per sequence")
    given = torch.where(fixed, tokens, torch.zeros_like(tokens))
    given = process.check_tokens(given, "tokens")  # (B, L) only the fixed entries matter
    z = process.prior(given, fixed, uniforms(noise, given.shape[1:]))  # (B, L) z_1
    calls, cache = 0, None  # cache: (z the model last saw, its x_theta)

    def x_theta(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        nonlocal calls, cache
        if time_conditioned or cache is None or not torch.equal(cache[0], z):
            t_batch = torch.full((z.shape[0],), float(t), dtype=torch.float32, device=z.device)  # (B,)
            cache, calls = (z, process.denoising(model(z, t_batch), z)), calls + 1  # (B, L, states)
        return cache[1]

    for _, t, s in step_pairs(times, progress, f"{process.name} sampling"):
        probs = process.reverse(z, tempered(x_theta(z, t), temperature, top_p), s, t)  # (B, L, states)
        z = torch.where(fixed, given, draw(probs, uniforms(noise, z.shape[1:])))  # (B, L)
    if float(times[-1]) > 0:
        probs = tempered(x_theta(z, times[-1]), temperature, top_p)  # (B, L, states)
        clean = probs.argmax(-1) if final == "argmax" else draw(probs, uniforms(noise, z.shape[1:]))  # (B, L)
        z = torch.where(fixed, given, clean)
    return Sampled(z, calls)


def _checked_fixed(fixed: Optional[torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """`fixed` as a bool (B, L) like tokens (all False if None), or an error naming the shapes."""
    if fixed is None:
        return torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
    if tuple(fixed.shape) != tuple(tokens.shape) or fixed.dtype != torch.bool:
        raise PlumeError(f"fixed must be a bool mask shaped like tokens {tuple(tokens.shape)}, "
                         f"got {fixed.dtype} {tuple(fixed.shape)}")
    return fixed
