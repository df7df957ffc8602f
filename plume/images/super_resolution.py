"""Super-resolution as a conditional backbone: any registered image backbone, given the noisy high-resolution image
and the low-resolution image it should agree with (SR3, Saharia et al. 2022, sec. 2.3; Cascaded Diffusion Models,
Ho et al. 2021, sec. 3 and 4.1).

SuperResolution(low_size=(h, w), high_size=(H, W), in_channels=C, inner="unet", inner_preset=..., inner_options=...)
has forward(x, noise_level, cond) with x (B, C, H, W) and cond the low-resolution image (B, C, h, w) in [-1, 1]:
the conditioning is upsampled to H x W (bicubic by default, align_corners=False; PyTorch's a = -0.75 kernel) and
concatenated to x on channels (SR3's "concatenation"), together with one constant channel holding the
conditioning-augmentation level s of each row (a channel rather than a second embedding, so any inner backbone
serves unchanged); the inner backbone sees 2C + 1 channels and predicts C.

Conditioning augmentation (Ho et al. 2021, sec. 4.1, non-truncated Gaussian augmentation): the cascade's second
stage is trained on z = low + s * eps at the low resolution, eps ~ N(0, I), s ~ U[0, augment_max] per example,
and told s; at sampling a fixed s is chosen, so the model can treat the base model's artefacts as noise it was
trained to see through. `augment_condition` packs (z, s) into cond as (B, C + 1, h, w): the last channel holds s.
A plain image (B, C, h, w) as cond means s = 0 (the conditioning taken as exact).

Residual (default): `offset(x, cond)` returns the upsampled conditioning, so the Denoiser models the residual
high - up(low) (plume.denoiser, residual denoising; SRDiff, Li et al. 2022): an untrained stage returns the
bicubic upsampling, and training only has to add what bicubic misses. The stage's sigma_data is then the
residual's standard deviation (`residual_std`). residual=False models the high-resolution image itself (SR3).

Low-resolution training inputs are area (box-filter) downsamplings of the high-resolution images (`downsample`),
which for integer factors is the antialiased average of each block of pixels.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import PlumeError
from .inner import concat_channels, inner_backbone, inner_options

UPSAMPLING = ("bicubic", "bilinear")
AUGMENT_MAX = 0.5  # training: s ~ U[0, AUGMENT_MAX] for images in [-1, 1] (bench/cascade.py)
SAMPLE_AUGMENT = 0.1  # sampling: the fixed level the cascade conditions on (bench/cascade.py measures the choice)


def size_pair(value: Union[int, Sequence[int]], name: str) -> list[int]:
    """[h, w] from an int or a pair of positive ints."""
    size = [int(value)] * 2 if isinstance(value, (int, float)) else [int(v) for v in value]
    if len(size) != 2 or min(size) < 1:
        raise PlumeError(f"{name} must be a positive int or a pair [h, w], got {value!r}")
    return size


def downsample(x: torch.Tensor, size: Union[int, Sequence[int]]) -> torch.Tensor:
    """Area (box-filter) downsampling of images (B, C, H, W) to (B, C, h, w): each low pixel averages its block."""
    h, w = size_pair(size, "size")
    if x.ndim != 4 or h > x.shape[2] or w > x.shape[3]:
        raise PlumeError(f"downsample takes images (B, C, H, W) at least {h}x{w}, got shape {tuple(x.shape)}")
    return F.interpolate(x, size=(h, w), mode="area")  # (B, C, h, w)


def augment_condition(low: torch.Tensor, level: "float | torch.Tensor", noise: Optional[torch.Tensor] = None) -> torch.Tensor:
    """cond (B, C + 1, h, w) = [low + level * noise, level]: Gaussian conditioning augmentation (Ho et al. 2021,
    sec. 4.1) at a per-row level (B,) or one level for all rows; level 0 leaves `low` unchanged (noise may be None)."""
    b = low.shape[0]
    level = torch.as_tensor(level, dtype=low.dtype, device=low.device).reshape(-1).expand(b)  # (B,)
    z = low if noise is None else low + level[:, None, None, None] * noise  # (B, C, h, w)
    return torch.cat([z, level[:, None, None, None].expand(b, 1, *low.shape[2:])], dim=1)  # (B, C + 1, h, w)


def residual_std(high: torch.Tensor, low_size: Union[int, Sequence[int]], upsample: str = "bicubic") -> float:
    """The root mean square of high - up(downsample(high)) over images high (B, C, H, W): a residual stage's
    sigma_data (its data are these residuals)."""
    up = F.interpolate(downsample(high, low_size), size=high.shape[2:], mode=upsample, align_corners=False)
    return float((high - up).float().pow(2).mean().sqrt())


def random_augmentation(low: torch.Tensor, augment_max: float, generator: torch.Generator) -> torch.Tensor:
    """Training's cond (B, C + 1, h, w): low (B, C, h, w) noised at s ~ U[0, augment_max] per row, both drawn from
    `generator` (levels first, then noise), so the result is a function of the generator's seed."""
    levels = torch.rand(low.shape[0], generator=generator, dtype=low.dtype) * augment_max  # (B,)
    noise = torch.randn(low.shape, generator=generator, dtype=low.dtype)  # (B, C, h, w)
    return augment_condition(low, levels.to(low.device), noise.to(low.device))


