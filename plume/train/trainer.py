"""The training loop for every modality: AdamW, LR warm-up and schedule, gradient clipping and accumulation,
EMA, mixed precision on CUDA (bf16, or fp16 with loss scaling), step and time budgets, atomic checkpoints
(periodic, at the end, and on Ctrl-C / SIGTERM), exact resume, a progress bar, a loss log, TensorBoard
scalars and sample pictures.

Exact resume without saved RNG state: the minibatch, times and noise of micro-batch j of step k come from a
generator seeded by (seed, k, j), and the learning rate is a function of k, so a run resumed from the
checkpoint at step k computes the same steps k, k + 1, ... as an uninterrupted run. Dropout draws from the
global generator, which each micro-batch seeds from its own generator inside torch.random.fork_rng (so the
caller's global random state is left as it was). A signal stops the loop between two steps, never inside one.
The loss is the denoiser's per-sample weighted loss (plume.denoiser.Denoiser.loss), averaged over the batch.

Under torchrun the loop runs on every rank with DDP (plume.train.distributed): `batch_size` is the global batch,
each rank computes its slice, and the batches (plume.train.batches) do not depend on the number of ranks.
A step whose loss or gradient norm is not finite (on any rank) leaves the weights unchanged; it is counted,
reported (progress bar, loss.csv's skipped_steps, TrainResult.skipped_steps) and after MAX_SKIPPED_IN_A_ROW in a
row the run stops with advice.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backbones import is_conditional
from ..denoiser import Denoiser
from ..errors import PlumeError
from ..sampling import sample
from .checkpoint import CHECKPOINT, build_denoiser, check_state, denoiser_config, find_checkpoint, load_checkpoint, load_weights, save_checkpoint
from .batches import draw_micro_batch, step_generator
from .data import ConditionedData, PairedData, TrainingData, as_training_data
from .distributed import SINGLE, Distributed, from_environment, rank_device
from .sharding import full_state, full_tensor, optimizer_state_like, shard_backbone, sharded_like
from .ema import EMA
from .ema_snapshots import read_snapshot, snapshot_path, write_snapshot
from .power_ema import MAX_SIGMA_REL, PowerEMA
from .logs import RunLog
from .optimizer import adamw
from .signals import StopOnSignal


LR_SCHEDULES = ("constant", "cosine", "linear")
CONDITION_STREAM = 2**32 - 1  # step_generator key of ConditionedData's randomness (no RNG block index reaches it)
MAX_SKIPPED_IN_A_ROW = 10  # more non-finite steps in a row than this stop the run: it has diverged
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PARALLEL = ("ddp", "fsdp")  # auto: bf16 autocast on a CUDA device that supports it, else fp32


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
    lr_schedule: str = "constant"
    precision: str = "auto"
    preview_every: int = 0
    tensorboard: bool = False
    channels_last: bool = True  # images (B, C, H, W) and 4-D weights in NHWC: faster convolutions (bench/unet_throughput.py)
    parallel: str = "ddp"  # under torchrun: "ddp" (a full copy per rank) or "fsdp" (weights and state sharded)
    compile: bool = False  # torch.compile the backbone (worth it on a GPU for long runs; compiling takes minutes)
    label_dropout: float = 0.0  # with class labels: the fraction trained as "no label", for classifier-free guidance
    fused_adamw: bool = True  # AdamW's fused kernel (CPU and CUDA): 2-4x faster updates than foreach on the CPU
    ema_profiles: tuple[float, ...] = ()  # sigma_rel of power-function EMAs snapshotted for post-hoc EMA (EDM2)
    ema_snapshot_every: int = 100  # steps between those snapshots (plume.train.ema_snapshots)

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "accumulate", "checkpoint_every", "log_every", "sample_count", "sample_steps",
                    "ema_snapshot_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise PlumeError(f"training option {name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "warmup_steps", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise PlumeError(f"training option {name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise PlumeError(f"training option label_dropout must lie in [0, 1), got {self.label_dropout}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise PlumeError(f"training option ema_decay must lie in [0, 1), got {self.ema_decay}")
        self.ema_profiles = tuple(float(v) for v in self.ema_profiles)
        widths = self.ema_profiles
        if any(not 0 < v < MAX_SIGMA_REL for v in widths) or len(set(widths)) < len(widths):
            raise PlumeError(f"training option ema_profiles must be distinct widths sigma_rel in (0, {MAX_SIGMA_REL}) "
                             f"(e.g. 0.05, 0.1), got {list(self.ema_profiles)}")
        if self.minutes is not None and not self.minutes > 0:
            raise PlumeError(f"training option minutes must be > 0, got {self.minutes}")
        if self.preview_every < 0:
            raise PlumeError(f"training option preview_every must be >= 0 (0: only at the end), got {self.preview_every}")
        for name, valid in (("lr_schedule", LR_SCHEDULES), ("precision", PRECISIONS), ("parallel", PARALLEL)):
            if getattr(self, name) not in valid:
                raise PlumeError(f"training option {name} must be one of {', '.join(valid)}, got {getattr(self, name)!r}")


def train_config(options: dict[str, Any], source: str = "training options") -> TrainConfig:
    """A TrainConfig from a dict (e.g. config.json's "training"); unknown names list the valid ones."""
    valid = [f.name for f in fields(TrainConfig)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise PlumeError(f"{source}: unknown training option {unknown[0]!r}; valid options: {', '.join(valid)}")
    return TrainConfig(**options)


# Options a resumed run may change; every other one must match the checkpoint's for the resume to be exact.
RESUMABLE_CHANGES = ("steps", "minutes", "checkpoint_every", "log_every", "sample_count", "sampler", "sample_steps",
                     "preview_every", "tensorboard", "parallel", "compile", "ema_snapshot_every")


@dataclass
class TrainResult:
    """What a call to train() did."""

    run_dir: Path
    start_step: int
    step: int
    seconds: float
    last_loss: float
    samples_png: Optional[Path]  # None on ranks other than 0
    skipped_steps: int = 0  # steps whose loss or gradient was not finite, so their update was skipped


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up over warmup_steps (Goyal et al. 2017), then constant, cosine (Loshchilov & Hutter 2017)
    or linear decay to 0 at config.steps."""
    warmup = min(1.0, (step + 1) / max(1, config.warmup_steps))
    done = min(1.0, max(0.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)))
    decay = {"constant": 1.0, "cosine": 0.5 * (1.0 + math.cos(math.pi * done)), "linear": 1.0 - done}
    return config.lr * warmup * decay[config.lr_schedule]


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for a precision setting on `device` (None: full fp32)."""
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    if precision == "fp16" and device.type != "cuda":
        raise PlumeError("precision fp16 needs a CUDA device (its loss scaling is CUDA's); use bf16 or fp32 here")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class DenoisingLoss(torch.nn.Module):
    """The denoiser's per-sample loss as a module's forward, the call DDP wraps to synchronize gradients."""

    def __init__(self, denoiser: Denoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.denoiser.loss(x0, cond=cond, t=t, noise=noise)  # (b,)


@dataclass
class StepResult:
    """One optimizer step: the mean loss over the global batch, the gradient norm before clipping, and whether
    the step was skipped because the loss or the gradient was not finite (the weights are then unchanged)."""

    loss: float
    grad_norm: float
    skipped: bool = False


def train_step(denoiser: Denoiser, optimizer: torch.optim.Optimizer, data: TrainingData, config: TrainConfig,
               step: int, scaler: Optional[torch.amp.GradScaler] = None, place: Distributed = SINGLE,
               loss_module: Optional[torch.nn.Module] = None) -> StepResult:
    """One optimizer step over `accumulate` micro-batches of the global batch, this rank's share of each.

    `loss_module` is DenoisingLoss(denoiser), DDP-wrapped when several ranks train. Class labels (or token ids)
    go to the backbone when it was built with num_classes (or text) and the data has labels. A non-finite loss or gradient norm (on
    any rank) skips the update: gradients are dropped and StepResult.skipped is set.
    """
    loss_module = loss_module or DenoisingLoss(denoiser)
    device = next(denoiser.parameters()).device
    dtype = autocast_dtype(config.precision, device)
    labelled = data.labels is not None and is_conditional(denoiser.backbone)
    start, stop = place.slice(config.batch_size)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step)
    total = torch.zeros((), dtype=torch.float64)
    for micro in range(config.accumulate):
        batch = draw_micro_batch(data, denoiser, config.batch_size, config.seed, step, micro, start, stop, labelled,
                                 config.label_dropout)
        x0 = batch.x0.to(device, non_blocking=True)  # (b, ...)
        if config.channels_last and x0.ndim == 4:
            x0 = x0.contiguous(memory_format=torch.channels_last)  # (b, C, H, W) stored as NHWC
        c = batch.labels.to(device) if batch.labels is not None else None
        if isinstance(data, ConditionedData):  # cond made from the examples themselves (e.g. low-resolution copies)
            c = data.condition(batch.x0, step_generator(config.seed, step, micro, CONDITION_STREAM), start,
                               config.batch_size).to(device)
        elif batch.cond is not None:  # cond drawn with the examples (PairedData, e.g. frame interpolation)
            c = batch.cond.to(device)
        last = micro == config.accumulate - 1
        with gradient_sync(loss_module, last or not place.active), torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
            torch.manual_seed((batch.dropout_seed + place.rank) % 2**63)  # dropout's randomness, per micro-batch
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = loss_module(x0, batch.t.to(device), batch.noise.to(device), c).float().mean() / config.accumulate
            (scaler.scale(loss) if scaler is not None else loss).backward()
        total += loss.detach().double().cpu()
    mean_loss = float(place.sum(total)) / place.world_size  # the global batch's mean loss
    if scaler is not None:
        scaler.unscale_(optimizer)
    max_norm = config.grad_clip if config.grad_clip > 0 else math.inf
    grad_norm = float(full_tensor(torch.nn.utils.clip_grad_norm_(denoiser.parameters(), max_norm)))  # the global norm
    if not (math.isfinite(mean_loss) and math.isfinite(grad_norm)):
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.update(scaler.get_scale() / 2)  # as the scaler does after an overflow
        return StepResult(mean_loss, grad_norm, skipped=True)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(mean_loss, grad_norm)


def gradient_sync(loss_module: torch.nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
    """Whether this backward synchronizes gradients across ranks: off for all but the last accumulated micro-batch
    (DDP's no_sync; FSDP's set_requires_gradient_sync)."""
    if isinstance(loss_module, torch.nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext() if enabled else loss_module.no_sync()
    backbone = loss_module.denoiser.backbone
    if hasattr(backbone, "set_requires_gradient_sync"):  # an FSDP2 module
        backbone.set_requires_gradient_sync(enabled)
    return contextlib.nullcontext()


def train(denoiser: Denoiser, data: Any, out: Union[str, os.PathLike], config: Optional[TrainConfig] = None,
          cond: Any = None, data_info: Optional[dict[str, Any]] = None, resume: bool = False,
          progress: bool = True) -> TrainResult:
    """Train `denoiser` on `data` into run directory `out`, from scratch or resuming its checkpoint.

    `data` is a TrainingData object (e.g. plume.data.ImageData) or a tensor/array (N, ...) with optional labels
    `cond` (N,) (class labels, or token ids (N, T) for a text-conditioned backbone) and a description `data_info` (e.g. {"name": "moons", "n": 50000, "seed": 0}) for config.json.
    `out` gets checkpoint/ (see plume.train.checkpoint), loss.csv, samples.png, and with config.preview_every
    previews/step-*.png; with config.tensorboard, tensorboard/ event files. Ctrl-C or SIGTERM stops between two
    steps, saves the checkpoint and raises TrainingInterrupted (a KeyboardInterrupt).
    """
    config = config or TrainConfig()
    data = as_training_data(data, cond, data_info)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    given = next(denoiser.parameters()).device
    place = from_environment(given)  # torchrun's process group, when launched by it
    device = rank_device(given, place)
    denoiser.to(device)
    place.slice(config.batch_size)  # a batch that does not split over the ranks fails before any work
    autocast_dtype(config.precision, device)  # rejects fp16 off CUDA before any work
    run_config = {**denoiser_config(denoiser), "training": asdict(config),
                  "data": {**data.info(), "shape": list(data.shape), "size": len(data)},
                  "runtime": {"device": device.type, "cpu_threads": torch.get_num_threads(),
                              "world_size": place.world_size}}
    run_config = json.loads(json.dumps(run_config))  # as config.json will hold it (tuples -> lists)
    sharded = place.active and config.parallel == "fsdp"
    if config.channels_last and len(data.shape) == 3 and not sharded:  # FSDP2 shards contiguous weights only
        denoiser.to(memory_format=torch.channels_last)  # conv weights NHWC, as the batches (train_step)
    if sharded:
        shard_backbone(denoiser.backbone)  # before the optimizer and the EMA, which then hold shards
    optimizer = adamw(denoiser.backbone.parameters(), config.lr, config.weight_decay, config.fused_adamw, device,
                      sharded)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    ema = EMA(denoiser.backbone, config.ema_decay)
    profiles = [PowerEMA(denoiser.backbone, width) for width in config.ema_profiles]  # post-hoc EMA's snapshots
    if resume:
        start = _resume(out, run_config, denoiser, ema, optimizer, scaler, profiles)
    elif _has_checkpoint(out):
        raise PlumeError(f"{out} already holds a checkpoint; pass resume=True (--resume) to continue it, "
                         "or choose another output directory")
    else:
        start = 0
    place.barrier()  # every rank has read the checkpoint before rank 0 may write the next one
    if config.compile:
        denoiser.backbone.compile()  # in place: same module, same state_dict keys
    loss_module: torch.nn.Module = DenoisingLoss(denoiser)
    if place.active and not sharded:
        loss_module = torch.nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None)

    def snapshot(at: int) -> None:
        """Write every power-function EMA's snapshot after `at` steps (gathered from the ranks under FSDP)."""
        for profile in profiles:
            state = full_state(profile.state_dict()) if sharded else profile.state_dict()
            if place.is_main:
                write_snapshot(out, state, profile.sigma_rel, at)

    def save(at: int) -> None:
        if at > 0 and at % config.ema_snapshot_every:  # a resume needs the power EMAs at the checkpoint's step
            snapshot(at)
        parts = [denoiser.backbone, ema, optimizer]
        if sharded:  # every rank gathers the full tensors, rank 0 writes them
            parts = [full_state(denoiser.backbone.state_dict()), full_state(ema.state_dict()),
                     full_state(optimizer.state_dict())]
        if place.is_main:
            state = {"scaler": scaler.state_dict()} if scaler is not None else {}
            save_checkpoint(out / CHECKPOINT, {**run_config, "step": at, **state}, *parts)
        place.barrier()

    def pictures(step: int) -> Optional[np.ndarray]:
        """The preview picture on rank 0 (None elsewhere); under FSDP from a full copy of the EMA weights."""
        if not sharded:
            return preview(denoiser, ema, data, config, step) if place.is_main else None
        full = full_state(ema.state_dict())
        if not place.is_main:
            return None
        plain = build_denoiser(run_config).to(device)
        plain.backbone.load_state_dict(full)
        return preview(plain, EMA(plain.backbone, config.ema_decay), data, config, step)

    log = RunLog(out, start, config.tensorboard) if place.is_main else None
    denoiser.train()
    began, step, last, losses, skipped, in_a_row = time.monotonic(), start, math.nan, [], 0, 0
    bar = tqdm(total=config.steps, initial=start, desc=f"train {out.name}", unit="step",
               disable=not (progress and place.is_main), dynamic_ncols=True)
    say = bar.write if place.is_main else (lambda message: None)
    try:
        with StopOnSignal() as stop:
            while step < config.steps:
                out_of_time = config.minutes is not None and time.monotonic() - began > 60.0 * config.minutes
                if place.active:  # every rank stops at the same step
                    out_of_time = bool(place.sum(torch.tensor(float(out_of_time))) > 0)
                if out_of_time:
                    say(f"time budget of {config.minutes} min reached at step {step}")
                    break
                result = train_step(denoiser, optimizer, data, config, step, scaler, place, loss_module)
                ema.update(denoiser.backbone, step)
                for profile in profiles:
                    profile.update(denoiser.backbone, step)
                step += 1
                if step % config.ema_snapshot_every == 0:
                    snapshot(step)
                bar.update(1)
                if result.skipped:
                    skipped, in_a_row = skipped + 1, in_a_row + 1
                    say(f"step {step - 1}: the loss was {result.loss:.4g} and the gradient norm "
                              f"{result.grad_norm:.4g}; the update was skipped ({skipped} skipped so far)")
                    if in_a_row >= MAX_SKIPPED_IN_A_ROW:
                        raise PlumeError(f"{in_a_row} steps in a row had a non-finite loss or gradient (last at step "
                                         f"{step - 1}); lower the learning rate (now {config.lr}), raise the precision "
                                         f"(now {config.precision}) or lower the gradient clip; the checkpoint in "
                                         f"{out / CHECKPOINT} is from before")
                else:
                    in_a_row = 0
                    losses.append(result.loss)
                if step % config.log_every == 0 or step == config.steps:
                    last = sum(losses) / len(losses) if losses else math.nan
                    if log is not None:
                        log.scalars(step, {"loss": last, "lr": learning_rate(config, step - 1),
                                           "grad_norm": result.grad_norm, "skipped_steps": skipped,
                                           "steps_per_second": bar.format_dict.get("rate") or math.nan})
                    bar.set_postfix(loss=f"{last:.4f}", **({"skipped": skipped} if skipped else {}))
                    losses = []
                    if config.minutes is not None:  # the bar's end (and ETA) is where the time budget runs out
                        left = 60.0 * config.minutes - (time.monotonic() - began)
                        bar.total = min(config.steps, step + int(max(0.0, left) * (step - start) / (time.monotonic() - began)))
                        bar.refresh()
                if step % config.checkpoint_every == 0 and step < config.steps:
                    save(step)
                if config.preview_every and step % config.preview_every == 0 and step < config.steps:
                    picture = pictures(step)
                    if log is not None:
                        log.picture(step, picture, out / "previews" / f"step-{step:07d}.png")
                    place.barrier()
                    denoiser.train()
                signal = stop.signal is not None
                if place.active:  # a signal reaches the ranks at different steps: stop together at the first
                    signal = bool(place.sum(torch.tensor(float(signal))) > 0)
                if signal:
                    save(step)
                    raise TrainingInterrupted(step, stop.signal or "a signal to another rank", out)
    finally:
        bar.close()
    if step > start or not _has_checkpoint(out):
        save(step)
    png = out / "samples.png" if log is not None else None
    picture = pictures(step)
    if log is not None:
        log.picture(step, picture, png)
        log.close()
    place.barrier()
    if skipped and place.is_main:
        warnings.warn(f"{skipped} of {step - start} steps were skipped for a non-finite loss or gradient "
                      f"(loss.csv, column skipped_steps)")
    return TrainResult(out, start, step, time.monotonic() - began, last, png, skipped)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by a signal (Ctrl-C, SIGTERM) after saving its checkpoint at `step`."""

    def __init__(self, step: int, signal_name: str, out: Path):
        super().__init__(f"{signal_name} at step {step}: checkpoint saved in {out / CHECKPOINT}; "
                         "continue with resume=True (--resume)")
        self.step, self.signal_name, self.out = step, signal_name, out


@torch.no_grad()
def preview(denoiser: Denoiser, ema: EMA, data: TrainingData, config: TrainConfig, step: int) -> np.ndarray:
    """config.sample_count samples from the EMA weights (seed config.seed), drawn by data.render: (H, W, 3) uint8."""
    model = copy.deepcopy(denoiser).eval()
    ema.copy_to(model.backbone)
    device = next(model.parameters()).device
    cond = data.preview_condition(config.sample_count, config.seed).to(device) \
        if isinstance(data, (ConditionedData, PairedData)) else None
    fn = model if cond is None else (lambda x_t, t: model(x_t, t, cond))
    x = sample(fn, model.process, (config.sample_count, *data.shape), sampler=config.sampler,
               steps=config.sample_steps, prediction="x0", seed=config.seed, device=device, progress=False)
    return data.render(x.cpu(), title=f"step {step}: EMA samples ({config.sampler}, {config.sample_steps} steps)",
                       cond=None if cond is None else cond.cpu())


def _has_checkpoint(out: Path) -> bool:
    try:
        find_checkpoint(out)
        return True
    except PlumeError:
        return False


def _resume(out: Path, run_config: dict[str, Any], denoiser: Denoiser, ema: EMA, optimizer: torch.optim.Optimizer,
            scaler: Optional[torch.amp.GradScaler], profiles: Sequence[PowerEMA] = ()) -> int:
    """Load the run's checkpoint into denoiser, EMA, power EMAs (their snapshots at the checkpoint's step) and
    optimizer after checking it was made with these settings."""
    ckpt = load_checkpoint(out)
    source, saved = ckpt.path / "config.json", ckpt.config
    for key in ("backbone", "denoiser"):
        if saved.get(key) != run_config[key]:
            raise PlumeError(f"cannot resume: {source} has {key} {saved.get(key)}, this run has {run_config[key]}")
    for f in fields(TrainConfig):
        default = json.loads(json.dumps(f.default))  # as config.json holds it (a tuple as a list)
        old, new = saved.get("training", {}).get(f.name, default), run_config["training"][f.name]  # newer: default
        if f.name not in RESUMABLE_CHANGES and old != new:
            raise PlumeError(f"cannot resume with {f.name}={new}: the run in {out} was trained with {f.name}={old}; "
                             f"an exact resume keeps every option but {', '.join(RESUMABLE_CHANGES)}")
    steps = saved.get("training", {}).get("steps"), run_config["training"]["steps"]
    if run_config["training"]["lr_schedule"] != "constant" and steps[0] != steps[1]:
        raise PlumeError(f"cannot resume with steps={steps[1]}: the {run_config['training']['lr_schedule']} learning-rate "
                         f"schedule of the run in {out} ends at steps={steps[0]}, so a changed step count changes it")
    for key in ("name", "shape", "size"):
        if saved.get("data", {}).get(key) != run_config["data"][key]:
            raise PlumeError(f"cannot resume: the run in {out} was trained on data with {key} "
                             f"{saved.get('data', {}).get(key)}, this data has {key} {run_config['data'][key]}")
    threads = saved.get("runtime", {}).get("cpu_threads"), run_config["runtime"]["cpu_threads"]
    if run_config["runtime"]["device"] == "cpu" and threads[0] not in (None, threads[1]):
        warnings.warn(f"resuming on {threads[1]} CPU threads; the run in {out} used {threads[0]}, and a different "
                      "thread count changes the last bits of CPU reductions, so the result will not match an "
                      f"uninterrupted run exactly (set {threads[0]} threads, --threads {threads[0]}, for that)")
    if ckpt.ema is None or ckpt.optimizer is None:
        raise PlumeError(f"{ckpt.path} has no EMA or optimizer state, so training cannot resume from it")
    load_weights(denoiser.backbone, sharded_like(ckpt.model, denoiser.backbone.state_dict()),
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
    if scaler is not None and "scaler" in saved:
        scaler.load_state_dict(saved["scaler"])
    return ckpt.step
