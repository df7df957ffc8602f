"""One optimizer step of the training loop, for any Trainable (plume.train.trainable): `accumulate` micro-batches,
this rank's share of each, their gradients summed (synchronized across ranks on the last one only), clipped to
grad_clip, and AdamW's update at the scheduled learning rate (plume.train.config.learning_rate); with fp16 through
a loss scaler.

A step whose loss or gradient norm is not finite (on any rank) leaves the weights unchanged: its gradients are
dropped and StepResult.skipped is set (the loop counts such steps and stops a run that keeps making them).
Dropout, and any other draw from the global generator, comes from the micro-batch's dropout_seed inside
torch.random.fork_rng, so it is a function of (seed, step, micro-batch) and the caller's global state is untouched.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Optional, Union

import torch

from ..denoiser import Denoiser
from ..errors import PlumeError
from .config import TrainConfig, learning_rate
from .data import TrainingData
from .denoising import as_trainable
from .distributed import SINGLE, Distributed
from .sharding import full_tensor
from .trainable import Trainable

DDP = torch.nn.parallel.DistributedDataParallel


@dataclass
class StepResult:
    """One optimizer step: the mean loss over the global batch, the gradient norm before clipping, whether the step
    was skipped because the loss or the gradient was not finite (the weights are then unchanged), and the global
    batch's means of the trainable's other loss terms (its `columns`)."""

    loss: float
    grad_norm: float
    skipped: bool = False
    terms: dict[str, float] = field(default_factory=dict)


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for a precision setting on `device` (None: full fp32)."""
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    if precision == "fp16" and device.type != "cuda":
        raise PlumeError("precision fp16 needs a CUDA device (its loss scaling is CUDA's); use bf16 or fp32 here")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def train_step(model: Union[Denoiser, Trainable], optimizer: torch.optim.Optimizer, data: TrainingData,
               config: TrainConfig, step: int, scaler: Optional[torch.amp.GradScaler] = None,
               place: Distributed = SINGLE, loss_module: Optional[torch.nn.Module] = None) -> StepResult:
    """One optimizer step over `accumulate` micro-batches of the global batch, this rank's share of each.

    `model` is a Denoiser (trained through plume.train.denoising.DenoisingLoss) or a Trainable; `loss_module` is
    that trainable, DDP-wrapped when several ranks train. A non-finite loss or gradient norm (on any rank) skips
    the update: gradients are dropped and StepResult.skipped is set.
    """
    loss_module = loss_module or as_trainable(model)
    trainable = loss_module.module if isinstance(loss_module, DDP) else loss_module
    device = next(trainable.network.parameters()).device
    dtype = autocast_dtype(config.precision, device)
    start, stop = place.slice(config.batch_size)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step)
    names = ("loss", *trainable.columns)
    total = torch.zeros(len(names), dtype=torch.float64)  # the micro-batches' means, summed
    for micro in range(config.accumulate):
        batch = trainable.draw(data, config, step, micro, start, stop, device)
        last = micro == config.accumulate - 1
        with gradient_sync(loss_module, last or not place.active), torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
            torch.manual_seed((batch.dropout_seed + place.rank) % 2**63)  # dropout's randomness, per micro-batch
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                terms = loss_module(batch)  # each (b,)
                loss = terms["loss"].float().mean() / config.accumulate
            (scaler.scale(loss) if scaler is not None else loss).backward()
        means = [loss.detach(), *(terms[name].detach().float().mean() / config.accumulate for name in names[1:])]
        total += torch.stack(means).double().cpu()
    sums = place.sum(total)  # over the ranks
    mean_loss = float(sums[0]) / place.world_size  # the global batch's mean loss
    others = {name: float(sums[i]) / place.world_size for i, name in enumerate(names) if i > 0}
    if scaler is not None:
        scaler.unscale_(optimizer)
    max_norm = config.grad_clip if config.grad_clip > 0 else math.inf
    grad_norm = float(full_tensor(torch.nn.utils.clip_grad_norm_(trainable.network.parameters(), max_norm)))  # global
    if not (math.isfinite(mean_loss) and math.isfinite(grad_norm)):
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.update(scaler.get_scale() / 2)  # as the scaler does after an overflow
        return StepResult(mean_loss, grad_norm, skipped=True, terms=others)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(mean_loss, grad_norm, terms=others)


def gradient_sync(loss_module: torch.nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
    """Whether this backward synchronizes gradients across ranks: off for all but the last accumulated micro-batch
    (DDP's no_sync; FSDP's set_requires_gradient_sync)."""
    if isinstance(loss_module, DDP):
        return contextlib.nullcontext() if enabled else loss_module.no_sync()
    network = loss_module.network
    if hasattr(network, "set_requires_gradient_sync"):  # an FSDP2 module
        network.set_requires_gradient_sync(enabled)
    return contextlib.nullcontext()


__all__ = ["StepResult", "autocast_dtype", "gradient_sync", "train_step"]
