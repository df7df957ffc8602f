"""Image sets larger than memory: read while training, never decoded whole (plume.train.streaming).

Two sources stream:
- a folder of image files (`--stream`, or by default when its decoded float copy would pass STREAM_ABOVE bytes):
  the files are listed once (labels from class subfolders, as in memory), then each picture is decoded when a batch
  needs it, by the same function as the in-memory path (plume.images.files.decode_item), so a streamed run's
  batches equal the in-memory run's bit for bit;
- a prepared set, written once by `plume prepare` (plume.images.prepare): the decoded pixels as one memory-mapped
  uint8 array (N, H, W, C) in images.npy, with labels.npy and plume-images.json. Reading a batch is a copy of its
  rows from the page cache.

StreamedImages is the trainer's view of either: examples as ImageData gives them (x / 127.5 - 1, the same flips
from the same generator, the same held-out split), labels in memory, pixels on disk. The reading happens in
DataLoader workers (`workers`, default DEFAULT_WORKERS) while training runs; elsewhere (evaluation, pictures) rows
are read when asked. Evaluation reads at most REFERENCE_LIMIT training images (a seeded subset) as its reference.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import PlumeError
from ..progress import progress_bar
from ..train.streaming import NpyRows, StreamedRows
from .files import (IMAGE_EXTENSIONS, Failures, ImageItem, decode_item, file_opener, folder_items, scan_headers,
                    set_channels)
from .codec import holdout_split, images_to_tensor, random_flips, tensor_to_images
from .grid import add_title, image_grid

PREPARED_FILE = "plume-images.json"  # marks a folder written by `plume prepare`
LATENT_CACHE_FILE = "plume-latents.json"  # marks a latent cache, written by `plume prepare --latent`
STREAM_ABOVE = 2 * 2**30  # bytes of float32 pixels above which a folder streams by default
REFERENCE_LIMIT = 10_000  # training images evaluation reads from a streamed set
DEFAULT_WORKERS = max(1, min(4, (os.cpu_count() or 2) - 1))  # DataLoader processes; the rest of the cores train


class FolderReader:
    """Rows of a list of image files, decoded to uint8 (size, size, C) with C from `channels` ("rgb" | "gray")."""

    def __init__(self, paths: list[str], size: int, channels: str):
        self.paths, self.size, self.channels = paths, int(size), channels

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.size, self.size, 1 if self.channels == "gray" else 3

    def read(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (b, S, S, C) of the files at rows (b,); a PlumeError naming a file that cannot be decoded."""
        out = np.empty((len(rows), *self.shape), dtype=np.uint8)  # (b, S, S, C)
        for i, row in enumerate(rows):
            path = self.paths[int(row)]
            try:
                out[i] = set_channels(decode_item(ImageItem(path, file_opener(Path(path))), self.size), self.channels)
            except Exception as error:  # noqa: BLE001 - any decoder failure is the file's fault
                raise PlumeError(f"cannot read image {path}: {type(error).__name__}: {error}; `plume prepare` lists "
                                 "every unreadable file of a folder and leaves them out") from None
        return out


