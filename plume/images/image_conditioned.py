"""A backbone conditioned on images of its own size: any registered image backbone, given the noisy image x and a
conditioning tensor of the same height and width concatenated on channels (the "concatenation" conditioning of
SR3, Saharia et al. 2022, sec. 2.3, and of Palette, Saharia et al. 2022, sec. 2, for image-to-image tasks).

ImageConditioned(in_channels=C, cond_channels=K, inner="unet", inner_preset=..., inner_options=...) has
forward(x, noise_level, cond) with x (B, C, H, W) and cond (B, K, H, W); the inner backbone sees C + K channels and
predicts C. What cond holds is the task's: the masked image and the mask for inpainting (K = C + 1), the two
neighbouring frames and the position between them for frame interpolation (K = 2C + 1). The data wrapper that makes
cond for training (plume.train.data.ConditionedData) belongs to the task.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from ..errors import PlumeError
from .inner import concat_channels, inner_backbone, inner_options


class ImageConditioned(nn.Module):
    """An image backbone `inner` that also reads cond (B, K, H, W): forward(x, noise_level, cond) -> (B, C, H, W)."""

    def __init__(self, in_channels: int, cond_channels: int, inner: str = "unet", inner_preset: Optional[str] = None,
                 inner_options: Optional[dict[str, Any]] = None, image_size: Optional[Any] = None):
        super().__init__()
        self.in_channels, self.cond_channels = int(in_channels), int(cond_channels)
        if self.in_channels < 1 or self.cond_channels < 1:
            raise PlumeError(f"ImageConditioned needs in_channels >= 1 and cond_channels >= 1, got {in_channels} and "
                             f"{cond_channels}")
        self.inner_name, self.image_size = inner, image_size
        self.inner = inner_backbone("ImageConditioned", inner, inner_preset, inner_options,
                                    self.in_channels + self.cond_channels, self.in_channels, image_size)

    def options(self) -> dict[str, Any]:
        """The constructor options that rebuild this backbone (saved in config.json); the preset is expanded."""
        inner = inner_options(self.inner)
        return {"in_channels": self.in_channels, "cond_channels": self.cond_channels, "inner": self.inner_name,
                "inner_preset": None, "inner_options": inner, "image_size": self.image_size}

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        self.check_condition(x, cond)
        return self.inner(concat_channels(x, cond), noise_level)  # (B, C + K, H, W) in -> (B, C, H, W)

    def check_condition(self, x: torch.Tensor, cond: Optional[torch.Tensor]) -> None:
        """One readable message for x or cond of the wrong shape or kind."""
        c, k = self.in_channels, self.cond_channels
        if x.ndim != 4 or x.shape[1] != c:
            raise PlumeError(f"this ImageConditioned backbone takes x shaped (B, {c}, H, W), got {tuple(x.shape)}")
        expected = f"({x.shape[0]}, {k}, {x.shape[2]}, {x.shape[3]})"
        if cond is None:
            raise PlumeError(f"this model is conditioned on an image-sized input: pass cond shaped {expected}")
        if not torch.is_tensor(cond) or not cond.is_floating_point() or tuple(cond.shape) != (x.shape[0], k, *x.shape[2:]):
            got = f"{cond.dtype} {tuple(cond.shape)}" if torch.is_tensor(cond) else type(cond).__name__
            raise PlumeError(f"cond must be floats shaped {expected} (as x, with {k} channels), got {got}")


__all__ = ["ImageConditioned"]
