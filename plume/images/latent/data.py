"""Latent diffusion's training data and its way back to pixels (Rombach et al. 2022, sec. 3 and 4.3.2).

The latents of an image x are the scaled posterior means scale_factor * E[z | x] (z, H/f, W/f) under a saved
autoencoder, about unit variance. Three views of an image set's latents share one base, `Latents` (the autoencoder,
checked by the SHA-256 of its weights; pictures decoded through it; info() recording it beside the images' own
description, so that `plume sample RUN` decodes, `plume eval RUN` finds the images and a resume rebuilds the data):

- LatentData: in memory, encoded once up front (`encode_images`), for images held in memory (plume.images.ImageData);
- EncodedLatents: encoded when a batch asks for them, for a streamed set (plume.images.streaming.StreamedImages),
  whose pixels the trainer reads ahead through it;
- CachedLatents (plume.images.latent.cache): read from a cache `plume prepare --latent` wrote once.

Flips: an image set with flip=True mirrors each example with probability 1/2 (plume.images.codec.random_flips), and
mirroring commutes with nothing in the encoder, so a mirrored image's latents are encoded from the mirrored image.
LatentData and the cache hold both orientations of each example, (N, V, z, h, w) with V = 2 (index 1: mirrored),
and a batch picks, from the same generator, the examples random_flips would mirror; EncodedLatents lets the images
draw their flips and encodes the result. So the three give the same batches for the same (index, generator), up to
the encoder's float rounding over different batch sizes. Without flips V = 1 and no random number is drawn.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np
import torch

from ..codec import images_to_tensor, mirrored
from ..grid import add_title, image_grid
from ..sets import ImageData, image_data_from_info, tensor_to_images
from ..streaming import StreamedImages
from ...errors import PlumeError
from ...progress import progress_bar
from ...train.data import TensorData
from ...train.streaming import Prefetcher, StreamedData
from .autoencoder import KLAutoencoder
from .checkpoint import autoencoder_digest, load_autoencoder

KIND = "latent"
PathLike = Union[str, os.PathLike]
ImageSource = Union[ImageData, StreamedImages]


def pick_views(views: torch.Tensor, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Latents (B, z, h, w) from each example's orientations views (B, V, z, h, w): the first without flip (nothing
    drawn), else the mirrored one (index 1) for the examples `mirrored` draws."""
    if not flip:
        return views[:, 0]  # (B, z, h, w)
    mirror = mirrored(len(views), generator).to(views.device)  # (B,)
    return views[torch.arange(len(views), device=views.device), mirror.long()]  # (B, z, h, w)


