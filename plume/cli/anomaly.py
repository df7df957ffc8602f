"""`plume anomaly RUN`: anomaly scores of a folder of images (or a CSV table) under a run (plume.tasks.anomaly).

Writes OUT/scores.csv (one row per input in file order: file or row, score, rank with 1 the most anomalous, the
per-level errors r_s), OUT/heatmaps/*.png (images: each input beside its error map), OUT/histogram.png and
OUT/anomaly.json (the settings and the level statistics). With --score likelihood the score is instead
-log p_s(x) by the probability-flow ODE at the smoothing level --smoothing (no heat-maps; plume.tasks.anomaly).
Reconstruction scores are standardized per level by the run's own
training data (its first --calibrate examples, rebuilt from config.json) when Plume can rebuild it; otherwise
(e.g. a run trained from Python on a table) they are the plain mean of the per-level errors, with a note.
A table detector (`plume fit-detector`, plume.points.table_anomaly) takes --table rows in their own units and scores
them by -log p(x) with the whitening and smoothing it chose.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
import torch

from ..images.files import Failures, decode_item, folder_items
from ..images.grid import _save_png
from ..images.sets import images_to_tensor
from ..modality import modality_of
from ..errors import PlumeError
from ..samplers import SAMPLERS
from ..tasks.anomaly import (DEFAULT_LEVELS, LevelStats, anomaly_scores, check_levels, level_stats,
                             likelihood_scores)
from ..images.tasks.anomaly_plots import heatmap_pairs, score_histogram
from ..points.table_anomaly import load_table_detector
from ..run import load, pick_device
from ..train import read_config
from .common import set_threads


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of images to score (searched recursively), for an image run.")
@click.option("--table", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A CSV table to score, one row per input and the run's number of numeric columns (an optional "
              "header row), in the scale the run was trained on (a table detector: in the rows' own units); for a "
              "vector run.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--score", "score_kind", type=click.Choice(["reconstruction", "likelihood"]), default=None,
              help="reconstruction (the default): the error after noising to --levels and denoising back; "
              "likelihood: -log p(x) of the data smoothed to --smoothing, by the probability-flow ODE (exact trace "
              "up to 64 dimensions; best for tables, slow for images). A table detector (plume fit-detector) "
              "scores by its own likelihood, with its own whitening and smoothing.")
@click.option("--smoothing", type=click.FloatRange(min=0, min_open=True),
              help="With --score likelihood: the noise level s_min the density is smoothed to (default 0.2; see "
              "plume.tasks.anomaly.choose_smoothing to pick it on held-out normal examples). A table detector uses "
              "the s_min it chose unless this is given.")
@click.option("--levels", default=",".join(f"{s:g}" for s in DEFAULT_LEVELS), show_default=True,
              help="Noise levels t0 as scaled levels s = sigma / alpha, comma-separated.")
@click.option("--seeds", type=click.IntRange(min=1), default=4, show_default=True, help="Noise draws per level.")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed (see plume.tasks.anomaly).")
@click.option("--steps", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sampler steps back from each level (1: the denoiser's posterior mean, one call).")
@click.option("--sampler", type=click.Choice(list(SAMPLERS)), default="dpm++2m", show_default=True)
@click.option("--calibrate", type=click.IntRange(min=0), default=256, show_default=True,
              help="Training examples to standardize each level's errors by (0: plain mean over levels).")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop", show_default=True,
              help="An unreadable image file: stop, or skip it with a warning.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: torch's).")
def anomaly(run: Path, images: Optional[Path], table: Optional[Path], out: Path, score_kind: Optional[str],
            smoothing: Optional[float],
            levels: str, seeds: int, seed: int, steps: int, sampler: str, calibrate: int, on_error: str,
            batch_size: int, weights: str, device: str,
            threads: Optional[int]) -> None:
    """Score how unusual each image of --images (or row of --table) is under the run RUN."""
    if (images is None) == (table is None):
        raise click.UsageError("give --images FOLDER (an image run) or --table FILE.csv (a vector run), one of them")
    set_threads(threads)
    level_list = _parse_levels(levels)
    info = read_config(run).get("data", {})  # the run's data: its shape, and what calibration rebuilds
    shape = tuple(info.get("shape", []))
    if images is not None and len(shape) != 3:
        raise PlumeError(f"the run {run} models data shaped {list(shape)}, not images (C, H, W); use --table")
    if table is not None and len(shape) != 1:
        raise PlumeError(f"the run {run} models data shaped {list(shape)}, not vectors (D,); use --images")
    if table is not None and "table_detector" in info:  # a run of plume fit-detector: raw rows, its own score
        return _detector_command(run, table, out, score_kind, smoothing, batch_size, weights, device)
    score_kind = score_kind or "reconstruction"
    if images is not None:
        names, x0 = read_image_folder(images, shape, on_error)
    else:
        names, x0, _ = read_table(table, shape[0])
        x0 = x0.float()  # (N, D), in the scale the run was trained on
    denoiser = load(run, weights=weights, device=device).denoiser
    place = next(denoiser.parameters()).device
    if score_kind == "likelihood":
        return _likelihood_command(denoiser, run, names, x0.to(place), out, 0.2 if smoothing is None else smoothing,
                                   batch_size)
    options = dict(levels=level_list, seeds=seeds, seed=seed, steps=steps, sampler=sampler, batch_size=batch_size)
    stats = _calibration(denoiser, run, info, calibrate, options)
    result = anomaly_scores(denoiser, denoiser.process, x0.to(place), stats=stats, progress=True, **options)
    out.mkdir(parents=True, exist_ok=True)
    write_scores(out / "scores.csv", names, result.scores, result.level_errors, result.levels)
    if images is not None:
        folder = out / "heatmaps"
        for name, pair in zip(names, heatmap_pairs(x0, result.maps)):
            _save_png(pair, folder / (Path(name).with_suffix("").as_posix().replace("/", "__") + ".png"))
        click.echo(f"heat-maps (input | squared error, one colour scale) -> {folder}")
    score_histogram(out / "histogram.png", {"inputs": result.scores.tolist()},
                    title=f"{len(names)} inputs, levels {levels}")
    (out / "anomaly.json").write_text(json.dumps({"run": str(run), **options, "levels": list(level_list),
                                                  "stats": stats.to_dict() if stats else None}, indent=2))
    top = int(result.scores.argmax())
    click.echo(f"{len(names)} scores -> {out / 'scores.csv'}; most anomalous: {names[top]} "
               f"({float(result.scores[top]):.4g}); histogram -> {out / 'histogram.png'}")


def _likelihood_command(denoiser: Any, run: Path, names: list[str], x0: torch.Tensor, out: Path, smoothing: float,
                        batch_size: int) -> None:
    """--score likelihood: scores.csv (file, score = -log p in nats, rank), histogram.png, anomaly.json."""
    scores = likelihood_scores(denoiser.double(), denoiser.process, x0, smoothing, batch_size=batch_size,
                               progress=True).cpu()  # (N,)
    _write_likelihood(out, names, scores, {"run": str(run), "score": "likelihood", "smoothing": smoothing,
                                           "batch_size": batch_size}, "inputs")


def _detector_command(run: Path, table: Path, out: Path, score_kind: Optional[str], smoothing: Optional[float],
                      batch_size: int, weights: str, device: str) -> None:
    """--table on a table detector (plume fit-detector): -log p(x) of the raw rows in nats, with its whitening and
    s_min (plume.points.table_anomaly)."""
    if score_kind == "reconstruction":
        raise click.UsageError(f"{run} is a table detector: it scores by likelihood only (leave out --score)")
    detector = load_table_detector(run, ema=weights == "ema", device=pick_device(device))
    if smoothing is not None and smoothing != detector.s_min:
        click.echo(f"note: smoothing {smoothing:g} instead of the detector's chosen {detector.s_min:g}", err=True)
        detector.s_min = smoothing
    names, rows, _ = read_table(table, detector.whitening.dim)
    scores = detector.scores(rows, batch_size=batch_size, progress=True)  # (N,)
    _write_likelihood(out, names, scores, {"run": str(run), "score": "likelihood", "detector": True,
                                           "smoothing": detector.s_min,
                                           "representation": detector.whitening.kind}, "rows")


def _write_likelihood(out: Path, names: list[str], scores: torch.Tensor, settings: dict[str, Any], kind: str) -> None:
    """scores.csv, histogram.png (log scale) and anomaly.json (`settings`) for -log p scores (N,) of `names`."""
    out.mkdir(parents=True, exist_ok=True)
    write_scores(out / "scores.csv", names, scores, scores.new_zeros(0, len(scores)), ())
    score_histogram(out / "histogram.png", {"inputs": scores.tolist()}, title=f"{len(names)} {kind}, -log p",
                    x_label="-log p", log_spread=True)
    (out / "anomaly.json").write_text(json.dumps(settings, indent=2))
    top = int(scores.argmax())
    click.echo(f"{len(names)} scores (-log p, nats) -> {out / 'scores.csv'}; most anomalous: {names[top]} "
               f"({float(scores[top]):.4g}); histogram -> {out / 'histogram.png'}")


def _parse_levels(text: str) -> tuple[float, ...]:
    try:
        return check_levels([float(v) for v in text.split(",")])
    except ValueError as error:
        raise click.BadParameter(f"{text!r}: expected noise levels > 0 like 0.2,0.4,0.6 ({error})",
                                 param_hint="--levels") from None


def _calibration(denoiser: Any, run: Path, info: dict[str, Any], count: int,
                 options: dict[str, Any]) -> Optional[LevelStats]:
    """Level statistics on the first `count` training examples of the run (rebuilt from its data `info`), or None
    (with a note) if unavailable."""
    if count == 0:
        return None
    try:
        data = modality_of(info).data_from_info(info, source=str(run / "config.json")).data  # (N, ...)
    except PlumeError:
        click.echo(f"note: Plume cannot rebuild the training data of {run}; scores are the plain mean of the "
                   "per-level errors (not standardized)", err=True)
        return None
    pick = torch.linspace(0, len(data) - 1, min(count, len(data))).round().long()  # evenly spaced examples
    return level_stats(denoiser, denoiser.process, data[pick].to(next(denoiser.parameters()).device), **options)


def read_image_folder(folder: Path, shape: tuple[int, ...], on_error: str) -> tuple[list[str], torch.Tensor]:
    """Names (relative paths) and images (N, C, H, W) in [-1, 1] of every image file under folder, resized to the
    run's H x W (centre square, Lanczos; with a note); a file with the wrong channel count is refused."""
    channels, size = shape[0], shape[1]
    items, _ = folder_items(folder)
    fail = Failures(on_error, str(folder))  # stop: a PlumeError naming the file; skip: a warning per file
    names, pixels, resized = [], [], 0
    for item in items:
        try:
            with item.open() as image:
                other_size = image.size != (size, size)
            one = decode_item(item, size)[None]  # (1, S, S, C)
        except Exception as error:  # noqa: BLE001 - any decoder failure is the file's fault
            fail(item, error)
            continue
        resized += other_size
        if one.shape[-1] != channels:
            kind = {1: "gray", 3: "colour (RGB)"}
            raise PlumeError(f"image {item.where} is {kind[one.shape[-1]]} but the run models "
                             f"{kind.get(channels, channels)} images; convert the images first")
        names.append(Path(item.where).relative_to(folder).as_posix())
        pixels.append(one)
    fail.summary(len(items))
    if not pixels:
        raise PlumeError(f"no readable image in {folder}")
    if resized:
        click.echo(f"note: {resized} of {len(names)} images are not {size}x{size}; their centre square is resized "
                   f"to {size}x{size}, the run's size", err=True)
    return names, images_to_tensor(np.concatenate(pixels))  # (N, C, H, W)


