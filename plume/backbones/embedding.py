"""Conditioning embeddings shared by every backbone: the noise level, the class label and the text prompt.

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


class TextConditioning(nn.Module):
    """A text encoder (plume.backbones.text) whose context (B, T, D) feeds cross-attention, plus its masked mean over
    tokens projected to the embedding width and added to the noise-level embedding (pooled text conditioning,
    as Imagen's, Saharia et al. 2022, sec. 2.2). cond is token ids (B, T); None is the empty prompt."""

    def __init__(self, options: dict, width: int):
        super().__init__()
        from .text import build_text_encoder

        self.encoder = build_text_encoder(options)
        self.features = self.encoder.features
        self.pool = nn.Linear(self.features, width)

    def null_condition(self, batch: int, device: torch.device) -> torch.Tensor:
        """The empty prompt's ids (B, T): what label dropout trains as "no prompt"."""
        return self.encoder.tokenizer.encode([""]).to(device).expand(batch, -1)

    def forward(self, cond: Optional[torch.Tensor], batch: int,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pooled embedding (B, W), context (B, T, D), key mask (B, T)) of ids (B, T), None = empty prompt."""
        ids = self.null_condition(batch, device) if cond is None else self._check(cond, batch, device)
        context, mask = self.encoder(ids)  # (B, T, D), (B, T)
        weights = mask.to(context.dtype)[..., None]  # (B, T, 1)
        pooled = (context * weights).sum(1) / weights.sum(1)  # (B, D)
        return self.pool(pooled), context, mask

    def _check(self, cond: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        cond = torch.as_tensor(cond, device=device)
        tokens = self.encoder.tokenizer.max_tokens
        if cond.dtype.is_floating_point or cond.dtype == torch.bool or cond.shape != (batch, tokens):
            raise PlumeError(f"this backbone is text-conditioned: cond must be token ids shaped ({batch}, {tokens}) "
                             f"from its tokenizer (backbone.text.encoder.tokenizer.encode(prompts)), got "
                             f"{cond.dtype} {tuple(cond.shape)}")
        return cond.long()


def text_conditioning(text: Optional[dict], num_classes: Optional[int], width: int,
                      owner: str) -> Optional[TextConditioning]:
    """The TextConditioning of a backbone's `text` option (None without one); text and labels exclude each other."""
    if text is None:
        return None
    if num_classes is not None:
        raise PlumeError(f"a {owner} is conditioned on class labels (num_classes) or on text, not both")
    if not isinstance(text, dict):
        raise PlumeError(f"{owner} option text must be a dict of text-encoder options (see plume.backbones.text), got {text!r}")
    return TextConditioning(text, width)


def null_condition(label_embed: Optional[LabelEmbedding], text: Optional[TextConditioning], batch: int,
                   device: torch.device, owner: str) -> torch.Tensor:
    """The "no condition" input for `batch` rows: index num_classes for labels, the empty prompt for text."""
    if text is not None:
        return text.null_condition(batch, device)
    if label_embed is not None:
        return torch.full((batch,), label_embed.num_classes, dtype=torch.long, device=device)
    raise PlumeError(f"guidance and label dropout need a conditional model; this {owner} was built with neither "
                     "num_classes nor text")


def embed_condition(noise_embed: NoiseLevelEmbedding, label_embed: Optional[LabelEmbedding], x: torch.Tensor,
                    noise_level: torch.Tensor, cond: Optional[torch.Tensor], owner: str,
                    text: Optional[TextConditioning] = None,
                    ) -> tuple[torch.Tensor, Optional[tuple[torch.Tensor, torch.Tensor]]]:
    """The conditioning vector (B, W) (noise-level embedding plus label or pooled-text embedding) and, for text,
    the cross-attention context (context (B, T, D), mask (B, T)); checks noise_level and cond."""
    batch = x.shape[0]
    noise_level = torch.as_tensor(noise_level, device=x.device)
    if noise_level.numel() not in (1, batch) or noise_level.ndim > 1:
        raise PlumeError(f"noise_level must be a scalar or shaped ({batch},), got shape {tuple(noise_level.shape)}")
    e = noise_embed(noise_level.reshape(-1).expand(batch))  # (B, W)
    if text is not None:
        pooled, context, mask = text(cond, batch, x.device)  # (B, W), (B, T, D), (B, T)
        return e + pooled.to(e.dtype), (context, mask)
    if label_embed is not None:
        return e + label_embed(cond, batch), None  # (B, W)
    if cond is not None:
        raise PlumeError(f"this {owner} was built without num_classes or text, so it takes no condition "
                         "(cond must be None)")
    return e, None
