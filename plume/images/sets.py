"""Image data: the codec (uint8 NHWC <-> float NCHW in [-1, 1]), image sources, and the training view ImageData.

Sources of `load_images(source, ...)`:
digits   scikit-learn's 1797 handwritten digits (Alpaydin & Kaynak 1998, UCI), 8 x 8 gray, labels 0-9
lfw      scikit-image's LFW subset (Huang et al. 2012): 200 25 x 25 gray, all kept: the first 100 are faces (label 0),
         the last 100 background patches of the same photos (label 1); class-conditional training separates them
photos   4096 random 32 x 32 crops of five colour photographs that ship inside scikit-image (astronaut, chelsea,
         coffee, motorcycle, rocket), labelled by photo; each photo is first shrunk to a shorter side of 4 x the
         crop size so a crop holds a recognisable part (a face, a cup rim), not a few flat pixels
shapes   procedurally drawn scenes of one to three coloured shapes with generated captions (plume.images.shapes), default
         8192 of 32 x 32 RGB; scenes holding a held-out object description (rule "pairs") are left out, so prompts
         naming one (plume.images.shapes.heldout_prompts) test composition; ImageSet.captions holds the captions;
         "shapes-triples" holds out by the easier rule "triples" (each such color + kind at one size only)
<folder> PNG/JPEG/BMP/WebP/GIF files found recursively; labels from class subfolders (torchvision's ImageFolder),
         or, with a captions.csv / captions.jsonl beside them, captions (plume.images.captions) for text conditioning
<x.npz>  `arr_0` (or `images`) uint8 NHWC, the guided-diffusion sample format (Dhariwal & Nichol 2021); `labels`
hf:<dir> a Hugging Face dataset written with save_to_disk (needs `pip install 'plume[hf]'`)
The data is a function of load_images' arguments; ImageSet.loader records them so a run can rebuild it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from ..errors import PlumeError, unknown_name
from .files import IMAGE_EXTENSIONS, ON_ERROR, fit_square, folder_items, hf_items, read_items, read_npz, set_channels
from .captions import CAPTION_FILES, load_captioned_folder
from .grid import add_title, image_grid

IMAGE_SETS: dict[str, str] = {
    "digits": "scikit-learn's handwritten digits, 1797 x 8 x 8 gray, 10 classes",
    "lfw": "scikit-image's LFW subset, 200 x 25 x 25 gray, classes face / non-face (100 each)",
    "photos": "random crops (default 4096 of 32 x 32) of 5 colour photographs from scikit-image, labelled by photo",
    "shapes": "captioned scenes of 1-3 coloured shapes (default 8192 of 32 x 32), held-out object descriptions left out",
    "shapes-triples": "the shapes scenes with the easier held-out rule: each held-out color + kind is left out at one "
                      "size only",
}
CHANNELS = ("rgb", "gray")
PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle", "rocket")  # all ship inside the scikit-image wheel
PHOTO_ZOOM = 4  # photos are shrunk so their shorter side is 4 crop sizes: a crop shows an object's part, not a speck
PHOTO_SIZE, PHOTO_COUNT = 32, 4096
SHAPES_SIZE, SHAPES_COUNT = 32, 8192
SHAPES_HELDOUT = {"shapes": "pairs", "shapes-triples": "triples"}  # embedded set -> held-out rule (plume.images.shapes)
GENERATED = ("photos", *SHAPES_HELDOUT)  # embedded sets drawn at the requested size and count
_PATH_KINDS = "a folder of image files, a .npz file (arr_0 uint8 NHWC) or hf:<folder of a saved Hugging Face dataset>"


def images_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1], x / 127.5 - 1."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 4:
        raise PlumeError(f"images_to_tensor: expected uint8 (N, H, W, C), got {pixels.dtype} {pixels.shape}")
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)  # (N, C, H, W)
    return (x.to(torch.float32) / 127.5 - 1).contiguous()


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W), clamped to [-1, 1] -> uint8 (N, H, W, C), round((x + 1) * 127.5)."""
    if x.ndim != 4:
        raise PlumeError(f"tensor_to_images: expected a tensor (N, C, H, W), got shape {tuple(x.shape)}")
    u = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (N, C, H, W)
    return u.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, C)


@dataclass
class ImageSet:
    """Images as uint8 (N, H, W, C) with optional int64 labels (N,) and captions (N strings); loader holds the
    load_images kwargs."""
    pixels: np.ndarray
    labels: Optional[np.ndarray] = None
    class_names: Optional[list[str]] = None
    name: str = ""
    loader: dict[str, Any] = field(default_factory=dict)
    captions: Optional[list[str]] = None


