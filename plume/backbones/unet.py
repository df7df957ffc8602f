"""A U-Net for images (B, C, H, W) in the line of DDPM (Ho et al. 2020), DDPM++ (Song et al. 2021) and ADM
(Dhariwal & Nichol 2021): forward(x, noise_level, cond=None) -> (B, out_channels, H, W).

Layout, as ADM's UNetModel and diffusers' UNet2DModel: a 3x3 input conv; per level `blocks_per_level`
residual blocks (each followed by self-attention at `attention_levels`) and a stride-2 conv downsample except
after the last level; a middle ResBlock, Attention, ResBlock; an up path with one more residual block per level,
each taking the matching skip activation concatenated on channels, and nearest-upsample + conv; then
GroupNorm, SiLU and a zero-initialised 3x3 conv, so the untrained network outputs 0.

ResBlock (ADM, appendix A; "scale-shift norm"): conv(SiLU(GN(x))), then GN(h) * (1 + scale) + shift with
(scale, shift) a projection of the noise-level (+ label) embedding, SiLU, dropout, a zero-initialised conv, and
a 1x1 skip conv when the channels change. The second GroupNorm has no affine parameters of its own: the
embedding's (scale, shift) already include a learned per-channel term (the projection's bias).

Sizes: every level but the last halves H and W, so they must divide by 2^(levels - 1); other sizes are
refused with a message naming sizes that work (pad or crop the data, or use fewer levels) rather than
padded silently. The network keeps the memory format it is given (channels_last inputs stay channels_last).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import PlumeError
from .attention import CrossAttention, SelfAttention
from .embedding import LabelEmbedding, NoiseLevelEmbedding, embed_condition, null_condition, text_conditioning


def _zero(module: nn.Module) -> nn.Module:
    """Zero a layer's weight and bias (ADM's zero_module): its block starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """x -> skip(x) + conv2(drop(SiLU(GN(conv1(SiLU(GN(x)))) * (1 + scale) + shift))), scale/shift from e."""

    def __init__(self, cin: int, cout: int, embed_width: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(embed_width, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout, affine=False)
        self.dropout = dropout
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, Co, H, W)
        scale, shift = self.emb(e)[:, :, None, None].chunk(2, dim=1)  # 2 x (B, Co, 1, 1)
        h = F.silu(torch.addcmul(shift, self.norm2(h), scale + 1))  # (B, Co, H, W)
        if self.dropout:
            h = F.dropout(h, self.dropout, self.training)
        h = self.conv2(h)  # (B, Co, H, W)
        return h.add_(x if self.skip is None else self.skip(x))  # conv backward does not need its output


