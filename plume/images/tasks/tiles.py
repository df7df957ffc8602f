"""Images of any size through a model of one size: overlapping tiles, blended with a smooth window.

An image (C, H, W) is cut into tiles of the model's size T x T spread evenly along each axis (`tile_starts`: the
first at 0, the last flush with the far edge, neighbours sharing at least `overlap` pixels), so every pixel is
covered. Each tile is processed
alone and the outputs are averaged with per-pixel weights w(i) w(j), w a Hann window offset by half a pixel,
w(i) = sin^2(pi (i + 1/2) / T): smooth, largest mid-tile where a network sees the most context, and never zero, so
pixels covered once (the image's rim) keep their tile's value exactly. An image smaller than T is first extended
to T by mirror padding and the output cropped back.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch.nn import functional as F

from ...errors import PlumeError

TileFn = Callable[[torch.Tensor], torch.Tensor]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of `tile` pixels covering `length` pixels, evenly spread: the first at 0, the last flush with
    the end, neighbours overlapping by at least `overlap` pixels."""
    if not 0 <= overlap < tile:
        raise PlumeError(f"the tile overlap must be in [0, {tile - 1}] pixels for tiles of {tile}, got {overlap}")
    if length < tile:
        raise PlumeError(f"an image side of {length} pixels is smaller than a tile ({tile}); nothing to tile")
    if length == tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))  # >= 2: spacing (length - tile) / (n - 1) <= tile - overlap
    return [round(k * (length - tile) / (n - 1)) for k in range(n)]


def tile_window(height: int, width: Optional[int] = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Blending weights (height, width) (square if width is None): the outer product of sin^2(pi (i + 1/2) / n) on
    each axis, positive everywhere and largest at the centre."""
    def axis(n: int) -> torch.Tensor:
        return torch.sin(math.pi * (torch.arange(n, dtype=torch.float64) + 0.5) / n) ** 2  # (n,)
    return (axis(height)[:, None] * axis(height if width is None else width)[None, :]).to(dtype)  # (H, W)


def pad_to(x: torch.Tensor, tile: int) -> torch.Tensor:
    """x (B, C, H, W) mirror-padded at the bottom and right to at least tile x tile (edge copies if too small)."""
    ph, pw = max(0, tile - x.shape[-2]), max(0, tile - x.shape[-1])
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)  # (B, C, max(H, T), max(W, T))


def tiled(fn: TileFn, x: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """fn applied to overlapping tile x tile tiles of x (B, C, H, W), blended: (B, C, H, W).

    fn takes and returns a batch of tiles (K, C, T, T); it is called once per image with all its tiles."""
    height, width = x.shape[-2:]
    padded = pad_to(x, tile)  # (B, C, H', W')
    rows, cols = tile_starts(padded.shape[-2], tile, overlap), tile_starts(padded.shape[-1], tile, overlap)
    starts = [(r, c) for r in rows for c in cols]
    out = []
    for image in padded:  # (C, H', W')
        tiles = torch.stack([image[:, r:r + tile, c:c + tile] for r, c in starts])  # (K, C, T, T)
        done = fn(tiles)  # (K, C, T, T)
        if done.shape != tiles.shape:
            raise PlumeError(f"the tile function returned shape {tuple(done.shape)} for tiles {tuple(tiles.shape)}")
        out.append(blend(done, starts, *image.shape[-2:])[:, :height, :width])  # (C, H, W)
    return torch.stack(out)  # (B, C, H, W)


def blend(tiles: torch.Tensor, starts: list[tuple[int, int]], height: int, width: int) -> torch.Tensor:
    """One image (C, height, width) from tiles (K, C, Th, Tw) placed at starts [(top, left)] * K, overlaps averaged
    with the tile_window weights; every pixel must be covered."""
    th, tw = tiles.shape[-2:]
    window = tile_window(th, tw, dtype=tiles.dtype).to(tiles.device)  # (Th, Tw)
    total = tiles.new_zeros(tiles.shape[1], height, width)  # (C, H, W): weighted sum of tiles
    weight = tiles.new_zeros(1, height, width)  # (1, H, W): summed weights
    for tile, (top, left) in zip(tiles, starts):
        total[:, top:top + th, left:left + tw] += window * tile
        weight[:, top:top + th, left:left + tw] += window
    return total / weight  # (C, H, W)


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    """How many tiles `tiled` cuts an H x W image into."""
    return len(tile_starts(max(height, tile), tile, overlap)) * len(tile_starts(max(width, tile), tile, overlap))


__all__ = ["tiled", "blend", "tile_starts", "tile_window", "tile_count", "pad_to"]
