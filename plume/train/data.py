"""What the training loop consumes: any object with the TrainingData methods, whatever the modality.

The loop draws indices and the per-example randomness (flips, crops) from one generator per micro-batch
(plume.train.batches.step_generator), so a batch is a function of (seed, step, micro-batch) and a
resumed run sees the same batches. Tensors and arrays of vectors are wrapped in TensorData; images come as
plume.images.ImageData; both provide render() for the sample pictures the trainer writes.
"""
from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import PlumeError
from .plots import scatter_image


@runtime_checkable
class TrainingData(Protocol):
    """The training loop's view of a data set."""

    shape: tuple[int, ...]  # one example's shape, e.g. (C, H, W) or (D,)
    labels: Optional[torch.Tensor]  # (N,) int64 class labels, or None

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The float32 examples at `index` (B,), with any random augmentation drawn from `generator`."""

    def info(self) -> dict[str, Any]:
        """JSON-able description saved in config.json (at least "name")."""

    def render(self, x: torch.Tensor, title: str = "", cond: Optional[torch.Tensor] = None) -> np.ndarray:
        """A picture (H, W, 3) uint8 of samples x shaped (B, *shape), drawn under conditioning `cond` (B, ...) if
        given (the picture may show it beside them)."""


@runtime_checkable
class ConditionedData(Protocol):
    """Training data that makes each example's conditioning input from the example itself (e.g. a low-resolution
    copy for super-resolution, plume.images.super_resolution_data): the trainer passes it to the backbone as cond."""

    def condition(self, x0: torch.Tensor, generator: torch.Generator, start: int, batch_size: int) -> torch.Tensor:
        """cond (b, ...) of examples x0 (b, ...), rows [start, start + b) of a micro-batch of batch_size; randomness
        is drawn from `generator` for all batch_size rows, so a rank's rows do not depend on how the batch is split."""

    def preview_condition(self, n: int, seed: int) -> torch.Tensor:
        """cond (n, ...) for the trainer's n preview samples, a function of `seed`."""


@runtime_checkable
class PairedData(Protocol):
    """Training data that draws each example together with its conditioning input (e.g. frame interpolation: a
    middle frame and the two frames around it, plume.images.interpolation_data): the trainer passes the pair's cond to the
    backbone, so x0 and cond of a row always come from one draw."""

    def batch_with_condition(self, index: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0 (B, ...), cond (B, ...)) of the examples at `index` (B,), any randomness drawn from `generator`."""

    def preview_condition(self, n: int, seed: int) -> torch.Tensor:
        """cond (n, ...) for the trainer's n preview samples, a function of `seed`."""


class TensorData:
    """In-memory examples (N, ...) with optional labels (N,): batches are plain indexing."""

    def __init__(self, data: Any, labels: Any = None, info: Optional[dict[str, Any]] = None):
        self.data, self.labels = check_data(data, labels)
        self.shape = tuple(self.data.shape[1:])
        self._info = dict(info or {"name": "tensor"})

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.data[index]  # (B, ...)

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def render(self, x: torch.Tensor, title: str = "", cond: Optional[torch.Tensor] = None) -> np.ndarray:
        """Samples beside (up to 5000 of) the data, as scatter plots of the first two coordinates."""
        return scatter_image(x, self.data[:5000], title=title or "samples")


def as_training_data(data: Any, labels: Any = None, info: Optional[dict[str, Any]] = None) -> TrainingData:
    """`data` itself if it is TrainingData, else TensorData(data, labels, info)."""
    if isinstance(data, TrainingData) and not isinstance(data, (torch.Tensor, np.ndarray)):
        if labels is not None:
            raise PlumeError(f"{type(data).__name__} carries its own labels; pass cond=None with it")
        return data
    return TensorData(data, labels, info)


def check_data(data: Any, cond: Any = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Validate training data (N, ...) and optional labels (N,) or token ids (N, T); returns float32 data and int64
    labels."""
    try:
        data = torch.as_tensor(data)
    except (TypeError, ValueError, RuntimeError) as e:
        raise PlumeError(f"data must be a tensor or array shaped (N, ...), got {type(data).__name__}: {e}") from None
    if data.ndim < 2:
        raise PlumeError(f"data must be shaped (N, D) with one example per row, got shape {tuple(data.shape)}"
                         + (" (for scalar data use data[:, None])" if data.ndim == 1 else ""))
    if data.shape[0] == 0:
        raise PlumeError("data is empty (0 rows)")
    if not data.is_floating_point():
        raise PlumeError(f"data must be floating point, got {data.dtype}; scale it to floats first")
    bad = ~torch.isfinite(data).flatten(1).all(1)  # (N,)
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        kind = "NaN" if bool(torch.isnan(data[row]).any()) else "inf"
        raise PlumeError(f"data row {row} contains {kind} ({int(bad.sum())} non-finite rows in all); "
                         "remove or impute them before training")
    if cond is not None:
        cond = torch.as_tensor(cond)
        if cond.ndim not in (1, 2) or cond.shape[0] != data.shape[0] or cond.is_floating_point():
            raise PlumeError(f"labels must be integers shaped ({data.shape[0]},) like the data's rows (or token ids "
                             f"({data.shape[0]}, T) for a text-conditioned model), got {cond.dtype} {tuple(cond.shape)}")
        cond = cond.long()
    return data.float(), cond
