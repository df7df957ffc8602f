"""The Fréchet distance between Gaussians fitted to two feature sets (the "FID" when the features are a network's).

d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})   (Dowson & Landau 1982; Heusel et al. 2017, eq. 6)

The trace of the matrix square root is computed from the symmetric form: S_a S_b is similar to
M = S_a^{1/2} S_b S_a^{1/2} (conjugate by S_a^{1/2}), which is symmetric positive semi-definite, so
Tr((S_a S_b)^{1/2}) = sum_i sqrt(lambda_i(M)) with lambda_i from `numpy.linalg.eigh`. Unlike
`scipy.linalg.sqrtm` of the non-symmetric product (what pytorch-fid uses), this never returns complex
parts or needs an epsilon added to the diagonal for a singular covariance; eigenvalues that round below zero
are clipped to zero. Everything is float64. Covariances are unbiased (ddof = 1), as in pytorch-fid.
"""
from __future__ import annotations

import numpy as np

from ..errors import PlumeError


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise PlumeError(f"features must be shaped (N, D) with N >= 2, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise PlumeError("features contain NaN or inf")
    return features.mean(0), np.atleast_2d(np.cov(features, rowvar=False, ddof=1))


def _symmetrize(matrix: np.ndarray) -> np.ndarray:
    return (matrix + matrix.T) / 2


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative rounding clipped)."""
    values, vectors = np.linalg.eigh(_symmetrize(matrix))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_from_statistics(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """d^2 between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017, eq. 6)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise PlumeError(f"statistics do not match: means {mu1.shape}, {mu2.shape}; covariances {sigma1.shape}, "
                         f"{sigma2.shape}")
    root1 = _psd_sqrt(sigma1)  # S_1^{1/2}
    middle = np.linalg.eigvalsh(_symmetrize(root1 @ sigma2 @ root1))  # eigenvalues of S_1^{1/2} S_2 S_1^{1/2}
    trace_sqrt = float(np.sqrt(np.clip(middle, 0.0, None)).sum())  # Tr((S_1 S_2)^{1/2})
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to features (N, D) and (M, D)."""
    features_a, features_b = np.asarray(features_a), np.asarray(features_b)
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise PlumeError(f"feature sets must be (N, D) and (M, D) with the same D, got {features_a.shape} and "
                         f"{features_b.shape}")
    return frechet_from_statistics(*gaussian_statistics(features_a), *gaussian_statistics(features_b))
