"""The one training loop, for every modality and every model: a Denoiser, or any Trainable (plume.train.trainable,
e.g. the autoencoder of latent diffusion, plume.images.latent.training). AdamW, LR warm-up and schedule, gradient
clipping and accumulation, EMA, mixed precision on CUDA (bf16, or fp16 with loss scaling), step and time budgets,
atomic checkpoints (periodic, at the end, and on Ctrl-C / SIGTERM), exact resume, a progress bar, a loss log,
TensorBoard scalars and pictures (previews and one at the end).

The loop reads straight through over a `TrainingState`, the run's pieces built once by `open_run` (out folder, options,
trainable, data, place among the ranks, optimizer, scaler, EMAs, config.json record, log), and a `Tally`, its
counters; `snapshot`, `save` and `write_picture` are the plain functions it calls on them.

Exact resume without saved RNG state: micro-batch j of step k is drawn from generators seeded by (seed, k, j)
(plume.train.batches, the trainable's draw), and the learning rate is a function of k, so a run resumed from the
checkpoint at step k computes the same steps k, k + 1, ... as an uninterrupted run (plume.train.resume). Dropout
draws from the global generator, which each micro-batch seeds from its own key inside torch.random.fork_rng (so the
caller's global random state is left as it was). A signal stops the loop between two steps, never inside one. The
loss is the trainable's per-sample "loss", averaged over the batch (plume.train.step).

Under torchrun the loop runs on every rank with DDP (plume.train.distributed): `batch_size` is the global batch,
each rank computes its slice, and the batches (plume.train.batches) do not depend on the number of ranks.
A step whose loss or gradient norm is not finite (on any rank) leaves the weights unchanged; it is counted,
reported (progress bar, loss.csv's skipped_steps, TrainResult.skipped_steps) and after MAX_SKIPPED_IN_A_ROW in a
row the run stops with advice.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from ..denoiser import Denoiser
from ..errors import PlumeError
from ..progress import progress_bar
from .checkpoint import CHECKPOINT
from .config import LR_SCHEDULES, PARALLEL, PRECISIONS, RESUMABLE_CHANGES, TrainConfig, learning_rate, train_config
from .data import TrainingData, as_training_data
from .denoising import DenoisingLoss, as_trainable, preview
from .distributed import Distributed, from_environment, rank_device
from .ema import EMA
from .ema_snapshots import write_snapshot
from .logs import COLUMNS, RunLog
from .optimizer import adamw
from .power_ema import PowerEMA
from .resume import has_checkpoint, resume_from
from .sharding import full_state, shard_backbone
from .signals import StopOnSignal
from .step import StepResult, autocast_dtype, train_step
from .streaming import Prefetcher, StreamedData
from .trainable import Trainable

MAX_SKIPPED_IN_A_ROW = 10  # more non-finite steps in a row than this stop the run: it has diverged
READING_COLUMNS = ("decoded_per_second", "consumed_per_second")  # loss.csv's columns for streamed data


@dataclass
class TrainResult:
    """What a call to train() did."""

    run_dir: Path
    start_step: int
    step: int
    seconds: float
    last_loss: float
    samples_png: Optional[Path]  # the picture at the end (the trainable's picture_file); None on ranks other than 0
    skipped_steps: int = 0  # steps whose loss or gradient was not finite, so their update was skipped
    last_terms: dict[str, float] = field(default_factory=dict)  # the trainable's other loss terms, as last logged


@dataclass
class TrainingState:
    """A training run's pieces, built once by open_run; the loop reads them, only rank 0 has a log."""

    out: Path
    config: TrainConfig
    model: Union[Denoiser, Trainable]  # as given to train(): what train_step receives
    trainable: Trainable
    data: TrainingData
    place: Distributed
    sharded: bool  # FSDP: the weights, the optimizer's moments and the EMAs hold this rank's shards
    loss_module: torch.nn.Module  # the trainable, DDP-wrapped when several ranks train unsharded
    optimizer: torch.optim.Optimizer
    scaler: Optional[torch.amp.GradScaler]  # fp16's loss scaling
    ema: EMA
    profiles: list[PowerEMA]  # power-function EMAs, snapshotted for post-hoc EMA (EDM2)
    record: dict[str, Any]  # what config.json records, but the step
    start: int  # the step this call starts from (the checkpoint's when resuming)
    log: Optional[RunLog]


