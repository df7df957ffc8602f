"""Sample-quality measures for vector data, each reported beside its floor (two exact sets compared).

energy distance (Szekely & Rizzo 2013): 2 E|X - Y| - E|X - X'| - E|Y - Y'|, zero iff the laws are equal.
For Gaussian mixtures with known density: the gap in mean log-density under the true mixture, and the
total variation between the mode histogram of the samples and the mixture weights.
"""
from __future__ import annotations

from typing import Optional

import torch

from .gaussian_mixture import GaussianMixture


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Energy distance between two samples (n, D) and (m, D), with the V-statistic's diagonal removed."""
    x, y = x.to(torch.float64).flatten(1), y.to(torch.float64).flatten(1)

    def mean_distance(a: torch.Tensor, b: torch.Tensor, same: bool) -> torch.Tensor:
        d = torch.cdist(a, b)  # (n, m)
        return d.sum() / (d.numel() - (len(a) if same else 0))

    return float(2 * mean_distance(x, y, False) - mean_distance(x, x, True) - mean_distance(y, y, True))


def mixture_errors(mixture: GaussianMixture, x: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """|mean log p(x) - mean log p(reference)| and the mode-weight total variation of x."""
    gap = abs(float(mixture.log_prob(x).mean() - mixture.log_prob(reference).mean()))
    counts = torch.bincount(mixture.responsibilities(x).argmax(1), minlength=len(mixture.weights)).double()
    return {"logp_gap": gap, "mode_tv": 0.5 * float((counts / len(x) - mixture.weights).abs().sum())}


def vector_report(x: torch.Tensor, reference: torch.Tensor, floor_reference: torch.Tensor,
                  mixture: Optional[GaussianMixture] = None) -> dict[str, float]:
    """Every measure for samples x against held-out data, and the same measures for a second held-out set."""
    report = {"energy_distance": energy_distance(x, reference),
              "energy_distance_floor": energy_distance(floor_reference, reference)}
    if mixture is not None:
        report.update(mixture_errors(mixture, x, reference))
        report.update({f"{k}_floor": v for k, v in mixture_errors(mixture, floor_reference, reference).items()})
    return report
