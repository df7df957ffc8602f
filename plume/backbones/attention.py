"""Multi-head self-attention over tokens (B, L, C), shared by the U-Net and DiT backbones.

softmax(Q K^T / sqrt(d)) V per head (Vaswani et al. 2017, eq. 1), computed by PyTorch's fused
`scaled_dot_product_attention` (flash / memory-efficient kernels where they apply). One fused qkv projection
and an output projection, as in ADM's AttentionBlock (Dhariwal & Nichol 2021) and DiT (Peebles & Xie 2023).
q, k and v are strided views of the projection with unit stride in the head dimension, which the fused
kernels accept, so no copy is made before or after the attention itself.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import PlumeError


class SelfAttention(nn.Module):
    """x -> proj(attention(qkv(x))) on tokens (B, L, C), with `heads` heads of width C // heads."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if heads < 1 or width % heads:
            raise PlumeError(f"attention width {width} must divide into {heads} heads; "
                             f"try heads in {[h for h in range(1, 17) if width % h == 0]}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, width = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.heads, width // self.heads)  # (B, L, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, L, d), views
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)  # (B, h, L, d)
        return self.proj(out.transpose(1, 2).reshape(b, length, width))  # (B, L, C)
