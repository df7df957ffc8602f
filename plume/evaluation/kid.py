"""Kernel Inception Distance: an unbiased estimate of the squared maximum mean discrepancy between feature sets.

KID = MMD_u^2(X, Y) with the cubic polynomial kernel k(x, y) = (x.y / F + 1)^3   (Binkowski et al. 2018,
"Demystifying MMD GANs", section 4 and appendix; the unbiased estimator is Gretton et al. 2012, eq. 3):

    MMD_u^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
              - 2 sum_{i, j} k(x_i, y_j) / (m n)

As in the paper's code and torchmetrics, the estimate is averaged over `subsets` random subsets drawn without
replacement from each set (a fresh draw for each subset). A subset size larger than a set is capped at that
set's size, each set separately; when both sets give a subset of the same size m, the formula above is exactly
torchmetrics' `maximum_mean_discrepancy`. The unbiased estimate can be slightly negative; it is not clipped.
It is unbiased for two independent sets. A set compared with itself is not that: subsets of the two sides share
samples, whose k(x, x) enters the cross term only, so KID(X, X) is below 0 (with one subset of all n samples,
exactly -2 (mean k(x_i, x_i) - mean_{i != j} k(x_i, x_j)) / n) and may lie outside its standard error. To check a
pipeline, compare two disjoint halves of one set: their KID is within its standard error of 0 as often as the
error says.

Spread over subsets, two figures, both returned:
- `std`: the population standard deviation over subsets (ddof = 0), what torchmetrics and the paper's code
  report as "KID std";
- `standard_error`: the standard error of the KID estimate with respect to fresh draws of both sets,
  sqrt((1 + 1/S) s^2) with s^2 the sample variance over the S subsets (ddof = 1). Why this bounds the error:
  the subset mean splits as KID = U_N + (subset noise), where U_N, the average over every possible subset pair,
  is the complete U-statistic of the two whole sets. Then Var(KID) = Var(U_N) + E[s^2] / S, and
  E[s^2] = Var(U_m) - Var(U_N) for subsets of m drawn from N. Hoeffding (1948) shows that n Var(U_n) does not
  increase with n, so N Var(U_N) <= m Var(U_m) (used here for both sets shrinking alike); with m <= N / 2 for
  each set, Var(U_m) >= 2 Var(U_N), hence E[s^2] >= Var(U_N) and (1 + 1/S) s^2 estimates Var(KID) from above:
  about right when the distributions differ; when they are the same, Var(U_n) falls as 1/n^2 and the error is
  up to sqrt(3) too wide (tests/test_metrics.py measures the coverage of both). With subsets larger than half of either set, or S = 1, the bound does not hold and
  `standard_error` is NaN. plume.images.evaluation.report caps subsets at half of each set.
Everything is float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PlumeError


@dataclass(frozen=True)
class KIDResult:
    """KID mean over subsets, the population std over subsets (ddof = 0) and the standard error of KID with
    respect to fresh data (NaN unless each subset is at most half its set; module docstring), with the number of
    subsets and the subset sizes actually used."""

    mean: float
    std: float
    standard_error: float
    subsets: int
    subset_size_a: int
    subset_size_b: int


def check_features(features: np.ndarray, name: str, min_samples: int = 2) -> np.ndarray:
    """Features as a float64 array (N, F), or a PlumeError naming the set and its shape."""
    array = np.asarray(features)
    if array.ndim != 2:
        raise PlumeError(f"{name} must be shaped (N, F), got shape {array.shape}")
    if array.shape[0] < min_samples:
        raise PlumeError(f"{name} needs at least {min_samples} samples, got shape {array.shape}")
    if array.shape[1] < 1:
        raise PlumeError(f"{name} needs at least one feature, got shape {array.shape}")
    try:
        array = array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as error:
        raise PlumeError(f"{name} must be numeric, got dtype {array.dtype} with shape {array.shape}") from error
    if not np.isfinite(array).all():
        raise PlumeError(f"{name} (shape {array.shape}) contains NaN or inf")
    return array


def check_pair(features_a: np.ndarray, features_b: np.ndarray, names: tuple[str, str],
               min_samples: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Two float64 feature sets (N, F) and (M, F) with the same F, or a PlumeError naming both shapes."""
    a = check_features(features_a, names[0], min_samples)
    b = check_features(features_b, names[1], min_samples)
    if a.shape[1] != b.shape[1]:
        raise PlumeError(f"{names[0]} and {names[1]} must have the same feature width, got shapes {a.shape} and "
                         f"{b.shape}")
    return a, b


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / F + 1)^3 for all pairs of rows of x (m, F) and y (n, F): (m, n)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3  # (m, n)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 estimate (Gretton et al. 2012, eq. 3) between x (m, F) and y (n, F), m, n >= 2."""
    m, n = x.shape[0], y.shape[0]
    k_xx = polynomial_kernel(x, x)  # (m, m)
    k_yy = polynomial_kernel(y, y)  # (n, n)
    k_xy = polynomial_kernel(x, y)  # (m, n)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))  # mean over i != j
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> KIDResult:
    """KID between features (N, F) and (M, F) (Binkowski et al. 2018): the unbiased MMD^2 with the kernel
    (x.y / F + 1)^3, averaged over `subsets` subsets of min(subset_size, N) and min(subset_size, M) samples drawn
    without replacement by `numpy.random.default_rng(seed)`. See the module docstring for `std` versus
    `standard_error`."""
    a, b = check_pair(features_a, features_b, ("features_a", "features_b"))
    if isinstance(subsets, bool) or not isinstance(subsets, (int, np.integer)) or subsets < 1:
        raise PlumeError(f"subsets must be a positive integer, got {subsets!r}")
    if isinstance(subset_size, bool) or not isinstance(subset_size, (int, np.integer)) or subset_size < 2:
        raise PlumeError(f"subset_size must be an integer >= 2, got {subset_size!r}")
    size_a, size_b = min(int(subset_size), a.shape[0]), min(int(subset_size), b.shape[0])
    rng = np.random.default_rng(seed)
    values = np.empty(int(subsets), dtype=np.float64)  # (subsets,)
    for s in range(int(subsets)):
        x = a[rng.choice(a.shape[0], size_a, replace=False)]  # (size_a, F)
        y = b[rng.choice(b.shape[0], size_b, replace=False)]  # (size_b, F)
        values[s] = mmd2_unbiased(x, y)
    halves = 2 * size_a <= a.shape[0] and 2 * size_b <= b.shape[0]
    standard_error = (float(np.sqrt((1 + 1 / len(values)) * values.var(ddof=1))) if halves and len(values) > 1
                      else float("nan"))
    return KIDResult(mean=float(values.mean()), std=float(values.std(ddof=0)), standard_error=standard_error,
                     subsets=int(subsets), subset_size_a=size_a, subset_size_b=size_b)
