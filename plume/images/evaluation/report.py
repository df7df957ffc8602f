"""Every image metric of one set of samples against one reference set, in one feature space, with the
reference features cached on disk.

The cache is keyed by what determines the reference features: the reference data's description (its loader,
as plume.images records it), its size and shape, and the feature network's name; change any and the key changes.
Files are `.npz` arrays (no pickle) under $PLUME_CACHE or ~/.cache/plume/reference/.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .features import FeatureNetwork
from ...evaluation.frechet import frechet_distance
from .labelled import fid_floor
from ...evaluation.inception_score import inception_score
from ...evaluation.kid import kernel_inception_distance
from ...evaluation.precision_recall import precision_recall


def cache_dir() -> Path:
    return Path(os.environ.get("PLUME_CACHE", Path.home() / ".cache" / "plume")) / "reference"


def reference_features(network: FeatureNetwork, images: np.ndarray, description: dict[str, Any],
                       cache: bool = True, progress: bool = False) -> tuple[np.ndarray, Optional[Path]]:
    """Features (M, F) of the reference images (M, H, W, C), read from the cache when present; and the cache file."""
    key = json.dumps({"data": description, "shape": list(images.shape), "network": network.name}, sort_keys=True)
    path = cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
    if cache and path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"]) == key:
                return stored["features"], path
    features = network.features(images, progress=progress)  # (M, F)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, features=features, key=np.array(key))
    return features, (path if cache else None)


def image_metrics(samples: np.ndarray, real: np.ndarray, network: FeatureNetwork, reference_description: dict[str, Any],
                  cache_file: Optional[Path] = None, seed: int = 0, kid_subsets: int = 100, kid_subset_size: int = 1000,
                  k: int = 3, progress: bool = False) -> dict[str, Any]:
    """FID with its floor (plume.images.evaluation.labelled.fid_floor), KID (mean and standard error), precision/recall
    and, where the network classifies, the Inception Score of uint8 samples (N, H, W, C) against the reference features `real` (M, F) (reference_features)."""
    fake = network.features(samples, progress=progress)  # (N, F)
    # Subsets of at most half of each set: then the spread over subsets bounds KID's error with respect to fresh
    # samples and reference images (plume.evaluation.kid explains why); larger subsets would give no error.
    size = max(2, min(kid_subset_size, len(samples) // 2, len(real) // 2))
    kid = kernel_inception_distance(real, fake, subsets=kid_subsets, subset_size=size, seed=seed)
    report: dict[str, Any] = {
        "fid": frechet_distance(fake, real),
        "fid_floor": fid_floor(real, seed),  # FID of two disjoint halves of the reference: sampling noise alone
        "kid": {"mean": kid.mean, "standard_error": kid.standard_error, "std": kid.std, "subsets": kid.subsets,
                "subset_size": min(kid.subset_size_a, kid.subset_size_b)},
        **precision_recall(real, fake, k=k),
        "n_samples": int(len(samples)), "n_reference": int(len(real)), "feature_network": network.name,
        "reference": reference_description, "reference_cache": str(cache_file) if cache_file else None,
    }
    if network.has_probabilities:
        report["inception_score"] = inception_score(network.probabilities(samples), splits=min(10, len(samples)))
    return report
