"""Multi-head self- and cross-attention over tokens (B, L, C), shared by the U-Net, DiT and text encoder.

softmax(Q K^T / sqrt(d)) V per head (Vaswani et al. 2017, eq. 1), computed by PyTorch's fused
`scaled_dot_product_attention` (flash / memory-efficient kernels where they apply). One fused qkv projection
and an output projection, as in ADM's AttentionBlock (Dhariwal & Nichol 2021) and DiT (Peebles & Xie 2023).
q, k and v are strided views of the projection with unit stride in the head dimension, which the fused
kernels accept, so no copy is made before or after the attention itself. On the CPU, short sequences take the
math kernel, which is faster there (MATH_ATTENTION_MAX_TOKENS).
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..errors import PlumeError

# Sequence lengths up to which PyTorch's math attention (two batched matmuls and a softmax) beats its CPU flash
# kernel on 2 AVX2 cores: in training by 1.2-2x up to 64 tokens (even at 96-128, flash ahead beyond), for
# inference by 2x at 16 tokens (even at 32, flash ahead beyond); bench/attention_cpu.py prints the ratios.
MATH_ATTENTION_MAX_TOKENS = {"training": 64, "inference": 16}


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

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attention over tokens x (B, L, C); mask (B, L) bool, if given, marks the tokens that may be attended to."""
        b, length, width = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.heads, width // self.heads)  # (B, L, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, L, d), views
        return self.proj(attend(q, k, v, mask, self.dropout if self.training else 0.0))  # (B, L, C)


class CrossAttention(nn.Module):
    """x -> proj(attention(q(x), kv(context))): tokens x (B, L, C) attend to a context (B, T, C_ctx), e.g. a text
    encoder's output, with a key mask (B, T) (LDM's cross-attention, Rombach et al. 2022, eq. 3). The output
    projection starts at zero, so a block that adds it starts as the identity."""

    def __init__(self, width: int, context_features: int, heads: int):
        super().__init__()
        if heads < 1 or width % heads:
            raise PlumeError(f"cross-attention width {width} must divide into {heads} heads")
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(context_features, 2 * width)
        self.proj = nn.Linear(width, width)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        b, length, width = x.shape
        d = width // self.heads
        q = self.q(x).view(b, length, self.heads, d).transpose(1, 2)  # (B, h, L, d)
        kv = self.kv(context).view(b, context.shape[1], 2, self.heads, d)  # (B, T, 2, h, d)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 x (B, h, T, d), views
        return self.proj(attend(q, k, v, mask))  # (B, L, C)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor],
           dropout: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for q (B, h, L, d), k, v (B, h, T, d), keys masked by mask (B, T) if given;
    returns (B, L, h * d)."""
    b, heads, length, d = q.shape
    attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, T), True = attend
    with _cpu_kernel_for(q, length):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)  # (B, h, L, d)
    return out.transpose(1, 2).reshape(b, length, heads * d)  # (B, L, h d)


def _cpu_kernel_for(x: torch.Tensor, length: int) -> contextlib.AbstractContextManager:
    """The math SDPA backend for short sequences on the CPU (MATH_ATTENTION_MAX_TOKENS) unless the caller chose
    backends; no change elsewhere."""
    chosen = not (torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.math_sdp_enabled())
    if x.device.type != "cpu" or torch.compiler.is_compiling() or chosen:  # (chosen: a caller's sdpa_kernel rules)
        return contextlib.nullcontext()
    limit = MATH_ATTENTION_MAX_TOKENS["training" if torch.is_grad_enabled() and x.requires_grad else "inference"]
    return sdpa_kernel(SDPBackend.MATH) if length <= limit else contextlib.nullcontext()
