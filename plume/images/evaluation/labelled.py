"""One report for generated images of a small labelled data set: classifier-feature FID with its noise floor,
predicted-class coverage, confidence, and the nearest-neighbour memorisation check.

FID here is the Fréchet distance (Heusel et al. 2017) in the feature space of a classifier trained on the
training images themselves (plume.images.evaluation.classifier), since Inception features mean little for 8x8 digits.
Its floor is the same distance between two disjoint random halves of the training set: the value that
sampling noise alone gives at that size (FID is biased upwards for small sets, Chong & Forsyth 2020, so
compare a result with its floor, not with zero). This is what `plume sample` prints for labelled small image
sets and what bench/digits.py reports.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...errors import PlumeError
from .classifier import ImageClassifier, check_images, train_classifier
from ...evaluation.frechet import frechet_distance
from ...evaluation.memorization import memorization_ratio

CONFIDENT = 0.9  # a sample is "confident" when the classifier gives its class more than this probability


def describe_classifier(classifier: ImageClassifier) -> str:
    """The feature network's name, as reports print it."""
    h, w, c = classifier.image_shape
    return (f"plume digit classifier (CNN, {len(classifier.classes)} classes, {h}x{w}x{c} input, "
            f"{classifier.head.in_features}-d penultimate features)")


def fid_floor(features: np.ndarray, seed: int = 0) -> float:
    """FID between two disjoint random halves of a feature set (N, F)."""
    order = np.random.default_rng(seed).permutation(len(features))
    half = len(features) // 2
    return frechet_distance(features[order[:half]], features[order[half:2 * half]])


def evaluate_images(samples: np.ndarray, train_images: np.ndarray, train_labels: np.ndarray,
                    classifier: Optional[ImageClassifier] = None, seed: int = 0) -> dict[str, Any]:
    """Measures of uint8 samples (N, H, W, C) against the uint8 training images (M, H, W, C) and labels (M,).

    The classifier is trained on the training images (seeded by `seed`) unless one is given.
    """
    samples = check_images(samples, "samples")
    train_images = check_images(train_images, "training images")
    if samples.shape[1:] != train_images.shape[1:]:
        raise PlumeError(f"samples are shaped {samples.shape[1:]} (H, W, C), training images {train_images.shape[1:]}")
    if len(samples) < 2 or len(train_images) < 4:
        raise PlumeError(f"FID needs at least 2 samples and 4 training images, got {len(samples)} and {len(train_images)}")
    if classifier is None:
        classifier = train_classifier(train_images, train_labels, seed=seed)
    train_features = classifier.features(train_images)  # (M, F)
    probabilities = classifier.probabilities(samples)  # (N, K)
    predicted = classifier.classes.numpy()[probabilities.argmax(1)]
    return {
        "fid": frechet_distance(classifier.features(samples), train_features),
        "fid_floor": fid_floor(train_features, seed),
        "class_counts": {int(k): int((predicted == k).sum()) for k in classifier.classes.tolist()},
        "confident_fraction": float((probabilities.max(1) > CONFIDENT).mean()),
        "memorization": memorization_ratio(samples, train_images),
        "n_samples": int(len(samples)),
        "n_reference": int(len(train_images)),
        "feature_network": describe_classifier(classifier),
    }