@dataclass
class Tally:
    """The loop's counters: the step, when this call began, the unskipped steps' loss terms since the last log line,
    the skipped steps (in all and in a row), and the terms' means at the last log line."""

    step: int
    began: float
    values: list[dict[str, float]] = field(default_factory=list)
    skipped: int = 0
    in_a_row: int = 0
    last: dict[str, float] = field(default_factory=lambda: {"loss": math.nan})
    reading: Optional[Prefetcher] = None  # the streamed data's reader, whose rates the log shows


def train(model: Union[Denoiser, Trainable], data: Any, out: Union[str, os.PathLike],
          config: Optional[TrainConfig] = None, cond: Any = None, data_info: Optional[dict[str, Any]] = None,
          resume: bool = False, progress: bool = True) -> TrainResult:
    """Train `model` (a Denoiser, or any Trainable) on `data` into run directory `out`, from scratch or resuming.

    `data` is a TrainingData object (e.g. plume.images.ImageData) or a tensor/array (N, ...) with optional labels
    `cond` (N,) (class labels, or token ids (N, T) for a text-conditioned backbone) and a description `data_info` (e.g. {"name": "moons", "n": 50000, "seed": 0}) for config.json.
    `out` gets checkpoint/ (the trainable's save; plume.train.checkpoint for a Denoiser), loss.csv, the picture at
    the end (samples.png for a Denoiser), and with config.preview_every previews/step-*.png; with
    config.tensorboard, tensorboard/ event files. Ctrl-C or SIGTERM stops between two steps, saves the checkpoint
    and raises TrainingInterrupted (a KeyboardInterrupt).
    """
    run = open_run(model, as_training_data(data, cond, data_info), Path(out), config or TrainConfig(), resume)
    config, place, network = run.config, run.place, run.trainable.network
    tally = Tally(run.start, time.monotonic())
    bar = progress_bar(total=config.steps, initial=run.start, desc=f"train {run.out.name}", unit="step",
                       enabled=progress and place.is_main, dynamic_ncols=True)
    say = bar.write if place.is_main else (lambda message: None)
    try:
        with StopOnSignal() as stop, data_stream(run) as tally.reading:
            while tally.step < config.steps:
                late = config.minutes is not None and time.monotonic() - tally.began > 60.0 * config.minutes
                if any_rank(place, late):  # every rank stops at the same step
                    say(f"time budget of {config.minutes} min reached at step {tally.step}")
                    break
                result = train_step(run.model, run.optimizer, run.data, config, tally.step, run.scaler, place,
                                    run.loss_module)
                run.ema.update(network, tally.step)
                for profile in run.profiles:
                    profile.update(network, tally.step)
                tally.step += 1
                step = tally.step
                if step % config.ema_snapshot_every == 0:
                    snapshot(run, step)
                bar.update(1)
                count(run, tally, result, say)
                if step % config.log_every == 0 or step == config.steps:
                    log_means(run, tally, result, bar)
                if step % config.checkpoint_every == 0 and step < config.steps:
                    save(run, step)
                if config.preview_every and step % config.preview_every == 0 and step < config.steps:
                    write_picture(run, step, run.out / "previews" / f"step-{step:07d}.png")
                    place.barrier()
                    run.trainable.train()
                if any_rank(place, stop.signal is not None):  # a signal reaches the ranks at different steps
                    save(run, step)
                    raise TrainingInterrupted(step, stop.signal or "a signal to another rank", run.out)
    finally:
        bar.close()
    return finish(run, tally)