class AttentionBlock(nn.Module):
    """x + attention(GN(x)) over the H*W positions, with a zero-initialised output projection; with a text
    context, then x + cross_attention(LN(x), context) (LDM's spatial transformer, Rombach et al. 2022, sec. 3.3)."""

    def __init__(self, channels: int, head_channels: int, groups: int, context_features: Optional[int] = None):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attn = SelfAttention(channels, channels // head_channels)
        _zero(self.attn.proj)
        self.cross_norm = nn.LayerNorm(channels) if context_features else None
        self.cross = CrossAttention(channels, context_features, channels // head_channels) if context_features else None

    def forward(self, x: torch.Tensor, context: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        b, c, height, width = x.shape
        tokens = self.norm(x).permute(0, 2, 3, 1).reshape(b, height * width, c)  # (B, HW, C); a view if channels_last
        out = self.attn(tokens).view(b, height, width, c).permute(0, 3, 1, 2)  # (B, C, H, W)
        x = x + out  # in x's memory format
        if self.cross is None or context is None:
            return x
        tokens = self.cross_norm(x.permute(0, 2, 3, 1).reshape(b, height * width, c))  # (B, HW, C)
        return x + self.cross(tokens, *context).view(b, height, width, c).permute(0, 3, 1, 2)  # (B, C, H, W)


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)


class Stage(nn.ModuleList):
    """Layers applied in turn; residual blocks also get the embedding (ADM's TimestepEmbedSequential), attention
    blocks the text context."""

    def forward(self, h: torch.Tensor, e: torch.Tensor,  # type: ignore[override]
                context: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                h = layer(h, e)
            else:
                h = layer(h, context) if isinstance(layer, AttentionBlock) else layer(h)
        return h


class UNet(nn.Module):
    """ADM-style U-Net on images (B, C, H, W), conditioned on the noise level and optionally a class label or a
    text prompt (token ids (B, T); `text` holds the text encoder's options, see plume.backbones.text)."""

    def __init__(self, in_channels: int = 3, out_channels: Optional[int] = None, channels: Sequence[int] = (64, 128, 128),
                 blocks_per_level: int = 2, attention_levels: Sequence[int] = (1,), head_channels: int = 32,
                 dropout: float = 0.0, norm_groups: int = 32, embed_features: int = 128, embed_width: Optional[int] = None,
                 num_classes: Optional[int] = None, mid_attention: bool = True, text: Optional[dict] = None):
        super().__init__()
        channels, attention_levels = [int(c) for c in channels], sorted({int(a) for a in attention_levels})
        out_channels = in_channels if out_channels is None else out_channels
        embed_width = 4 * channels[0] if embed_width is None and channels else embed_width
        _check(in_channels, out_channels, channels, blocks_per_level, attention_levels, head_channels, dropout,
               norm_groups, embed_features, embed_width, mid_attention)
        self._options = {"in_channels": in_channels, "out_channels": out_channels, "channels": channels,
                         "blocks_per_level": blocks_per_level, "attention_levels": attention_levels,
                         "head_channels": head_channels, "dropout": dropout, "norm_groups": norm_groups,
                         "embed_features": embed_features, "embed_width": embed_width, "num_classes": num_classes,
                         "mid_attention": mid_attention}
        self.in_channels, self.levels = in_channels, len(channels)
        self.noise_embed = NoiseLevelEmbedding(embed_features, embed_width)
        self.label_embed = LabelEmbedding(num_classes, embed_width) if num_classes is not None else None
        self.text = text_conditioning(text, num_classes, embed_width, "UNet")
        self._options["text"] = None if self.text is None else self.text.encoder.options()
        context = None if self.text is None else self.text.features
        self.inp = nn.Conv2d(in_channels, channels[0], 3, padding=1)

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, embed_width, norm_groups, dropout)

        def attn(level: int, width: int) -> list[nn.Module]:
            return [AttentionBlock(width, head_channels, norm_groups, context)] if level in attention_levels else []

        self.down, skips, ch = nn.ModuleList(), [channels[0]], channels[0]
        for level, width in enumerate(channels):
            for _ in range(blocks_per_level):
                self.down.append(Stage([res(ch, width), *attn(level, width)]))
                ch = width
                skips.append(ch)
            if level < self.levels - 1:
                self.down.append(Stage([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)
        middle = [AttentionBlock(ch, head_channels, norm_groups, context)] if mid_attention else []
        self.mid = Stage([res(ch, ch), *middle, res(ch, ch)])
        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(channels))):
            for block in range(blocks_per_level + 1):
                upsample = [Upsample(width)] if level > 0 and block == blocks_per_level else []
                self.up.append(Stage([res(ch + skips.pop(), width), *attn(level, width), *upsample]))
                ch = width
        self.out_norm = nn.GroupNorm(norm_groups, ch)
        self.out = _zero(nn.Conv2d(ch, out_channels, 3, padding=1))

    def options(self) -> dict[str, Any]:
        """The constructor options that rebuild this backbone (saved in config.json)."""
        return dict(self._options)

    def null_condition(self, batch: int, device: torch.device) -> torch.Tensor:
        """The "no condition" input (B, ...): the null label or the empty prompt (classifier-free guidance)."""
        return null_condition(self.label_embed, self.text, batch, device, "UNet")

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        self._check_input(x)
        e, context = embed_condition(self.noise_embed, self.label_embed, x, noise_level, cond, "UNet", self.text)
        e = F.silu(e)  # (B, E)
        h = self.inp(x)  # (B, C0, H, W)
        skips = [h]
        for stage in self.down:
            h = stage(h, e, context)  # (B, C_l, H / 2^l, W / 2^l)
            skips.append(h)
        h = self.mid(h, e, context)  # (B, C_last, H', W')
        for stage in self.up:
            h = stage(torch.cat([h, skips.pop()], dim=1), e, context)  # (B, C_l, H / 2^l, W / 2^l)
        return self.out(F.silu(self.out_norm(h)))  # (B, C_out, H, W)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise PlumeError(f"the UNet backbone takes images (B, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        factor = 2 ** (self.levels - 1)
        height, width = x.shape[2:]
        if height % factor or width % factor:
            fits = max(k for k in range(1, self.levels + 1) if height % 2 ** (k - 1) == 0 and width % 2 ** (k - 1) == 0)
            near = lambda n: sorted({max(factor, n // factor * factor), -(-n // factor) * factor})  # noqa: E731
            raise PlumeError(
                f"a UNet with {self.levels} levels halves the image {self.levels - 1} times, so H and W must divide by "
                f"{factor}; got {height}x{width}: pad or crop to H in {near(height)} and W in {near(width)}, "
                f"or use at most {fits} level(s) (a channels list of length {fits})")


def _check(in_channels: int, out_channels: int, channels: list[int], blocks_per_level: int, attention_levels: list[int],
           head_channels: int, dropout: float, norm_groups: int, embed_features: int, embed_width: Optional[int],
           mid_attention: bool) -> None:
    """Refuse options that cannot build a U-Net, saying which value to change."""
    if in_channels < 1 or out_channels < 1 or not channels or min(channels) < 1 or blocks_per_level < 1:
        raise PlumeError(f"UNet needs in_channels, out_channels >= 1, a non-empty list of positive channels and "
                         f"blocks_per_level >= 1; got in_channels={in_channels}, out_channels={out_channels}, "
                         f"channels={channels}, blocks_per_level={blocks_per_level}")
    if embed_features < 2 or embed_width is None or embed_width < 1 or not 0 <= dropout < 1:
        raise PlumeError(f"UNet needs embed_features >= 2, embed_width >= 1 and 0 <= dropout < 1; got "
                         f"embed_features={embed_features}, embed_width={embed_width}, dropout={dropout}")
    bad = [a for a in attention_levels if not 0 <= a < len(channels)]
    if bad:
        raise PlumeError(f"attention_levels {bad} are not levels of channels={channels}; valid levels: "
                         f"0..{len(channels) - 1}")
    if norm_groups < 1 or any(c % norm_groups for c in channels):
        fits = [g for g in range(1, 33) if all(c % g == 0 for c in channels)]
        raise PlumeError(f"every entry of channels={channels} must divide by norm_groups={norm_groups} (GroupNorm); "
                         f"use norm_groups in {fits} or channels that are multiples of {norm_groups}")
    attended = [channels[a] for a in attention_levels] + ([channels[-1]] if mid_attention else [])
    if head_channels < 1 or any(c % head_channels for c in attended):
        raise PlumeError(f"attention at channels {sorted(set(attended))} needs head_channels dividing each of them; "
                         f"got head_channels={head_channels}")
