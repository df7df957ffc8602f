"""The memorization audit as a picture: the samples closest to the training set beside their nearest training
images, each headed by its distance relative to the typical nearest-neighbour distance within the training set
(plume.evaluation.memorization). A copy (below the copy threshold) is marked, so a person sees at a glance
whether the closest samples are new images or reproductions."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..grid import save_trajectory_strip
from ...errors import PlumeError
from ...evaluation.memorization import nearest_training_twins


def memorization_audit(samples: np.ndarray, reference: np.ndarray, path: Union[str, os.PathLike], count: int = 12,
                       copy_threshold: float = 1 / 3) -> dict[str, Any]:
    """Write the `count` samples nearest to the reference set, paired with their nearest reference images, as a
    PNG at `path`; return the pairs (sample index, reference index, relative distance) and the copy count.

    samples (N, H, W, C) and reference (M, H, W, C) are uint8 images; distances are Euclidean over pixels in [0, 1].
    """
    samples, reference = np.asarray(samples), np.asarray(reference)
    if samples.ndim != 4 or reference.ndim != 4 or samples.dtype != np.uint8 or reference.dtype != np.uint8:
        raise PlumeError(f"memorization_audit takes uint8 images (N, H, W, C); got samples {samples.dtype} "
                         f"{samples.shape} and reference {reference.dtype} {reference.shape}")
    if count < 1:
        raise PlumeError(f"memorization_audit: count must be >= 1, got {count}")
    distance, twin, typical = nearest_training_twins(samples, reference)  # (N,), (N,), scalar
    relative = distance / typical if typical > 0 else np.full_like(distance, np.inf)  # (N,)
    closest = np.argsort(relative, kind="stable")[:count]  # (k,)
    copies = distance < copy_threshold * typical  # (N,), the rule of memorization_ratio
    labels = [f"{relative[i]:.2f}{' COPY' if copies[i] else ''}" for i in closest]
    save_trajectory_strip([samples[i:i + 1] for i in closest], [reference[twin[i]:twin[i] + 1] for i in closest],
                          Path(path), labels=labels, row_names=("sample", "nearest training"))
    return {"path": str(path), "copies": int(copies.sum()), "copy_fraction": float(copies.mean()),
            "copy_threshold": float(copy_threshold), "median_train_nn": typical,
            "ratio": float(np.median(relative)),  # memorization_ratio's: median nearest distance / typical
            "closest": [{"sample": int(i), "training": int(twin[i]), "relative_distance": float(relative[i])}
                        for i in closest]}