def open_run(model: Union[Denoiser, Trainable], data: TrainingData, out: Path, config: TrainConfig,
             resume: bool) -> TrainingState:
    """Every piece of a run, on this rank's device: the trainable (sharded under FSDP, DDP-wrapped under DDP),
    optimizer, scaler, EMAs and log, with the checkpoint in `out` loaded when resuming."""
    trainable = as_trainable(model)
    out.mkdir(parents=True, exist_ok=True)
    given = next(trainable.network.parameters()).device
    place = from_environment(given)  # torchrun's process group, when launched by it
    device = rank_device(given, place)
    trainable.to(device)
    place.slice(config.batch_size)  # a batch that does not split over the ranks fails before any work
    autocast_dtype(config.precision, device)  # rejects fp16 off CUDA before any work
    record = {**trainable.record(), "training": asdict(config),
              "data": {**data.info(), "shape": list(data.shape), "size": len(data)},
              "runtime": {"device": device.type, "cpu_threads": torch.get_num_threads(),
                          "world_size": place.world_size}}
    record = json.loads(json.dumps(record))  # as config.json will hold it (tuples -> lists)
    sharded = place.active and config.parallel == "fsdp"
    if config.channels_last and len(data.shape) == 3 and not sharded:  # FSDP2 shards contiguous weights only
        trainable.to(memory_format=torch.channels_last)  # conv weights NHWC, as the batches (DenoisingLoss.draw)
    if sharded:
        shard_backbone(trainable.network)  # before the optimizer and the EMA, which then hold shards
    optimizer = adamw(trainable.network.parameters(), config.lr, config.weight_decay, config.fused_adamw, device,
                      sharded)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    ema = EMA(trainable.network, config.ema_decay)
    profiles = [PowerEMA(trainable.network, width) for width in config.ema_profiles]  # post-hoc EMA's snapshots
    if resume:
        start = resume_from(out, record, trainable, ema, optimizer, scaler, profiles)
    elif has_checkpoint(out):
        raise PlumeError(f"{out} already holds a checkpoint; pass resume=True (--resume) to continue it, "
                         "or choose another output directory")
    else:
        start = 0
    place.barrier()  # every rank has read the checkpoint before rank 0 may write the next one
    if config.compile:
        trainable.network.compile()  # in place: same module, same state_dict keys
    loss_module: torch.nn.Module = trainable
    if place.active and not sharded:
        loss_module = torch.nn.parallel.DistributedDataParallel(
            trainable, device_ids=[device.index] if device.type == "cuda" else None)
    reading = READING_COLUMNS if isinstance(data, StreamedData) else ()  # a streamed source's rates
    columns = (*COLUMNS[:2], *trainable.columns, *COLUMNS[2:-1], *reading, COLUMNS[-1])  # step, loss, terms, lr, ...
    log = RunLog(out, start, config.tensorboard, columns) if place.is_main else None
    trainable.train()
    return TrainingState(out, config, model, trainable, data, place, sharded, loss_module, optimizer, scaler, ema, profiles,
               record, start, log)


def data_stream(run: TrainingState) -> contextlib.AbstractContextManager:
    """For streamed data (plume.train.streaming), its prefetcher of the rows this rank reads from the run's first
    step to its last (the trainable's `reads`; without them the data reads each batch when asked); else nothing."""
    if not isinstance(run.data, StreamedData):
        return contextlib.nullcontext()
    config, reads = run.config, getattr(run.trainable, "reads", None)
    start, stop = run.place.slice(config.batch_size)
    plan = iter(()) if reads is None else (
        index for step in range(run.start, config.steps) for micro in range(config.accumulate)
        for index in reads(len(run.data), config, step, micro, start, stop))
    return run.data.stream(plan)


def any_rank(place: Distributed, flag: bool) -> bool:
    """Whether `flag` holds on any rank (a collective under torchrun): every rank then takes the same branch."""
    return bool(place.sum(torch.tensor(float(flag))) > 0) if place.active else flag


def count(run: TrainingState, tally: Tally, result: StepResult, say: Callable[[str], None]) -> None:
    """Keep an optimizer step's loss terms for the next log line, or count it as skipped, and stop a run that has
    skipped MAX_SKIPPED_IN_A_ROW steps in a row."""
    if not result.skipped:
        tally.in_a_row = 0
        tally.values.append({"loss": result.loss, **result.terms})
        return
    tally.skipped, tally.in_a_row, step = tally.skipped + 1, tally.in_a_row + 1, tally.step
    say(f"step {step - 1}: the loss was {result.loss:.4g} and the gradient norm "
        f"{result.grad_norm:.4g}; the update was skipped ({tally.skipped} skipped so far)")
    if tally.in_a_row >= MAX_SKIPPED_IN_A_ROW:
        config = run.config
        raise PlumeError(f"{tally.in_a_row} steps in a row had a non-finite loss or gradient (last at step "
                         f"{step - 1}); lower the learning rate (now {config.lr}), raise the precision "
                         f"(now {config.precision}) or lower the gradient clip; the checkpoint in "
                         f"{run.out / CHECKPOINT} is from before")


