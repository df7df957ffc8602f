"""A latent cache: an image set encoded once through a saved autoencoder, to disk (`plume prepare --latent AE`), so
latent diffusion reads latents rather than encoding images at every step (Rombach et al. 2022 train on latents
precomputed the same way).

The cache is a folder holding
- latents.npy   float32 (N, V, z, h, w), the scaled posterior means scale_factor * E[z | x] of the N training images
                in their order (plume.images.latent.data.image_chunks), memory-mappable (np.load(..., mmap_mode="r"));
                V = 2 when the images flip (index 1: the latents of the mirrored image x.flip(-1)), else 1;
- labels.npy    int64 (N,) class labels, when the images have them;
- plume-latents.json  format, count, views, latent shape, flip, the autoencoder (folder, scale_factor, SHA-256 of its
                weights), the images' info() (so `plume eval` finds the images and a run's pictures decode), class
                names, the SHA-256 of the latents' bytes, and the encoding's seconds and images per second.
It is written in a hidden sibling folder and renamed at the end: an error leaves nothing behind.

CachedLatents is the trainer's view of a cache. A batch's rows are read with os.pread at their offsets (both
orientations of a row are adjacent: one read), so the process's resident memory is the batch's, not the cache's
(the kernel's page cache keeps what it can), and DataLoader workers read the planned rows ahead
(plume.train.streaming). With flips, the orientation of each example is drawn as plume.images.codec.random_flips
draws its mirroring, from the same generator: the batches equal those of the images encoded on the fly
(plume.images.latent.data.EncodedLatents) up to the encoder's float rounding, and a cache-based run resumes
exactly. A run records the cache (folder, count, SHA-256) and its autoencoder; a resume refuses either changed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..streaming import DEFAULT_WORKERS, LATENT_CACHE_FILE
from ...errors import PlumeError, PlumeUsageError
from ...folders import writable_folder, written_at_once
from ...train.streaming import NpyRows, StreamedRows
from .checkpoint import autoencoder_digest, load_autoencoder
from .data import (EncodedLatents, ImageSource, LatentData, Latents, checked_autoencoder, encoded_views,
    latent_autoencoder, latent_data_from_info, pick_views)

FORMAT = 1
CACHE_FILE = LATENT_CACHE_FILE  # marks a folder written by `plume prepare --latent`
PathLike = Union[str, os.PathLike]
CACHE_OPTIONS = ("workers",)  # the data options a cache takes: everything else was fixed when it was written


def prepare_latents(images: ImageSource, autoencoder: PathLike, out: PathLike, batch_size: int = 256,
                    progress: bool = True, device: "str | torch.device" = "cpu") -> dict[str, Any]:
    """Encode the training images of `images` (ImageData or StreamedImages: its hold-out left out, its flips as
    both orientations) through the autoencoder saved in folder `autoencoder` into the cache `out` (a new or empty
    folder), `batch_size` images at a time on `device`; returns what plume-latents.json records."""
    out = writable_folder(out)
    model = checked_autoencoder(images, autoencoder, device)
    folder, n, views = Path(autoencoder).resolve(), len(images), 2 if images.flip else 1
    shape = model.latent_shape(tuple(images.shape))
    with written_at_once(out) as partial:
        began = time.monotonic()
        target = np.lib.format.open_memmap(partial / "latents.npy", mode="w+", dtype=np.float32,
                                           shape=(n, views, *shape))  # (N, V, z, h, w)
        digest, at = hashlib.sha256(), 0
        with contextlib.closing(encoded_views(model, images, batch_size, progress, f"encoding {out.name}")) as chunks:
            for z in chunks:  # a failure closes the chunks, and with them a streamed set's readers
                chunk = np.ascontiguousarray(z.numpy())  # (b, V, z, h, w)
                target[at:at + len(chunk)] = chunk
                digest.update(chunk.tobytes())
                at += len(chunk)
        target.flush()
        del target
        if images.labels is not None:
            np.save(partial / "labels.npy", np.asarray(images.labels, dtype=np.int64))  # (N,)
        seconds = time.monotonic() - began
        info = images.info()
        about = {"format": FORMAT, "kind": "latents", "count": n, "views": views, "shape": list(shape),
                 "flip": bool(images.flip), "dtype": "float32",
                 "autoencoder": {"path": str(folder), "scale_factor": model.scale_factor,
                                 "sha256": autoencoder_digest(folder)},
                 "images": {**info, "shape": list(images.shape)}, "num_classes": info.get("num_classes"),
                 "class_names": info.get("class_names"), "sha256": digest.hexdigest(), "device": str(device),
                 "seconds": round(seconds, 3), "images_per_second": round(n / max(seconds, 1e-9), 1)}
        (partial / CACHE_FILE).write_text(json.dumps(about, indent=2) + "\n")
    return about


def cache_summary(about: dict[str, Any], out: Path) -> str:
    """The line `plume prepare --latent` prints about a cache."""
    z, h, w = about["shape"]
    mirrors = " and their mirror images" if about["flip"] else ""
    return (f"encoded {about['count']} images{mirrors} into latents ({z}, {h}, {w}) in {out}: {about['seconds']:.1f} "
            f"s, {about['images_per_second']:.0f} images/s")


def is_latent_cache(path: PathLike) -> bool:
    """Whether `path` is a folder written by `plume prepare --latent`."""
    return (Path(path).expanduser() / CACHE_FILE).is_file()


def read_cache(folder: Path) -> tuple[NpyRows, Optional[np.ndarray], dict[str, Any]]:
    """A cache's latents reader, labels (N,) or None, and its description (plume-latents.json); refuses a cache that
    cannot be read or is incomplete, naming the folder."""
    try:
        about = json.loads((folder / CACHE_FILE).read_text())
        reader = NpyRows(folder / "latents.npy")
        labels = np.load(folder / "labels.npy") if (folder / "labels.npy").is_file() else None
    except (OSError, ValueError) as error:
        raise PlumeError(f"{folder}: not a readable latent cache ({type(error).__name__}: {error}); write it again "
                         "with `plume prepare --latent AE`") from None
    if about.get("format") != FORMAT or not {"count", "views", "shape", "flip", "autoencoder", "images"} <= set(about):
        raise PlumeError(f"{folder / CACHE_FILE}: not a latent cache of format {FORMAT} (written by another Plume?); "
                         "write it again with `plume prepare --latent AE`")
    expected = (about["count"], about["views"], *about["shape"])
    if (len(reader), *reader.row_shape) != expected or reader.dtype != np.float32 or \
            (labels is not None and len(labels) != len(reader)):
        raise PlumeError(f"{folder}: latents.npy holds {reader.dtype} {(len(reader), *reader.row_shape)} (and "
                         f"labels.npy {None if labels is None else len(labels)} labels), but {CACHE_FILE} says "
                         f"float32 {expected}; the cache is incomplete: write it again with `plume prepare --latent`")
    return reader, labels, about


class CachedLatents(StreamedRows, Latents):
    """The latents of a cache written by prepare_latents (module docstring), read from disk when a batch needs them:
    examples (z, h, w), labels in memory; `workers` DataLoader processes read ahead while training (default
    DEFAULT_WORKERS, 0: read when asked). Refuses a cache whose autoencoder changed since it was written."""

    def __init__(self, folder: PathLike, device: "str | torch.device" = "cpu", workers: Optional[int] = None):
        self.cache = Path(folder).expanduser().resolve()
        self.reader, labels, self.about = read_cache(self.cache)
        entry = self.about["autoencoder"]
        try:
            digest = autoencoder_digest(entry["path"])
        except PlumeError as e:
            raise PlumeError(f"{self.cache}: the cache was encoded by the autoencoder in {entry['path']}, which "
                             f"cannot be read: {e}") from None
        if digest != entry["sha256"]:
            raise PlumeError(f"{self.cache}: the autoencoder in {entry['path']} changed after this latent cache was "
                             "written (the SHA-256 of its weights differs), so its decoder no longer matches the "
                             "latents; write the cache again with `plume prepare --latent`")
        self.use_autoencoder(load_autoencoder(entry["path"], device), entry["path"])
        self.flip, self.shape = bool(self.about["flip"]), tuple(self.about["shape"])
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.long)  # (N,)
        self.train_captions = None
        self.workers = DEFAULT_WORKERS if workers is None else int(workers)

    def __len__(self) -> int:
        return len(self.reader)

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Latents at index (B,) as float32 (B, z, h, w); with flip, the mirrored orientation for the examples
        random_flips would mirror."""
        views = torch.from_numpy(self.rows(index))  # (B, V, z, h, w)
        return pick_views(views, self.flip, generator)  # (B, z, h, w)

    def images_info(self) -> dict[str, Any]:
        return dict(self.about["images"])

    def info(self) -> dict[str, Any]:
        """Latents' info (the autoencoder and the images), and the cache: its folder, row count and SHA-256."""
        return {**super().info(), "cache": {"path": str(self.cache), "count": len(self),
                                            "sha256": self.about.get("sha256")}}

    def tokenize(self, tokenizer: Any) -> None:
        raise PlumeError(f"{self.cache}: a latent cache carries no captions; train a text-conditioned latent model "
                         "with --latent AE on the captioned images")


