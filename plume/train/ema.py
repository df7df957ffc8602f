"""Exponential moving average of a model's weights, with warm-up.

theta_ema <- d_t theta_ema + (1 - d_t) theta, d_t = min(decay, (1 + t) / (10 + t)) at optimizer step t
(the warm-up of TensorFlow's ExponentialMovingAverage with num_updates; Song & Ermon 2020 sec. 5 for why
EMA weights sample better). The shadow has the model's state_dict keys, so it saves and loads as weights.
"""
from __future__ import annotations

import torch
from torch import nn


class EMA:
    """The moving average of `model`'s floating-point state; other entries (integer buffers) are copied."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = float(decay)
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def decay_at(self, step: int) -> float:
        """d_t = min(decay, (1 + t) / (10 + t))."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold the model's current weights in, after optimizer step `step` (0-based)."""
        d = self.decay_at(step)
        shadow, live = [], []
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                shadow.append(self.shadow[key])
                live.append(value)
            else:
                self.shadow[key].copy_(value)
        if shadow:
            torch._foreach_lerp_(shadow, live, 1.0 - d)  # shadow + (1 - d) (value - shadow), one fused call

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(state))
        if missing:
            raise KeyError(f"EMA state lacks {', '.join(missing[:5])}")
        for key in self.shadow:
            self.shadow[key].copy_(state[key])

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> nn.Module:
        """Load the averaged weights into `model` (in place) and return it."""
        model.load_state_dict(self.shadow)
        return model
