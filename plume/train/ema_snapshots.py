"""Snapshots of power-function EMAs written during training, and the post-hoc EMA built from them.

    <run>/ema-snapshots/sigma0.050-step0001000.safetensors   the EMA of width sigma_rel 0.05 after 1000 steps

Each file holds the averaged backbone weights, with metadata sigma_rel, gamma and step; it is written to a
temporary name and renamed, so a crash never leaves half a file. `posthoc_ema(run, sigma_rel)` combines the
snapshots into the EMA of any other width (plume.train.power_ema, EDM2 sec. 3), and `save_posthoc_run` writes it as
the EMA weights of a new run directory, which `plume sample` and `plume eval` take as they take any run.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import safetensors
import torch

from ..errors import PlumeError
from .checkpoint import (CHECKPOINT, PathLike, load_checkpoint, parse_tensors, refuse_existing_run, save_checkpoint,
                         tensor_bytes, write_file)
from .power_ema import gamma_of, profile, profile_weights

SNAPSHOTS = "ema-snapshots"
_NAME = re.compile(r"sigma(\d+\.\d+)-step(\d+)\.safetensors")


@dataclass(frozen=True)
class Snapshot:
    """One snapshot file: the EMA of width sigma_rel (exponent gamma) after `step` optimizer steps."""

    path: Path
    sigma_rel: float
    gamma: float
    step: int


def run_directory(run: PathLike) -> Path:
    """The run directory of a run or of its checkpoint directory."""
    path = Path(run)
    return path.parent if path.name in (CHECKPOINT, f"{CHECKPOINT}.old") else path


def snapshot_path(run: PathLike, sigma_rel: float, step: int) -> Path:
    return Path(run) / SNAPSHOTS / f"sigma{sigma_rel:.3f}-step{step:07d}.safetensors"


def write_snapshot(run: PathLike, state: dict[str, torch.Tensor], sigma_rel: float, step: int) -> Path:
    """Write the averaged weights `state` of the EMA of width sigma_rel after `step` steps (atomically)."""
    if step < 1:
        raise PlumeError(f"an EMA snapshot is taken after at least one step, got step {step}")
    path = snapshot_path(run, sigma_rel, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    meta = {"sigma_rel": repr(float(sigma_rel)), "gamma": repr(gamma_of(sigma_rel)), "step": str(int(step))}
    write_file(tmp, tensor_bytes(state, meta))  # fsynced, then renamed into place
    os.replace(tmp, path)
    return path


def read_snapshot(path: PathLike) -> dict[str, torch.Tensor]:
    """The weights in one snapshot file, or a PlumeError naming it."""
    path = Path(path)
    if not path.is_file():
        raise PlumeError(f"EMA snapshot {path} is missing")
    return parse_tensors(path.read_bytes(), path)


def list_snapshots(run: PathLike) -> list[Snapshot]:
    """Every snapshot of a run, sorted by width and step."""
    folder = run_directory(run) / SNAPSHOTS
    found = []
    for path in sorted(folder.glob("sigma*-step*.safetensors")) if folder.is_dir() else []:
        match = _NAME.fullmatch(path.name)
        if match is None:
            continue
        try:
            with safetensors.safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            found.append(Snapshot(path, float(meta["sigma_rel"]), float(meta["gamma"]), int(meta["step"])))
        except Exception as e:  # noqa: BLE001 - a bad header or missing metadata: name the file
            raise PlumeError(f"{path} is not a readable EMA snapshot (header or metadata sigma_rel/gamma/step): "
                             f"{e}") from None
    return sorted(found, key=lambda s: (s.sigma_rel, s.step))


@dataclass
class PosthocEMA:
    """The reconstructed EMA weights of width sigma_rel at `step`, the snapshots used with their weights, and the
    relative L2 error of the profile fit (plume.train.power_ema.profile_weights; below 1e-3 is a close fit)."""

    state: dict[str, torch.Tensor]
    sigma_rel: float
    step: int
    snapshots: list[Snapshot]
    weights: np.ndarray
    fit_error: float


def posthoc_ema(run: PathLike, sigma_rel: float, step: Optional[int] = None) -> PosthocEMA:
    """The EMA of width sigma_rel after `step` steps (default: the last snapshot's), as the least-squares combination
    of the run's snapshots taken at or before that step (EDM2 sec. 3.2)."""
    gamma = gamma_of(sigma_rel)
    snapshots = list_snapshots(run)
    if not snapshots:
        raise PlumeError(f"{run_directory(run) / SNAPSHOTS} holds no EMA snapshots: train with ema_profiles "
                         "(--ema-profiles 0.05,0.1) to keep them")
    last = max(s.step for s in snapshots)
    step = last if step is None else int(step)
    if step > last:
        raise PlumeError(f"the last EMA snapshot of {run} is at step {last}; an EMA after step {step} would average "
                         "weights no snapshot saw")
    used = [s for s in snapshots if s.step <= step]
    if not used:
        raise PlumeError(f"no EMA snapshot of {run} was taken at or before step {step} "
                         f"(the first is at step {min(s.step for s in snapshots)})")
    weights, error = profile_weights([s.step for s in used], [s.gamma for s in used], step, gamma)
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for snap, w in zip(used, weights):
        if abs(w) < 1e-12:
            continue  # a snapshot whose profile the target does not need
        for key, value in read_snapshot(snap.path).items():
            dtypes.setdefault(key, value.dtype)
            if value.is_floating_point():
                total[key] = total.get(key, 0.0) + float(w) * value.double()  # sum_i w_i theta_hat_i, in float64
            else:
                total[key] = value  # integer buffers are copies of the model's, not averages
    state = {k: v.to(dtypes[k]) for k, v in total.items()}
    return PosthocEMA(state, float(sigma_rel), step, used, weights, error)


def profile_picture(path: PathLike, result: PosthocEMA, points: int = 400) -> Path:
    """Save a PNG of the target EMA's averaging profile beside the profile of the snapshots' combination: how much
    each step's weights count, over the training so far (a close fit draws one line over the other)."""
    from .plots import line_plot

    t = result.step
    tau = np.linspace(0, t, points)  # (P,) steps
    target = profile(tau, t, gamma_of(result.sigma_rel))  # (P,)
    combined = sum(w * profile(tau, s.step, s.gamma) for s, w in zip(result.snapshots, result.weights))  # (P,)
    x = list(tau / t)
    made = f"{len(result.snapshots)} snapshots combined (fit error {result.fit_error:.1e})"
    series = {f"target: sigma_rel {result.sigma_rel:g}": (x, list(t * target)), made: (x, list(t * combined))}
    return line_plot(path, series,
                     "training step / step of the EMA", "weight of that step's weights (x step)",
                     title=f"post-hoc EMA profile at step {t}", log_x=False, marker="", dashed=(made,))


def save_posthoc_run(run: PathLike, out: PathLike, sigma_rel: float, step: Optional[int] = None) -> PosthocEMA:
    """Write a run directory `out` whose EMA weights are posthoc_ema(run, sigma_rel, step); its config.json is the
    run's, with a "posthoc_ema" record. It samples and evaluates like any run; it cannot be resumed (no optimizer)."""
    out = Path(out)
    refuse_existing_run(out)
    result = posthoc_ema(run, sigma_rel, step)
    checkpoint = load_checkpoint(run, optimizer=False)
    config: dict[str, Any] = {k: v for k, v in checkpoint.config.items()
                              if k not in ("files", "format_version", "plume_version")}
    config["posthoc_ema"] = {"source": str(run_directory(run)), "sigma_rel": result.sigma_rel, "step": result.step,
                             "snapshots": len(result.snapshots), "fit_error": result.fit_error}
    save_checkpoint(out / CHECKPOINT, config, checkpoint.model, result.state)
    return result


__all__ = ["SNAPSHOTS", "PosthocEMA", "Snapshot", "list_snapshots", "posthoc_ema", "profile_picture", "read_snapshot",
           "save_posthoc_run", "snapshot_path", "write_snapshot"]
