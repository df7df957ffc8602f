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
from .codec import holdout_split, images_to_tensor, random_flips, tensor_to_images
from .grid import add_title, image_grid
from .streaming import LATENT_CACHE_FILE, StreamedImages, is_prepared, read_prepared, stream_folder, streams_by_default

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


def seeded_subset(n: int, limit: Optional[int], seed: int) -> np.ndarray:
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
    items = [items[i] for i in seeded_subset(len(items), limit, seed)]
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
    keep = seeded_subset(len(images.pixels), limit, seed)
    images.pixels = images.pixels[keep]  # (N', H, W, C)
    images.labels = None if images.labels is None else images.labels[keep]  # (N',)
    return images, source


def _captioned_folder(path: Path, image_size: Optional[int], channels: Optional[str], limit: Optional[int],
                      seed: int) -> ImageSet:
    """A folder with a captions file (plume.images.captions): its images with their captions, no class labels."""
    read = load_captioned_folder(path, image_size=image_size)
    keep = seeded_subset(len(read.images), limit, seed)
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
    source = str(source)
    image_size, limit = checked_options(image_size, channels, on_error, limit)
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
        return random_flips(x, generator) if self.flip else x

    @property
    def held_labels(self) -> Optional[np.ndarray]:
        """The labels (K,) of the held-out images, or None."""
        held = holdout_split(len(self.images.pixels), self.holdout, int(self.images.loader.get("seed", 0)))[1]  # (K,)
        return None if self.images.labels is None else self.images.labels[held]

    def info(self) -> dict[str, Any]:
        """JSON-able description; image_data_from_info(info) rebuilds identical data."""
        return {"kind": "images", "name": self.images.name, "loader": dict(self.images.loader), "flip": self.flip,
                "holdout": self.holdout, "num_classes": self.num_classes, "class_names": self.images.class_names,
                "captioned": self.images.captions is not None}

    to_uint8 = staticmethod(tensor_to_images)  # float (B, C, H, W) in [-1, 1] -> uint8 (B, H, W, C), as on disk

    def render(self, x: torch.Tensor, title: str = "", cond: Optional[torch.Tensor] = None) -> np.ndarray:
        """A grid picture (H', W', 3) uint8 of the batch x (B, C, H, W), with title above if given."""
        return add_title(image_grid(tensor_to_images(x)), title)


def load_image_data(source: str, flip: bool = False, holdout: float = 0.0, stream: Optional[bool] = None,
                    workers: Optional[int] = None, **load_images_kwargs: Any) -> "ImageData | StreamedImages":
    """The training view of load_images(source, **load_images_kwargs): ImageData in memory, or StreamedImages read
    from disk as training needs them (plume.images.streaming): always for a set written by `plume prepare`, for a
    folder of image files when stream is True, or when it is None and the folder's float copy would pass
    STREAM_ABOVE. workers: the DataLoader processes that read a streamed set (default DEFAULT_WORKERS)."""
    path = Path(str(source)).expanduser()
    if (path / LATENT_CACHE_FILE).is_file():
        raise PlumeError(f"{source} is a latent cache (`plume prepare --latent`), not images: train on it with "
                         f"`plume train --data {source}`, or read it with plume.images.latent.CachedLatents")
    if is_prepared(path):
        return _prepared_data(path, flip, holdout, workers, stream, **load_images_kwargs)
    captioned = path.is_dir() and any((path / f).is_file() for f in CAPTION_FILES)
    if path.is_dir() and not captioned and (stream or (stream is None and streams_by_default(
            path, _whole("image_size", load_images_kwargs.get("image_size"))))):
        return _streamed_folder(path, flip, holdout, workers, **load_images_kwargs)
    if stream:
        why = "a captioned folder loads in memory" if captioned else "it is not a folder of image files"
        raise PlumeError(f"cannot stream {source!r}: {why}; streaming reads a folder of image files or a set written "
                         "by `plume prepare`")
    return ImageData(load_images(source, **load_images_kwargs), flip=flip, holdout=holdout)


