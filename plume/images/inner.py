"""The inner network of a wrapping backbone (SuperResolution, ImageConditioned): an image backbone that the wrapper
feeds extra input channels, built with the channel counts the wrapper decides and the options the user gives."""
from __future__ import annotations

import inspect
from typing import Any, Optional

import torch
from torch import nn

from ..backbones import BACKBONES, backbone
from ..errors import PlumeError

WRAPPERS = ("super_resolution", "image_conditioned")
FIXED = ("in_channels", "out_channels", "num_classes")


def inner_backbone(owner: str, inner: str, preset: Optional[str], options: Optional[dict[str, Any]], in_channels: int,
                   out_channels: int, image_size: Optional[Any] = None) -> nn.Module:
    """Build backbone `inner` (preset, options) with the wrapper's channel counts and, where it takes one, its image
    size; options may not set what the wrapper fixes, and a wrapper cannot wrap a wrapper."""
    if inner in WRAPPERS:
        raise PlumeError(f"the inner backbone of {owner} must be an image backbone (unet, dit), not {inner}")
    options = dict(options or {})
    fixed = sorted(set(FIXED) & set(options))
    if fixed:
        raise PlumeError(f"inner_options may not set {', '.join(fixed)}: {owner} gives its inner backbone "
                         f"in_channels = {in_channels}, out_channels = {out_channels} and no class labels; set "
                         f"{owner}'s own options instead")
    if image_size is not None and inner in BACKBONES \
            and "image_size" in inspect.signature(BACKBONES[inner].__init__).parameters:
        options.setdefault("image_size", image_size)  # e.g. DiT's patch grid
    return backbone(inner, preset, in_channels=in_channels, out_channels=out_channels, **options)


def inner_options(module: nn.Module) -> dict[str, Any]:
    """The inner network's options as config.json records them (preset expanded; the wrapper's fixed ones left out)."""
    return {k: v for k, v in module.options().items() if k not in FIXED}


def concat_channels(x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) with the extra inputs (B, K_i, H, W) appended on channels, in x's dtype and memory format
    (channels_last stays channels_last): what a wrapper feeds its inner network."""
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
        else torch.contiguous_format
    return torch.cat([x, *(e.to(x.dtype) for e in extra)], dim=1).contiguous(memory_format=layout)  # (B, C + K, H, W)


__all__ = ["inner_backbone", "inner_options", "concat_channels"]
