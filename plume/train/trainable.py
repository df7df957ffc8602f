"""What the one training loop (plume.train.trainer.train) trains: a Trainable, a loss as a module's forward.

The loop owns everything generic: AdamW and its learning-rate schedule, gradient accumulation and clipping, mixed
precision, DDP/FSDP, the EMA and power EMAs, step and time budgets, skipping a non-finite step, Ctrl-C / SIGTERM,
exact resume, the progress bar, loss.csv and TensorBoard, and when checkpoints and pictures are made. A Trainable
says the rest, in six plain parts:

- `network`: the nn.Module whose weights are trained: what the optimizer, the EMA, gradient clipping, FSDP and the
  checkpoint's model weights hold (a Denoiser's backbone; an autoencoder itself).
- `draw(...)`: rows [start, stop) of micro-batch `micro` of step `step`, on `device`, as a function of
  (config.seed, step, micro) alone (plume.train.batches.step_generator), so a resumed run draws what an
  uninterrupted one does. The batch carries `dropout_seed`, with which the loop seeds the global generator
  (inside torch.random.fork_rng) around the forward: dropout and any other global draw are then a function of
  the key too.
- `forward(batch)` (called as the module, the call DDP wraps): the per-sample loss terms, each (b,): "loss", the
  one trained on (the loop averages it over the batch), and those named in `columns`, which loss.csv records as
  batch means beside it.
- `record()`: config.json's entries that name the model (e.g. "backbone" and "denoiser"); a resume refuses a
  checkpoint whose entries differ.
- `picture(averaged, data, config, step)`: the picture a person looks at (uint8 (H, W, 3)), from the averaged (EMA)
  weights, full tensors even under FSDP; written as previews/step-N.png and at the end as `picture_file`.
- `save(out, record, network, ema, optimizer)` and `load(out)`: the run's checkpoint in `out` and back, as a
  plume.train.checkpoint.Checkpoint whose config holds the trainer's entries (training options as TrainConfig's,
  data, step); each of network, ema and optimizer comes as the object or its (gathered) state dict.

plume.train.denoising.DenoisingLoss is the Denoiser's; plume.images.latent.training.AutoencoderLoss the latent
diffusion autoencoder's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Union, runtime_checkable

import numpy as np
import torch
from torch import nn

from .checkpoint import Checkpoint
from .config import TrainConfig
from .data import TrainingData
from .ema import EMA

Weights = Union[nn.Module, EMA, torch.optim.Optimizer, dict[str, Any]]  # an object, or its state dict


@runtime_checkable
class Trainable(Protocol):
    """A loss the trainer minimizes, with what it needs to draw, record, picture and checkpoint (module docstring);
    an nn.Module, so that DDP can wrap its forward."""

    network: nn.Module
    columns: tuple[str, ...]  # loss terms besides "loss" that loss.csv records
    picture_file: str  # the picture at the end of training, in the run's folder (e.g. "samples.png")

    def draw(self, data: TrainingData, config: TrainConfig, step: int, micro: int, start: int, stop: int,
             device: torch.device) -> Any:
        """Rows [start, stop) of micro-batch `micro` of step `step` on `device`, with a `dropout_seed` (an int)."""

    def __call__(self, batch: Any) -> dict[str, torch.Tensor]:
        """The per-sample loss terms (b,): "loss" and those in `columns`."""

    def record(self) -> dict[str, Any]:
        """The JSON-able config.json entries that name the model; a resume must find the same."""

    def picture(self, averaged: dict[str, torch.Tensor], data: TrainingData, config: TrainConfig,
                step: int) -> np.ndarray:
        """The picture (H, W, 3) uint8 made with the averaged weights `averaged` (network's keys, full tensors)."""

    def save(self, out: Path, record: dict[str, Any], network: Weights, ema: Weights, optimizer: Weights) -> None:
        """Write the checkpoint of the run in folder `out`: `record` is the trainer's config.json entries."""

    def load(self, out: Path) -> Checkpoint:
        """The checkpoint `save` wrote in `out`, its config in the trainer's terms."""


__all__ = ["Trainable", "Weights"]
