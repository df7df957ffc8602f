"""A small transformer text encoder trained together with the diffusion model (Imagen's and LDM's text
conditioning at a CPU's scale: Saharia et al. 2022 freeze a large T5; for a small captioned data set a few
layers learned from scratch suffice).

ids (B, T) from plume.backbones.text.tokenizer.WordTokenizer -> token embeddings + learned positions -> `depth` pre-LayerNorm
encoder layers, x + attn(LN(x)) then x + MLP(LN(x)) (Vaswani et al. 2017 with the pre-LN of Xiong et al. 2020),
attention masked to the prompt's tokens -> final LayerNorm. Returns the context (B, T, width) that the backbone's
cross-attention reads and the key mask (B, T).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..attention import SelfAttention
from ...errors import PlumeError
from .tokenizer import PAD, WordTokenizer


class EncoderLayer(nn.Module):
    """Pre-LN transformer encoder layer over tokens (B, T, D) with a key mask (B, T)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, int(width * mlp_ratio)), nn.GELU(),
                                 nn.Linear(int(width * mlp_ratio), width))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm1(h), mask)  # (B, T, D)
        return h + self.mlp(self.norm2(h))  # (B, T, D)


class TextEncoder(nn.Module):
    """Word tokenizer + transformer encoder, trained with the diffusion model; `features` = width."""

    def __init__(self, vocabulary: Sequence[str], max_tokens: int = 16, width: int = 128, depth: int = 2,
                 heads: int = 4):
        super().__init__()
        if depth < 1 or width < 1 or heads < 1 or width % heads:
            raise PlumeError(f"text encoder needs depth >= 1 and a width divisible by heads; got depth={depth}, "
                             f"width={width}, heads={heads}")
        self.tokenizer = WordTokenizer(vocabulary, max_tokens)
        self._options = {"kind": "trained", "vocabulary": list(self.tokenizer.vocabulary), "max_tokens": int(max_tokens),
                         "width": width, "depth": depth, "heads": heads}
        self.features = width
        self.embed = nn.Embedding(self.tokenizer.size, width)
        self.position = nn.Parameter(torch.zeros(1, max_tokens, width))
        self.layers = nn.ModuleList(EncoderLayer(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.position, std=0.02)

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (B, T, D) and key mask (B, T) of token ids (B, T)."""
        mask = ids != PAD  # (B, T); START is never PAD, so every row attends to something
        h = self.embed(ids) + self.position[:, : ids.shape[1]]  # (B, T, D)
        for layer in self.layers:
            h = layer(h, mask)  # (B, T, D)
        return self.norm(h), mask