def read_table(path: Path, dim: Optional[int] = None) -> tuple[list[str], torch.Tensor, list[str]]:
    """Row names ("row 1", ...), rows (N, D) and column names (the header's, else "column 1", ...) of a numeric CSV
    file with an optional header row; D must be `dim` where given (the run's), else the first data row's."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    header = None
    if rows and not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise PlumeError(f"{path}: no data rows")
    dim = len(rows[0]) if dim is None else dim
    values = []
    for i, row in enumerate(rows, start=1):
        if len(row) != dim:
            raise PlumeError(f"{path}: data row {i} has {len(row)} columns, expected {dim}")
        bad = [j for j, c in enumerate(row) if not _is_number(c) or not math.isfinite(float(c))]
        if bad:
            where = f"column {bad[0] + 1}" + (f" ({header[bad[0]]!r})" if header and bad[0] < len(header) else "")
            raise PlumeError(f"{path}: data row {i}, {where}: {row[bad[0]]!r} is not a finite number")
        values.append([float(c) for c in row])
    columns = header if header and len(header) == dim else [f"column {j}" for j in range(1, dim + 1)]
    return ([f"row {i}" for i in range(1, len(values) + 1)], torch.tensor(values, dtype=torch.float64),  # (N, D)
            columns)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def write_scores(path: Path, names: list[str], scores: torch.Tensor, level_errors: torch.Tensor,
                 levels: tuple[float, ...]) -> Path:
    """scores.csv: name, score, rank (1: most anomalous), r_s per level; rows in input order."""
    rank = torch.empty(len(scores), dtype=torch.long)
    rank[scores.argsort(descending=True)] = torch.arange(1, len(scores) + 1)  # (N,)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "score", "rank"] + [f"error_at_{s:g}" for s in levels])
        for k, name in enumerate(names):
            w.writerow([name, f"{float(scores[k]):.6g}", int(rank[k])]
                       + [f"{float(level_errors[l, k]):.6g}" for l in range(len(levels))])
    return path
