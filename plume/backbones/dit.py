"""A diffusion transformer for images (B, C, H, W) after Peebles & Xie 2023 (DiT), with adaLN-Zero blocks:
forward(x, noise_level, cond=None) -> (B, out_channels, H, W).

The image is cut into p x p patches (a conv with kernel = stride = p; Dosovitskiy et al. 2021), plus fixed 2-D
sine-cosine position embeddings (MAE, He et al. 2022). The conditioning vector c is the noise-level embedding
plus the class-label embedding (null token when cond is None, for classifier-free guidance). Each block is
pre-LayerNorm attention and MLP whose LayerNorms have no affine parameters; instead a zero-initialised linear
of SiLU(c) gives (shift, scale, gate) for each, x + gate * f(LN(x) * (1 + scale) + shift) (DiT, sec. 3.2,
"adaLN-Zero"), so every block starts as the identity. A final adaLN layer and a zero-initialised linear map each
token to a p x p x C_out patch, so the untrained network outputs 0.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import PlumeError
from .attention import CrossAttention, SelfAttention
from .embedding import LabelEmbedding, NoiseLevelEmbedding, embed_condition, null_condition, text_conditioning


def sincos_position_embedding(dim: int, rows: int, cols: int) -> torch.Tensor:
    """Fixed 2-D sin-cos embeddings (rows * cols, dim): half the features encode the column, half the row (MAE, DiT)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # (D/4,)
    row, col = torch.meshgrid(torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64),
                              indexing="ij")  # (h, w) each, row-major like the patch tokens
    row_angles, col_angles = row.reshape(-1, 1) * omega, col.reshape(-1, 1) * omega  # (hw, D/4) each
    parts = [torch.sin(col_angles), torch.cos(col_angles), torch.sin(row_angles), torch.cos(row_angles)]
    return torch.cat(parts, dim=1).float()  # (hw, D)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x * (1 + scale) + shift with per-sample (B, D) shift and scale over tokens (B, L, D)."""
    return torch.addcmul(shift[:, None], x, scale[:, None] + 1)  # (B, L, D)


