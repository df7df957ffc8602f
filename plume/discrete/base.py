"""A discrete forward process: K token values per position, noised toward a fixed distribution on one time axis.

A process is its vocabulary size K and its schedule alpha(t) (schedules.py); subclasses say where a token goes when it
is noised (masked.py: to an extra mask token; uniform.py: to a uniformly drawn token). Austin et al. 2021 (D3PM,
sec. 3): q(z_t | x) = Cat(alpha_t x + (1 - alpha_t) pi) with pi the noise distribution. Every sampler works through
the four methods below, so one sampler serves both processes.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..errors import PlumeError
from .schedules import DiscreteSchedule, schedule as build_schedule

# model(z_t (B, L) long, t (B,) float) -> logits (B, L, states)
TokenModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DiscreteProcess:
    """Forward noising of (B, L) token ids in [0, K); `states` is the size of a noisy token's alphabet."""

    name = "discrete"
    states: int  # K + 1 with a mask token, K without

    def __init__(self, vocab_size: int, schedule: str = "loglinear", eps: float = 1e-3):
        if int(vocab_size) < 2 or int(vocab_size) != vocab_size:
            raise PlumeError(f"{self.name} process: vocab_size must be an integer >= 2, got {vocab_size!r}")
        self.vocab_size = int(vocab_size)
        self.schedule: DiscreteSchedule = build_schedule(schedule, eps=eps)

    def options(self) -> dict[str, Any]:
        """The constructor options that rebuild this process (saved in checkpoints)."""
        return {"vocab_size": self.vocab_size, "schedule": self.schedule.name, "eps": self.schedule.eps}

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """alpha(t) of the schedule."""
        return self.schedule.alpha(t)

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """alpha'(t) of the schedule."""
        return self.schedule.d_alpha(t)

    # --- what each process defines ---------------------------------------------------------------------------------
    def q_sample(self, x: torch.Tensor, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Draw z_t ~ q(z_t | x) (B, L) for clean tokens x (B, L) at times t (B,) or ()."""
        raise NotImplementedError

    def prior(self, tokens: torch.Tensor, fixed: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The sampler's start z_1 (B, L): `tokens` where `fixed`, a draw from the t = 1 noise elsewhere (u (B, L))."""
        raise NotImplementedError

    def denoising(self, logits: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        """x_theta(z_t) (B, L, states): the network's logits as a distribution over the clean token."""
        raise NotImplementedError

    def reverse(self, z_t: torch.Tensor, x_probs: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """p_theta(z_s | z_t) = sum_x q(z_s | z_t, x) x_theta(x | z_t), (B, L, states), for s < t."""
        raise NotImplementedError

    # --- checks ------------------------------------------------------------------------------------------------------
    def check_tokens(self, x: torch.Tensor, what: str = "tokens") -> torch.Tensor:
        """x as long (B, L), or an error naming the first id outside [0, K)."""
        if x.ndim != 2 or x.is_floating_point():
            raise PlumeError(f"{what} must be integer token ids of shape (B, L), got {x.dtype} {tuple(x.shape)}")
        bad = (x < 0) | (x >= self.vocab_size)
        if bool(bad.any()):
            b, l = (int(i) for i in bad.nonzero()[0])
            raise PlumeError(f"{what}[{b}, {l}] = {int(x[b, l])} is outside the vocabulary [0, {self.vocab_size})")
        return x.long()

    def check_logits(self, logits: torch.Tensor, z_t: torch.Tensor) -> None:
        """An error unless logits are (B, L, states) for z_t (B, L)."""
        if tuple(logits.shape) != (*z_t.shape, self.states):
            raise PlumeError(f"the {self.name} model must return logits of shape {(*z_t.shape, self.states)} "
                             f"(batch, length, {self.states} states), got {tuple(logits.shape)}")

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"