def cache_data(folder: PathLike, options: dict[str, Any], device: "str | torch.device" = "cpu") -> CachedLatents:
    """`plume train --data CACHE`: the cache's latents; refuses data options that a cache fixed when it was written
    (only `workers` applies)."""
    given = [k for k, v in options.items() if v is not None and v is not False and k not in CACHE_OPTIONS]
    if given:
        flag = f"--{given[0].replace('_', '-')}"
        raise PlumeUsageError(f"{flag} does not apply to the latent cache {folder}: its images, size, flips and "
                              "hold-out were fixed when `plume prepare --latent` wrote it (and it holds latents, "
                              f"not pixels); drop {flag}, or prepare another cache from the images")
    return CachedLatents(folder, device, options.get("workers"))


def latents_from_info(info: dict[str, Any], source: PathLike = "config.json",
                      progress: bool = False) -> "CachedLatents | LatentData | EncodedLatents":
    """Rebuild the latent data whose info() gave `info`: the cache it names (refused if it changed), or else the
    images encoded again (plume.images.latent.data.latent_data_from_info)."""
    entry = info.get("cache")
    if entry is None:
        return latent_data_from_info(info, source, progress)
    latent_autoencoder(info, source)  # refuses a missing or changed autoencoder, naming its folder
    folder = Path(entry.get("path", ""))
    if not is_latent_cache(folder):
        raise PlumeError(f"{source}: the run trained on the latent cache {folder}, which is gone or is not a cache "
                         "any more; write it again with `plume prepare --latent` (the same images and autoencoder)")
    data = CachedLatents(folder)
    now = data.info()["cache"]
    if (now["count"], now["sha256"]) != (entry.get("count"), entry.get("sha256")):
        raise PlumeError(f"{source}: the latent cache {folder} changed since the run was trained (it read "
                         f"{entry.get('count')} rows with SHA-256 {entry.get('sha256')}; now {now['count']} rows, "
                         f"{now['sha256']}), so its example indices no longer name the same latents")
    return data


__all__ = ["CACHE_FILE", "CachedLatents", "cache_data", "cache_summary", "is_latent_cache",
           "latents_from_info", "prepare_latents", "read_cache"]
