"""Class accuracy of a class-conditional model: does a sample show the class it was asked for?

A classifier trained separately from the diffusion model (for digits, Plume's own CNN of
plume.images.evaluation.classifier, trained on real labelled images) is the judge: a sample counts as right when the
judge's most probable class is the requested one. `class_accuracy` returns the overall fraction, the fraction
per requested class and the confusion matrix (rows: requested class, columns: predicted class), and the two
pictures `plume eval` writes: the confusion matrix, and accuracy and FID against the guidance scale.

The judge is only as good as its own accuracy on real images it never saw; `plume eval` reports that beside
the figure when the run holds images out of training (`plume train --holdout`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ...errors import PlumeError
from .classifier import ImageClassifier, check_images


@dataclass
class ClassAccuracy:
    """Accuracy of predicted against requested classes.

    classes: the K class values, in the order of the confusion matrix's rows and columns.
    confusion: int64 (K, K); confusion[i, j] counts samples asked for classes[i] and judged classes[j].
    """

    classes: list[int]
    confusion: np.ndarray

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def overall(self) -> float:
        """The fraction of all samples judged to be the class they were asked for."""
        return float(np.trace(self.confusion) / max(self.n, 1))

    @property
    def requested(self) -> dict[int, int]:
        """Samples asked for, per class."""
        return {c: int(row.sum()) for c, row in zip(self.classes, self.confusion)}

    @property
    def per_class(self) -> dict[int, Optional[float]]:
        """Accuracy per requested class (None for a class no sample asked for)."""
        return {c: (float(row[i] / row.sum()) if row.sum() else None)
                for i, (c, row) in enumerate(zip(self.classes, self.confusion))}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: overall, per_class, requested counts, classes, and the confusion matrix as nested lists."""
        return {"overall": self.overall, "n": self.n, "per_class": {str(k): v for k, v in self.per_class.items()},
                "requested": {str(k): v for k, v in self.requested.items()}, "classes": list(self.classes),
                "confusion": self.confusion.tolist(), "confusion_axes": "rows: requested class, columns: judged class"}


def accuracy_from_predictions(requested: Sequence[int], predicted: Sequence[int],
                              classes: Sequence[int]) -> ClassAccuracy:
    """ClassAccuracy of predicted labels (N,) against requested labels (N,), both values among `classes`."""
    requested, predicted = np.asarray(requested), np.asarray(predicted)
    classes = [int(c) for c in classes]
    if requested.shape != predicted.shape or requested.ndim != 1 or len(requested) == 0:
        raise PlumeError(f"requested and predicted labels must be two non-empty 1-D arrays of one length, got shapes "
                         f"{requested.shape} and {predicted.shape}; give one requested label per sample")
    index = {c: i for i, c in enumerate(classes)}
    for name, values in (("requested", requested), ("predicted", predicted)):
        outside = sorted({int(v) for v in np.unique(values)} - set(index))
        if outside:
            raise PlumeError(f"{name} label {outside[0]} is not one of the classes {_span(classes)}; ask only for "
                             "classes the judge was trained on (or train it on images of every requested class)")
    rows = np.array([index[int(v)] for v in requested])  # (N,)
    cols = np.array([index[int(v)] for v in predicted])  # (N,)
    confusion = np.zeros((len(classes), len(classes)), np.int64)  # (K, K)
    np.add.at(confusion, (rows, cols), 1)
    return ClassAccuracy(classes, confusion)


def class_accuracy(images: np.ndarray, requested: Sequence[int], classifier: ImageClassifier) -> ClassAccuracy:
    """How often the classifier judges uint8 images (N, H, W, C) to be the class each was asked for (N,)."""
    images = check_images(images, "samples")
    requested = np.asarray(requested)
    if requested.shape != (len(images),):
        raise PlumeError(f"{len(images)} samples need {len(images)} requested labels, got shape {requested.shape}")
    return accuracy_from_predictions(requested, classifier.predict(images), classifier.classes.tolist())


def balanced_labels(num_classes: int, n: int) -> list[int]:
    """Labels 0, 1, ..., K-1, 0, 1, ... for n samples: every class n // K or n // K + 1 times."""
    if num_classes < 1 or n < num_classes:
        raise PlumeError(f"{n} samples cannot cover {num_classes} classes; draw at least {num_classes} (--n)")
    return [k % num_classes for k in range(n)]


def _span(classes: Sequence[int]) -> str:
    return f"{classes[0]}..{classes[-1]}" if list(classes) == list(range(classes[0], classes[-1] + 1)) else \
        ", ".join(map(str, classes))


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def confusion_plot(path: Union[str, os.PathLike], result: ClassAccuracy, title: str = "",
                   names: Optional[Sequence[str]] = None) -> Path:
    """Save a PNG of the confusion matrix as row fractions (each requested class sums to 1), counts written in."""
    fig = _figure(5.6, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    totals = result.confusion.sum(1, keepdims=True)  # (K, 1)
    fractions = result.confusion / np.maximum(totals, 1)  # (K, K)
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    k = len(result.classes)
    for i in range(k):
        for j in range(k):
            if result.confusion[i, j]:
                ax.text(j, i, str(result.confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if fractions[i, j] > 0.5 else "black")
    labels = [str(n) for n in names] if names else [str(c) for c in result.classes]
    ax.set_xticks(range(k), labels)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("judged class")
    ax.set_ylabel("requested class")
    ax.set_title(title or f"class accuracy {result.overall:.3f} of {result.n} samples", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the requested class")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def guidance_plot(path: Union[str, os.PathLike], scales: Sequence[float], accuracy: Sequence[float],
                  fid: Sequence[float], title: str = "", fid_label: str = "FID") -> Path:
    """Save a PNG of class accuracy (left axis) and FID (right axis, log) against the guidance scale."""
    from matplotlib.ticker import FormatStrFormatter

    fig = _figure(6.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(scales, accuracy, marker="o", color="C0", label="class accuracy")
    ax.set_xlabel("guidance scale s (0: unconditional, 1: conditional, > 1: guided)")
    ax.set_ylabel("class accuracy", color="C0")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(list(scales), [f"{s:g}" for s in scales])
    ax.grid(True, alpha=0.3)
    right = ax.twinx()
    right.plot(scales, fid, marker="s", color="C1", label=fid_label)
    right.set_yscale("log")
    right.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    right.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    right.set_ylabel(fid_label, color="C1")
    lines = ax.get_legend_handles_labels(), right.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


__all__ = ["ClassAccuracy", "accuracy_from_predictions", "class_accuracy", "balanced_labels", "confusion_plot",
           "guidance_plot"]
