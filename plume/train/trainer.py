"""The training loop: AdamW, LR warm-up, gradient clipping and accumulation, EMA, step and time budgets,
atomic checkpoints, exact resume, a progress bar, a loss log and a picture of samples at the end.

Exact resume without saved RNG state: the minibatch, times and noise of micro-batch j of step k come from a
generator seeded by (seed, k, j), and the learning rate is a function of k, so a run resumed from the
checkpoint at step k computes the same steps k, k + 1, ... as an uninterrupted run.
The loss is the denoiser's per-sample weighted loss (plume.denoiser.Denoiser.loss), averaged over the batch.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from ..denoiser import Denoiser
from ..errors import PlumeError
from ..sampling import sample
from .checkpoint import CHECKPOINT, check_state, denoiser_config, find_checkpoint, load_checkpoint, load_weights, save_checkpoint
from .ema import EMA
from .plots import scatter_plot


@dataclass
class TrainConfig:
    """Training options, saved in config.json. batch_size is per micro-batch; each step sums `accumulate` of them."""

    steps: int = 2000
    minutes: Optional[float] = None
    batch_size: int = 512
    accumulate: int = 1
    lr: float = 5e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 25
    sample_count: int = 2000
    sampler: str = "dpm++2m"
    sample_steps: int = 20

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "accumulate", "checkpoint_every", "log_every", "sample_count", "sample_steps")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise PlumeError(f"training option {name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "warmup_steps", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise PlumeError(f"training option {name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise PlumeError(f"training option ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.minutes is not None and not self.minutes > 0:
            raise PlumeError(f"training option minutes must be > 0, got {self.minutes}")


def train_config(options: dict[str, Any], source: str = "training options") -> TrainConfig:
    """A TrainConfig from a dict (e.g. config.json's "training"); unknown names list the valid ones."""
    valid = [f.name for f in fields(TrainConfig)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise PlumeError(f"{source}: unknown training option {unknown[0]!r}; valid options: {', '.join(valid)}")
    return TrainConfig(**options)


# Options a resumed run may change; every other one must match the checkpoint's for the resume to be exact.
RESUMABLE_CHANGES = ("steps", "minutes", "checkpoint_every", "log_every", "sample_count", "sampler", "sample_steps")


@dataclass
class TrainResult:
    """What a call to train() did."""

    run_dir: Path
    start_step: int
    step: int
    seconds: float
    last_loss: float
    samples_png: Optional[Path]


def check_data(data: Any, cond: Any = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Validate training data (N, ...) and optional labels (N,); returns float32 data and int64 labels."""
    try:
        data = torch.as_tensor(data)
    except (TypeError, ValueError, RuntimeError) as e:
        raise PlumeError(f"data must be a tensor or array shaped (N, ...), got {type(data).__name__}: {e}") from None
    if data.ndim < 2:
        raise PlumeError(f"data must be shaped (N, D) with one example per row, got shape {tuple(data.shape)}"
                         + (" (for scalar data use data[:, None])" if data.ndim == 1 else ""))
    if data.shape[0] == 0:
        raise PlumeError("data is empty (0 rows)")
    if not data.is_floating_point():
        raise PlumeError(f"data must be floating point, got {data.dtype}; scale it to floats first")
    bad = ~torch.isfinite(data).flatten(1).all(1)  # (N,)
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        kind = "NaN" if bool(torch.isnan(data[row]).any()) else "inf"
        raise PlumeError(f"data row {row} contains {kind} ({int(bad.sum())} non-finite rows in all); "
                         "remove or impute them before training")
    if cond is not None:
        cond = torch.as_tensor(cond)
        if cond.shape != (data.shape[0],) or cond.is_floating_point():
            raise PlumeError(f"labels must be integers shaped ({data.shape[0]},) like the data's rows, "
                             f"got {cond.dtype} {tuple(cond.shape)}")
        cond = cond.long()
    return data.float(), cond


def step_generator(seed: int, step: int, micro: int = 0) -> torch.Generator:
    """The CPU generator of micro-batch `micro` of step `step`: a function of (seed, step, micro) alone."""
    state = np.random.SeedSequence([int(seed), int(step), int(micro)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up over warmup_steps (Goyal et al. 2017), then constant."""
    return config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))


def train_step(denoiser: Denoiser, optimizer: torch.optim.Optimizer, data: torch.Tensor, cond: Optional[torch.Tensor],
               config: TrainConfig, step: int) -> tuple[float, float]:
    """One optimizer step over `accumulate` micro-batches; returns (mean loss, gradient norm before clipping)."""
    device = next(denoiser.parameters()).device
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step)
    total = 0.0
    for micro in range(config.accumulate):
        g = step_generator(config.seed, step, micro)
        index = torch.randint(len(data), (config.batch_size,), generator=g)  # (B,) drawn with replacement
        x0 = data[index].to(device)  # (B, ...)
        c = cond[index].to(device) if cond is not None else None
        loss = denoiser.loss(x0, generator=g, cond=c).mean() / config.accumulate
        loss.backward()
        total += float(loss.detach())
    if not math.isfinite(total):
        raise PlumeError(f"the loss became {total} at step {step}; lower the learning rate (now {config.lr}) "
                         "or the gradient clip")
    max_norm = config.grad_clip if config.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(denoiser.parameters(), max_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total, float(grad_norm)


def train(denoiser: Denoiser, data: Any, out: Union[str, os.PathLike], config: Optional[TrainConfig] = None,
          cond: Any = None, data_info: Optional[dict[str, Any]] = None, resume: bool = False,
          progress: bool = True) -> TrainResult:
    """Train `denoiser` on `data` (N, ...) into run directory `out`, from scratch or resuming its checkpoint.

    `out` gets checkpoint/ (see plume.train.checkpoint), loss.csv and, for vector data, samples.png.
    data_info (e.g. {"name": "moons", "n": 50000, "seed": 0}) is recorded in config.json.
    """
    config = config or TrainConfig()
    data, cond = check_data(data, cond)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.AdamW(denoiser.backbone.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  foreach=True)  # fused multi-tensor update, also on CPU
    ema = EMA(denoiser.backbone, config.ema_decay)
    run_config = {**denoiser_config(denoiser), "training": asdict(config),
                  "data": {**(data_info or {"name": "tensor"}), "shape": list(data.shape[1:]), "size": len(data)}}
    run_config = json.loads(json.dumps(run_config))  # as config.json will hold it (tuples -> lists)
    if resume:
        start = _resume(out, run_config, denoiser, ema, optimizer)
    elif _has_checkpoint(out):
        raise PlumeError(f"{out} already holds a checkpoint; pass resume=True (--resume) to continue it, "
                         "or choose another output directory")
    else:
        start = 0
    log = LossLog(out / "loss.csv", start)
    denoiser.train()
    began, step, last, losses = time.monotonic(), start, math.nan, []
    bar = tqdm(total=config.steps, initial=start, desc=f"train {out.name}", unit="step", disable=not progress,
               dynamic_ncols=True)
    try:
        while step < config.steps:
            if config.minutes is not None and time.monotonic() - began > 60.0 * config.minutes:
                bar.write(f"time budget of {config.minutes} min reached at step {step}")
                break
            loss, grad_norm = train_step(denoiser, optimizer, data, cond, config, step)
            ema.update(denoiser.backbone, step)
            step += 1
            losses.append(loss)
            bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                last = sum(losses) / len(losses)
                log.write(step, last, learning_rate(config, step - 1), grad_norm)
                bar.set_postfix(loss=f"{last:.4f}")
                losses = []
            if step % config.checkpoint_every == 0 and step < config.steps:
                save_checkpoint(out / CHECKPOINT, {**run_config, "step": step}, denoiser.backbone, ema, optimizer)
    finally:
        bar.close()
        log.close()
    if step > start or not _has_checkpoint(out):
        save_checkpoint(out / CHECKPOINT, {**run_config, "step": step}, denoiser.backbone, ema, optimizer)
    png = plot_samples(denoiser, ema, data, out / "samples.png", config) if data.ndim == 2 else None
    return TrainResult(out, start, step, time.monotonic() - began, last, png)


def _has_checkpoint(out: Path) -> bool:
    try:
        find_checkpoint(out)
        return True
    except PlumeError:
        return False


def _resume(out: Path, run_config: dict[str, Any], denoiser: Denoiser, ema: EMA, optimizer: torch.optim.Optimizer) -> int:
    """Load the run's checkpoint into denoiser, EMA and optimizer after checking it was made with these settings."""
    ckpt = load_checkpoint(out)
    source, saved = ckpt.path / "config.json", ckpt.config
    for key in ("backbone", "denoiser"):
        if saved.get(key) != run_config[key]:
            raise PlumeError(f"cannot resume: {source} has {key} {saved.get(key)}, this run has {run_config[key]}")
    for f in fields(TrainConfig):
        old, new = saved.get("training", {}).get(f.name), run_config["training"][f.name]
        if f.name not in RESUMABLE_CHANGES and old != new:
            raise PlumeError(f"cannot resume with {f.name}={new}: the run in {out} was trained with {f.name}={old}; "
                             f"an exact resume keeps every option but {', '.join(RESUMABLE_CHANGES)}")
    for key in ("name", "shape", "size"):
        if saved.get("data", {}).get(key) != run_config["data"][key]:
            raise PlumeError(f"cannot resume: the run in {out} was trained on data with {key} "
                             f"{saved.get('data', {}).get(key)}, this data has {key} {run_config['data'][key]}")
    if ckpt.ema is None or ckpt.optimizer is None:
        raise PlumeError(f"{ckpt.path} has no EMA or optimizer state, so training cannot resume from it")
    load_weights(denoiser.backbone, ckpt.model, ckpt.path / "model.safetensors")
    check_state(ema.state_dict(), ckpt.ema, ckpt.path / "ema.safetensors")
    ema.load_state_dict(ckpt.ema)
    try:
        optimizer.load_state_dict(ckpt.optimizer)
    except (ValueError, KeyError, IndexError) as e:
        raise PlumeError(f"{ckpt.path / 'optimizer.safetensors'} does not fit this model's parameters: {e}") from None
    return ckpt.step


@torch.no_grad()
def plot_samples(denoiser: Denoiser, ema: EMA, data: torch.Tensor, path: Path, config: TrainConfig) -> Path:
    """Draw config.sample_count samples from the EMA weights and save them beside the data as a PNG."""
    model = copy.deepcopy(denoiser).eval()
    ema.copy_to(model.backbone)
    device = next(model.parameters()).device
    x = sample(model, model.process, (config.sample_count, *data.shape[1:]), sampler=config.sampler,
               steps=config.sample_steps, prediction="x0", seed=config.seed, device=device)
    return scatter_plot(path, x, data, title=f"samples ({config.sampler}, {config.sample_steps} steps)")


class LossLog:
    """loss.csv: step, loss (mean since the last row), lr, grad_norm, time; a resume drops rows past its step."""

    COLUMNS = ("step", "loss", "lr", "grad_norm", "time")

    def __init__(self, path: Path, start: int):
        rows = []
        if start > 0 and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= start]
        self.file = open(path, "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.COLUMNS, extrasaction="ignore")
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.file.flush()

    def write(self, step: int, loss: float, lr: float, grad_norm: float) -> None:
        self.writer.writerow({"step": step, "loss": f"{loss:.6g}", "lr": f"{lr:.6g}", "grad_norm": f"{grad_norm:.6g}",
                              "time": f"{time.time():.3f}"})
        self.file.flush()

    def close(self) -> None:
        self.file.close()
