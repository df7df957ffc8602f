"""Inception Score from a classifier's class probabilities (Salimans et al. 2016, "Improved Techniques for
Training GANs", section 4):

    IS = exp(E_x KL(p(y|x) || p(y))),   p(y) = E_x p(y|x)

Standard protocol (the authors' code, also torch-fidelity): the N samples are cut, in order and without
shuffling, into `splits` consecutive parts [i N // splits, (i + 1) N // splits); p(y) is the mean over each part;
the score is computed per part and the mean and the population standard deviation (ddof = 0) over parts are
reported. (torchmetrics shuffles before splitting, uses `torch.chunk` part sizes and ddof = 1; with one split
the mean is the same.) 0 log 0 is taken as 0. Everything is float64.
"""
from __future__ import annotations

import numpy as np
from scipy.special import rel_entr

from ..errors import PlumeError

_ROW_SUM_TOLERANCE = 1e-3


def inception_score(probabilities: np.ndarray, splits: int = 10) -> dict[str, float]:
    """IS (Salimans et al. 2016) of class probabilities (N, K), rows non-negative and summing to 1, over `splits`
    consecutive parts. Returns {"mean", "std", "splits"}; IS lies in [1, K]."""
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) or splits < 1:
        raise PlumeError(f"splits must be a positive integer, got {splits!r}")
    array = np.asarray(probabilities)
    if array.ndim != 2 or array.shape[1] < 1:
        raise PlumeError(f"probabilities must be shaped (N, K), got shape {array.shape}")
    if array.shape[0] < splits:
        raise PlumeError(f"probabilities need at least splits={splits} samples, got shape {array.shape}")
    try:
        p = array.astype(np.float64, copy=False)  # (N, K)
    except (TypeError, ValueError) as error:
        raise PlumeError(f"probabilities must be numeric, got dtype {array.dtype} with shape {array.shape}") from error
    if not np.isfinite(p).all():
        raise PlumeError(f"probabilities (shape {p.shape}) contain NaN or inf")
    if (p < 0).any():
        raise PlumeError(f"probabilities (shape {p.shape}) contain negative values; pass softmax outputs, not logits")
    row_sums = p.sum(1)  # (N,)
    worst = int(np.abs(row_sums - 1.0).argmax())
    if abs(row_sums[worst] - 1.0) > _ROW_SUM_TOLERANCE:
        raise PlumeError(f"probabilities (shape {p.shape}) must sum to 1 over classes; row {worst} sums to "
                         f"{row_sums[worst]:.6g}")
    n = p.shape[0]
    scores = np.empty(int(splits), dtype=np.float64)  # (splits,)
    for i in range(int(splits)):
        part = p[i * n // splits:(i + 1) * n // splits]  # (n_i, K)
        marginal = part.mean(0, keepdims=True)  # (1, K): p(y) over the part
        kl = rel_entr(part, marginal).sum(1)  # (n_i,): KL(p(y|x) || p(y))
        scores[i] = np.exp(kl.mean())
    return {"mean": float(scores.mean()), "std": float(scores.std(ddof=0)), "splits": int(splits)}
