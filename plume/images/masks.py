"""Inpainting masks and the training data of a mask-conditioned model.

Convention, everywhere in Plume: a mask is `keep`, 1 where the pixel is known (kept), 0 where it is to be filled,
shaped (B, 1, H, W) (one mask for all channels). In PNG files white (255) is kept and black (0) is filled, unless
`plume inpaint --mask-white fill` says otherwise.

Families, for training and evaluation: the centre square (half the side), the four halves, random rectangles
(Palette, Saharia et al. 2022, sec. 4: box masks) and random brush strokes (free-form masks, Yu et al. 2019,
"Free-Form Image Inpainting with Gated Convolution", sec. 3.3; thick polylines), and "mixed", a family drawn per
example. A model trained for inpainting sees cond = [x0 * keep, keep] (K = C + 1 channels), made for each example
by `InpaintingData.condition` from the trainer's per-micro-batch generator (plume.train.data.ConditionedData).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import PlumeError
from ..train.data import TrainingData
from .conditioned import ImageConditionedData
from .sets import image_data_from_info

HALVES = ("left", "right", "top", "bottom")
FAMILIES = ("centre", *HALVES, "half", "rectangles", "strokes", "mixed")
MIXED = ("centre", "half", "rectangles", "strokes")  # what "mixed" draws from, uniformly per example


def centre_mask(height: int, width: int) -> torch.Tensor:
    """keep (1, 1, H, W): 0 on the centred (H // 2) x (W // 2) rectangle, 1 elsewhere."""
    keep = torch.ones(1, 1, height, width)
    top, left = (height - height // 2) // 2, (width - width // 2) // 2
    keep[..., top:top + height // 2, left:left + width // 2] = 0
    return keep


def half_mask(height: int, width: int, side: str) -> torch.Tensor:
    """keep (1, 1, H, W): 0 on the `side` half (left, right, top, bottom), 1 on the other."""
    if side not in HALVES:
        raise PlumeError(f"unknown half {side!r}; valid: {', '.join(HALVES)}")
    keep = torch.ones(1, 1, height, width)
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    hole = {"left": cols < width // 2, "right": cols >= width - width // 2,
            "top": rows < height // 2, "bottom": rows >= height - height // 2}[side]  # (H, W) or broadcastable
    return keep * ~hole.expand(height, width)


def _uniform(n: int, shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand((n, *shape), generator=generator)


def random_rectangles(n: int, height: int, width: int, generator: torch.Generator, most: int = 3) -> torch.Tensor:
    """keep (n, 1, H, W) with 1 to `most` holes, each a rectangle of sides in [1/4, 1/2] of the image's."""
    count = torch.randint(1, most + 1, (n, 1), generator=generator)  # (n, 1)
    active = torch.arange(most)[None, :] < count  # (n, R)
    h = _uniform(n, (most,), height / 4, height / 2, generator).round().clamp(min=1)  # (n, R)
    w = _uniform(n, (most,), width / 4, width / 2, generator).round().clamp(min=1)
    top = (torch.rand((n, most), generator=generator) * (height - h + 1)).floor()  # (n, R)
    left = (torch.rand((n, most), generator=generator) * (width - w + 1)).floor()
    rows = torch.arange(height)[None, None, :, None]  # (1, 1, H, 1)
    cols = torch.arange(width)[None, None, None, :]  # (1, 1, 1, W)
    inside = ((rows >= top[..., None, None]) & (rows < (top + h)[..., None, None])
              & (cols >= left[..., None, None]) & (cols < (left + w)[..., None, None]))  # (n, R, H, W)
    hole = (inside & active[..., None, None]).any(1, keepdim=True)  # (n, 1, H, W)
    return (~hole).float()


def random_strokes(n: int, height: int, width: int, generator: torch.Generator, vertices: int = 4) -> torch.Tensor:
    """keep (n, 1, H, W) with one brush stroke: a polyline of `vertices` points (a random walk, steps of 1/4 to 1/2
    of the image) drawn with a radius in [1/16, 1/8] of the image's side (at least 0.6 pixel)."""
    size = float(min(height, width))
    start = torch.rand((n, 1, 2), generator=generator) * torch.tensor([height, width])  # (n, 1, 2), (row, col)
    angle = _uniform(n, (vertices - 1,), 0.0, 2 * np.pi, generator)  # (n, V - 1)
    length = _uniform(n, (vertices - 1,), size / 4, size / 2, generator)
    steps = torch.stack([length * torch.sin(angle), length * torch.cos(angle)], -1)  # (n, V - 1, 2)
    points = torch.cat([start, start + steps.cumsum(1)], 1)  # (n, V, 2)
    points = torch.minimum(points.clamp(min=0), torch.tensor([height, width], dtype=points.dtype))
    radius = _uniform(n, (), size / 16, size / 8, generator).clamp(min=0.6)  # (n,)
    centres = torch.stack(torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij"), -1)
    a, b = points[:, :-1, None, None, :], points[:, 1:, None, None, :]  # (n, S, 1, 1, 2)
    p = centres[None, None]  # (1, 1, H, W, 2)
    ab = b - a
    u = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-9)).clamp(0, 1)  # (n, S, H, W)
    distance = (p - (a + u[..., None] * ab)).norm(dim=-1).amin(1, keepdim=True)  # (n, 1, H, W)
    return (distance > radius[:, None, None, None]).float()


def random_masks(family: str, n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """keep (n, 1, H, W) of `family` (FAMILIES); random families draw from `generator`."""
    if family == "centre":
        return centre_mask(height, width).expand(n, 1, height, width).clone()
    if family in HALVES:
        return half_mask(height, width, family).expand(n, 1, height, width).clone()
    if family == "half":
        halves = torch.cat([half_mask(height, width, side) for side in HALVES])  # (4, 1, H, W)
        return halves[torch.randint(len(HALVES), (n,), generator=generator)]
    if family == "rectangles":
        return random_rectangles(n, height, width, generator)
    if family == "strokes":
        return random_strokes(n, height, width, generator)
    if family == "mixed":
        choice = torch.randint(len(MIXED), (n,), generator=generator)  # (n,)
        every = torch.stack([random_masks(f, n, height, width, generator) for f in MIXED])  # (F, n, 1, H, W)
        return every[choice, torch.arange(n)]  # (n, 1, H, W)
    raise PlumeError(f"unknown mask family {family!r}; valid: {', '.join(FAMILIES)}")


def masked_condition(image: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """cond (B, C + 1, H, W) = [image * keep, keep] of images (B, C, H, W) and masks keep (B, 1, H, W)."""
    return torch.cat([image * keep, keep.to(image.dtype).expand(len(image), 1, *image.shape[2:])], 1)


def read_mask(path: Union[str, Path], height: int, width: int, white: str = "keep") -> torch.Tensor:
    """keep (H, W) from a black-and-white image file (white = kept if white == "keep", else white = to fill);
    the file must be exactly H x W and hold only 0 and 255 (gray, or RGB with equal channels)."""
    if white not in ("keep", "fill"):
        raise PlumeError(f"white must be 'keep' or 'fill', got {white!r}")
    try:
        with Image.open(path) as picture:
            mode, pixels = picture.mode, np.asarray(picture.convert("RGBA" if "A" in picture.mode else "RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise PlumeError(f"{path}: cannot read the mask as an image ({e})") from None
    if pixels.shape[:2] != (height, width):
        raise PlumeError(f"{path}: the mask is {pixels.shape[1]}x{pixels.shape[0]} (width x height) but the image is "
                         f"{width}x{height}; they must match")
    if pixels.shape[2] == 4 and bool((pixels[..., 3] != 255).any()):
        raise PlumeError(f"{path}: the mask has transparent pixels; save it without transparency (black and white)")
    rgb = pixels[..., :3]
    if bool((rgb != rgb[..., :1]).any()):
        raise PlumeError(f"{path}: the mask has coloured pixels (mode {mode}); it must be black (0) and white (255)")
    values = np.unique(rgb[..., 0])
    if not set(values.tolist()) <= {0, 255}:
        shown = ", ".join(str(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise PlumeError(f"{path}: the mask must be binary, black (0) and white (255) only; it holds the values "
                         f"{shown} (save it without anti-aliasing, e.g. as a 1-bit or thresholded PNG)")
    white_pixels = torch.from_numpy(rgb[..., 0] == 255).float()  # (H, W)
    return white_pixels if white == "keep" else 1.0 - white_pixels


class InpaintingData(ImageConditionedData):
    """The trainer's view of image data `data`, with cond = [x0 * keep, keep] for masks of `family` per example."""

    def __init__(self, data: TrainingData, family: str = "mixed"):
        super().__init__(data, "inpainting")
        if family not in FAMILIES:
            raise PlumeError(f"unknown mask family {family!r}; valid: {', '.join(FAMILIES)}")
        self.family = family

    def condition(self, x0: torch.Tensor, generator: torch.Generator, start: int, batch_size: int) -> torch.Tensor:
        """cond (b, C + 1, H, W) of rows [start, start + b) of a micro-batch: masks are drawn for all batch_size rows,
        so a rank's slice does not depend on how the batch is split."""
        _, h, w = self.shape
        keep = random_masks(self.family, batch_size, h, w, generator)[start:start + len(x0)]  # (b, 1, H, W)
        return masked_condition(x0, keep.to(x0.device))

    def preview_condition(self, n: int, seed: int) -> torch.Tensor:
        """cond (n, C + 1, H, W) for the trainer's preview: the first n examples (repeated if fewer), masks from
        seed."""
        g = torch.Generator().manual_seed(int(seed))
        x = self.data.batch(torch.arange(n) % len(self.data), g)  # (n, C, H, W)
        return masked_condition(x, random_masks(self.family, n, *self.shape[1:], g))

    def info(self) -> dict[str, Any]:
        """JSON-able description; inpainting_data_from_info rebuilds the same data."""
        inner = self.data.info()
        return {"kind": "inpainting", "name": inner.get("name", ""), "masks": self.family, "images": inner}



def inpainting_data_from_info(info: dict[str, Any], source: str = "config.json") -> InpaintingData:
    """Rebuild the InpaintingData whose info() gave `info` (a run's config.json "data")."""
    if not isinstance(info.get("images"), dict) or "masks" not in info:
        raise PlumeError(f"{source}: inpainting data info needs 'images' (the images' info) and 'masks', "
                         f"got keys {sorted(info)}")
    return InpaintingData(image_data_from_info(info["images"]), str(info["masks"]))


def is_inpainting(info: dict[str, Any]) -> bool:
    """Whether a run's data info (config.json "data") is that of a mask-conditioned inpainting model."""
    return info.get("kind") == "inpainting"


__all__ = ["FAMILIES", "HALVES", "centre_mask", "half_mask", "random_rectangles", "random_strokes", "random_masks",
           "masked_condition", "read_mask", "InpaintingData", "inpainting_data_from_info", "is_inpainting"]