def _subset(n: int, limit: Optional[int], seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of `limit` of n items (all if limit is None or >= n)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _skimage_data():
    try:
        return importlib.import_module("skimage.data")
    except ImportError as error:
        raise PlumeError("the embedded image sets 'lfw' and 'photos' need scikit-image: "
                         "pip install 'plume[images]'") from error


def _digits() -> ImageSet:
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise PlumeError("the embedded image set 'digits' needs scikit-learn: pip install scikit-learn") from error
    bunch = load_digits()
    pixels = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[..., None]  # (1797, 8, 8, 1), 0..16 -> 0..255
    return ImageSet(pixels, bunch.target.astype(np.int64), [str(d) for d in range(10)], "digits")


def _lfw() -> ImageSet:
    faces = _skimage_data().lfw_subset()  # (200, 25, 25) float in [0, 1] (its docs say uint8); first 100 faces
    if faces.dtype != np.uint8:
        faces = np.rint(np.clip(faces, 0, 1) * 255).astype(np.uint8)  # (200, 25, 25)
    pixels = faces[..., None]  # (200, 25, 25, 1)
    labels = (np.arange(len(pixels)) >= 100).astype(np.int64)  # (200,) face = 0, non-face = 1
    return ImageSet(pixels, labels, ["face", "non-face"], "lfw")


def _photo(name: str, size: int) -> np.ndarray:
    """Photograph `name` (H, W, 3) uint8, its shorter side resized to min(itself, PHOTO_ZOOM * size), at least size."""
    data = _skimage_data()
    rgb = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()  # (H, W, 3)
    h, w, _ = rgb.shape
    short = max(size, min(h, w, PHOTO_ZOOM * size))
    if short == min(h, w):
        return rgb
    new = (max(size, round(w * short / min(h, w))), max(size, round(h * short / min(h, w))))  # (W', H')
    return np.asarray(Image.fromarray(rgb).resize(new, Image.Resampling.LANCZOS))  # (H', W', 3)


def _photos(size: int, count: int, seed: int) -> ImageSet:
    photos = [_photo(name, size) for name in PHOTOS]
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(photos), count)  # (count,) photo of each crop
    pixels = np.empty((count, size, size, 3), dtype=np.uint8)  # (count, size, size, 3)
    for i, k in enumerate(which):
        h, w, _ = photos[k].shape
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        pixels[i] = photos[k][top: top + size, left: left + size]
    return ImageSet(pixels, which.astype(np.int64), list(PHOTOS), "photos")


