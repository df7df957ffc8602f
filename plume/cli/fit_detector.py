"""`plume fit-detector --table normal.csv --out RUN`: fit a table anomaly detector to normal rows alone
(plume.points.table_anomaly): a diffusion model of the rows, its representation (standardized or PCA-whitened
columns), weight decay, training length and smoothing chosen by the held-out likelihood of normal rows. Then
`plume anomaly RUN --table rows.csv --out DIR` scores rows in their own units (higher: more unusual).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ..points.table_anomaly import GRID, fit_table_detector
from .anomaly import read_table
from .common import number_list
from .common import set_threads


@click.command("fit-detector")
@click.option("--table", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A CSV of normal rows (numeric columns, an optional header row), in their own units.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@click.option("--representation", type=click.Choice(["auto", *GRID["representation"]]), default="auto",
              show_default=True, help="auto: whichever of standardize and pca has the better held-out likelihood.")
@click.option("--weight-decay", default=",".join(f"{v:g}" for v in GRID["weight_decay"]), show_default=True,
              help="Weight decays to choose from.")
@click.option("--steps", default=",".join(str(v) for v in GRID["steps"]), show_default=True,
              help="Training lengths to choose from.")
@click.option("--smoothing", default=",".join(f"{v:g}" for v in GRID["s_min"]), show_default=True,
              help="Smoothing levels s_min to choose from.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: torch's).")
def fit_detector(table: Path, out: Path, representation: str, weight_decay: str, steps: str, smoothing: str, seed: int,
                 threads: Optional[int]) -> None:
    """Fit a table anomaly detector to the normal rows of --table."""
    set_threads(threads)
    grid = {"representation": GRID["representation"] if representation == "auto" else (representation,),
            "weight_decay": tuple(number_list(weight_decay, float, "--weight-decay", 0, "numbers", "weight decay")),
            "steps": tuple(number_list(steps, int, "--steps", 1, "whole numbers", "training length")),
            "s_min": tuple(number_list(smoothing, float, "--smoothing", 0, "numbers", "level"))}
    if 0 in grid["s_min"]:
        raise click.BadParameter(f"{smoothing!r}: smoothing levels must be > 0", param_hint="--smoothing")
    _, rows, columns = read_table(table)
    detector = fit_table_detector(rows.numpy(), out, grid, columns=columns, seed=seed, log=click.echo)
    chosen = next(c for c in detector.cells if c.get("chosen"))
    click.echo(f"detector -> {out} ({chosen['representation']}, weight decay {chosen['weight_decay']:g}, "
               f"{chosen['steps']} steps, s_min {chosen['s_min']:g}); score rows with: plume anomaly {out} "
               f"--table ROWS.csv --out DIR")