class PreparedReader(NpyRows):
    """Rows of a prepared set's images.npy, uint8 (H, W, C) each, read with os.pread (plume.train.streaming.NpyRows):
    the file is the memory-mappable .npy any tool opens (`pixels`), but reading a batch copies its rows without
    mapping the file, so the process's resident memory stays the batch's, not the set's."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        super().__init__(self.folder / "images.npy")

    @property
    def pixels(self) -> np.ndarray:
        """The whole array (N, H, W, C) uint8, memory-mapped."""
        return np.load(self.path, mmap_mode="r")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.row_shape)


class StreamedImages(StreamedRows):
    """Image examples (C, H, W) in [-1, 1] read from `reader` when needed: the rows `rows` of it (a limit's subset),
    split into training and held-out rows as ImageData splits them."""

    def __init__(self, reader: Any, labels: Optional[np.ndarray], class_names: Optional[list[str]], name: str,
                 loader: dict[str, Any], flip: bool = False, holdout: float = 0.0, workers: Optional[int] = None,
                 rows: Optional[np.ndarray] = None, files: Optional[dict[str, Any]] = None):
        if not 0.0 <= holdout < 1.0:
            raise PlumeError(f"holdout must be a fraction in [0, 1), got {holdout}")
        self.reader, self.name, self.loader, self.files = reader, name, dict(loader), files
        self.flip, self.holdout = bool(flip), float(holdout)
        self.workers = DEFAULT_WORKERS if workers is None else int(workers)
        rows = np.arange(len(reader)) if rows is None else np.asarray(rows, dtype=np.int64)  # (N,)
        train, held = holdout_split(len(rows), self.holdout, int(loader.get("seed", 0)))
        self.train_rows, self.held_rows = rows[train], rows[held]  # reader rows
        self.all_labels, self.class_names = labels, class_names
        self.held_labels = None if labels is None else labels[self.held_rows]  # (K,)
        self._labels = None if labels is None else torch.as_tensor(labels[self.train_rows], dtype=torch.long)
        self.train_captions = None
        height, width, channels = reader.shape
        self.shape = (channels, height, width)

    def __len__(self) -> int:
        return len(self.train_rows)

    @property
    def labels(self) -> Optional[torch.Tensor]:
        """int64 class labels (N,) of the training images, or None."""
        return self._labels

    @property
    def num_classes(self) -> Optional[int]:
        if self.class_names:
            return len(self.class_names)
        return None if self._labels is None else int(self._labels.max()) + 1

    def tokenize(self, tokenizer: Any) -> None:
        raise PlumeError(f"{self.name}: a streamed image set carries no captions; captioned folders load in memory")

    def source_rows(self, index: np.ndarray) -> np.ndarray:
        return self.train_rows[index]

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Examples at index (B,) as float32 (B, C, H, W); with flip, each mirrored with probability 1/2."""
        x = images_to_tensor(self.rows(index))  # (B, C, H, W)
        return random_flips(x, generator) if self.flip else x

    def read_rows(self, rows: np.ndarray, what: str) -> np.ndarray:
        """uint8 (n, H, W, C) of reader rows, read in chunks with a progress bar named `what`."""
        chunks = [self.reader.read(rows[i:i + 1024]) for i in progress_bar(
            range(0, len(rows), 1024), desc=f"reading {what}", unit="chunk", enabled=len(rows) > 4096)]
        return np.concatenate(chunks) if chunks else np.zeros((0, *self.reader.shape), np.uint8)

    @property
    def train_pixels(self) -> np.ndarray:
        """Up to REFERENCE_LIMIT training images (a seeded subset, in order), uint8 (M, H, W, C), for evaluation."""
        return self.read_rows(self.train_rows[self._reference()], "reference images")

    @property
    def train_labels(self) -> Optional[np.ndarray]:
        """The labels (M,) of train_pixels, or None."""
        return None if self.all_labels is None else self.all_labels[self.train_rows[self._reference()]]

    def _reference(self) -> np.ndarray:
        n = len(self.train_rows)
        if n <= REFERENCE_LIMIT:
            return np.arange(n)
        return np.sort(np.random.default_rng([int(self.loader.get("seed", 0)), 11]).choice(n, REFERENCE_LIMIT, False))

    @property
    def held_out(self) -> np.ndarray:
        """The held-out images (K, H, W, C) uint8, never trained on."""
        return self.read_rows(self.held_rows, "held-out images")

    def info(self) -> dict[str, Any]:
        """As ImageData's, with the loader's `stream` and, for a folder, the listing's digest (a resume checks it)."""
        info = {"kind": "images", "name": self.name, "loader": dict(self.loader), "flip": self.flip,
                "holdout": self.holdout, "num_classes": self.num_classes, "class_names": self.class_names,
                "captioned": False}
        return {**info, "files": dict(self.files)} if self.files else info

    to_uint8 = staticmethod(tensor_to_images)  # float (B, C, H, W) in [-1, 1] -> uint8 (B, H, W, C), as on disk

    def render(self, x: torch.Tensor, title: str = "", cond: Optional[torch.Tensor] = None) -> np.ndarray:
        """A grid picture (H', W', 3) uint8 of the batch x (B, C, H, W), with title above if given."""
        return add_title(image_grid(self.to_uint8(x)), title)


def listing_digest(paths: list[str], folder: Path) -> dict[str, Any]:
    """The count and SHA-256 of a folder's sorted file names (relative): a resume refuses a folder that changed."""
    names = "\n".join(Path(p).relative_to(folder).as_posix() for p in paths)
    return {"count": len(paths), "sha256": hashlib.sha256(names.encode()).hexdigest()}


def stream_folder(folder: Path, image_size: Optional[int], channels: Optional[str], on_error: str,
                  subset: Any, progress: bool) -> tuple[FolderReader, Optional[np.ndarray], Optional[list[str]],
                                                        dict[str, Any]]:
    """A folder's files as a FolderReader (the subset `subset(n)` of them), their labels, class names and the listing
    digest. Without both image_size and channels the headers are scanned once (unreadable ones: on_error)."""
    items, class_names = folder_items(folder)
    items = [items[i] for i in subset(len(items))]
    if image_size is None or channels is None:
        fail = Failures(on_error, str(folder))
        items, size, found = scan_headers(items, fail, progress, str(folder))
        fail.summary(len(items))
        image_size, channels = image_size or size, channels or found
    paths = [item.where for item in items]
    labels = None if class_names is None else np.asarray([item.label for item in items], dtype=np.int64)
    return FolderReader(paths, image_size, channels), labels, class_names, listing_digest(paths, folder)


def streams_by_default(folder: Path, image_size: Optional[int]) -> bool:
    """Whether a folder's float32 copy (count x S x S x 3 x 4 bytes, S the given size or the first file's) would
    pass STREAM_ABOVE."""
    count, first = 0, None
    for path in folder.rglob("*"):
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            count, first = count + 1, first or path
    if first is None:
        return False
    if image_size is None:
        try:
            from PIL import Image

            with Image.open(first) as image:
                image_size = min(image.size)
        except Exception:  # noqa: BLE001 - the load reports unreadable files itself
            return False
    return count * image_size * image_size * 3 * 4 > STREAM_ABOVE


def is_prepared(path: Path) -> bool:
    """Whether `path` is a folder written by `plume prepare` (images)."""
    return (Path(path) / PREPARED_FILE).is_file()


def read_prepared(folder: Path) -> tuple[PreparedReader, Optional[np.ndarray], dict[str, Any]]:
    """A prepared set's reader, labels (N,) or None, and its description (plume-images.json)."""
    folder = Path(folder)
    try:
        about = json.loads((folder / PREPARED_FILE).read_text())
        reader = PreparedReader(folder)
        labels = np.load(folder / "labels.npy") if (folder / "labels.npy").is_file() else None
    except (OSError, ValueError) as error:
        raise PlumeError(f"{folder}: not a readable prepared image set ({type(error).__name__}: {error}); write it "
                         "again with `plume prepare`") from None
    if len(reader) != about.get("count") or (labels is not None and len(labels) != len(reader)):
        raise PlumeError(f"{folder}: images.npy holds {len(reader)} images, but {PREPARED_FILE} says "
                         f"{about.get('count')} (and labels.npy {None if labels is None else len(labels)}); "
                         "the set is incomplete: write it again with `plume prepare`")
    return reader, labels, about


__all__ = ["DEFAULT_WORKERS", "FolderReader", "PREPARED_FILE", "PreparedReader", "REFERENCE_LIMIT", "STREAM_ABOVE",
           "StreamedImages", "is_prepared", "listing_digest", "read_prepared", "stream_folder", "streams_by_default"]
