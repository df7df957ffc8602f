"""Pictures of anomaly scores (plume.tasks.anomaly): an input beside its error heat-map, and score histograms."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..grid import add_title, image_grid
from ..sets import tensor_to_images
from ...errors import PlumeError

COLOUR_MAP = "inferno"  # perceptually uniform, dark = small error


def colour_maps(maps: torch.Tensor, vmax: Optional[float] = None) -> np.ndarray:
    """Error maps (B, H, W) >= 0 as RGB uint8 (B, H, W, 3) under COLOUR_MAP, 0 -> dark and vmax (default: the
    99th percentile of all the maps, one scale for the batch so the maps compare) -> bright."""
    from matplotlib import colormaps

    if maps.ndim != 3:
        raise PlumeError(f"error maps must be shaped (B, H, W), got {tuple(maps.shape)}")
    m = maps.detach().double().cpu()  # (B, H, W)
    top = float(vmax) if vmax is not None else float(torch.quantile(m.flatten(), 0.99)) if m.numel() else 0.0
    unit = (m / max(top, 1e-12)).clamp(0, 1).numpy()  # (B, H, W) in [0, 1]
    return (colormaps[COLOUR_MAP](unit)[..., :3] * 255).round().astype(np.uint8)  # (B, H, W, 3)


def heatmap_pairs(x0: torch.Tensor, maps: torch.Tensor, vmax: Optional[float] = None) -> np.ndarray:
    """Images x0 (B, C, H, W) in [-1, 1] and maps (B, H, W) as pictures (B, H', W', 3): input | error map."""
    inputs = tensor_to_images(x0)  # (B, H, W, C)
    inputs = np.repeat(inputs, 3, axis=-1) if inputs.shape[-1] == 1 else inputs  # (B, H, W, 3)
    heat = colour_maps(maps, vmax)  # (B, H, W, 3)
    return np.stack([image_grid(np.stack([a, b]), columns=2) for a, b in zip(inputs, heat)])  # (B, H', W', 3)


def heatmap_grid(x0: torch.Tensor, maps: torch.Tensor, captions: Sequence[str], columns: int = 4,
                 vmax: Optional[float] = None, title: str = "") -> np.ndarray:
    """Input | error map pairs of a batch tiled `columns` pairs a row, each captioned (e.g. with its score)."""
    pairs = [add_title(p, c) for p, c in zip(heatmap_pairs(x0, maps, vmax), captions)]  # each (h, w, 3)
    h = max(p.shape[0] for p in pairs)
    w = max(p.shape[1] for p in pairs)
    tiles = np.full((len(pairs), h, w, 3), 255, dtype=np.uint8)  # (B, h, w, 3)
    for tile, p in zip(tiles, pairs):
        tile[: p.shape[0], : p.shape[1]] = p
    return add_title(image_grid(tiles, columns=columns, scale=1), title)


def score_histogram(path: Union[str, os.PathLike], groups: dict[str, Sequence[float]], title: str = "",
                    x_label: str = "anomaly score", log_spread: bool = False) -> Path:
    """Save a PNG of overlaid score histograms, one per named group (e.g. {"normal": ..., "anomalous": ...}).
    log_spread: plot log10(1 + score - lowest score) instead, for heavy-tailed scores such as -log p(x)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = [np.asarray(v, dtype=np.float64) for v in groups.values()]
    if not any(len(v) for v in values):
        raise PlumeError("score_histogram: no scores to plot")
    every = np.concatenate(values)
    if log_spread:
        values = [np.log10(1 + v - every.min()) for v in values]
        every, x_label = np.log10(1 + every - every.min()), f"log10(1 + {x_label} - lowest)"
    bins = np.histogram_bin_edges(every, bins=min(40, max(5, len(every) // 5)))
    fig = Figure(figsize=(6.0, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, v in zip(groups, values):
        ax.hist(v, bins=bins, alpha=0.55, label=f"{name} ({len(v)})", density=len(groups) > 1)
    ax.set_xlabel(x_label)
    ax.set_ylabel("density" if len(groups) > 1 else "count")
    if title:
        ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


__all__ = ["COLOUR_MAP", "colour_maps", "heatmap_pairs", "heatmap_grid", "score_histogram"]
