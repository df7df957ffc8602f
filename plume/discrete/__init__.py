"""Discrete diffusion: the process family for tokens (text, categorical columns, atom types), in the core.

Tokens are ids in [0, K) of shape (B, L); t runs over [0, 1] with alpha(0) = 1 (clean) and alpha(1) = eps (noise).
A model is model(z_t (B, L) long, t (B,) float32) -> logits (B, L, process.states).

| name                          | what it is                                                                       |
|-------------------------------|----------------------------------------------------------------------------------|
| `schedule(name, eps)`         | alpha(t), alpha'(t) in closed form: "loglinear" (MDLM), "cosine"; `SCHEDULES`    |
| `discrete_process(name, ...)` | "masked" or "uniform" with vocab_size, schedule, eps; `DISCRETE_PROCESSES`       |
| `MaskedProcess`               | absorbing diffusion, mask token K, MDLM's SUBS (`subs`), `posterior`, `reverse`  |
| `UniformProcess`              | D3PM uniform noise: closed-form `posterior`, x0-parametrized `reverse`           |
| `masked_nelbo`                | MDLM's continuous-time NELBO (eq. 11), (B,) nats                                 |
| `uniform_nelbo`               | D3PM's T-step NELBO (eq. 5), (B,) nats                                           |
| `bits_per_token`, `bits_per_character` | a NELBO in bits per token / per character                               |
| `training_times`              | t ~ U[0, 1) per sequence, MDLM's antithetic (stratified) option                  |
| `uniform_grid(steps, end)`    | sampling times 1 -> end                                                          |
| `ancestral`                   | the sampler for both processes: fixed positions (infilling), temperature, top-p, |
|                               | caching for models that do not read t; returns `Sampled(tokens, model_calls)`    |
| `tempered`                    | temperature and nucleus (top-p) applied to a distribution                        |

Per-sequence randomness comes from plume.samplers.SeedNoise (one generator per seed); training draws take one
torch.Generator for the batch. References: Austin et al. 2021 (D3PM); Sahoo et al. 2024 (MDLM); Holtzman et al. 2020.
"""
from __future__ import annotations

from typing import Any

from ..registry import Registry, build
from .base import DiscreteProcess, TokenModel
from .categorical import tempered
from .elbo import bits_per_character, bits_per_token, masked_nelbo, uniform_nelbo
from .masked import MaskedProcess
from .sampler import Sampled, ancestral
from .schedules import SCHEDULES, DiscreteSchedule, schedule
from .times import training_times, uniform_grid
from .uniform import UniformProcess

DISCRETE_PROCESSES: Registry[type[DiscreteProcess]] = Registry(
    "discrete process type", {"masked": MaskedProcess, "uniform": UniformProcess})


def discrete_process(name: str, **options: Any) -> DiscreteProcess:
    """Build a discrete process by name ("masked" or "uniform") with vocab_size, schedule and eps."""
    return build("discrete process type", DISCRETE_PROCESSES, name, **options)


__all__ = [
    "DiscreteSchedule", "SCHEDULES", "schedule", "DiscreteProcess", "DISCRETE_PROCESSES", "discrete_process",
    "MaskedProcess", "UniformProcess", "TokenModel", "masked_nelbo", "uniform_nelbo", "bits_per_token",
    "bits_per_character", "training_times", "uniform_grid", "ancestral", "Sampled", "tempered",
]