class Block(nn.Module):
    """adaLN-Zero transformer block: x + g1 * attn(mod(LN(x))), with text x + cross_attn(LN(x), context) (as
    PixArt-alpha, Chen et al. 2023, sec. 2.3), then x + g2 * mlp(mod(LN(x)))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float, context_features: Optional[int] = None):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(width, heads, dropout)
        self.cross_norm = nn.LayerNorm(width, eps=1e-6) if context_features else None
        self.cross = CrossAttention(width, context_features, heads) if context_features else None
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                                 nn.Linear(hidden, width))
        self.modulation = nn.Linear(width, 6 * width)

    def forward(self, x: torch.Tensor, c: torch.Tensor,
                context: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=1)  # 6 x (B, D)
        x = torch.addcmul(x, gate1[:, None], self.attn(modulate(self.norm1(x), shift1, scale1)))  # (B, L, D)
        if self.cross is not None and context is not None:
            x = x + self.cross(self.cross_norm(x), *context)  # (B, L, D)
        return torch.addcmul(x, gate2[:, None], self.mlp(modulate(self.norm2(x), shift2, scale2)))  # (B, L, D)


class DiT(nn.Module):
    """Diffusion transformer on images (B, C, H, W), conditioned on the noise level and optionally a class label."""

    def __init__(self, in_channels: int = 3, image_size: Union[int, Sequence[int]] = 32, patch_size: int = 2,
                 width: int = 384, depth: int = 12, heads: int = 6, mlp_ratio: float = 4.0,
                 out_channels: Optional[int] = None, num_classes: Optional[int] = None, embed_features: int = 256,
                 dropout: float = 0.0, text: Optional[dict] = None):
        super().__init__()
        size = [int(image_size)] * 2 if isinstance(image_size, int) else [int(s) for s in image_size]
        out_channels = in_channels if out_channels is None else out_channels
        _check(in_channels, out_channels, size, patch_size, width, depth, heads, mlp_ratio, embed_features, dropout)
        self._options = {"in_channels": in_channels, "image_size": size, "patch_size": patch_size, "width": width,
                         "depth": depth, "heads": heads, "mlp_ratio": mlp_ratio, "out_channels": out_channels,
                         "num_classes": num_classes, "embed_features": embed_features, "dropout": dropout}
        self.in_channels, self.out_channels, self.size, self.patch = in_channels, out_channels, size, patch_size
        self.grid = [s // patch_size for s in size]
        self.patchify = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        self.register_buffer("position", sincos_position_embedding(width, *self.grid)[None], persistent=False)
        self.noise_embed = NoiseLevelEmbedding(embed_features, width)
        self.label_embed = LabelEmbedding(num_classes, width) if num_classes is not None else None
        self.text = text_conditioning(text, num_classes, width, "DiT")
        self._options["text"] = None if self.text is None else self.text.encoder.options()
        context = None if self.text is None else self.text.features
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, dropout, context) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.out_modulation = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, patch_size * patch_size * out_channels)
        self._initialize()

    def _initialize(self) -> None:
        """DiT's initialisation: Xavier-uniform linears, N(0, 0.02) embeddings, zero adaLN and output layers."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.patchify.weight.view(self.patchify.weight.shape[0], -1))
        nn.init.zeros_(self.patchify.bias)
        for layer in (self.noise_embed.mlp[0], self.noise_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        if self.label_embed is not None:
            nn.init.normal_(self.label_embed.weight, std=0.02)
        for layer in [block.modulation for block in self.blocks] + [self.out_modulation, self.out]:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def options(self) -> dict[str, Any]:
        """The constructor options that rebuild this backbone (saved in config.json)."""
        return dict(self._options)

    def null_condition(self, batch: int, device: torch.device) -> torch.Tensor:
        """The "no condition" input (B, ...): the null label or the empty prompt (classifier-free guidance)."""
        return null_condition(self.label_embed, self.text, batch, device, "DiT")

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels or list(x.shape[2:]) != self.size:
            raise PlumeError(f"this DiT takes images (B, {self.in_channels}, {self.size[0]}, {self.size[1]}), got shape "
                             f"{tuple(x.shape)}; a DiT is built for one image_size (its position embedding is fixed)")
        c, context = embed_condition(self.noise_embed, self.label_embed, x, noise_level, cond, "DiT", self.text)
        c = F.silu(c)  # (B, D)
        tokens = self.patchify(x).flatten(2).transpose(1, 2)  # (B, L, D), L = (H/p)(W/p); a view
        h = torch.add(self.position, tokens)  # (B, L, D), contiguous whatever x's memory format
        for block in self.blocks:
            h = block(h, c, context)  # (B, L, D)
        shift, scale = self.out_modulation(c).chunk(2, dim=1)  # 2 x (B, D)
        h = self.out(modulate(self.out_norm(h), shift, scale))  # (B, L, p*p*C_out)
        return self.unpatchify(h)  # (B, C_out, H, W)

    def unpatchify(self, h: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L, p*p*C) back to an image (B, C, H, W)."""
        (gh, gw), p = self.grid, self.patch
        h = h.reshape(h.shape[0], gh, gw, p, p, self.out_channels)  # (B, h, w, p, p, C)
        return torch.einsum("bhwpqc->bchpwq", h).reshape(h.shape[0], self.out_channels, gh * p, gw * p)  # (B, C, H, W)


def _check(in_channels: int, out_channels: int, size: list[int], patch_size: int, width: int, depth: int, heads: int,
           mlp_ratio: float, embed_features: int, dropout: float) -> None:
    """Refuse options that cannot build a DiT, saying which value to change."""
    if in_channels < 1 or out_channels < 1 or depth < 0 or embed_features < 2 or mlp_ratio <= 0 or not 0 <= dropout < 1:
        raise PlumeError(f"DiT needs in_channels, out_channels >= 1, depth >= 0, embed_features >= 2, mlp_ratio > 0 "
                         f"and 0 <= dropout < 1; got in_channels={in_channels}, out_channels={out_channels}, "
                         f"depth={depth}, embed_features={embed_features}, mlp_ratio={mlp_ratio}, dropout={dropout}")
    if len(size) != 2 or min(size) < 1:
        raise PlumeError(f"DiT image_size must be a positive int or [H, W], got {size}")
    if patch_size < 1 or size[0] % patch_size or size[1] % patch_size:
        fits = [p for p in range(1, min(size) + 1) if size[0] % p == 0 and size[1] % p == 0][:6]
        raise PlumeError(f"image_size {size[0]}x{size[1]} does not divide into {patch_size}x{patch_size} patches; "
                         f"use patch_size in {fits}, or pad or crop the images")
    if width % 4 or heads < 1 or width % heads:
        raise PlumeError(f"DiT width must be a multiple of 4 (for the 2-D position embedding) and of heads; got "
                         f"width={width}, heads={heads}")
