"""Latent diffusion's training data and its way back to pixels (Rombach et al. 2022, sec. 3 and 4.3.2).

`encode_images` turns plume.images.ImageData into LatentData: the scaled posterior means scale_factor * E[z | x]
(N, z, H/f, W/f) of the training images under a saved autoencoder, about unit variance, with the images' labels
(and captions, as `train_captions`) carried along for conditional training. LatentData is a TensorData whose
pictures are decoded, and whose info() (saved in the run's config.json as "data") records the autoencoder's folder,
its scale_factor and the SHA-256 of its weights beside the images' own description, so that `plume sample RUN`
decodes samples to images and a resume rebuilds the same latents; a changed autoencoder is refused.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from ...progress import progress_bar

from ..grid import add_title, image_grid
from ..sets import ImageData, image_data_from_info, tensor_to_images
from ...errors import PlumeError
from ...train.data import TensorData
from .autoencoder import KLAutoencoder
from .checkpoint import autoencoder_digest, load_autoencoder

KIND = "latent"
PathLike = Union[str, os.PathLike]


class LatentData(TensorData):
    """Scaled latents (N, z, h, w) of images, with their labels; samples are decoded for pictures."""

    def __init__(self, latents: torch.Tensor, autoencoder: KLAutoencoder, folder: PathLike, images: ImageData):
        super().__init__(latents, images.labels, {"name": images.info().get("name", "images")})
        self.autoencoder, self.folder, self.images = autoencoder, Path(folder).resolve(), images
        self.train_captions = images.train_captions  # for text conditioning: one caption per latent row
        self.digest = autoencoder_digest(self.folder)

    @property
    def num_classes(self) -> Optional[int]:
        return self.images.num_classes

    def tokenize(self, tokenizer: Any) -> None:
        """Make `labels` the token ids (N, T) of the images' captions, for a text-conditioned model (ImageData's)."""
        self.images.tokenize(tokenizer)
        self.labels = self.images.labels

    def info(self) -> dict[str, Any]:
        """The images' description under "images", and the autoencoder that made the latents."""
        images = self.images.info()
        return {"kind": KIND, "name": images.get("name"), "num_classes": images.get("num_classes"),
                "class_names": images.get("class_names"),
                "autoencoder": {"path": str(self.folder), "scale_factor": self.autoencoder.scale_factor,
                                "sha256": self.digest},
                "images": {**images, "shape": list(self.images.shape)}}

    def decode(self, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Images (B, C, H, W), about [-1, 1] (the decoder does not clamp), from scaled latents z (B, z, h, w) on any
        device; on the CPU."""
        return decode_latents(self.autoencoder, z, batch_size)

    def render(self, x: torch.Tensor, title: str = "", cond: Optional[torch.Tensor] = None) -> np.ndarray:
        """A grid picture (H', W', 3) uint8 of the decoded latents x (B, z, h, w), with title above if given."""
        return add_title(image_grid(tensor_to_images(self.decode(x))), title)


@torch.no_grad()
def decode_latents(autoencoder: KLAutoencoder, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """autoencoder.from_latent over z (B, z, h, w) in batches: images (B, C, H, W) on the CPU."""
    device = next(autoencoder.parameters()).device
    parts = [autoencoder.from_latent(z[i:i + batch_size].to(device)).float().cpu()
             for i in range(0, len(z), batch_size)]
    return torch.cat(parts) if parts else torch.zeros((0, autoencoder.in_channels, 0, 0))


@torch.no_grad()
def encode_images(images: Any, folder: PathLike, batch_size: int = 256, progress: bool = False,
                  device: "str | torch.device" = "cpu") -> LatentData:
    """LatentData of `images` (plume.images.ImageData) under the autoencoder saved in `folder`."""
    if not isinstance(images, ImageData):
        name = images.info().get("name") if hasattr(images, "info") else type(images).__name__
        raise PlumeError(f"latent diffusion encodes images; the data {name!r} are not images (shape "
                         f"{tuple(getattr(images, 'shape', ()))})")
    autoencoder = load_autoencoder(folder, device)
    try:
        autoencoder.latent_shape(images.shape)
    except PlumeError as e:
        raise PlumeError(f"{folder}: {e} (the data {images.info().get('name')!r})") from None
    x = images.data  # (N, C, H, W)
    parts = [autoencoder.to_latent(x[i:i + batch_size].to(device)).cpu()
             for i in progress_bar(range(0, len(x), batch_size), desc="encode", unit="batch", enabled=progress)]
    return LatentData(torch.cat(parts), autoencoder, folder, images)  # (N, z, h, w)


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


def latent_data_from_info(info: dict[str, Any], source: PathLike = "config.json", progress: bool = False) -> LatentData:
    """Rebuild the LatentData whose info() gave `info`: the images again, encoded by the same autoencoder."""
    latent_autoencoder(info, source)  # refuses a missing or changed autoencoder
    images = {k: v for k, v in info.get("images", {}).items() if k != "shape"}
    return encode_images(image_data_from_info(images), info["autoencoder"]["path"], progress=progress)


__all__ = ["LatentData", "decode_latents", "encode_images", "latent_autoencoder", "latent_data_from_info"]
