"""Reading image files into uint8 NHWC arrays: folders (ImageFolder labels), `.npz` arrays, saved Hugging Face datasets.

Every decoded picture goes through one conversion (`pil_to_array`) and one geometry (`fit_square`):
- modes: gray modes (1, L, LA, I;16, I) give one channel, every other mode (RGB, RGBA, P, CMYK, ...) three;
  16-bit gray (I;16*, I) is scaled by 255 / 65535 and float mode F is refused; transparency (RGBA, LA, PA,
  P or L/RGB with a transparent colour) is composited on white: a transparent background reads as paper;
- geometry: the central square (side = the shorter side, sub-pixel centred) is resized to image_size x
  image_size with Lanczos resampling (Pillow's high-quality filter), i.e. resize the shorter side, crop the centre;
- GIFs and other animations give their first frame.
A file that cannot be read stops the load (on_error="stop", a PlumeError naming the file and the reason) or is
skipped with one warning per file and a summary count (on_error="skip").
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image
from ..progress import progress_bar

from ..errors import PlumeError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
DEFAULT_SIZE = 64  # image_size when the files do not all share one square size
ON_ERROR = ("stop", "skip")
_GRAY_MODES = ("1", "L", "LA", "La")  # 8-bit and 1-bit gray; 16-bit modes ("I;16", "I") are read apart
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


@dataclass
class ImageItem:
    """One picture to read: `where` names it in messages (a path, or a row of a dataset); open() decodes lazily."""
    where: str
    open: Callable[[], Image.Image]
    label: Optional[int] = None


@dataclass
class ReadImages:
    """What read_items returns: pixels (N, S, S, C) uint8 and the labels of the items kept (None if unlabelled)."""
    pixels: np.ndarray
    labels: Optional[np.ndarray]


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as uint8 (H, W, 1) for gray modes or (H, W, 3) otherwise; alpha composited on white."""
    mode = image.mode
    gray = mode in _GRAY_MODES
    if mode == "F":
        raise ValueError("floating-point pixels (mode F); expected 8- or 16-bit integer images")
    if mode.startswith("I"):  # 16-bit gray (also 32-bit "I", read as 16-bit): 0..65535 -> 0..255
        wide = np.asarray(image, dtype=np.float64)  # (H, W)
        return np.rint(np.clip(wide, 0, 65535) * (255 / 65535)).astype(np.uint8)[..., None]  # (H, W, 1)
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image.convert("LA" if gray else "RGBA"), dtype=np.float64)  # (H, W, C + 1)
        alpha = rgba[..., -1:] / 255  # (H, W, 1)
        return np.rint(rgba[..., :-1] * alpha + 255 * (1 - alpha)).astype(np.uint8)  # (H, W, C) on white
    out = np.asarray(image.convert("L" if gray else "RGB"))  # (H, W) or (H, W, 3)
    return out[..., None] if gray else out


def read_image_file(path: Path, kind: str = "image") -> np.ndarray:
    """The image file at path as uint8 (H, W, C), C = 1 for gray modes, else 3 (an animation's first frame); a
    PlumeError naming the file (and calling it `kind`) if it is missing or cannot be decoded."""
    try:
        with Image.open(path) as image:
            image.seek(0)
            return np.array(pil_to_array(image))  # (H, W, C), writable
    except FileNotFoundError:
        raise PlumeError(f"{path}: no such file") from None
    except (OSError, ValueError, SyntaxError) as error:  # PIL's decoders raise these for broken files
        raise PlumeError(f"cannot read {kind} {path}: {type(error).__name__}: {error}") from None


