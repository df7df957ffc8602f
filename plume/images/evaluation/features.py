"""Pluggable feature networks for image metrics (FID, precision/recall, Inception Score): a small registry.

    "inception"   Inception-v3 of the FID protocol (Heusel et al. 2017; pytorch-fid's TF-ported weights), pool3 2048-d
    "dinov2"      a DINOv2 ViT (Oquab et al. 2023), final-norm CLS token (Stein et al. 2023 recommend it over Inception)
    "classifier"  Plume's own CNN trained on the training images (plume.images.evaluation.classifier), for small data sets

`feature_network(name, ...)` returns a FeatureNetwork: `.name` (the description printed with every figure),
`.features(uint8 images (N, H, W, C)) -> (N, F)` float64 and, where the network has classes, `.probabilities`.
Pretrained weights are never downloaded: the user passes a file (or sets an environment variable), read as
safetensors or as a plain state dict through torch.load(weights_only=True), so nothing pickled runs; a missing
file raises a PlumeError that says which file is needed and where to get it.

This module also holds the pieces the networks share: input conversion and the strict weight loading.
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn
from ...progress import progress_bar

from ...errors import PlumeError, unknown_name
from .classifier import FEATURES, train_classifier
from .dinov2 import load_dinov2
from .inception import load_inception
from .labelled import describe_classifier

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------------------------------------- image input

def images_to_tensor(images: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """uint8 (N, H, W, C) in [0, 255] or float (N, H, W, C) in [0, 1], C in {1, 3} -> float32 (N, 3, H, W) in [0, 1].

    Grayscale (C = 1, or (N, H, W)) is repeated to three channels. uint8 is divided by 255, as torchvision's
    ToTensor does for the PNG files pytorch-fid reads.
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or x.shape[0] == 0:
        raise PlumeError(f"images must be shaped (N, H, W, C) with C 1 or 3 and N > 0, got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif x.is_floating_point():
        x = x.float()
        if not torch.isfinite(x).all() or x.min() < -1e-6 or x.max() > 1 + 1e-6:
            raise PlumeError(f"float images must lie in [0, 1], got values in [{x.min().item():.4g}, "
                             f"{x.max().item():.4g}]")
        x = x.clamp(0, 1)
    else:
        raise PlumeError(f"images must be uint8 or float in [0, 1], got {x.dtype}")
    x = x.permute(0, 3, 1, 2)  # (N, C, H, W)
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x.contiguous()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------------- the wrapper

class FeatureNetwork:
    """A named feature extractor over uint8 images (N, H, W, C): `.features` (N, F) and maybe `.probabilities`.

    `embed` and `classify` map one batch of images (numpy, as given) to a float tensor or array (B, F) / (B, K).
    """

    def __init__(self, name: str, dim: int, embed: Callable, classify: Optional[Callable] = None,
                 batch_size: int = 50, module: Optional[nn.Module] = None):
        self.name, self.dim, self.batch_size, self.module = name, int(dim), int(batch_size), module
        self._embed, self._classify = embed, classify

    def __repr__(self) -> str:
        return f"FeatureNetwork({self.name!r})"

    @property
    def has_probabilities(self) -> bool:
        return self._classify is not None

    @torch.no_grad()
    def _batched(self, fn: Callable, images: np.ndarray, batch_size: Optional[int], progress: bool, desc: str):
        images = np.asarray(images)
        if images.ndim not in (3, 4) or len(images) == 0:
            raise PlumeError(f"images must be shaped (N, H, W, C) with N > 0, got {images.shape}")
        step = int(batch_size or self.batch_size)
        out = []
        for i in progress_bar(range(0, len(images), step), desc=desc, enabled=progress):
            batch = fn(images[i:i + step])
            if isinstance(batch, torch.Tensor):
                batch = batch.double().cpu().numpy()
            out.append(np.asarray(batch, np.float64))
        return np.concatenate(out)

    def features(self, images: np.ndarray, batch_size: Optional[int] = None, progress: bool = False) -> np.ndarray:
        """Features (N, F) float64 of images (N, H, W, C), computed in batches without gradients."""
        return self._batched(self._embed, images, batch_size, progress, "features")

    def probabilities(self, images: np.ndarray, batch_size: Optional[int] = None, progress: bool = False) -> np.ndarray:
        """Class probabilities (N, K) float64, for networks with a classifier head (Inception Score, coverage)."""
        if self._classify is None:
            raise PlumeError(f"{self.name} has no class head; probabilities are for 'inception' and 'classifier'")
        return self._batched(self._classify, images, batch_size, progress, "probabilities")


# ---------------------------------------------------------------------------------------------- the registry

def _torch_fn(method: Callable, device: torch.device) -> Callable:
    def fn(batch: np.ndarray) -> torch.Tensor:
        return method(images_to_tensor(batch).to(device))
    return fn


def _inception(path=None, device=None, batch_size=None, **_) -> FeatureNetwork:
    device = torch.device(device) if device is not None else default_device()
    model = load_inception(path).to(device)
    return FeatureNetwork(model.description, 2048, _torch_fn(model.pool3, device),
                          _torch_fn(model.probabilities, device), batch_size or 50, model)


def _dinov2(path=None, device=None, batch_size=None, **_) -> FeatureNetwork:
    device = torch.device(device) if device is not None else default_device()
    model = load_dinov2(path).to(device)
    return FeatureNetwork(model.description, model.embed_dim, _torch_fn(model.embed, device), None,
                          batch_size or 50, model)


def _classifier(train_images=None, train_labels=None, seed=0, batch_size=None, classifier_steps=400,
                progress=False, **_) -> FeatureNetwork:
    if train_images is None or train_labels is None:
        raise PlumeError("the 'classifier' feature network is trained on the data set's own images: pass "
                         "train_images (N, H, W, C) uint8 and train_labels (N,)")
    model = train_classifier(train_images, train_labels, seed=seed, steps=classifier_steps, progress=progress)
    return FeatureNetwork(describe_classifier(model), FEATURES, model.features, model.probabilities,
                          batch_size or 512, model)


FEATURE_NETWORKS: dict[str, Callable[..., FeatureNetwork]] = {
    "inception": _inception,
    "dinov2": _dinov2,
    "classifier": _classifier,
}


def feature_network(name: str, path: Optional[PathLike] = None, train_images: Optional[np.ndarray] = None,
                    train_labels: Optional[np.ndarray] = None, seed: int = 0, device=None,
                    batch_size: Optional[int] = None, classifier_steps: int = 400,
                    progress: bool = False) -> FeatureNetwork:
    """The feature network `name` ("inception", "dinov2" or "classifier").

    `path`: the weights file for "inception"/"dinov2" (else $PLUME_INCEPTION / $PLUME_DINOV2). "classifier" is
    trained here on `train_images`/`train_labels` (seeded by `seed`, `classifier_steps` Adam steps).
    `device`: where the network runs (default CUDA when available).
    """
    if name not in FEATURE_NETWORKS:
        raise unknown_name("feature network", name, list(FEATURE_NETWORKS))
    return FEATURE_NETWORKS[name](path=path, train_images=train_images, train_labels=train_labels, seed=seed,
                                  device=device, batch_size=batch_size, classifier_steps=classifier_steps,
                                  progress=progress)
