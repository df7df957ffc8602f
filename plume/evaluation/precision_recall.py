"""Improved precision and recall of a generative model from feature sets (Kynkäänniemi et al. 2019, "Improved
Precision and Recall Metric for Assessing Generative Models", section 2, eqs. 1-2).

Each set's manifold is the union of balls centred at its samples, the radius of a sample being the distance to
its k-th nearest neighbour within the same set (eq. 1: f(phi, Phi) = 1 if ||phi - phi'|| <= ||phi' - NN_k(phi')||
for some phi' in Phi). The sample itself is not counted as a neighbour (its own distance 0 is skipped: the radius
is the (k+1)-th smallest distance including itself, as in the authors' code), but a duplicate row is. A point lies
in a ball when its distance is <= the radius, so every sample lies within its own ball.

    precision = mean over fake samples of f(fake, real manifold)       (eq. 2)
    recall    = mean over real samples of f(real, fake manifold)

Distances are Euclidean, computed with `torch.cdist` in float64 over row blocks, so that only a block of the
distance matrix (block, N) is held at a time: 10k x 10k needs a few hundred MB at most. `torch.cdist` uses the
matrix-product form ||a||^2 + ||b||^2 - 2 a.b, so a distance that ties a radius to within ~1e-8 relative may
fall on either side.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import PlumeError
from .kid import check_pair

_BLOCK_ELEMENTS = 1 << 24  # distance entries per block: 16M float64 = 128 MB


def _block_rows(columns: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(columns, 1))


def manifold_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """The distance from each row of features (N, F) to its k-th nearest other row: (N,)."""
    n = features.shape[0]
    step = _block_rows(n)
    radii = torch.empty(n, dtype=torch.float64)  # (N,)
    for start in range(0, n, step):
        distances = torch.cdist(features[start:start + step], features)  # (B, N), includes the row's own 0
        radii[start:start + step] = torch.kthvalue(distances, k + 1, dim=1).values  # (B,)
    return radii


def in_manifold(queries: torch.Tensor, support: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each row of queries (Q, F) lies within radii (S,) of some row of support (S, F): bool (Q,)."""
    step = _block_rows(support.shape[0])
    inside = torch.empty(queries.shape[0], dtype=torch.bool)  # (Q,)
    for start in range(0, queries.shape[0], step):
        distances = torch.cdist(queries[start:start + step], support)  # (B, S)
        inside[start:start + step] = (distances <= radii[None, :]).any(dim=1)  # (B,)
    return inside


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, eq. 2) of fake features (M, F) against real
    features (N, F), with k-NN radii; both sets need more than k samples. Returns {"precision", "recall", "k"}."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise PlumeError(f"k must be a positive integer, got {k!r}")
    real, fake = check_pair(real_features, fake_features, ("real_features", "fake_features"),
                            min_samples=int(k) + 1)
    real_t = torch.from_numpy(np.ascontiguousarray(real))  # (N, F) float64
    fake_t = torch.from_numpy(np.ascontiguousarray(fake))  # (M, F) float64
    real_radii = manifold_radii(real_t, int(k))  # (N,)
    fake_radii = manifold_radii(fake_t, int(k))  # (M,)
    precision = in_manifold(fake_t, real_t, real_radii).double().mean().item()
    recall = in_manifold(real_t, fake_t, fake_radii).double().mean().item()
    return {"precision": float(precision), "recall": float(recall), "k": int(k)}