def checked_options(image_size: Any, channels: Optional[str], on_error: str, limit: Any) -> tuple[Optional[int], Optional[int]]:
    """load_images' checks of its options; image_size and limit as whole numbers or None."""
    if channels is not None and channels not in CHANNELS:
        raise unknown_name("channels value", channels, CHANNELS)
    if on_error not in ON_ERROR:
        raise unknown_name("on_error value", on_error, ON_ERROR)
    return _whole("image_size", image_size), _whole("limit", limit)


def _streamed_folder(path: Path, flip: bool, holdout: float, workers: Optional[int], image_size: Optional[int] = None,
                     channels: Optional[str] = None, on_error: str = "stop", limit: Optional[int] = None,
                     seed: int = 0, progress: bool = True) -> StreamedImages:
    """A folder of image files read while training; the same images, labels and loader record as in memory."""
    image_size, limit = checked_options(image_size, channels, on_error, limit)
    folder = path.resolve()
    reader, labels, class_names, files = stream_folder(folder, image_size, channels, on_error,
                                                       lambda n: seeded_subset(n, limit, seed), progress)
    loader = {"source": str(folder), "image_size": reader.size, "channels": reader.channels, "on_error": on_error,
              "limit": limit, "seed": int(seed), "stream": True}
    return StreamedImages(reader, labels, class_names, folder.name, loader, flip, holdout, workers, files=files)


def _prepared_data(path: Path, flip: bool, holdout: float, workers: Optional[int], stream: Optional[bool],
                   image_size: Optional[int] = None, channels: Optional[str] = None, on_error: str = "stop",
                   limit: Optional[int] = None, seed: int = 0, progress: bool = True) -> StreamedImages:
    """A set written by `plume prepare`, memory-mapped; image_size and channels, if given, must be the set's."""
    image_size, limit = checked_options(image_size, channels, on_error, limit)
    if stream is False:
        raise PlumeError(f"{path} is a prepared set, which is always read from disk; drop --no-stream")
    reader, labels, about = read_prepared(path)
    height, width, c = reader.shape
    have = "gray" if c == 1 else "rgb"
    if image_size not in (None, height) or channels not in (None, have):
        raise PlumeError(f"{path} was prepared as {height} x {width} {have} images; prepare the source again with "
                         f"`plume prepare` at the size and channels wanted (asked: {image_size or height} px, "
                         f"{channels or have})")
    loader = {"source": str(path.resolve()), "image_size": height, "channels": have, "on_error": on_error,
              "limit": limit, "seed": int(seed), "stream": True}
    return StreamedImages(reader, labels, about.get("class_names"), about.get("name") or path.name, loader, flip,
                          holdout, workers, rows=seeded_subset(len(reader), limit, seed),
                          files={"count": len(reader), "sha256": about.get("sha256")})


def image_data_from_info(info: dict[str, Any], progress: bool = False,
                         workers: Optional[int] = None) -> "ImageData | StreamedImages":
    """Rebuild the image data whose info() gave `info` (e.g. from a run's config.json); a streamed folder or prepared
    set whose files changed since is refused."""
    if info.get("kind") != "images":
        raise PlumeError(f"data info: 'kind' is {info.get('kind')!r}, expected 'images'")
    loader = info.get("loader")
    fields = ("source", "image_size", "channels", "on_error", "limit", "seed", "stream")
    if not isinstance(loader, dict) or "source" not in loader or set(loader) - set(fields):
        raise PlumeError(f"data info: 'loader' must be a dict with 'source' and only the keys {fields}, "
                         f"got {loader!r}")
    data = load_image_data(flip=bool(info.get("flip", False)), holdout=float(info.get("holdout", 0.0)),
                           progress=progress, workers=workers, **loader)
    if info.get("files") and data.info().get("files") != info["files"]:
        raise PlumeError(f"{loader['source']}: the files changed since the run was trained (it read "
                         f"{info['files'].get('count')} files, listed with SHA-256 {info['files'].get('sha256')}; "
                         f"now {data.info().get('files')}), so its example indices no longer name the same images")
    return data
