"""Guidance: steer a conditional denoiser at sampling time.

Classifier-free guidance (Ho & Salimans 2022, eq. 6) mixes the conditional and unconditional predictions of one
network trained with label dropout. Written for x0 with guidance scale s (s = 1 + w in the paper's notation):

    x0_hat_s(x_t, t, c) = x0_hat(x_t, t, null) + s (x0_hat(x_t, t, c) - x0_hat(x_t, t, null))

For fixed (x_t, t) the eps, v, score and x0 predictions are affine in one another with the same coefficients
for both terms, so guiding x0 equals guiding eps (the paper's form). s = 1 is the conditional model, s = 0 the
unconditional one. Both halves run as one batched forward of 2B rows. A negative condition takes the place
of null: the samples are pushed away from it.

Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself", eq. 2) needs no
label dropout: the same formula with x0_hat(x_t, t, null) replaced by a weaker model's x0_hat(x_t, t, c)
(fewer parameters or fewer training steps), both conditioned on c.

Both return a model function fn(x_t, t) -> x0_hat for plume.sample(..., prediction="x0").
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from .errors import PlumeError

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def null_condition(denoiser: nn.Module, batch: int, device: torch.device) -> torch.Tensor:
    """The "no label" index (num_classes) for `batch` rows: what label dropout trains the unconditional model on."""
    num_classes = denoiser.backbone.options().get("num_classes")
    if num_classes is None:
        raise PlumeError("guidance needs a conditional model (a backbone built with num_classes); this one has none")
    return torch.full((batch,), int(num_classes), dtype=torch.long, device=device)


def classifier_free_guidance(denoiser: nn.Module, cond: torch.Tensor, scale: float,
                             negative: Optional[torch.Tensor] = None) -> ModelFn:
    """fn(x_t, t) = D(x_t, t, negative or null) + scale (D(x_t, t, cond) - D(x_t, t, negative or null)),
    with cond (B,) the labels of the B samples being drawn; one forward pass of 2B rows per call."""
    cond = torch.as_tensor(cond)

    def guided(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x_t.shape[0]
        c = cond.to(x_t.device).expand(b) if cond.ndim == 0 else cond.to(x_t.device)  # (B,)
        other = null_condition(denoiser, b, x_t.device) if negative is None else torch.as_tensor(negative).to(x_t.device).expand(b)
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device).expand(b)  # (B,)
        both = denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([c, other]))  # (2B, ...)
        x_cond, x_other = both.chunk(2)
        return x_other + scale * (x_cond - x_other)

    return guided


def autoguidance(denoiser: nn.Module, weaker: nn.Module, cond: Optional[torch.Tensor], scale: float) -> ModelFn:
    """fn(x_t, t) = D_weak(x_t, t, c) + scale (D(x_t, t, c) - D_weak(x_t, t, c)) (Karras et al. 2024)."""

    def guided(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = None if cond is None else torch.as_tensor(cond).to(x_t.device).expand(x_t.shape[0])  # (B,)
        good, weak = denoiser(x_t, t, c), weaker(x_t, t, c)  # (B, ...) each
        return weak + scale * (good - weak)

    return guided
