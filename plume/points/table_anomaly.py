"""An anomaly detector for tables, fitted to normal rows alone: -log p(x) under a diffusion model of those rows.

The score is the likelihood score of plume.tasks.anomaly (-log p_{s_min}, exact probability-flow ODE, Song et al.
2021), in the table's own units: the model is trained on z = (x - mu) W (plume.points.whitening), and

    score(x) = -log p_{s_min}(z) - log|det W|                   (change of variables)

With a few hundred normal rows, how well that density generalizes hangs on choices no rule of thumb settles: the
representation (columns standardized, or PCA-whitened), the MLP's weight decay and training length, and the
smoothing level s_min (a kernel bandwidth: plume.tasks.anomaly.choose_smoothing). `fit_table_detector` chooses all
of them by one label-free rule, the mean held-out -log p_x of normal rows set aside (VALIDATION of them, seeded)
-- comparable across representations thanks to the Jacobian term -- and then refits the chosen cell on every
normal row. No anomaly is needed, or used, to choose.

The refit run is an ordinary Plume run: its config.json's data record holds the whitening and s_min, so
`plume anomaly RUN --table rows.csv` scores raw rows with it, and `load_table_detector(RUN)` gives it back.
"""
from __future__ import annotations

import copy
import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..images.sets import holdout_split
from .whitening import KINDS, Whitening
from ..errors import PlumeError
from ..recipes import build_recipe
from .modality import VECTOR_RECIPE
from ..tasks.anomaly import likelihood_scores

VALIDATION, VALIDATION_SEED = 0.2, 1
LEARNING_RATE = 2e-3
GRID = dict(representation=KINDS, weight_decay=(0.0, 2.0, 8.0), steps=(500, 2000), s_min=(0.1, 0.2, 0.3))


@dataclass
class TableDetector:
    """A fitted detector: `scores(rows)` gives -log p(x) in nats per row (higher is more unusual). `denoiser` is a
    Denoiser (or any model function of z, with `process` given) of the whitened rows."""

    denoiser: Any
    whitening: Whitening
    s_min: float
    cells: list[dict[str, Any]] = field(default_factory=list)  # every grid cell with its validation -log p_x
    process: Any = None  # default: the denoiser's

    def scores(self, rows: "np.ndarray | torch.Tensor", batch_size: int = 256, progress: bool = False) -> torch.Tensor:
        """-log p_{s_min}(x) (N,) for raw rows (N, D), float64 on the CPU."""
        z = self.whitening(rows)  # (N, D)
        process = self.process if self.process is not None else self.denoiser.process
        nll = likelihood_scores(self.denoiser, process, z, self.s_min, batch_size=batch_size, progress=progress)
        return nll.cpu() - self.whitening.log_abs_det  # (N,)

    def record(self) -> dict[str, Any]:
        """What a run's config.json keeps of it (data record, key "table_detector")."""
        return {"whitening": self.whitening.to_dict(), "s_min": self.s_min,
                "cells": [dict(c) for c in self.cells]}


def fit_table_detector(rows: "np.ndarray | torch.Tensor", out: "str | Path", grid: Optional[dict[str, Sequence]] = None,
                       columns: Sequence[str] = (), seed: int = 0, progress: bool = True,
                       log: Callable[[str], None] = print) -> TableDetector:
    """Choose representation, weight decay, steps and s_min by the held-out likelihood of normal `rows` (N, D) (module
    doc), refit the chosen model on all rows into run directory `out`, and return the detector. `grid` overrides
    entries of GRID; `columns` names the columns in error messages."""
    from ..train import load_denoiser, train, train_config
    from ..train.checkpoint import refuse_existing_run

    refuse_existing_run(out)
    x = np.asarray(rows, dtype=np.float64)
    if x.ndim != 2 or len(x) < 10:
        raise PlumeError(f"a table detector needs normal rows shaped (N, D) with N >= 10, got {list(x.shape)}")
    grid = {**GRID, **(grid or {})}
    fit_pos, val_pos = holdout_split(len(x), VALIDATION, VALIDATION_SEED)
    recipe = copy.deepcopy(VECTOR_RECIPE)

    def fitted(z: torch.Tensor, directory: Path, weight_decay: float, steps: int, record: Optional[dict] = None) -> Any:
        """The recipe's MLP trained on z (N, D) into `directory` (config.json's data record gets `record`), its EMA
        weights loaded in float64: every cell is judged with the weights the detector scores with."""
        denoiser = build_recipe(recipe, (x.shape[1],), seed=seed)
        training = {**recipe["training"], "steps": steps, "lr": LEARNING_RATE, "weight_decay": weight_decay,
                    "sample_count": 16, "checkpoint_every": steps, "seed": seed}
        info = {"name": "table", "n": len(z), "shape": [int(x.shape[1])], **(record or {})}
        train(denoiser, z.float(), directory, train_config(training), data_info=info, progress=progress)
        return load_denoiser(directory, ema=True).double()

    cells = []
    with tempfile.TemporaryDirectory(prefix="plume-table-detector-") as scratch:
        for kind in grid["representation"]:
            whitening = Whitening.fit(x[fit_pos], kind, columns)
            z_fit, z_val = whitening(x[fit_pos]), whitening(x[val_pos])  # (F, D), (V, D)
            for weight_decay, steps in itertools.product(grid["weight_decay"], grid["steps"]):
                denoiser = fitted(z_fit, Path(scratch) / f"{kind}-{weight_decay:g}-{steps}", weight_decay, steps)
                for s_min in grid["s_min"]:
                    nll = float(likelihood_scores(denoiser, denoiser.process, z_val, s_min).mean())
                    cells.append({"representation": kind, "weight_decay": float(weight_decay), "steps": int(steps),
                                  "s_min": float(s_min), "validation_nll": nll - whitening.log_abs_det})
                    log(f"{kind}, weight decay {weight_decay:g}, {steps} steps, s_min {s_min:g}: validation "
                        f"-log p {cells[-1]['validation_nll']:.3f}")
    best = min(cells, key=lambda c: c["validation_nll"])
    best["chosen"] = True
    log(f"chosen: {best['representation']}, weight decay {best['weight_decay']:g}, {best['steps']} steps, "
        f"s_min {best['s_min']:g}; refitting on all {len(x)} rows -> {out}")
    whitening = Whitening.fit(x, best["representation"], columns)
    detector = TableDetector(None, whitening, best["s_min"], cells)
    detector.denoiser = fitted(whitening(x), Path(out), best["weight_decay"], best["steps"],
                               {"table_detector": detector.record()})
    return detector


def load_table_detector(run: "str | Path", ema: bool = True, device: "str | torch.device" = "cpu") -> TableDetector:
    """The detector that fit_table_detector wrote to `run` (its EMA weights by default), in float64."""
    from ..train import load_denoiser, read_config

    record = read_config(run).get("data", {}).get("table_detector")
    if record is None:
        raise PlumeError(f"{run} is not a table detector (its config.json has no data.table_detector record; "
                         "fit one with plume.points.table_anomaly.fit_table_detector or plume fit-detector)")
    whitening = Whitening.from_dict(record["whitening"], source=f"{run}: data.table_detector.whitening")
    denoiser = load_denoiser(run, ema=ema, device=device).double()
    return TableDetector(denoiser, whitening, float(record["s_min"]), list(record.get("cells", [])))


__all__ = ["GRID", "TableDetector", "fit_table_detector", "load_table_detector"]
