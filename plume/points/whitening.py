"""An invertible linear change of variables for tables, z = (x - mu) W, fitted to training rows.

Two kinds. "standardize": W = diag(1 / sd), each column to mean 0 and standard deviation 1. "pca" (PCA whitening):
W = V diag(lambda)^(-1/2), with Sigma = V diag(lambda) V^T the covariance of the rows, so that z has identity
covariance: correlated and near-collinear columns (a table's diameter, perimeter and area, say) become
uncorrelated axes of unit spread, which an MLP denoiser with weight decay fits far more easily than a thin
slanted ellipsoid.

Densities change by the Jacobian (change of variables): log p_x(x) = log p_z(z) + log|det W|. That term makes
likelihoods in different representations comparable, so the representation itself can be chosen by held-out
likelihood (plume.points.table_anomaly). Eigenvalues are floored at EIGEN_FLOOR times the largest, so an exactly
collinear column gives a large but finite scale rather than a division by zero.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import PlumeError

KINDS = ("standardize", "pca")
EIGEN_FLOOR = 1e-9


@dataclass(frozen=True)
class Whitening:
    """z = (x - mean) @ matrix for rows x (N, D); `kind` is how `matrix` (D, D) was fitted (module doc)."""

    kind: str
    mean: np.ndarray  # (D,)
    matrix: np.ndarray  # (D, D)

    @classmethod
    def fit(cls, rows: "np.ndarray | torch.Tensor", kind: str = "pca",
            columns: Sequence[str] = ()) -> "Whitening":
        """Fit to training rows (N, D) (N >= 2, finite). A constant column is refused, named by `columns` if given
        (else by its index)."""
        if kind not in KINDS:
            raise PlumeError(f"unknown whitening kind {kind!r}; choose one of {', '.join(KINDS)}")
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise PlumeError(f"whitening needs rows shaped (N, D) with N >= 2, got {list(x.shape)}")
        if not np.isfinite(x).all():
            row, col = np.argwhere(~np.isfinite(x))[0]
            raise PlumeError(f"row {row}, column {_column_name(col, columns)} is NaN or inf; remove or impute it first")
        mean, sd = x.mean(0), x.std(0)
        if (sd == 0).any():
            col = int(np.flatnonzero(sd == 0)[0])
            raise PlumeError(f"column {_column_name(col, columns)} is constant in the training rows; drop it first")
        if kind == "standardize":
            return cls(kind, mean, np.diag(1 / sd))
        u = (x - mean) / sd  # (N, D): PCA on the correlation matrix, for numerical balance
        lam, vectors = np.linalg.eigh(np.cov(u, rowvar=False, bias=True))  # (D,), (D, D)
        lam = np.maximum(lam, EIGEN_FLOOR * lam.max())
        return cls(kind, mean, np.diag(1 / sd) @ vectors / np.sqrt(lam))  # (D, D)

    @property
    def dim(self) -> int:
        return len(self.mean)

    @property
    def log_abs_det(self) -> float:
        """log|det W|: add it to log p_z to get log p_x (module doc)."""
        return float(np.linalg.slogdet(self.matrix)[1])

    def __call__(self, rows: "np.ndarray | torch.Tensor") -> torch.Tensor:
        """z (N, D) as float64 for rows x (N, D)."""
        x = torch.as_tensor(np.asarray(rows, dtype=np.float64))
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise PlumeError(f"rows must be shaped (N, {self.dim}), got {list(x.shape)}")
        return (x - torch.from_numpy(self.mean)) @ torch.from_numpy(self.matrix)  # (N, D)

    def invert(self, z: "np.ndarray | torch.Tensor") -> torch.Tensor:
        """x (N, D) as float64 for z (N, D): x = z W^-1 + mean."""
        z = torch.as_tensor(np.asarray(z, dtype=np.float64))
        return z @ torch.from_numpy(np.linalg.inv(self.matrix)) + torch.from_numpy(self.mean)  # (N, D)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (for a run's config.json)."""
        return {"kind": self.kind, "mean": self.mean.tolist(), "matrix": self.matrix.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "whitening") -> "Whitening":
        try:
            mean, matrix = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["matrix"], dtype=np.float64)
            kind = str(d["kind"])
        except (KeyError, TypeError, ValueError) as error:
            raise PlumeError(f"{source}: not a whitening record (needs kind, mean, matrix): {error}") from None
        if mean.ndim != 1 or matrix.shape != (len(mean), len(mean)):
            raise PlumeError(f"{source}: mean {list(mean.shape)} and matrix {list(matrix.shape)} do not fit")
        return cls(kind, mean, matrix)


def _column_name(index: int, columns: Sequence[str]) -> str:
    return f"{columns[index]!r}" if index < len(columns) else str(int(index))


__all__ = ["EIGEN_FLOOR", "KINDS", "Whitening"]