def _whole(key: str, value: Any) -> Optional[int]:
    """value as an int >= 1, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer)) or value != int(value) or value < 1:
        raise PlumeError(f"{key} must be a whole number >= 1 or None, got {value!r}")
    return int(value)


def _read_files(source: str, image_size: Optional[int], channels: Optional[str], on_error: str,
                limit: Optional[int], seed: int, progress: bool) -> tuple[ImageSet, str]:
    """A folder or hf:<dir> source decoded; also the resolved source string for the loader record."""
    if source.startswith("hf:"):
        path = Path(source[3:]).expanduser().resolve()
        items, class_names, name = hf_items(str(path))
        resolved = f"hf:{path}"
    else:
        path = Path(source).expanduser().resolve()
        if any((path / f).is_file() for f in CAPTION_FILES):
            return _captioned_folder(path, image_size, channels, limit, seed), str(path)
        (items, class_names), name, resolved = folder_items(path), path.name, str(path)
    items = [items[i] for i in _subset(len(items), limit, seed)]
    read = read_items(items, str(path), image_size, channels, on_error, progress)
    return ImageSet(read.pixels, read.labels, class_names, name), resolved


def _embedded_or_npz(source: str, image_size: Optional[int], limit: Optional[int],
                     seed: int) -> tuple[ImageSet, str]:
    """digits, lfw, photos or an .npz file as an ImageSet (before resizing and channels)."""
    if source == "photos":
        return _photos(image_size or PHOTO_SIZE, limit or PHOTO_COUNT, seed), source
    if source in SHAPES_HELDOUT:
        return _shapes(image_size or SHAPES_SIZE, limit or SHAPES_COUNT, seed, SHAPES_HELDOUT[source]), source
    if source in IMAGE_SETS:
        images = _digits() if source == "digits" else _lfw()
    else:
        path = Path(source).expanduser().resolve()
        pixels, labels = read_npz(path)
        images, source = ImageSet(pixels, labels, None, path.stem), str(path)
    keep = _subset(len(images.pixels), limit, seed)
    images.pixels = images.pixels[keep]  # (N', H, W, C)
    images.labels = None if images.labels is None else images.labels[keep]  # (N',)
    return images, source


def _captioned_folder(path: Path, image_size: Optional[int], channels: Optional[str], limit: Optional[int],
                      seed: int) -> ImageSet:
    """A folder with a captions file (plume.images.captions): its images with their captions, no class labels."""
    read = load_captioned_folder(path, image_size=image_size)
    keep = _subset(len(read.images), limit, seed)
    pixels = read.images[keep] if channels in (None, "rgb") else set_channels(read.images[keep], channels)
    return ImageSet(pixels, None, None, path.name, captions=[read.captions[i] for i in keep])


def _shapes(size: int, count: int, seed: int, rule: str) -> ImageSet:
    """`count` captioned shapes scenes of the training split (no description held out by `rule`), drawn size x size."""
    from .shapes import shapes_dataset

    pixels, captions, _ = shapes_dataset(count, size, seed=seed, split="train", heldout=rule)
    return ImageSet(pixels, None, None, "shapes" if rule == "pairs" else f"shapes-{rule}", captions=captions)


def _decodes_files(source: str) -> bool:
    """True for a folder or hf:<dir> (files decoded one by one), False for an embedded set or an .npz."""
    if source in IMAGE_SETS or source.startswith("hf:"):
        return source.startswith("hf:")
    path = Path(source).expanduser()
    if path.is_dir():
        return True
    if path.is_file() and path.suffix.lower() == ".npz":
        return False
    if path.exists():
        raise PlumeError(f"image source {source!r} is a file but not a .npz; give {_PATH_KINDS}")
    raise PlumeError(f"unknown image source {source!r}: not an embedded set ({', '.join(IMAGE_SETS)}) "
                     f"and no such path; give an embedded set name or {_PATH_KINDS} "
                     f"(image files: {', '.join(IMAGE_EXTENSIONS)})")


def load_images(source: str, image_size: Optional[int] = None, channels: Optional[str] = None,
                on_error: str = "stop", limit: Optional[int] = None, seed: int = 0,
                progress: bool = True) -> ImageSet:
    """Images from an embedded set name, a folder, an .npz or hf:<dir>, as uint8 (N, S, S, C); see the module doc.

    image_size: side of the square images (None: the source's own if square, else 64 for files, 32 for photos);
    channels: "rgb" | "gray" | None (the source's); on_error: "stop" | "skip" for unreadable files;
    limit: a seeded random subset of this many (photos, shapes: the number drawn, default 4096, 8192); seed: that
    subset (photos, shapes: the drawing).
    """
    source, image_size, limit = str(source), _whole("image_size", image_size), _whole("limit", limit)
    if channels is not None and channels not in CHANNELS:
        raise unknown_name("channels value", channels, CHANNELS)
    if on_error not in ON_ERROR:
        raise unknown_name("on_error value", on_error, ON_ERROR)
    if _decodes_files(source):
        images, resolved = _read_files(source, image_size, channels, on_error, limit, seed, progress)
    else:
        images, resolved = _embedded_or_npz(source, image_size, limit, seed)
        if image_size is not None:
            images.pixels = np.stack([fit_square(p, image_size) for p in images.pixels])  # (N, S, S, C)
        if channels is not None:
            images.pixels = set_channels(images.pixels, channels)  # (N, S, S, C')
    _, h, w, c = images.pixels.shape
    images.loader = {"source": resolved, "image_size": h if h == w else image_size,
                     "channels": "gray" if c == 1 else "rgb", "on_error": on_error,
                     "limit": len(images.pixels) if source in GENERATED else limit, "seed": int(seed)}
    return images


class ImageData:
    """The trainer's view of an ImageSet: one float32 tensor (N, C, H, W) in [-1, 1], labels, optional flips."""

    def __init__(self, images: ImageSet, flip: bool = False, holdout: float = 0.0):
        if not 0.0 <= holdout < 1.0:
            raise PlumeError(f"holdout must be a fraction in [0, 1), got {holdout}")
        self.images, self.flip, self.holdout = images, bool(flip), float(holdout)
        train, held = holdout_split(len(images.pixels), holdout, int(images.loader.get("seed", 0)))
        self.held_out = images.pixels[held]  # (K, H, W, C) uint8, never trained on (for bits/dim, evaluation)
        self.train_pixels = images.pixels[train]  # (N - K, H, W, C) uint8, what training sees
        self.train_labels = None if images.labels is None else images.labels[train]  # (N - K,)
        self.train_captions = None if images.captions is None else [images.captions[i] for i in train]
        if flip and images.captions is not None:
            raise PlumeError(f"{images.name or 'these images'} carry captions, which mirroring would contradict "
                             "('left of' becomes 'right of'); train without flips")
        self.data = images_to_tensor(images.pixels[train])  # (N - K, C, H, W)
        self._labels = None if images.labels is None else torch.as_tensor(images.labels[train], dtype=torch.long)

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """(C, H, W) of one example."""
        return tuple(self.data.shape[1:])

    @property
    def labels(self) -> Optional[torch.Tensor]:
        """int64 class labels (N,), token ids (N, T) after tokenize(), or None."""
        return self._labels

    def tokenize(self, tokenizer: Any) -> None:
        """Make `labels` the token ids (N, T) of the training captions (tokenizer.encode), for a text-conditioned
        model; refuses images without captions."""
        if self.train_captions is None:
            raise PlumeError(f"{self.images.name or 'these images'} have no captions to condition on; give a folder "
                             "with a captions file (captions.csv / captions.jsonl) or the 'shapes' set")
        self._labels = tokenizer.encode(self.train_captions)  # (N, T)

    @property
    def num_classes(self) -> Optional[int]:
        if self.images.class_names:
            return len(self.images.class_names)
        if self._labels is None or self._labels.ndim != 1:  # token ids are not classes
            return None
        return int(self._labels.max()) + 1

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Examples at index (B,) as float32 (B, C, H, W); with flip, each mirrored with probability 1/2."""
        x = self.data[index.to(self.data.device)]  # (B, C, H, W)
        if not self.flip:
            return x
        mirror = torch.rand(len(x), generator=generator, device=generator.device) < 0.5  # (B,)
        return torch.where(mirror.to(x.device)[:, None, None, None], x.flip(-1), x)  # (B, C, H, W)

    def info(self) -> dict[str, Any]:
        """JSON-able description; image_data_from_info(info) rebuilds identical data."""
        return {"kind": "images", "name": self.images.name, "loader": dict(self.images.loader), "flip": self.flip,
                "holdout": self.holdout, "num_classes": self.num_classes, "class_names": self.images.class_names,
                "captioned": self.images.captions is not None}

    def to_uint8(self, x: torch.Tensor) -> np.ndarray:
        """float (B, C, H, W) in [-1, 1] -> uint8 (B, H, W, C), the on-disk sample format."""
        return tensor_to_images(x)

    def render(self, x: torch.Tensor, title: str = "", cond: Optional[torch.Tensor] = None) -> np.ndarray:
        """A grid picture (H', W', 3) uint8 of the batch x (B, C, H, W), with title above if given."""
        return add_title(image_grid(tensor_to_images(x)), title)


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices (training, held out) of n examples, round(fraction * n) held out by a seeded permutation."""
    held = np.sort(np.random.default_rng([int(seed), 7]).permutation(n)[: int(round(fraction * n))])
    return np.setdiff1d(np.arange(n), held), held


def load_image_data(source: str, flip: bool = False, holdout: float = 0.0, **load_images_kwargs: Any) -> ImageData:
    """ImageData(load_images(source, **load_images_kwargs), flip, holdout)."""
    return ImageData(load_images(source, **load_images_kwargs), flip=flip, holdout=holdout)


def image_data_from_info(info: dict[str, Any], progress: bool = False) -> ImageData:
    """Rebuild the ImageData whose info() gave `info` (e.g. from a run's config.json)."""
    if info.get("kind") != "images":
        raise PlumeError(f"data info: 'kind' is {info.get('kind')!r}, expected 'images'")
    loader = info.get("loader")
    fields = ("source", "image_size", "channels", "on_error", "limit", "seed")
    if not isinstance(loader, dict) or "source" not in loader or set(loader) - set(fields):
        raise PlumeError(f"data info: 'loader' must be a dict with 'source' and only the keys {fields}, "
                         f"got {loader!r}")
    return load_image_data(flip=bool(info.get("flip", False)), holdout=float(info.get("holdout", 0.0)),
                           progress=progress, **loader)
