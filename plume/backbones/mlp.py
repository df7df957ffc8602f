"""A residual MLP backbone for vectors: forward(x, noise_level, cond=None) -> x's shape.

The noise level c_noise = ln(s) / 4 (Karras et al. 2022, Table 1; given by plume.denoiser.Denoiser) enters
through sinusoidal features (Vaswani et al. 2017, sec. 3.5; Ho et al. 2020, appendix B) and a small MLP,
added inside every residual block as in the ADM ResBlock (Dhariwal & Nichol 2021). Pre-LayerNorm residual
blocks (He et al. 2016; Xiong et al. 2020) and a zero-initialised output layer, so the untrained network
outputs 0 (Nichol & Dhariwal 2021, "zero-init" of ADM; Peebles & Xie 2023, adaLN-Zero).
Class labels, if `num_classes` is set, add a learned embedding; index `num_classes` is the "no label"
embedding used when cond is None (for classifier-free guidance, Ho & Salimans 2022).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import PlumeError
from .embedding import LabelEmbedding, NoiseLevelEmbedding, embed_condition, null_condition


class ResidualBlock(nn.Module):
    """x + fc2(silu(fc1(silu(norm(x))) + emb(silu(e)))): one pre-norm block with the embedding added inside."""

    def __init__(self, width: int, expansion: int = 2):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, expansion * width)
        self.emb = nn.Linear(width, expansion * width)
        self.fc2 = nn.Linear(expansion * width, width)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.fc1(F.silu(self.norm(x))) + self.emb(F.silu(e))  # (B, 2W)
        return x + self.fc2(F.silu(h))  # (B, W)


class MLP(nn.Module):
    """Residual MLP on (B, dim) vectors, conditioned on the noise level and optionally a class label."""

    def __init__(self, dim: int, width: int = 128, depth: int = 3, embed_features: int = 64,
                 num_classes: Optional[int] = None, max_frequency: float = 100.0):
        super().__init__()
        if dim < 1 or width < 1 or depth < 0 or embed_features < 2:
            raise PlumeError(f"MLP needs dim >= 1, width >= 1, depth >= 0, embed_features >= 2; "
                             f"got dim={dim}, width={width}, depth={depth}, embed_features={embed_features}")
        self._options = {"dim": dim, "width": width, "depth": depth, "embed_features": embed_features,
                         "num_classes": num_classes, "max_frequency": max_frequency}
        self.dim, self.num_classes = dim, num_classes
        self.noise_embed = NoiseLevelEmbedding(embed_features, width, max_frequency)
        self.label_embed = LabelEmbedding(num_classes, width) if num_classes is not None else None
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def options(self) -> dict[str, Any]:
        """The constructor options that rebuild this backbone (saved in config.json)."""
        return dict(self._options)

    def null_condition(self, batch: int, device: torch.device) -> torch.Tensor:
        """The null label (B,) (classifier-free guidance)."""
        return null_condition(self.label_embed, None, batch, device, "MLP")

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise PlumeError(f"the MLP backbone takes vectors (B, {self.dim}), got shape {tuple(x.shape)}")
        e, _ = embed_condition(self.noise_embed, self.label_embed, x, noise_level, cond, "MLP")  # (B, W)
        h = self.inp(x)  # (B, W)
        for block in self.blocks:
            h = block(h, e)  # (B, W)
        return self.out(F.silu(self.out_norm(h)))  # (B, D)