def log_means(run: TrainingState, tally: Tally, result: StepResult, bar: Any) -> None:
    """The loss terms' means since the last log line to loss.csv, TensorBoard and the progress bar; with a time
    budget, the bar's end (and ETA) moves to where the budget runs out."""
    config, step, done = run.config, tally.step, tally.values
    tally.last = {name: sum(v[name] for v in done) / len(done) if done else math.nan
                  for name in ("loss", *run.trainable.columns)}
    rates = tally.reading.rates() if tally.reading is not None else {}
    if run.log is not None:
        run.log.scalars(step, {**tally.last, "lr": learning_rate(config, step - 1), "grad_norm": result.grad_norm,
                               "skipped_steps": tally.skipped,
                               "steps_per_second": bar.format_dict.get("rate") or math.nan,
                               **{name: rates[name] for name in READING_COLUMNS if name in rates}})
    terms = {name: f"{tally.last[name]:.4g}" for name in run.trainable.columns}
    reading = {"data": f"{rates['decoded_per_second']:.0f} decoded/s, {rates['consumed_per_second']:.0f} used/s"} \
        if rates else {}
    bar.set_postfix(loss=f"{tally.last['loss']:.4f}", **terms, **({"skipped": tally.skipped} if tally.skipped else {}),
                    **reading)
    tally.values = []
    if config.minutes is not None:
        elapsed = time.monotonic() - tally.began
        left = 60.0 * config.minutes - elapsed
        bar.total = min(config.steps, step + int(max(0.0, left) * (step - run.start) / elapsed))
        bar.refresh()


def snapshot(run: TrainingState, at: int) -> None:
    """Write every power-function EMA's snapshot after `at` steps (gathered from the ranks under FSDP)."""
    for profile in run.profiles:
        state = full_state(profile.state_dict()) if run.sharded else profile.state_dict()
        if run.place.is_main:
            write_snapshot(run.out, state, profile.sigma_rel, at)


def save(run: TrainingState, at: int) -> None:
    """The checkpoint after `at` steps, through the trainable's save (rank 0 writes; under FSDP every rank gathers
    the full tensors first), with the power EMAs' snapshots a resume from it needs."""
    if at > 0 and at % run.config.ema_snapshot_every:  # a resume needs the power EMAs at the checkpoint's step
        snapshot(run, at)
    parts = [run.trainable.network, run.ema, run.optimizer]
    if run.sharded:
        parts = [full_state(part.state_dict()) for part in parts]
    if run.place.is_main:
        state = {"scaler": run.scaler.state_dict()} if run.scaler is not None else {}
        run.trainable.save(run.out, {**run.record, "step": at, **state}, *parts)
    run.place.barrier()


def write_picture(run: TrainingState, step: int, path: Optional[Path]) -> None:
    """The trainable's picture from the EMA weights, written by rank 0 to `path` (and TensorBoard); under FSDP every
    rank gathers the EMA's full tensors first."""
    averaged = full_state(run.ema.state_dict()) if run.sharded else run.ema.state_dict()
    if run.log is not None:
        run.log.picture(step, run.trainable.picture(averaged, run.data, run.config, step), path)


def finish(run: TrainingState, tally: Tally) -> TrainResult:
    """Save the checkpoint at the last step (unless resumed with nothing to do), write the picture, close the log."""
    if tally.step > run.start or not has_checkpoint(run.out):
        save(run, tally.step)
    picture = run.out / run.trainable.picture_file if run.log is not None else None
    write_picture(run, tally.step, picture)
    if run.log is not None:
        run.log.close()
    run.place.barrier()
    if tally.skipped and run.place.is_main:
        warnings.warn(f"{tally.skipped} of {tally.step - run.start} steps were skipped for a non-finite loss or "
                      f"gradient (loss.csv, column skipped_steps)")
    others = {name: value for name, value in tally.last.items() if name != "loss"}
    return TrainResult(run.out, run.start, tally.step, time.monotonic() - tally.began, tally.last["loss"], picture,
                       tally.skipped, others)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by a signal (Ctrl-C, SIGTERM) after saving its checkpoint at `step`."""

    def __init__(self, step: int, signal_name: str, out: Path):
        super().__init__(f"{signal_name} at step {step}: checkpoint saved in {out / CHECKPOINT}; "
                         "continue with resume=True (--resume)")
        self.step, self.signal_name, self.out = step, signal_name, out


__all__ = ["LR_SCHEDULES", "MAX_SKIPPED_IN_A_ROW", "PARALLEL", "PRECISIONS", "RESUMABLE_CHANGES", "DenoisingLoss",
           "TrainingState", "StepResult", "Tally", "TrainConfig", "TrainResult", "TrainingInterrupted", "learning_rate",
           "open_run", "preview", "train", "train_config", "train_step"]