class Latents:
    """What every view of an image set's latents shares: the autoencoder that made them (with its folder and the
    SHA-256 of its weights), pictures decoded through it, and info() recording both beside the images' description.
    Subclasses give images_info()."""

    autoencoder: KLAutoencoder
    folder: Path
    digest: str

    def use_autoencoder(self, autoencoder: KLAutoencoder, folder: PathLike) -> None:
        """Decode with `autoencoder`, saved in `folder` (recorded resolved, with its weights' SHA-256)."""
        self.autoencoder, self.folder = autoencoder, Path(folder).resolve()
        self.digest = autoencoder_digest(self.folder)

    def images_info(self) -> dict[str, Any]:
        """The images' description (their info(), with their shape (C, H, W))."""
        raise NotImplementedError

    @property
    def num_classes(self) -> Optional[int]:
        return self.images_info().get("num_classes")

    def info(self) -> dict[str, Any]:
        """The images' description under "images", and the autoencoder that made the latents."""
        images = self.images_info()
        return {"kind": KIND, "name": images.get("name"), "num_classes": images.get("num_classes"),
                "class_names": images.get("class_names"),
                "autoencoder": {"path": str(self.folder), "scale_factor": self.autoencoder.scale_factor,
                                "sha256": self.digest},
                "images": images}

    def decode(self, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Images (B, C, H, W), about [-1, 1] (the decoder does not clamp), from scaled latents z (B, z, h, w) on any
        device; on the CPU."""
        return decode_latents(self.autoencoder, z, batch_size)

    def render(self, x: torch.Tensor, title: str = "", cond: Optional[torch.Tensor] = None) -> np.ndarray:
        """A grid picture (H', W', 3) uint8 of the decoded latents x (B, z, h, w), with title above if given."""
        return add_title(image_grid(tensor_to_images(self.decode(x))), title)


class ImageLatents(Latents):
    """Latents of image data at hand (`images`): its labels and captions, and its description."""

    images: ImageSource

    def use_images(self, images: ImageSource, autoencoder: KLAutoencoder, folder: PathLike) -> None:
        self.images, self.labels = images, images.labels
        self.train_captions = images.train_captions  # for text conditioning: one caption per latent row
        self.use_autoencoder(autoencoder, folder)

    def images_info(self) -> dict[str, Any]:
        return {**self.images.info(), "shape": list(self.images.shape)}

    def tokenize(self, tokenizer: Any) -> None:
        """Make `labels` the token ids (N, T) of the images' captions, for a text-conditioned model (ImageData's)."""
        self.images.tokenize(tokenizer)
        self.labels = self.images.labels


class LatentData(ImageLatents, TensorData):
    """The latents of images in memory, encoded up front: `views` (N, V, z, h, w), V = 2 with flips (index 1: the
    mirrored images'), else 1; `data` (N, z, h, w) the unmirrored ones. Samples are decoded for pictures."""

    def __init__(self, views: torch.Tensor, autoencoder: KLAutoencoder, folder: PathLike, images: ImageSource):
        wanted = 2 if images.flip else 1
        if views.ndim != 5 or views.shape[1] != wanted:
            raise PlumeError(f"LatentData takes latents (N, {wanted}, z, h, w) (one view per orientation: "
                             f"flip={images.flip}), got shape {tuple(views.shape)}")
        super().__init__(views[:, 0], images.labels, {"name": images.info().get("name", "images")})
        self.views, self.flip = views, images.flip
        self.use_images(images, autoencoder, folder)

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Latents at index (B,) as float32 (B, z, h, w); with flip, mirrored as the images would be."""
        if not self.flip:
            return self.data[index]  # (B, z, h, w)
        return pick_views(self.views[index], True, generator)  # (B, z, h, w)


class EncodedLatents(ImageLatents):
    """The latents of image data encoded when a batch asks for them: batch(index, generator) is
    autoencoder.to_latent(images.batch(index, generator)), flips drawn by the images. A streamed set's stream() is
    this data's too, so the trainer reads the pixels ahead."""

    def __init__(self, images: ImageSource, folder: PathLike, device: "str | torch.device" = "cpu"):
        autoencoder = checked_autoencoder(images, folder, device)
        self.use_images(images, autoencoder, folder)
        self.shape, self.flip = autoencoder.latent_shape(tuple(images.shape)), images.flip
        if isinstance(images, StreamedData):  # the trainer prefetches the images' rows (plume.train.streaming)
            self.stream = images.stream

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Latents at index (B,) as float32 (B, z, h, w) on the CPU, encoded from the images' batch."""
        x = self.images.batch(index, generator)  # (B, C, H, W)
        device = next(self.autoencoder.parameters()).device
        return self.autoencoder.to_latent(x.to(device)).float().cpu()  # (B, z, h, w)


@torch.no_grad()
def decode_latents(autoencoder: KLAutoencoder, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """autoencoder.from_latent over z (B, z, h, w) in batches: images (B, C, H, W) on the CPU."""
    device = next(autoencoder.parameters()).device
    parts = [autoencoder.from_latent(z[i:i + batch_size].to(device)).float().cpu()
             for i in range(0, len(z), batch_size)]
    return torch.cat(parts) if parts else torch.zeros((0, autoencoder.in_channels, 0, 0))


def image_chunks(images: ImageSource, size: int, limit: Optional[int] = None) -> Iterator[torch.Tensor]:
    """The first `limit` (default all) training images in order, float32 chunks (<= size, C, H, W) in [-1, 1]: sliced
    from memory, or read from a streamed set by its workers ahead of use (a Prefetcher of its own, so a training
    stream open on the same set is left alone); never the whole set at once."""
    n = len(images) if limit is None else min(int(limit), len(images))
    spans = [(start, min(n, start + size)) for start in range(0, n, size)]
    if not isinstance(images, StreamedImages):
        yield from (images.data[start:stop] for start, stop in spans)  # (b, C, H, W)
        return
    requests = [images.train_rows[start:stop] for start, stop in spans]
    prefetcher = Prefetcher(images.reader, iter(requests), images.workers)
    try:
        for rows in requests:
            pixels = prefetcher.take(rows)
            yield images_to_tensor(images.reader.read(rows) if pixels is None else pixels)  # (b, C, H, W)
    finally:
        prefetcher.close()


def encoded_views(autoencoder: KLAutoencoder, images: ImageSource, batch_size: int = 256, progress: bool = False,
                  what: str = "encode") -> Iterator[torch.Tensor]:
    """The latents of the training images in order, chunks (b, V, z, h, w) on the CPU: V = 2 with flips (index 1:
    to_latent of the mirrored image x.flip(-1)), else 1; a progress bar named `what` counts the images."""
    device = next(autoencoder.parameters()).device
    bar = progress_bar(total=len(images), desc=what, unit="img", enabled=progress)
    try:
        for x in image_chunks(images, batch_size):
            x = x.to(device)  # (b, C, H, W)
            with torch.no_grad():
                views = [autoencoder.to_latent(x)] + ([autoencoder.to_latent(x.flip(-1))] if images.flip else [])
            bar.update(len(x))
            yield torch.stack(views, 1).float().cpu()  # (b, V, z, h, w)
    finally:
        bar.close()


def checked_autoencoder(images: Any, folder: PathLike, device: "str | torch.device" = "cpu") -> KLAutoencoder:
    """The autoencoder saved in `folder`, on `device`; refuses data that are not images, or images it cannot take."""
    if not isinstance(images, (ImageData, StreamedImages)):
        name = images.info().get("name") if hasattr(images, "info") else type(images).__name__
        raise PlumeError(f"latent diffusion encodes images; the data {name!r} are not images (shape "
                         f"{tuple(getattr(images, 'shape', ()))})")
    autoencoder = load_autoencoder(folder, device)
    try:
        autoencoder.latent_shape(tuple(images.shape))
    except PlumeError as e:
        raise PlumeError(f"{folder}: {e} (the data {images.info().get('name')!r})") from None
    return autoencoder


def encode_images(images: ImageSource, folder: PathLike, batch_size: int = 256, progress: bool = False,
                  device: "str | torch.device" = "cpu") -> LatentData:
    """LatentData of `images` under the autoencoder saved in `folder`: every training image encoded now (and its
    mirror image too when images.flip), held in memory."""
    autoencoder = checked_autoencoder(images, folder, device)
    views = torch.cat(list(encoded_views(autoencoder, images, batch_size, progress)))  # (N, V, z, h, w)
    return LatentData(views, autoencoder, folder, images)


def latent_data(images: ImageSource, folder: PathLike, progress: bool = False,
                device: "str | torch.device" = "cpu") -> "LatentData | EncodedLatents":
    """The latents `plume train --latent FOLDER` trains on: images in memory encoded up front (LatentData), a
    streamed set encoded as batches ask (EncodedLatents; `plume prepare --latent` writes a cache that is faster)."""
    if isinstance(images, StreamedImages):
        return EncodedLatents(images, folder, device)
    return encode_images(images, folder, progress=progress, device=device)


def latent_autoencoder(info: dict[str, Any], source: PathLike = "config.json",
                       device: "str | torch.device" = "cpu") -> Optional[KLAutoencoder]:
    """The autoencoder of a latent run's data info (config.json's "data"), checked unchanged; None for other runs."""
    if info.get("kind") != KIND:
        return None
    entry = info.get("autoencoder")
    if not isinstance(entry, dict) or not {"path", "scale_factor", "sha256"} <= set(entry):
        raise PlumeError(f"{source}: a latent run's data.autoencoder needs path, scale_factor and sha256")
    folder = Path(entry["path"])
    try:
        digest = autoencoder_digest(folder)
    except PlumeError as e:
        raise PlumeError(f"{source}: the run decodes with the autoencoder in {folder}, which cannot be read: {e}") \
            from None
    if digest != entry["sha256"]:
        raise PlumeError(f"{source}: the autoencoder in {folder} changed after this run was trained (the SHA-256 of "
                         "its weights differs), so its decoder no longer matches the run's latents")
    autoencoder = load_autoencoder(folder, device)
    if autoencoder.scale_factor != entry["scale_factor"]:
        raise PlumeError(f"{source}: the run's scale_factor {entry['scale_factor']} differs from the autoencoder's "
                         f"{autoencoder.scale_factor} in {folder}")
    return autoencoder


def latent_data_from_info(info: dict[str, Any], source: PathLike = "config.json",
                          progress: bool = False) -> "LatentData | EncodedLatents":
    """Rebuild the LatentData or EncodedLatents whose info() gave `info`: the images again, encoded by the same
    autoencoder (a cache's info: plume.images.latent.cache.latents_from_info)."""
    latent_autoencoder(info, source)  # refuses a missing or changed autoencoder
    images = {k: v for k, v in info.get("images", {}).items() if k != "shape"}
    return latent_data(image_data_from_info(images), info["autoencoder"]["path"], progress=progress)


__all__ = ["EncodedLatents", "Latents", "LatentData", "decode_latents", "encode_images", "encoded_views",
           "image_chunks", "latent_autoencoder", "latent_data", "latent_data_from_info", "pick_views"]