def write_image_file(pixels: np.ndarray, path: Path) -> Path:
    """uint8 (H, W, C) as an image file (format from the suffix, PNG if unknown); parent folders are made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    image.save(path, format=None if path.suffix.lower() in Image.registered_extensions() else "PNG")
    return path


def fit_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """pixels (H, W, C) uint8 -> (size, size, C): the central square resized with Lanczos; unchanged if already so."""
    h, w, c = pixels.shape
    if (h, w) == (size, size):
        return pixels
    side = min(h, w)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)  # sub-pixel centred square
    image = Image.fromarray(pixels[..., 0] if c == 1 else pixels)
    out = np.asarray(image.resize((size, size), Image.Resampling.LANCZOS, box=box))  # (size, size[, 3])
    return out.reshape(size, size, c)


def set_channels(pixels: np.ndarray, channels: str) -> np.ndarray:
    """pixels (..., C) uint8 as "gray" (C = 1, ITU-R 601 luma like Pillow's convert("L")) or "rgb" (C = 3)."""
    c = pixels.shape[-1]
    if channels == "rgb" and c == 1:
        return np.repeat(pixels, 3, axis=-1)  # (..., 3)
    if channels == "gray" and c == 3:
        luma = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # (...)
        return np.rint(luma).astype(np.uint8)[..., None]  # (..., 1)
    return pixels


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


class Failures:
    """Handles unreadable items: raise at once (stop) or warn per item and count (skip)."""

    def __init__(self, on_error: str, source: str):
        self.on_error, self.source, self.count = on_error, source, 0

    def __call__(self, item: ImageItem, error: Exception) -> None:
        if self.on_error == "stop":
            raise PlumeError(f"cannot read image {item.where}: {_reason(error)}; to skip unreadable files pass "
                             f"on_error='skip' (CLI: --on-error skip)") from error
        self.count += 1
        warnings.warn(f"skipping unreadable image {item.where}: {_reason(error)}", stacklevel=3)

    def summary(self, total: int) -> None:
        if self.count:
            warnings.warn(f"skipped {self.count} of {total} unreadable images in {self.source}", stacklevel=3)


def decode_item(item: ImageItem, size: int) -> np.ndarray:
    """The item's picture as uint8 (size, size, C): its first frame, central square, Lanczos-resized."""
    with item.open() as image:
        image.seek(0)  # first frame of an animation
        image.draft(None, (2 * size, 2 * size))  # JPEG: decode at a reduced scale still >= 2x the target
        return fit_square(pil_to_array(image), size)  # (size, size, C)


def channels_of_mode(mode: str) -> int:
    """The channels pil_to_array gives a picture of Pillow mode `mode`: 1 for gray modes, else 3."""
    return 1 if mode in _GRAY_MODES or mode.startswith("I") else 3


def scan_headers(items: Sequence[ImageItem], fail: "Failures", progress: bool = False,
                 source: str = "") -> tuple[list[ImageItem], int, str]:
    """Items whose header reads (failures go to `fail`), their shared square size (else DEFAULT_SIZE), and the
    channels ("rgb" if any picture is in colour, else "gray"), from the headers alone."""
    sizes, modes, good = set(), set(), []
    for item in progress_bar(items, desc=f"scanning {Path(source).name or source}", unit="img", enabled=progress):
        try:
            with item.open() as image:
                sizes.add(image.size)
                modes.add(image.mode)
            good.append(item)
        except Exception as error:  # noqa: BLE001 - any decoder failure is the file's fault
            fail(item, error)
    size = DEFAULT_SIZE
    if len(sizes) == 1:
        (w, h), = sizes
        size = w if w == h else DEFAULT_SIZE
    return good, size, "rgb" if any(channels_of_mode(m) == 3 for m in modes) else "gray"


def read_items(items: Sequence[ImageItem], source: str, image_size: Optional[int], channels: Optional[str],
               on_error: str, progress: bool) -> ReadImages:
    """Decode items to (N, S, S, C) uint8; channels None -> "rgb" if any item is colour, else "gray"."""
    fail = Failures(on_error, source)
    good = list(items)
    if image_size is None:
        good, image_size, _ = scan_headers(good, fail)
    arrays, labels = [], []
    for item in progress_bar(good, desc=f"reading {Path(source).name or source}", unit="img", enabled=progress):
        try:
            arrays.append(decode_item(item, image_size))  # (S, S, C)
            labels.append(item.label)
        except Exception as error:  # noqa: BLE001 - any decoder failure is the file's fault
            fail(item, error)
    fail.summary(len(items))
    if not arrays:
        raise PlumeError(f"no readable image in {source} (accepted extensions: {', '.join(IMAGE_EXTENSIONS)})")
    if channels is None:
        channels = "rgb" if any(a.shape[-1] == 3 for a in arrays) else "gray"
    pixels = np.stack([set_channels(a, channels) for a in arrays])  # (N, S, S, C)
    has_labels = labels[0] is not None
    return ReadImages(pixels, np.asarray(labels, dtype=np.int64) if has_labels else None)


def folder_items(folder: Path) -> tuple[list[ImageItem], Optional[list[str]]]:
    """Every image file under folder (sorted), labelled by first-level subfolder if >= 2 subfolders hold images."""
    paths = sorted((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not paths:
        raise PlumeError(f"no image files in folder {folder} (accepted extensions: {', '.join(IMAGE_EXTENSIONS)}, "
                         f"searched recursively)")
    parts = [p.relative_to(folder).parts for p in paths]
    class_names = sorted({q[0] for q in parts if len(q) > 1})
    if len(class_names) < 2:
        return [ImageItem(str(p), file_opener(p)) for p in paths], None
    loose = [p for p, q in zip(paths, parts) if len(q) == 1]
    if loose:
        warnings.warn(f"ignoring {len(loose)} image files directly in {folder} (e.g. {loose[0].name}): "
                      f"with class subfolders only their images are used", stacklevel=3)
    index = {name: i for i, name in enumerate(class_names)}
    items = [ImageItem(str(p), file_opener(p), index[q[0]]) for p, q in zip(paths, parts) if len(q) > 1]
    return items, class_names


def file_opener(path: Path) -> Callable[[], Image.Image]:
    return lambda: Image.open(path)


def read_npz(path: Path) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(pixels (N, H, W, C) uint8, labels (N,) int64 or None) from an .npz with arr_0 or images, and labels."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            found = {key: archive[key] for key in archive.files}
    except Exception as error:  # noqa: BLE001 - a damaged archive
        raise PlumeError(f"cannot read {path}: {_reason(error)}") from error
    key = next((k for k in ("arr_0", "images") if k in found), None)
    if key is None:
        raise PlumeError(f"{path}: no image array; expected key 'arr_0' or 'images', found {sorted(found) or 'none'}")
    pixels = found[key]
    if pixels.dtype != np.uint8:
        raise PlumeError(f"{path}: {key!r} has dtype {pixels.dtype}, expected uint8 in 0..255; convert with "
                         f"np.rint((x + 1) * 127.5) for [-1, 1] or np.rint(x * 255) for [0, 1], clipped, "
                         f"then .astype(np.uint8)")
    if pixels.ndim == 3:
        pixels = pixels[..., None]  # (N, H, W) gray -> (N, H, W, 1)
    if pixels.ndim != 4 or pixels.shape[-1] not in (1, 3) or len(pixels) == 0:
        raise PlumeError(f"{path}: {key!r} has shape {found[key].shape}, expected non-empty (N, H, W, C) with "
                         f"C = 1 or 3 (NHWC, channels last; drop an alpha channel) or (N, H, W) for gray")
    labels = found.get("labels")
    if labels is not None:
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise PlumeError(f"{path}: 'labels' has dtype {labels.dtype} and shape {labels.shape}, "
                             f"expected a 1-D integer array")
        if len(labels) != len(pixels):
            raise PlumeError(f"{path}: {len(labels)} labels for {len(pixels)} images in {key!r}")
        if len(labels) and labels.min() < 0:
            raise PlumeError(f"{path}: 'labels' has negative values (min {labels.min()}), expected class indices >= 0")
        labels = labels.astype(np.int64)
    return pixels, labels


def hf_items(spec: str) -> tuple[list[ImageItem], Optional[list[str]], str]:
    """(items, class_names, name) of a dataset saved with save_to_disk; "train" split of a DatasetDict."""
    try:
        import datasets
    except ImportError as error:
        raise PlumeError(f"reading hf:{spec} needs the Hugging Face datasets library: "
                         f"pip install 'plume[hf]'") from error
    path = Path(spec)
    if not path.exists():
        raise PlumeError(f"Hugging Face dataset folder {path} does not exist (write one with Dataset.save_to_disk)")
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as error:  # noqa: BLE001 - not a saved dataset
        raise PlumeError(f"cannot load a Hugging Face dataset from {path}: {_reason(error)}") from error
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds and len(ds) != 1:
            raise PlumeError(f"{path}: a DatasetDict without a 'train' split and with several splits {list(ds)}")
        ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    features = ds.features
    image_col = _column(features, datasets.Image, ("image", "img"))
    if image_col is None:
        raise PlumeError(f"{path}: no image column; expected a datasets.Image feature or a column named "
                         f"'image' or 'img', found {dict(features)}")
    label_col = _column(features, datasets.ClassLabel, ("label", "labels"))
    class_names, labels = None, [None] * len(ds)
    if label_col is not None:
        class_names = list(features[label_col].names) if isinstance(features[label_col], datasets.ClassLabel) else None
        labels = [int(v) for v in ds[label_col]]
    if isinstance(features[image_col], datasets.Image):
        ds = ds.cast_column(image_col, datasets.Image(decode=False))  # rows hold {"bytes", "path"}; we decode
    items = [ImageItem(f"row {i} of column {image_col!r} in {path}", _row_opener(ds, i, image_col), labels[i])
             for i in range(len(ds))]
    if not items:
        raise PlumeError(f"{path}: the dataset has no rows")
    return items, class_names, path.name


def _column(features: dict, kind: type, names: tuple[str, ...]) -> Optional[str]:
    """The first column whose feature is of type kind, else the first column with one of the names."""
    typed = [name for name, feature in features.items() if isinstance(feature, kind)]
    return typed[0] if typed else next((n for n in names if n in features), None)


def _row_opener(ds, index: int, column: str) -> Callable[[], Image.Image]:
    def open_row() -> Image.Image:
        value = ds[index][column]
        if isinstance(value, dict):  # an undecoded datasets.Image: bytes, or a path to the file
            return Image.open(io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"])
        return value if isinstance(value, Image.Image) else _array_image(np.asarray(value))
    return open_row


def _array_image(pixels: np.ndarray) -> Image.Image:
    """A dataset cell holding pixels (H, W) or (H, W, 1 | 3 | 4) with whole values 0..255 as a Pillow image."""
    integral = np.issubdtype(pixels.dtype, np.integer) and pixels.size > 0
    if not integral or pixels.min() < 0 or pixels.max() > 255 or pixels.ndim not in (2, 3):
        raise ValueError(f"array cell of dtype {pixels.dtype} and shape {pixels.shape}; expected whole pixel values "
                         f"0..255 shaped (H, W) or (H, W, C)")
    pixels = pixels.astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels)
