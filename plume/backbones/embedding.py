"""Conditioning embeddings shared by every backbone: the noise level and the class label.

The noise level c_noise = ln(sigma / alpha) / 4 (Karras et al. 2022, Table 1; given by plume.denoiser.Denoiser)
enters through sinusoidal features (Vaswani et al. 2017, sec. 3.5; Ho et al. 2020, appendix B) and a small MLP,
as the timestep embedding of DDPM, ADM (Dhariwal & Nichol 2021) and DiT (Peebles & Xie 2023).
A class label adds a learned embedding; index `num_classes` is the "no label" (null) token used when cond is
None, which classifier-free guidance needs (Ho & Salimans 2022; DiT's LabelEmbedder).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ..errors import PlumeError


class NoiseLevelEmbedding(nn.Module):
    """Sinusoidal features of the noise level at log-spaced frequencies 1 .. max_frequency, then an MLP."""

    def __init__(self, features: int, width: int, max_frequency: float = 100.0):
        super().__init__()
        half = features // 2
        self.register_buffer("frequencies", torch.exp(torch.linspace(0.0, math.log(max_frequency), half)), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, noise_level: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(self.frequencies.dtype, torch.float32)  # angles reach ~100: not in bf16
        angles = noise_level[:, None].to(dtype) * self.frequencies[None].to(dtype)  # (B, F/2)
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)  # (B, F)
        return self.mlp(features.to(self.mlp[0].weight.dtype))  # (B, W)


class LabelEmbedding(nn.Embedding):
    """A learned vector per class plus a null token at index num_classes (its weight stays `<name>.weight`)."""

    def __init__(self, num_classes: int, width: int):
        if num_classes < 1:
            raise PlumeError(f"num_classes must be a positive count or None, got {num_classes}")
        super().__init__(num_classes + 1, width)
        self.num_classes = num_classes

    def forward(self, cond: Optional[torch.Tensor], batch: int) -> torch.Tensor:  # type: ignore[override]
        """Embeddings (B, W) of integer labels (B,); None means "no label" (index num_classes) for every row."""
        return super().forward(self.labels(cond, batch))

    def labels(self, cond: Optional[torch.Tensor], batch: int) -> torch.Tensor:
        """Validated long labels (B,) in 0..num_classes."""
        if cond is None:
            return torch.full((batch,), self.num_classes, dtype=torch.long, device=self.weight.device)
        cond = torch.as_tensor(cond, device=self.weight.device)
        if cond.dtype.is_floating_point or cond.dtype.is_complex or cond.dtype == torch.bool or cond.shape != (batch,):
            raise PlumeError(f"class labels must be integers shaped ({batch},), got {cond.dtype} {tuple(cond.shape)}")
        if cond.device.type != "cpu" or torch.compiler.is_compiling():
            # No host sync on a GPU or in a compiled graph: the device asserts (an out-of-range label would
            # otherwise index the embedding table out of bounds) instead of a readable message.
            torch._assert_async(((cond >= 0) & (cond <= self.num_classes)).all())
        elif len(cond) and (int(cond.min()) < 0 or int(cond.max()) > self.num_classes):
            raise PlumeError(f"class labels must lie in 0..{self.num_classes - 1} ({self.num_classes} = no label), "
                             f"got values from {int(cond.min())} to {int(cond.max())}")
        return cond.long()


def embed_condition(noise_embed: NoiseLevelEmbedding, label_embed: Optional[LabelEmbedding], x: torch.Tensor,
                    noise_level: torch.Tensor, cond: Optional[torch.Tensor], owner: str) -> torch.Tensor:
    """The conditioning vector (B, W): noise-level embedding plus label embedding; checks noise_level and cond."""
    batch = x.shape[0]
    noise_level = torch.as_tensor(noise_level, device=x.device)
    if noise_level.numel() not in (1, batch) or noise_level.ndim > 1:
        raise PlumeError(f"noise_level must be a scalar or shaped ({batch},), got shape {tuple(noise_level.shape)}")
    e = noise_embed(noise_level.reshape(-1).expand(batch))  # (B, W)
    if label_embed is not None:
        return e + label_embed(cond, batch)  # (B, W)
    if cond is not None:
        raise PlumeError(f"this {owner} was built without num_classes, so it takes no class labels (cond must be None)")
    return e
