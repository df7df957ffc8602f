"""Does a generator copy its training set? Nearest-neighbour distances in pixel space.

A sample's distance to its nearest training example is compared with the typical distance between a training
example and its nearest *other* training example (leave-one-out). Samples drawn from the data distribution
but not copied sit about as far from the training set as training examples sit from each other (ratio ~ 1);
a model that memorises returns near-copies (ratio -> 0). This is the nearest-neighbour test of Carlini et al.
2023 ("Extracting training data from diffusion models", sec. 4) and of Somepalli et al. 2023, reduced to its
Euclidean form. Distances are Euclidean over all pixels scaled to [0, 1]: uint8 inputs are divided by 255,
float inputs are taken as already scaled. They are computed in float64 over chunks of both sets, so 10k
samples against 50k references fit in memory.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import PlumeError

CHUNK = 2048  # rows per side of one block of the distance matrix: (2048, 2048) float64 is 32 MiB


def as_pixels(images: Any, name: str) -> torch.Tensor:
    """Images (N, ...) as float64 rows (N, D) in [0, 1]: uint8 / 255, floats as given."""
    array = np.asarray(images)
    if array.ndim < 2 or len(array) == 0:
        raise PlumeError(f"{name} must be shaped (N, ...) with N >= 1, got shape {array.shape}")
    rows = torch.from_numpy(array.reshape(len(array), -1)).to(torch.float64)  # (N, D)
    return rows / 255.0 if array.dtype == np.uint8 else rows


def _nearest(a: torch.Tensor, b: torch.Tensor, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """min_j ||a_i - b_j|| and its argmin j for each row of a (N, D) over rows of b (M, D); with exclude_self,
    j != i (a is b)."""
    best = torch.full((len(a),), float("inf"), dtype=torch.float64)
    where = torch.zeros(len(a), dtype=torch.long)
    for i in range(0, len(a), CHUNK):
        for j in range(0, len(b), CHUNK):
            d = torch.cdist(a[i:i + CHUNK], b[j:j + CHUNK])  # (n, m)
            if exclude_self:
                rows = torch.arange(i, i + len(d))
                own = rows - j  # column of each row's own example in this block
                inside = (own >= 0) & (own < d.shape[1])
                d[inside.nonzero()[:, 0], own[inside]] = float("inf")
            value, index = d.min(1)  # (n,), (n,)
            closer = value < best[i:i + len(d)]
            best[i:i + len(d)] = torch.where(closer, value, best[i:i + len(d)])
            where[i:i + len(d)] = torch.where(closer, index + j, where[i:i + len(d)])
    return best.numpy(), where.numpy()


def nearest_neighbors(samples: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    """Distance (N,) from each sample to its nearest reference example (pixels in [0, 1]), and that example's
    index (N,)."""
    a, b = as_pixels(samples, "samples"), as_pixels(reference, "reference")
    if a.shape[1] != b.shape[1]:
        raise PlumeError(f"samples have {a.shape[1]} values each, reference examples {b.shape[1]}; shapes must match")
    return _nearest(a, b, exclude_self=False)


def nearest_neighbor_distances(samples: Any, reference: Any) -> np.ndarray:
    """Distance (N,) from each sample to its nearest reference example (pixels in [0, 1])."""
    return nearest_neighbors(samples, reference)[0]


def training_nn_distances(reference: Any) -> np.ndarray:
    """Leave-one-out distance (M,) from each reference example to its nearest other reference example."""
    b = as_pixels(reference, "reference")
    if len(b) < 2:
        raise PlumeError("the reference set needs at least two examples for leave-one-out distances")
    return _nearest(b, b, exclude_self=True)[0]


def nearest_training_twins(samples: Any, reference: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """Each sample's distance (N,) to its nearest reference example, that example's index (N,), and the typical
    (median leave-one-out) nearest-neighbour distance within the reference set."""
    distance, twin = nearest_neighbors(samples, reference)  # (N,), (N,)
    return distance, twin, float(np.median(training_nn_distances(reference)))


def memorization_ratio(samples: Any, reference: Any, copy_threshold: float = 1 / 3) -> dict[str, float]:
    """Median sample->nearest-reference distance over the median leave-one-out reference distance, and the
    fraction of samples ("copies") closer to a reference example than copy_threshold times that median."""
    to_train, _, typical = nearest_training_twins(samples, reference)  # (N,)
    median = float(np.median(to_train))
    return {"median_sample_nn": median, "median_train_nn": typical,
            "ratio": median / typical if typical > 0 else float("inf"),
            "copies": float(np.mean(to_train < copy_threshold * typical)), "copy_threshold": float(copy_threshold)}
