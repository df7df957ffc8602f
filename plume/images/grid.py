"""Pictures of image batches: tiled grids, titled grids and denoising trajectory strips.

Every function takes uint8 NHWC arrays (the on-disk sample convention, see `images.tensor_to_images`)
and returns a uint8 RGB picture (H', W', 3); the `save_*` functions write it as a PNG. Small images are
enlarged by whole factors with nearest-neighbour repetition, so an 8 x 8 digit stays a sharp 48 x 48 tile.
Text is drawn with Pillow's default font on a white band.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import PlumeError

PAD_VALUE = 128  # neutral mid-grey between tiles: visible against both black and white backgrounds
MIN_TILE = 48  # default scale makes the longer side of a tile at least this many pixels
TEXT_SIZE = 12
TEXT_MARGIN = 3
BAND_VALUE = 255  # white band behind text
TEXT_FILL = (0, 0, 0)


def _check_images(images: np.ndarray, what: str = "images") -> np.ndarray:
    """images as RGB (N, H, W, 3) uint8; gray (N, H, W, 1) is repeated to three channels."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise PlumeError(f"{what}: expected a non-empty uint8 array (N, H, W, C) with C = 1 or 3, "
                         f"got {images.dtype} {images.shape}; convert tensors with tensor_to_images")
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images  # (N, H, W, 3)


def default_scale(height: int, width: int) -> int:
    """The whole enlargement factor that makes a tile's longer side at least MIN_TILE pixels (8 -> 6)."""
    return max(1, math.ceil(MIN_TILE / max(height, width)))


