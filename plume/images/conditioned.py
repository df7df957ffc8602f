"""The common part of training data that conditions on the images themselves (super-resolution's low-resolution
copies, inpainting's masked images): the wrapped image data's examples, length and evaluation attributes, no class
labels, its pictures. Subclasses add condition() and preview_condition() (plume.train.data.ConditionedData) and
info()."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from ..errors import PlumeError
from ..train.data import TrainingData

IMAGE_ATTRIBUTES = ("train_pixels", "train_labels", "train_captions", "held_out", "held_labels", "images", "stream")


class ImageConditionedData:
    """Image data `data` (examples (C, H, W)) seen through a task that makes each example's conditioning itself."""

    def __init__(self, data: TrainingData, task: str):
        if len(data.shape) != 3:
            raise PlumeError(f"{task} trains on images (C, H, W); this data has examples shaped {data.shape}")
        self.data = data
        self.shape, self.labels = tuple(data.shape), None  # class labels give way to the image conditioning

    def __len__(self) -> int:
        return len(self.data)

    def __getattr__(self, name: str) -> Any:
        """The wrapped image data's pixels and set (what evaluation reads), e.g. train_pixels, held_out, images."""
        if name in IMAGE_ATTRIBUTES and "data" in self.__dict__:
            return getattr(self.data, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The examples (B, C, H, W), as the wrapped data draws them (flips included)."""
        return self.data.batch(index, generator)

    def render(self, x: torch.Tensor, title: str = "", cond: Optional[torch.Tensor] = None) -> np.ndarray:
        """The wrapped data's picture of samples x (B, C, H, W)."""
        return self.data.render(x, title)


__all__ = ["IMAGE_ATTRIBUTES", "ImageConditionedData"]
