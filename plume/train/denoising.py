"""The Denoiser as a Trainable (plume.train.trainable): what plume.train.train trains when given a Denoiser.

A micro-batch is plume.train.batches.draw_micro_batch's: examples, training times t and noise eps, with the
backbone's conditioning: class labels or token ids (dropped to "no label" with probability label_dropout, for
classifier-free guidance; Ho & Salimans 2022), the conditioning ConditionedData makes from the examples (drawn from
the step's stream CONDITION_STREAM), or PairedData's. The loss is the denoiser's per-sample weighted loss
(plume.denoiser.Denoiser.loss); the picture is config.sample_count samples from the EMA weights; the checkpoint is
plume.train.checkpoint's config.json + model, EMA and optimizer safetensors.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from ..backbones import is_conditional
from ..denoiser import Denoiser
from ..sampling import sample
from .batches import MicroBatch, draw_micro_batch, micro_batch_reads, step_generator
from .checkpoint import CHECKPOINT, Checkpoint, build_denoiser, denoiser_config, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import ConditionedData, PairedData, TrainingData
from .ema import EMA
from .sharding import is_sharded
from .trainable import Trainable, Weights

CONDITION_STREAM = 2**32 - 1  # step_generator key of ConditionedData's randomness (no RNG block index reaches it)


class DenoisingLoss(nn.Module):
    """The denoiser's per-sample loss as a module's forward (the call DDP wraps), and the rest of its Trainable."""

    columns: tuple[str, ...] = ()
    picture_file = "samples.png"

    def __init__(self, denoiser: Denoiser):
        super().__init__()
        self.denoiser = denoiser
        self.description = denoiser_config(denoiser)  # read before FSDP renames the backbone's class

    @property
    def network(self) -> nn.Module:
        return self.denoiser.backbone

    def draw(self, data: TrainingData, config: TrainConfig, step: int, micro: int, start: int, stop: int,
             device: torch.device) -> MicroBatch:
        """Rows [start, stop) of micro-batch `micro` of step `step`, on `device`, with the backbone's cond."""
        labelled = data.labels is not None and is_conditional(self.denoiser.backbone)
        batch = draw_micro_batch(data, self.denoiser, config.batch_size, config.seed, step, micro, start, stop,
                                 labelled, config.label_dropout)
        x0 = batch.x0.to(device, non_blocking=True)  # (b, ...)
        if config.channels_last and x0.ndim == 4:
            x0 = x0.contiguous(memory_format=torch.channels_last)  # (b, C, H, W) stored as NHWC
        c = batch.labels.to(device) if batch.labels is not None else None
        if isinstance(data, ConditionedData):  # cond made from the examples themselves (e.g. low-resolution copies)
            c = data.condition(batch.x0, step_generator(config.seed, step, micro, CONDITION_STREAM), start,
                               config.batch_size).to(device)
        elif batch.cond is not None:  # cond drawn with the examples (PairedData, e.g. frame interpolation)
            c = batch.cond.to(device)
        return MicroBatch(x0, batch.t.to(device), batch.noise.to(device), batch.labels, batch.dropout_seed, c)

    def reads(self, n: int, config: TrainConfig, step: int, micro: int, start: int, stop: int) -> list[torch.Tensor]:
        """The example indices draw() reads, in order, from data of n examples (what streamed data fetches ahead)."""
        return micro_batch_reads(n, config.batch_size, config.seed, step, micro, start, stop)

    def forward(self, batch: MicroBatch) -> dict[str, torch.Tensor]:
        return {"loss": self.denoiser.loss(batch.x0, cond=batch.cond, t=batch.t, noise=batch.noise)}  # (b,)

    def record(self) -> dict[str, Any]:
        return copy.deepcopy(self.description)

    @torch.no_grad()
    def picture(self, averaged: dict[str, torch.Tensor], data: TrainingData, config: TrainConfig,
                step: int) -> np.ndarray:
        """config.sample_count samples (seed config.seed) from the weights `averaged`, drawn by data.render; under
        FSDP from a fresh unsharded copy of the denoiser."""
        device = next(self.denoiser.parameters()).device
        plain = build_denoiser(self.record()).to(device) if is_sharded(self.network) else copy.deepcopy(self.denoiser)
        model = plain.eval()
        model.backbone.load_state_dict(averaged)
        cond = data.preview_condition(config.sample_count, config.seed).to(device) \
            if isinstance(data, (ConditionedData, PairedData)) else None
        fn = model if cond is None else (lambda x_t, t: model(x_t, t, cond))
        x = sample(fn, model.process, (config.sample_count, *data.shape), sampler=config.sampler,
                   steps=config.sample_steps, prediction="x0", seed=config.seed, device=device, progress=False)
        return data.render(x.cpu(), title=f"step {step}: EMA samples ({config.sampler}, {config.sample_steps} steps)",
                           cond=None if cond is None else cond.cpu())

    def save(self, out: Path, record: dict[str, Any], network: Weights, ema: Weights, optimizer: Weights) -> None:
        save_checkpoint(out / CHECKPOINT, record, network, ema, optimizer)

    def load(self, out: Path) -> Checkpoint:
        return load_checkpoint(out)


def as_trainable(model: Union[Denoiser, Trainable]) -> Trainable:
    """DenoisingLoss(model) for a Denoiser, any other Trainable as it is."""
    return DenoisingLoss(model) if isinstance(model, Denoiser) else model


def preview(denoiser: Denoiser, ema: EMA, data: TrainingData, config: TrainConfig, step: int) -> np.ndarray:
    """config.sample_count samples from the EMA weights (seed config.seed), drawn by data.render: (H, W, 3) uint8."""
    return DenoisingLoss(denoiser).picture(ema.state_dict(), data, config, step)


__all__ = ["CONDITION_STREAM", "DenoisingLoss", "as_trainable", "preview"]