def image_grid(images: np.ndarray, columns: Optional[int] = None, padding: int = 2,
               scale: Optional[int] = None) -> np.ndarray:
    """Tile images (N, H, W, C) uint8 into one RGB picture (H', W', 3), row by row, `padding` px around each tile."""
    x = _check_images(images)  # (N, H, W, 3)
    n, h, w, _ = x.shape
    s = int(scale) if scale is not None else default_scale(h, w)
    if s < 1 or padding < 0:
        raise PlumeError(f"image_grid: scale must be >= 1 and padding >= 0, got scale={s}, padding={padding}")
    cols = max(1, min(n, int(columns) if columns else math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    x = x.repeat(s, axis=1).repeat(s, axis=2)  # (N, sH, sW, 3) nearest-neighbour enlargement
    th, tw = h * s + padding, w * s + padding  # tile pitch
    out = np.full((rows * th + padding, cols * tw + padding, 3), PAD_VALUE, dtype=np.uint8)  # (H', W', 3)
    for i in range(n):
        r, c = divmod(i, cols)
        out[padding + r * th: (r + 1) * th, padding + c * tw: (c + 1) * tw] = x[i]
    return out


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=TEXT_SIZE)  # FreeType font, Pillow >= 10.1
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _text_box(text: str, font: ImageFont.ImageFont) -> tuple[int, int]:
    """(width, height) of text in pixels, counted from the drawing origin."""
    _, _, right, bottom = font.getbbox(text)
    return int(math.ceil(right)), int(math.ceil(bottom))


def _draw_texts(picture: np.ndarray, top: int, left: int,
                texts: Sequence[tuple[float, float, str]]) -> np.ndarray:
    """picture (H, W, 3) on a white canvas with `top` rows above and `left` columns before it, and each text
    drawn centred on its (x, y) point of the canvas."""
    h, w, _ = picture.shape
    font = _font()
    canvas = np.full((h + top, w + left, 3), BAND_VALUE, dtype=np.uint8)  # (H + top, W + left, 3)
    canvas[top:, left:] = picture
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for cx, cy, text in texts:
        tw, th = _text_box(text, font)
        draw.text((round(cx - tw / 2), round(cy - th / 2)), text, fill=TEXT_FILL, font=font)
    return np.asarray(image).copy()


def _band_height(texts: Sequence[str]) -> int:
    font = _font()
    return max(_text_box(t, font)[1] for t in texts) + 2 * TEXT_MARGIN


def add_title(picture: np.ndarray, title: str) -> np.ndarray:
    """picture (H, W, 3) uint8 with a white band above holding `title`; widened with white if the title is wider."""
    if not title:
        return picture
    tw, _ = _text_box(title, _font())
    top = _band_height([title])
    width = max(picture.shape[1], tw + 2 * TEXT_MARGIN)
    wide = np.full((picture.shape[0], width, 3), BAND_VALUE, dtype=np.uint8)  # (H, W'', 3)
    wide[:, : picture.shape[1]] = picture
    return _draw_texts(wide, top, 0, [(width / 2, top / 2, title)])


def _save_png(picture: np.ndarray, path: Union[str, os.PathLike]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path, format="PNG")
    return path


def save_image_grid(images: np.ndarray, path: Union[str, os.PathLike], columns: Optional[int] = None,
                    title: Optional[str] = None, **kw) -> Path:
    """Write image_grid(images, columns, **kw) (with `title` above) as a PNG at path; parent folders are created."""
    return _save_png(add_title(image_grid(images, columns, **kw), title or ""), path)


def trajectory_strip(frames_x: Sequence[np.ndarray], frames_x0: Sequence[np.ndarray],
                     labels: Optional[Sequence[str]] = None, padding: int = 2,
                     scale: Optional[int] = None, row_names: Sequence[str] = ("x_t", "x0_hat")) -> np.ndarray:
    """The denoising path as one RGB picture: columns are sampler steps (headed by labels, e.g. "sigma=80.0"),
    and each sample takes two rows, x_t above and x0_hat below; frames_x[k] and frames_x0[k] are (N, H, W, C).
    Any paired pictures fit the same layout (row_names names the two rows, e.g. a sample and its training twin)."""
    if len(frames_x) == 0 or len(frames_x) != len(frames_x0):
        raise PlumeError(f"trajectory_strip: need the same non-zero number of x_t and x0_hat frames, "
                         f"got {len(frames_x)} and {len(frames_x0)}")
    if labels is not None and len(labels) != len(frames_x):
        raise PlumeError(f"trajectory_strip: {len(labels)} labels for {len(frames_x)} frames")
    xt = np.stack([_check_images(f, f"frames_x[{k}]") for k, f in enumerate(frames_x)], axis=1)  # (N, T, H, W, 3)
    x0 = np.stack([_check_images(f, f"frames_x0[{k}]") for k, f in enumerate(frames_x0)], axis=1)  # (N, T, H, W, 3)
    if xt.shape != x0.shape:
        raise PlumeError(f"trajectory_strip: x_t frames {xt.shape[:1] + xt.shape[2:]} and x0_hat frames "
                         f"{x0.shape[:1] + x0.shape[2:]} differ in shape")
    n, steps, h, w, _ = xt.shape
    font = _font()
    if scale is None:  # wide enough for the column headers
        widest = max((_text_box(t, font)[0] for t in labels or []), default=0)
        scale = max(default_scale(h, w), math.ceil((widest + 2 * TEXT_MARGIN - padding) / w))
    tiles = np.stack([xt, x0], axis=1).reshape(n * 2 * steps, h, w, 3)  # sample-major: x_t row, x0_hat row
    grid = image_grid(tiles, columns=steps, padding=padding, scale=scale)  # (2N rows of tiles)
    left = max(_text_box(t, font)[0] for t in row_names) + 2 * TEXT_MARGIN
    top = _band_height(labels) if labels else 0
    pitch_y, pitch_x = h * scale + padding, w * scale + padding
    texts = [(left + padding + k * pitch_x + w * scale / 2, top / 2, str(t)) for k, t in enumerate(labels or [])]
    texts += [(left / 2, top + padding + r * pitch_y + h * scale / 2, row_names[r % 2]) for r in range(2 * n)]
    return _draw_texts(grid, top, left, texts)


def save_trajectory_strip(frames_x: Sequence[np.ndarray], frames_x0: Sequence[np.ndarray],
                          path: Union[str, os.PathLike], labels: Optional[Sequence[str]] = None, **kw) -> Path:
    """Write trajectory_strip(frames_x, frames_x0, labels, **kw) as a PNG at path; parent folders are created."""
    return _save_png(trajectory_strip(frames_x, frames_x0, labels, **kw), path)