class SuperResolution(nn.Module):
    """An image backbone `inner` conditioned on a low-resolution image: forward(x, noise_level, cond) -> (B, C, H, W)."""

    def __init__(self, low_size: Union[int, Sequence[int]], high_size: Union[int, Sequence[int]], in_channels: int = 3,
                 inner: str = "unet", inner_preset: Optional[str] = None, inner_options: Optional[dict[str, Any]] = None,
                 upsample: str = "bicubic", residual: bool = True):
        super().__init__()
        if upsample not in UPSAMPLING:
            raise PlumeError(f"unknown upsample mode {upsample!r}; valid: {', '.join(UPSAMPLING)}")
        self.low_size, self.high_size = size_pair(low_size, "low_size"), size_pair(high_size, "high_size")
        self.in_channels, self.upsample, self.residual = int(in_channels), upsample, bool(residual)
        if self.in_channels < 1 or self.low_size[0] >= self.high_size[0] or self.low_size[1] >= self.high_size[1]:
            raise PlumeError(f"SuperResolution needs in_channels >= 1 and low_size smaller than high_size on both sides; "
                             f"got in_channels={in_channels}, low_size={self.low_size}, high_size={self.high_size}")
        self.inner_name = inner
        self.inner = inner_backbone("SuperResolution", inner, inner_preset, inner_options, 2 * self.in_channels + 1,
                                    self.in_channels, list(self.high_size))

    def options(self) -> dict[str, Any]:
        """The constructor options that rebuild this backbone (saved in config.json); the preset is expanded."""
        inner = inner_options(self.inner)
        return {"low_size": list(self.low_size), "high_size": list(self.high_size), "in_channels": self.in_channels,
                "inner": self.inner_name,
                "inner_preset": None, "inner_options": inner, "upsample": self.upsample,
                "residual": self.residual}

    def upsampled(self, x: torch.Tensor, cond: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(up (B, C, H, W), level (B,)): the conditioning upsampled to x's size in x's dtype, and its level."""
        low, level = self.split_condition(x, cond)  # (B, C, h, w), (B,)
        return F.interpolate(low.to(x.dtype), size=x.shape[2:], mode=self.upsample, align_corners=False), level

    def offset(self, x: torch.Tensor, cond: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """The residual stage's guess of x0 (B, C, H, W): the upsampled conditioning; None if not residual."""
        return self.upsampled(x, cond)[0] if self.residual else None

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        up, level = self.upsampled(x, cond)  # (B, C, H, W), (B,)
        s = level.to(x.dtype)[:, None, None, None].expand(x.shape[0], 1, *x.shape[2:])  # (B, 1, H, W)
        return self.inner(concat_channels(x, up, s), noise_level)  # (B, 2C + 1, H, W) in -> (B, C, H, W)

    def split_condition(self, x: torch.Tensor, cond: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(low (B, C, h, w), level (B,)) from cond (B, C, h, w) (level 0) or (B, C + 1, h, w); checks every shape."""
        c, (h, w), (hh, ww) = self.in_channels, self.low_size, self.high_size
        if x.ndim != 4 or x.shape[1] != c or list(x.shape[2:]) != [hh, ww]:
            raise PlumeError(f"this SuperResolution backbone makes {hh}x{ww} images from {h}x{w} ones: it takes x "
                             f"shaped (B, {c}, {hh}, {ww}), got {tuple(x.shape)}")
        if cond is None:
            raise PlumeError(f"the SuperResolution backbone needs the low-resolution image as cond, shaped "
                             f"(B, {c}, {h}, {w}); draw with plume.images.cascade.sample_cascade, or pass cond")
        b = x.shape[0]
        if not torch.is_tensor(cond) or not cond.is_floating_point() or cond.ndim != 4 or cond.shape[0] != b \
                or cond.shape[1] not in (c, c + 1) or list(cond.shape[2:]) != [h, w]:
            got = f"{cond.dtype} {tuple(cond.shape)}" if torch.is_tensor(cond) else type(cond).__name__
            raise PlumeError(f"cond must be the low-resolution images as floats ({b}, {c}, {h}, {w}), or with the "
                             f"augmentation level as one more channel ({b}, {c + 1}, {h}, {w}) (augment_condition); "
                             f"got {got}: this model upsamples {h}x{w} images of {c} channels, so give the conditioning at that "
                             f"size (plume.images.super_resolution.downsample) or use a model trained for yours")
        if cond.shape[1] == c:
            return cond, torch.zeros(b, dtype=cond.dtype, device=cond.device)
        return cond[:, :c], cond[:, c, 0, 0]  # (B, C, h, w), (B,)
