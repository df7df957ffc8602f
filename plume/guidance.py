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
    """The backbone's "no condition" input for `batch` rows: the null label index (num_classes) or the empty
    prompt's token ids; what label dropout trains the unconditional model on."""
    backbone = denoiser.backbone
    if not hasattr(backbone, "null_condition"):
        raise PlumeError(f"guidance needs a conditional backbone; {type(backbone).__name__} takes no condition")
    return backbone.null_condition(batch, device)


def rows(cond: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """cond as `like`'s rows (B, ...): one row (a label, or one prompt's ids) is repeated, B rows kept."""
    cond = torch.as_tensor(cond).to(like.device)
    if cond.shape == like.shape[1:]:
        return cond.expand(like.shape)
    if cond.shape != like.shape:
        raise PlumeError(f"condition shaped {tuple(cond.shape)} fits neither one row {tuple(like.shape[1:])} nor "
                         f"the batch {tuple(like.shape)}")
    return cond


def classifier_free_guidance(denoiser: nn.Module, cond: torch.Tensor, scale: float,
                             negative: Optional[torch.Tensor] = None) -> ModelFn:
    """fn(x_t, t) = D(x_t, t, negative or null) + scale (D(x_t, t, cond) - D(x_t, t, negative or null)),
    with cond the conditions of the B samples being drawn (labels (B,) or token ids (B, T), or one row for all)
    and negative likewise; one forward pass of 2B rows per call."""
    cond = torch.as_tensor(cond)

    def guided(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x_t.shape[0]
        null = null_condition(denoiser, b, x_t.device)  # (B, ...): labels (B,) or token ids (B, T)
        c = rows(cond, null)
        other = null if negative is None else rows(negative, null)
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device).expand(b)  # (B,)
        both = denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([c, other]))  # (2B, ...)
        x_cond, x_other = both.chunk(2)
        return x_other + scale * (x_cond - x_other)

    return guided


def autoguidance(denoiser: nn.Module, weaker: nn.Module, cond: Optional[torch.Tensor], scale: float) -> ModelFn:
    """fn(x_t, t) = D_weak(x_t, t, c) + scale (D(x_t, t, c) - D_weak(x_t, t, c)) (Karras et al. 2024)."""

    def guided(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = None if cond is None else rows(cond, null_condition(denoiser, x_t.shape[0], x_t.device))  # (B, ...)
        good, weak = denoiser(x_t, t, c), weaker(x_t, t, c)  # (B, ...) each
        return weak + scale * (good - weak)

    return guided
