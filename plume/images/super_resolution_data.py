"""Training data for a cascade's super-resolution stage: high-resolution images whose conditioning is their own
low-resolution copy, noise-augmented (Ho et al. 2021, "Cascaded Diffusion Models", sec. 4.1).

No second data set is needed: the trainer asks `condition(x0, generator, ...)` for each micro-batch (the
ConditionedData hook of plume.train.data), which area-downsamples the examples it was given (after any flips) and
noises them at s ~ U[0, augment_max], all randomness from the trainer's generator of that micro-batch.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch

from .super_resolution import (AUGMENT_MAX, SAMPLE_AUGMENT, augment_condition, downsample, random_augmentation,
    size_pair)
from ..errors import PlumeError
from ..train.data import TrainingData
from .conditioned import ImageConditionedData
from .sets import image_data_from_info



class SuperResolutionData(ImageConditionedData):
    """The trainer's view of high-resolution image data `data`, with cond = its low_size copy, noise-augmented."""

    def __init__(self, data: TrainingData, low_size: Union[int, Sequence[int]], augment_max: float = AUGMENT_MAX):
        super().__init__(data, "super-resolution")
        self.low_size = size_pair(low_size, "low_size")
        c, height, width = data.shape
        if self.low_size[0] >= height or self.low_size[1] >= width:
            raise PlumeError(f"the low resolution {self.low_size[0]}x{self.low_size[1]} must be smaller than the "
                             f"training images ({height}x{width}); lower --super-resolution or raise --image-size")
        if not 0.0 <= augment_max:
            raise PlumeError(f"augment_max must be >= 0 (0: no conditioning augmentation), got {augment_max}")
        self.augment_max = float(augment_max)

    def condition(self, x0: torch.Tensor, generator: torch.Generator, start: int, batch_size: int) -> torch.Tensor:
        """cond (b, C + 1, h, w) of rows [start, start + b) of a micro-batch: their low-resolution copies noised at
        s ~ U[0, augment_max]; levels and noise are drawn for all batch_size rows, so a rank's slice does not depend
        on how the batch is split."""
        c, (h, w) = self.shape[0], self.low_size
        low = torch.zeros(batch_size, c, h, w, dtype=x0.dtype)  # (B, C, h, w); rows outside the slice stay 0
        low[start:start + len(x0)] = downsample(x0.cpu(), self.low_size)
        return random_augmentation(low, self.augment_max, generator)[start:start + len(x0)]  # (b, C + 1, h, w)

    def preview_condition(self, n: int, seed: int) -> torch.Tensor:
        """cond (n, C + 1, h, w) for the trainer's preview: the first n examples' low-resolution copies (repeated if
        fewer), noised at the sampling level SAMPLE_AUGMENT with noise from `seed`."""
        g = torch.Generator().manual_seed(int(seed))
        x = self.data.batch(torch.arange(n) % len(self.data), g)  # (n, C, H, W)
        low = downsample(x, self.low_size)  # (n, C, h, w)
        return augment_condition(low, SAMPLE_AUGMENT, torch.randn(low.shape, generator=g))

    def info(self) -> dict[str, Any]:
        """JSON-able description; super_resolution_data_from_info rebuilds the same data."""
        inner = self.data.info()
        return {"kind": "super_resolution", "name": inner.get("name", ""), "low_size": list(self.low_size),
                "augment_max": self.augment_max, "high": inner}



def super_resolution_data_from_info(info: dict[str, Any], source: str = "config.json") -> SuperResolutionData:
    """Rebuild the SuperResolutionData whose info() gave `info` (a run's config.json "data")."""
    if not isinstance(info.get("high"), dict) or "low_size" not in info:
        raise PlumeError(f"{source}: super-resolution data info needs 'high' (the images' info) and 'low_size', "
                         f"got keys {sorted(info)}")
    return SuperResolutionData(image_data_from_info(info["high"]), info["low_size"],
                               float(info.get("augment_max", AUGMENT_MAX)))


def stage_of(info: dict[str, Any]) -> Optional[list[int]]:
    """The low resolution [h, w] a run's data info conditions on, or None for an ordinary (base) run."""
    return list(info["low_size"]) if info.get("kind") == "super_resolution" else None
