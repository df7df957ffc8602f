"""Exact resume: a run's checkpoint checked against this run's settings and loaded into its weights, EMA, power
EMAs (their snapshots at the checkpoint's step), optimizer and loss scaler.

No random state is saved: the batches of step k are a function of (seed, k) (plume.train.batches) and the learning
rate a function of k, so loading the state after step k and computing steps k, k + 1, ... gives the weights of an
uninterrupted run, as long as the options that shape those steps are the same; every training option but
RESUMABLE_CHANGES must therefore match the checkpoint's.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ..errors import PlumeError
from .checkpoint import check_state, find_checkpoint, load_weights
from .config import RESUMABLE_CHANGES, TrainConfig
from .ema import EMA
from .ema_snapshots import read_snapshot, snapshot_path
from .power_ema import PowerEMA
from .sharding import optimizer_state_like, sharded_like
from .trainable import Trainable


def has_checkpoint(out: Path) -> bool:
    """Whether the run folder `out` holds a checkpoint."""
    try:
        find_checkpoint(out)
        return True
    except PlumeError:
        return False


def resume_from(out: Path, record: dict[str, Any], trainable: Trainable, ema: EMA, optimizer: torch.optim.Optimizer,
                scaler: Optional[torch.amp.GradScaler], profiles: Sequence[PowerEMA] = ()) -> int:
    """Load the checkpoint in `out` into the trainable's network, the EMA, the power EMAs, the optimizer and the
    scaler after checking it was made with these settings (`record`: this run's config.json entries); its step."""
    ckpt = trainable.load(out)
    check_resumable(out, ckpt.path / "config.json", ckpt.config, record, trainable.record())
    if ckpt.ema is None or ckpt.optimizer is None:
        raise PlumeError(f"{ckpt.path} has no EMA or optimizer state, so training cannot resume from it")
    network = trainable.network
    load_weights(network, sharded_like(ckpt.model, network.state_dict()),
                 ckpt.path / "model.safetensors")  # sharded_like: spread over the ranks under FSDP, else as is
    check_state(ema.state_dict(), ckpt.ema, ckpt.path / "ema.safetensors")
    ema.load_state_dict(sharded_like(ckpt.ema, ema.state_dict()))
    try:
        optimizer.load_state_dict(optimizer_state_like(ckpt.optimizer, optimizer))
    except (ValueError, KeyError, IndexError) as e:
        raise PlumeError(f"{ckpt.path / 'optimizer.safetensors'} does not fit this model's parameters: {e}") from None
    for profile in profiles if ckpt.step > 0 else ():  # at step 0 the first update overwrites them (beta_1 = 0)
        path = snapshot_path(out, profile.sigma_rel, ckpt.step)
        try:
            state = read_snapshot(path)
        except PlumeError as e:
            raise PlumeError(f"cannot resume the power-function EMA of width {profile.sigma_rel:g}: {e}") from None
        check_state(profile.state_dict(), state, path)
        profile.load_state_dict(sharded_like(state, profile.state_dict()))
    if scaler is not None and "scaler" in ckpt.config:
        scaler.load_state_dict(ckpt.config["scaler"])
    return ckpt.step


def check_resumable(out: Path, source: Path, saved: dict[str, Any], record: dict[str, Any],
                    model: dict[str, Any]) -> None:
    """Refuse a checkpoint config `saved` (read from `source`) that differs from this run's `record` in the model
    (the entries of `model`, the trainable's record), a training option a resume may not change, or the data; warn
    when the CPU thread count changed."""
    for key in model:
        if saved.get(key) != record[key]:
            raise PlumeError(f"cannot resume: {source} has {key} {saved.get(key)}, this run has {record[key]}")
    for f in fields(TrainConfig):
        default = json.loads(json.dumps(f.default))  # as config.json holds it (a tuple as a list)
        old, new = saved.get("training", {}).get(f.name, default), record["training"][f.name]  # newer: default
        if f.name not in RESUMABLE_CHANGES and old != new:
            raise PlumeError(f"cannot resume with {f.name}={new}: the run in {out} was trained with {f.name}={old}; "
                             f"an exact resume keeps every option but {', '.join(RESUMABLE_CHANGES)}")
    steps = saved.get("training", {}).get("steps"), record["training"]["steps"]
    if record["training"]["lr_schedule"] != "constant" and steps[0] != steps[1]:
        raise PlumeError(f"cannot resume with steps={steps[1]}: the {record['training']['lr_schedule']} learning-rate "
                         f"schedule of the run in {out} ends at steps={steps[0]}, so a changed step count changes it")
    for key in ("name", "shape", "size"):
        if saved.get("data", {}).get(key) != record["data"][key]:
            raise PlumeError(f"cannot resume: the run in {out} was trained on data with {key} "
                             f"{saved.get('data', {}).get(key)}, this data has {key} {record['data'][key]}")
    threads = saved.get("runtime", {}).get("cpu_threads"), record["runtime"]["cpu_threads"]
    if record["runtime"]["device"] == "cpu" and threads[0] not in (None, threads[1]):
        warnings.warn(f"resuming on {threads[1]} CPU threads; the run in {out} used {threads[0]}, and a different "
                      "thread count changes the last bits of CPU reductions, so the result will not match an "
                      f"uninterrupted run exactly (set {threads[0]} threads, --threads {threads[0]}, for that)")


__all__ = ["check_resumable", "has_checkpoint", "resume_from"]
