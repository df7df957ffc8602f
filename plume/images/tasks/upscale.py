"""Super-resolution of a user's image with a trained super-resolution stage (SR3, Saharia et al. 2022; the second
stage of a cascade, Ho et al. 2021; plume.images.cascade.super_resolve), at any size the stage's factor allows.

An image of exactly the stage's low size is super-resolved in one piece: `upscale(sr, low, seeds=[s])` equals
`super_resolve_mean(sr, low, [s])` (estimate="mean"), or `super_resolve(sr, low, [s])` with estimate="sample". A
larger image is cut into overlapping low-resolution tiles of the stage's low size (plume.images.tasks.tiles.tile_starts:
evenly spread, neighbours overlapping by at least `overlap` low pixels, the last tile flush with the border), each
tile super-resolved on its own, and the high-resolution tiles blended with a smooth window (plume.images.tasks.tiles.blend,
shared with tiled denoising: tile_window's sin^2, positive everywhere, largest at the tile's centre, where the
network saw the most context), normalised by the summed weights; a pixel covered by one tile is that tile's pixel.

Estimates: PSNR and SSIM reward the posterior mean E[high | low], sharpness rewards a sample of p(high | low).
estimate="mean" (default) is the stage's posterior mean in one denoiser call per tile (plume.images.cascade.
super_resolve_mean: the denoiser at a level far above the residual's spread); estimate="sample" runs the sampler,
and one draw is sharp, with detail the model invents (which PSNR counts as error). `draws` K > 1 averages K
pieces per tile: K means from different noise, or K samples (whose mean tends to the posterior mean as K grows).

Randomness: piece (tile j, draw k) of an image with seed s uses `piece_seed(s, j, k)` (s itself for the first
tile's first draw), so tiles and draws never share a random stream and an image's result does not depend on what
else is in the batch.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..cascade import POSTERIOR_LEVEL, super_resolution_of, super_resolve, super_resolve_mean
from ..sets import images_to_tensor, tensor_to_images
from ...denoiser import Denoiser
from ...errors import PlumeError
from ...samplers import derive_seed
from ...sampling import resolve_seeds
from .tiles import blend, tile_starts

UPSCALE_ESTIMATES = ("mean", "sample")
UPSCALE_ESTIMATE = "mean"  # the posterior mean: what PSNR and SSIM reward (docs/super-resolution.md)
UPSCALE_DRAWS = 1  # pieces averaged per tile
UPSCALE_AUGMENT = 0.0  # a user's image is exact, not a base model's draw: condition on it as it is (docs/cascade.md)
PIECE_STAGE = 3  # plume.images.cascade.stage_seed uses stages 1 and 2 of a seed; tiles and draws derive from stage 3


def piece_seed(seed: int, tile: int, draw: int) -> int:
    """The seed of tile `tile`, draw `draw` of an image with `seed`: seed itself for (0, 0), else derived."""
    if tile == 0 and draw == 0:
        return int(seed)
    return derive_seed(seed, PIECE_STAGE, tile, draw)


def check_image(sr: Denoiser, low: torch.Tensor, name: str = "the image") -> tuple[int, int]:
    """The stage's integer factors (fh, fw), after checking `low` (N, C, h, w) has its channels and at least its
    size; `name` names the image in errors."""
    net = super_resolution_of(sr, "the upscaling model")
    c, (th, tw), (hh, hw) = net.in_channels, net.low_size, net.high_size
    kind = {1: "gray (1 channel)", 3: "RGB (3 channels)"}
    if low.ndim != 4:
        raise PlumeError(f"{name}: expected images (N, C, H, W), got shape {tuple(low.shape)}")
    if low.shape[1] != c:
        mode = "L" if c == 1 else "RGB"
        raise PlumeError(f"{name} is {kind.get(low.shape[1], f'{low.shape[1]} channels')}, but the model upscales "
                         f"{kind.get(c, f'{c}-channel')} images; convert it (e.g. PIL's convert('{mode}')) or use a "
                         f"model trained on {'gray' if low.shape[1] == 1 else 'RGB'} images (plume train --channels)")
    if low.shape[2] < th or low.shape[3] < tw:
        raise PlumeError(f"{name} is {low.shape[2]}x{low.shape[3]} pixels, smaller than the model's low resolution "
                         f"{th}x{tw}; give an image of at least {th}x{tw} or train a stage with --super-resolution "
                         f"{min(low.shape[2:])}")
    factors = (hh // th, hw // tw)
    exact = tuple(low.shape[2:]) == (th, tw)
    if not exact and (hh % th or hw % tw):
        raise PlumeError(f"the model maps {th}x{tw} to {hh}x{hw}, not an integer factor, so images larger than "
                         f"{th}x{tw} cannot be tiled; give an image of exactly {th}x{tw}")
    return factors


@torch.no_grad()
def upscale(sr: Denoiser, low: torch.Tensor, seed: int = 0, seeds: Optional[Sequence[int]] = None,
            estimate: str = UPSCALE_ESTIMATE, draws: int = UPSCALE_DRAWS, augment: float = UPSCALE_AUGMENT,
            sampler: str = "dpm++2m", steps: int = 20, level: float = POSTERIOR_LEVEL, overlap: Optional[int] = None,
            batch_size: int = 64, progress: bool = False, **sampler_options: Any) -> torch.Tensor:
    """Images low (N, C, h, w) in [-1, 1] upscaled by the stage's factor: (N, C, fh h, fw w) in [-1, 1].

    seeds: one per image (default seed, seed + 1, ...); estimate: "mean" (the posterior mean, one denoiser call per
    tile at level `level`) or "sample" (the sampler, `sampler` in `steps` steps); draws: pieces averaged per tile;
    augment: the conditioning-augmentation level; overlap: low-resolution pixels shared by neighbouring tiles
    (default a quarter of the tile); batch_size: tiles per call.
    """
    (fh, fw), net = check_image(sr, low), super_resolution_of(sr)
    seed_list = resolve_seeds(len(low), seed, seeds)
    if not isinstance(draws, int) or draws < 1:
        raise PlumeError(f"draws must be a whole number >= 1, got {draws!r}")
    if estimate not in UPSCALE_ESTIMATES:
        raise PlumeError(f"unknown estimate {estimate!r}; valid: {', '.join(UPSCALE_ESTIMATES)}")
    (th, tw), (n, c, h, w) = net.low_size, low.shape
    overlap = min(th, tw) // 4 if overlap is None else int(overlap)
    layout = [(top, left) for top in tile_starts(h, th, overlap) for left in tile_starts(w, tw, overlap)]
    pieces = [(i, j, k) for i in range(n) for j in range(len(layout)) for k in range(draws)]
    tiles = torch.stack([low[i, :, top:top + th, left:left + tw] for i, j, _ in pieces
                         for top, left in [layout[j]]])  # (P, C, th, tw)
    piece_seeds = [piece_seed(seed_list[i], j, k) for i, j, k in pieces]
    high = super_resolve_mean(sr, tiles, piece_seeds, augment, level, batch_size, progress) if estimate == "mean" else \
        super_resolve(sr, tiles, piece_seeds, augment, sampler, steps, batch_size, progress,
                      **sampler_options)  # (P, C, fh th, fw tw)
    high_tiles = torch.zeros(n, len(layout), c, fh * th, fw * tw)  # (N, J, C, fh th, fw tw): means over draws
    for (i, j, _), x in zip(pieces, high):
        high_tiles[i, j] += x / draws
    starts = [(fh * top, fw * left) for top, left in layout]  # in high-resolution pixels
    return torch.stack([blend(t, starts, fh * h, fw * w) for t in high_tiles]).clamp(-1, 1)  # (N, C, H, W)


def upscale_pixels(sr: Denoiser, pixels: np.ndarray, seed: int = 0, **options: Any) -> np.ndarray:
    """One uint8 image (h, w, C) upscaled to uint8 (fh h, fw w, C); options as `upscale`."""
    pixels = np.array(pixels)  # a writable copy (decoded files are often read-only)
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise PlumeError(f"upscale_pixels takes one uint8 image (H, W, C), got {pixels.dtype} {pixels.shape}")
    device = next(sr.parameters()).device
    low = images_to_tensor(pixels[None]).to(device)  # (1, C, h, w)
    return tensor_to_images(upscale(sr, low, seed=seed, **options))[0]  # (H, W, C)


__all__ = ["UPSCALE_ESTIMATES", "UPSCALE_ESTIMATE", "UPSCALE_DRAWS", "UPSCALE_AUGMENT", "check_image", "piece_seed",
           "upscale", "upscale_pixels"]
