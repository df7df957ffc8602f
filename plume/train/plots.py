"""Pictures of vector samples: a scatter of the data beside a scatter of the samples, drawn with Agg.

Matplotlib's object API with FigureCanvasAgg draws without touching the global backend (pyplot) state.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch


def scatter_plot(path: Union[str, os.PathLike], samples: torch.Tensor, data: Optional[torch.Tensor] = None,
                 title: str = "samples", max_points: int = 5000) -> Path:
    """Save a PNG: data (if given) beside samples; (N, 1) as histograms, (N, D > 2) by the first two coordinates."""
    path = Path(path)
    _scatter_figure(samples, data, title, max_points).savefig(path)
    return path


def scatter_image(samples: torch.Tensor, data: Optional[torch.Tensor] = None, title: str = "samples",
                  max_points: int = 5000) -> np.ndarray:
    """The picture scatter_plot saves, as an RGB array (H, W, 3) uint8 (for TensorBoard and previews)."""
    fig = _scatter_figure(samples, data, title, max_points)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3)


def _scatter_figure(samples: torch.Tensor, data: Optional[torch.Tensor], title: str, max_points: int) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = ([("data", data)] if data is not None else []) + [(title, samples)]
    panels = [(name, x.detach().cpu().double().flatten(1)[:max_points]) for name, x in panels]  # (n, D) each
    dim = panels[0][1].shape[1]
    fig = Figure(figsize=(4.2 * len(panels), 4.2), dpi=100)
    FigureCanvasAgg(fig)
    both = torch.cat([x[:, : min(dim, 2)] for _, x in panels])
    lo, hi = torch.quantile(both, 0.001, dim=0), torch.quantile(both, 0.999, dim=0)
    pad = 0.1 * (hi - lo) + 1e-6
    for i, (name, x) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        if dim == 1:
            ax.hist(x[:, 0].numpy(), bins=60, range=(float(lo[0] - pad[0]), float(hi[0] + pad[0])), color="C0")
        else:
            ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, alpha=0.5, color="C0" if name == "data" else "C1")
            ax.set_xlim(float(lo[0] - pad[0]), float(hi[0] + pad[0]))
            ax.set_ylim(float(lo[1] - pad[1]), float(hi[1] + pad[1]))
            ax.set_aspect("equal")
        ax.set_title(f"{name}, n = {len(x)}" + (f", coordinates 1-2 of {dim}" if dim > 2 else ""))
    fig.tight_layout()
    return fig


def line_plot(path: Union[str, os.PathLike], series: dict[str, tuple[list[float], list[float]]], x_label: str,
              y_label: str, title: str = "", log_x: bool = True, log_y: bool = False,
              x_ticks: Optional[list[float]] = None, marker: str = "o", dashed: tuple[str, ...] = ()) -> Path:
    """Save a PNG of one marked line per named series {name: (xs, ys)}, e.g. FID against model evaluations.
    With log_x, the x ticks are `x_ticks` (default: every x that occurs); marker "" draws plain lines; the series
    named in `dashed` are drawn dashed (one laid over another stays visible)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    fig = Figure(figsize=(6.0, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker=marker or None, label=name, linestyle="--" if name in dashed else "-")
    if log_x:
        ax.set_xscale("log")
        ticks = sorted(x_ticks or {x for xs, _ in series.values() for x in xs})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
