"""`plume prepare`: an image source decoded once into a prepared set that training streams (plume.images.streaming).

The set is a folder holding
- images.npy   uint8 (N, S, S, C), the decoded pixels (resized and cropped as training would), memory-mappable
               (np.load(..., mmap_mode="r")); training reads its rows with os.pread;
- labels.npy   int64 (N,) class labels, when the source has class subfolders (or labels);
- plume-images.json  count, shape, name, class names, the source and options, the SHA-256 of images.npy's pixels
               (a resumed run checks it), the files left out and why, and the throughput.

A folder's files are decoded in DataLoader worker processes (plume.train.streaming.Prefetcher) in their sorted
order, with a progress bar. An unreadable file stops the preparation with its name (on_error "stop") or is left out
and listed (on_error "skip"). The set is written in a hidden sibling folder and renamed at the end: an error leaves
nothing behind. Embedded sets, .npz files and saved Hugging Face sets are small: they are read in memory and written.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..errors import PlumeError
from ..folders import writable_folder, written_at_once
from ..progress import progress_bar
from ..train.streaming import Prefetcher
from .files import ImageItem, decode_item, file_opener, set_channels
from .sets import checked_options, load_images, seeded_subset
from .streaming import DEFAULT_WORKERS, PREPARED_FILE, FolderReader, stream_folder

FORMAT = 1
CHUNK = 64  # images per read request of a worker


class LenientReader:
    """A FolderReader whose read(rows) returns (pixels of the readable rows, [(row, file, reason)] of the others)."""

    def __init__(self, reader: FolderReader):
        self.reader = reader

    def __len__(self) -> int:
        return len(self.reader)

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
        reader, good, failed = self.reader, [], []
        for row in rows:
            path = reader.paths[int(row)]
            try:
                pixels = decode_item(ImageItem(path, file_opener(Path(path))), reader.size)  # (S, S, C')
                good.append(set_channels(pixels, reader.channels))
            except Exception as error:  # noqa: BLE001 - any decoder failure is the file's fault
                failed.append((int(row), path, f"{type(error).__name__}: {error}"))
        return (np.stack(good) if good else np.zeros((0, *reader.shape), np.uint8)), failed


def prepare_images(source: Union[str, os.PathLike], out: Union[str, os.PathLike], image_size: Optional[int] = None,
                   channels: Optional[str] = None, on_error: str = "stop", limit: Optional[int] = None, seed: int = 0,
                   workers: Optional[int] = None, progress: bool = True) -> dict[str, Any]:
    """Decode `source` (a folder of image files, an embedded set, an .npz, hf:PATH) into the prepared set `out`;
    returns what plume-images.json records. Options as plume.images.load_images'; workers: decoding processes for a
    folder (default DEFAULT_WORKERS)."""
    out = writable_folder(out)
    image_size, limit = checked_options(image_size, channels, on_error, limit)
    began = time.monotonic()
    with written_at_once(out) as partial:
        path = Path(str(source)).expanduser()
        if path.is_dir():
            folder = path.resolve()
            reader, labels, class_names, _ = stream_folder(folder, image_size, channels, on_error,
                                                           lambda n: seeded_subset(n, limit, seed), progress)
            written, kept, skipped = _write_folder(reader, folder, partial, on_error, workers, progress)
            labels = None if labels is None else labels[kept]
            name, resolved = folder.name, str(folder)
        else:
            images = load_images(str(source), image_size, channels, on_error, limit, seed, progress)
            written = _write_array(images.pixels, partial)
            labels, class_names, name, resolved, skipped = images.labels, images.class_names, images.name, \
                images.loader["source"], []
        if labels is not None:
            np.save(partial / "labels.npy", np.asarray(labels, dtype=np.int64))
        count, height, width, c = written["shape"]
        seconds = time.monotonic() - began
        about = {"format": FORMAT, "kind": "images", "name": name, "count": count, "shape": [height, width, c],
                 "channels": "gray" if c == 1 else "rgb", "class_names": class_names, "source": resolved,
                 "options": {"image_size": image_size, "channels": channels, "on_error": on_error, "limit": limit,
                             "seed": int(seed)},
                 "sha256": written["sha256"], "skipped": [{"file": f, "reason": r} for _, f, r in skipped],
                 "seconds": round(seconds, 3), "images_per_second": round(count / max(seconds, 1e-9), 1)}
        (partial / PREPARED_FILE).write_text(json.dumps(about, indent=2) + "\n")
    return about


def _write_folder(reader: FolderReader, folder: Path, partial: Path, on_error: str, workers: Optional[int],
                  progress: bool) -> tuple[dict[str, Any], np.ndarray, list[tuple[int, str, str]]]:
    """Decode every file of `reader` in worker processes into partial/images.npy, in order; the readable rows kept,
    and the failures (stopping at the first with on_error "stop")."""
    n = len(reader)
    requests = [np.arange(i, min(n, i + CHUNK)) for i in range(0, n, CHUNK)]
    target = np.lib.format.open_memmap(partial / "images.npy", mode="w+", dtype=np.uint8, shape=(n, *reader.shape))
    digest, at, kept, skipped = hashlib.sha256(), 0, [], []
    prefetcher = Prefetcher(LenientReader(reader), iter(requests), DEFAULT_WORKERS if workers is None else workers)
    bar = progress_bar(total=n, desc=f"preparing {folder.name}", unit="img", enabled=progress)
    try:
        for rows in requests:
            pixels, failed = prefetcher.take(rows)
            if failed and on_error == "stop":
                _, path, reason = failed[0]
                raise PlumeError(f"cannot read image {path}: {reason}; to leave unreadable files out pass "
                                 "--on-error skip (they are listed in plume-images.json)")
            target[at:at + len(pixels)] = pixels
            digest.update(np.ascontiguousarray(pixels).tobytes())
            bad = {row for row, _, _ in failed}
            kept.extend(int(r) for r in rows if int(r) not in bad)
            skipped.extend(failed)
            at += len(pixels)
            bar.update(len(rows))
    finally:
        bar.close()
        prefetcher.close()
    target.flush()
    del target
    if at == 0:
        raise PlumeError(f"no readable image among the {n} files of {folder}")
    if at < n:  # files were left out: keep the first `at` rows
        _truncate(partial / "images.npy", (at, *reader.shape))
    return {"shape": [at, *reader.shape], "sha256": digest.hexdigest()}, np.asarray(kept, dtype=np.int64), skipped


def _truncate(path: Path, shape: tuple[int, ...]) -> None:
    """Rewrite the .npy at `path` as its first shape[0] rows (a copy through a memory map, row chunks at a time)."""
    old = np.load(path, mmap_mode="r")
    shorter = path.with_suffix(".short.npy")
    new = np.lib.format.open_memmap(shorter, mode="w+", dtype=np.uint8, shape=shape)
    for i in range(0, shape[0], 4096):
        stop = min(shape[0], i + 4096)
        new[i:stop] = old[i:stop]
    new.flush()
    del new, old
    shorter.replace(path)


def _write_array(pixels: np.ndarray, partial: Path) -> dict[str, Any]:
    """Write pixels (N, H, W, C) uint8 held in memory as partial/images.npy."""
    np.save(partial / "images.npy", np.ascontiguousarray(pixels))
    return {"shape": list(pixels.shape), "sha256": hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()}


def summary(about: dict[str, Any], out: Path) -> str:
    """The line `plume prepare` prints about a prepared set."""
    count, (h, w, _) = about["count"], about["shape"]
    left = f"; {len(about['skipped'])} unreadable files left out (listed in {PREPARED_FILE})" if about["skipped"] else ""
    return (f"prepared {count} images ({h} x {w} {about['channels']}) in {out}: {about['seconds']:.1f} s, "
            f"{about['images_per_second']:.0f} images/s{left}")


__all__ = ["prepare_images", "summary"]
