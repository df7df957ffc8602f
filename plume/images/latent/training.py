"""Training the autoencoder of latent diffusion on images, through the one training loop (plume.train.train), and
the latent scale computed from data.

AutoencoderLoss is the autoencoder's plume.train Trainable: the trainer brings AdamW with linear warm-up, gradient
clipping, a step and a time budget, skipping a non-finite step, Ctrl-C / SIGTERM, exact resume, the progress bar
and loss.csv; the autoencoder brings its loss, KLAutoencoder.loss (squared error + beta * KL; Rombach et al. 2022,
app. G), its micro-batches, its picture and its folder. Step k's minibatch indices, flips and posterior noise come
from the generator of (seed, k) (plume.train.batches.step_generator), and the weights from the generator the caller
seeded (`plume autoencoder train` forks torch's, seeded by --seed), so a run is a function of its options (and the
step count the time budget allowed), and one stopped (time budget, Ctrl-C, SIGTERM) and resumed (`resume=True`:
the checkpoint keeps the optimizer's state) ends where one run straight through would. The trainer's options for
it (trainer_options): fp32, tensors in their default layout, and no EMA (ema_decay 0: its EMA is its weights, as
LDM trains its autoencoder without one, so the folder keeps one copy of them).

At every save (at the end, at the time budget, or on a signal) the latent scale (LDM's scale_factor, sec. 4.3.2)
is 1 / std of the encoded training latents, taken over all elements. We take the posterior means, E[z | x], not
samples: they are what plume.images.latent.LatentData trains diffusion on (deterministic, so the latent data set is
one fixed tensor), the statistic is then a function of the data alone, and with beta = 1e-6 the posterior std is
small beside the spread of the means (both are recorded: `latent_std` and `posterior_std`), so samples would give
nearly the same scale.

The folder gets checkpoint/ (plume.images.latent.checkpoint), loss.csv (the trainer's columns with mse and kl
beside the loss; a resumed run keeps the rows up to its checkpoint's step) and reconstructions.png (held-out
images above their reconstructions, or training images without a hold-out).
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import numpy as np
import torch
from torch import nn

from ..grid import save_trajectory_strip, trajectory_strip
from ..sets import images_to_tensor, tensor_to_images
from ..streaming import StreamedImages
from ...errors import PlumeError
from ...train.batches import step_generator
from ...train.checkpoint import CHECKPOINT, Checkpoint
from ...train.config import TrainConfig
from ...train.data import TrainingData
from ...train.trainable import Weights
from ...train.trainer import train
from .autoencoder import KLAutoencoder
from .checkpoint import KIND, NAME, load_training_state, read_autoencoder_config, save_autoencoder
from .data import ImageSource, image_chunks

SCALE_EXAMPLES = 4096  # training images encoded for the latent scale
MEASURED_TRAINING = 1000  # training images the reconstruction error is measured on, without a hold-out
PICTURE_COLUMNS, PICTURE_ROWS = 8, 2  # reconstructions.png: 16 images in two row pairs
PICTURE_ROW_NAMES = ("real", "recon")


@dataclass
class AutoencoderConfig:
    """Training options of the autoencoder, saved in its config.json."""

    steps: int = 20_000
    minutes: Optional[float] = None
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.0
    beta: float = 1e-6  # KL weight (LDM's kl_weight)
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 25

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            if int(getattr(self, name)) < 1:
                raise PlumeError(f"autoencoder training option {name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "warmup_steps", "weight_decay", "beta", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise PlumeError(f"autoencoder training option {name} must be >= 0, got {getattr(self, name)}")
        if self.minutes is not None and not self.minutes > 0:
            raise PlumeError(f"autoencoder training option minutes must be > 0, got {self.minutes}")


@dataclass
class AutoencoderResult:
    """What a call to train_autoencoder did, and what it measured."""

    out: Path
    step: int
    seconds: float
    last_mse: float  # per-element squared error on the [-1, 1] scale, mean over the last log interval
    scale_factor: float
    reconstruction: dict[str, Any]  # reconstruction_error on the held-out (or training) images
    skipped_steps: int = 0  # steps whose loss or gradient was not finite, so the trainer skipped their update


def train_autoencoder(model: KLAutoencoder, data: ImageSource, out: Union[str, os.PathLike],
                      config: Optional[AutoencoderConfig] = None, progress: bool = True,
                      resume: bool = False) -> AutoencoderResult:
    """Train `model` on `data`'s training images into folder `out` with plume.train.train, and save it with its
    scale_factor (measured from data at every save) and its optimizer's state. Ctrl-C or SIGTERM stop it cleanly
    after the step under way, save it, and raise plume.train.TrainingInterrupted.

    With resume=True, continue the autoencoder saved in `out` to config.steps: `model` (built with the saved
    options) takes its weights and the optimizer its state. The batch, flips and posterior noise of step k come from
    the generator of (seed, k) alone (AutoencoderLoss.draw), so with the same data and config a run stopped and
    resumed ends with the same weights as one run straight through."""
    config = config or AutoencoderConfig()
    out = Path(out)
    if (out / CHECKPOINT / "config.json").is_file() and not resume:
        raise PlumeError(f"{out} already holds an autoencoder; choose another output folder, or resume its training "
                         f"(`plume autoencoder train --out {out} --resume --steps N`)")
    model.latent_shape(data.shape)  # refuses images this autoencoder cannot take, before any work
    done = int(read_autoencoder_config(out)[1].get("step", 0)) if resume else 0
    if done >= config.steps:
        raise PlumeError(f"the autoencoder in {out} is at step {done} already; resume it to more steps than that")
    result = train(AutoencoderLoss(model, data, config), data, out, trainer_options(config), resume=resume,
                   progress=progress)
    model.eval()
    saved = read_autoencoder_config(out)[1]
    return AutoencoderResult(out, result.step, saved["seconds"], result.last_terms.get("mse", math.nan),
                             model.scale_factor, saved["reconstruction"], result.skipped_steps)


def trainer_options(config: AutoencoderConfig) -> TrainConfig:
    """The trainer's options for `config`: fp32 (as LDM trains its autoencoder), a constant learning rate after
    warm-up, no average (ema_decay 0: the EMA is the weights themselves, so the checkpoint keeps one copy), tensors
    in their default layout, and a checkpoint only at the end or when stopped (each save measures the latent scale
    and the reconstructions)."""
    return TrainConfig(steps=config.steps, minutes=config.minutes, batch_size=config.batch_size, lr=config.lr,
                       warmup_steps=config.warmup_steps, weight_decay=config.weight_decay, grad_clip=config.grad_clip,
                       seed=config.seed, log_every=config.log_every, checkpoint_every=config.steps, ema_decay=0.0,
                       precision="fp32", channels_last=False)


@dataclass
class AutoencoderBatch:
    """Rows of a micro-batch: images x (b, C, H, W), the posterior samples' eps (b, z, h, w), and the seed of the
    global generator around the forward (the trainer's dropout seed; the autoencoder draws nothing from it)."""

    x: torch.Tensor
    noise: torch.Tensor
    dropout_seed: int


class AutoencoderLoss(nn.Module):
    """The autoencoder as a plume.train Trainable: its per-image loss terms, its micro-batches, its picture (held-out
    images above their reconstructions) and its folder (plume.images.latent.checkpoint), measured when saved."""

    columns = ("mse", "kl")
    picture_file = "reconstructions.png"

    def __init__(self, model: KLAutoencoder, data: ImageSource, config: AutoencoderConfig):
        super().__init__()
        self.model, self.images, self.config = model, data, config
        self.began, self.earlier = time.monotonic(), 0.0  # training seconds: this call's start, and before it

    @property
    def network(self) -> nn.Module:
        return self.model

    def draw(self, data: TrainingData, config: TrainConfig, step: int, micro: int, start: int, stop: int,
             device: torch.device) -> AutoencoderBatch:
        """Rows [start, stop) of a micro-batch: from the generator of (seed, step, micro), the indices, the flips,
        the posterior noise of the whole batch, then the dropout seed."""
        generator = step_generator(config.seed, step, micro)
        index = batch_index(len(data), config, generator)  # (B,)
        x = data.batch(index, generator)  # (B, C, H, W)
        latent = self.model.latent_shape(tuple(data.shape))
        noise = torch.randn((len(x), *latent), generator=generator, dtype=x.dtype)  # (B, z, h, w)
        dropout_seed = int(torch.randint(2**62, (), generator=generator))
        return AutoencoderBatch(x[start:stop].to(device), noise[start:stop].to(device), dropout_seed)

    def reads(self, n: int, config: TrainConfig, step: int, micro: int, start: int, stop: int) -> list[torch.Tensor]:
        """The indices draw() reads from data of n examples (what a streamed set fetches ahead): the whole
        micro-batch's, in one batch() call, on every rank."""
        return [batch_index(n, config, step_generator(config.seed, step, micro))]

    def forward(self, batch: AutoencoderBatch) -> dict[str, torch.Tensor]:
        return self.model.loss(batch.x, self.config.beta, noise=batch.noise)  # each (b,)

    def record(self) -> dict[str, Any]:
        return {"kind": KIND, "autoencoder": {"name": NAME, "options": self.model.options()}}

    @torch.no_grad()
    def picture(self, averaged: dict[str, torch.Tensor], data: TrainingData, config: TrainConfig,
                step: int) -> np.ndarray:
        """Held-out (or training) images above their reconstructions by the weights `averaged`."""
        model = copy.deepcopy(self.model).eval()
        model.load_state_dict(averaged)
        pixels = measured_images(self.images, PICTURE_COLUMNS * PICTURE_ROWS)[0]  # (16, H, W, C) uint8
        return reconstruction_strip(pixels, reconstruct(model, pixels))

    def save(self, out: Path, record: dict[str, Any], network: Weights, ema: Weights, optimizer: Weights) -> None:
        """The autoencoder's folder: its weights (the EMA is the same: ema_decay 0) with the latent scale and the
        reconstruction error measured now, and the optimizer's state."""
        seconds = self.earlier + time.monotonic() - self.began
        extra = {"training": asdict(self.config), "data": record["data"], "runtime": record["runtime"],
                 "step": record["step"], "seconds": round(seconds, 3), **measure(self.model, self.images)}
        save_autoencoder(out, self.model, extra, optimizer)

    def load(self, out: Path) -> Checkpoint:
        """The saved autoencoder, its training options as the trainer's, its weights as its EMA too."""
        ckpt = load_training_state(out)
        source, saved = ckpt.path / "config.json", ckpt.config
        if saved["autoencoder"].get("options") != json.loads(json.dumps(self.model.options())):
            raise PlumeError(f"{source}: the saved autoencoder's options {saved['autoencoder'].get('options')} differ "
                             f"from the model's {self.model.options()}; build the model with the saved options to "
                             "resume it")
        if ckpt.optimizer is None:
            raise PlumeError(f"{source} holds no optimizer state (saved by an earlier Plume), so its training cannot "
                             "resume where it stopped; train a new autoencoder")
        try:
            trained = AutoencoderConfig(**saved["training"])
        except (KeyError, TypeError, PlumeError) as e:
            raise PlumeError(f"{source}: cannot read its training options ({e})") from None
        if trained.beta != self.config.beta:
            raise PlumeError(f"cannot resume with beta={self.config.beta}: the autoencoder in {out} was trained with "
                             f"beta={trained.beta}")
        self.earlier = float(saved.get("seconds", 0.0))
        training = json.loads(json.dumps(asdict(trainer_options(trained))))
        return Checkpoint(ckpt.path, {**saved, "training": training}, ckpt.model, ckpt.model, ckpt.optimizer)


def batch_index(n: int, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """The examples (B,) of a micro-batch, drawn first from its generator (AutoencoderLoss.draw and .reads)."""
    return torch.randint(n, (config.batch_size,), generator=generator)  # (B,)


def measured_images(data: ImageSource, limit: Optional[int] = None) -> tuple[np.ndarray, str]:
    """The uint8 images (K, H, W, C) the reconstruction error is measured on: the held-out ones, or without a
    hold-out the first MEASURED_TRAINING training images (the first `limit` of either); and which they are. A
    streamed set reads only these."""
    if not isinstance(data, StreamedImages):  # in memory
        held = len(data.held_out) > 0
        pixels, which = (data.held_out, "held out") if held else (data.train_pixels[:MEASURED_TRAINING], "training")
        return pixels[:limit], which
    held = len(data.held_rows) > 0
    rows, which = (data.held_rows, "held out") if held else (data.train_rows[:MEASURED_TRAINING], "training")
    return data.read_rows(rows[:limit], f"{which} images"), which


def measure(model: KLAutoencoder, data: ImageSource) -> dict[str, Any]:
    """Set the model's scale_factor from the training images, and measure its reconstructions: config.json's
    "latent" statistics and "reconstruction" error."""
    mode = model.training
    model.eval()
    stats = latent_scale(model, image_chunks(data, 256, SCALE_EXAMPLES))
    model.scale_factor = stats["scale_factor"]
    pixels, which = measured_images(data)
    error = {**reconstruction_error(pixels, reconstruct(model, pixels)), "images": which}
    model.train(mode)
    return {"latent": {k: v for k, v in stats.items() if k != "scale_factor"}, "reconstruction": error}


@torch.no_grad()
def latent_scale(model: KLAutoencoder, x: "torch.Tensor | Iterable[torch.Tensor]",
                 batch_size: int = 256) -> dict[str, Any]:
    """LDM's scale_factor = 1 / std of the posterior means of images x (N, C, H, W), or of chunks of images (e.g.
    plume.images.latent.data.image_chunks: a streamed set read a chunk at a time), over all elements; also the
    latents' mean and std and the root-mean-square posterior std (module docstring)."""
    device = next(model.parameters()).device
    chunks = (x[i:i + batch_size] for i in range(0, len(x), batch_size)) if isinstance(x, torch.Tensor) else x
    total = torch.zeros(3, dtype=torch.float64)  # sum z, sum z^2, sum sigma^2
    count = examples = 0
    for chunk in chunks:
        posterior = model.encode(chunk.to(device))
        mean = posterior.mean.double().cpu()  # (b, z, h, w)
        total += torch.stack([mean.sum(), (mean ** 2).sum(), posterior.logvar.double().exp().sum().cpu()])
        count, examples = count + mean.numel(), examples + len(chunk)
    mu = float(total[0]) / count
    std = math.sqrt(max(float(total[1]) / count - mu ** 2, 0.0))
    if not std > 0:
        raise PlumeError("the encoded latents have zero spread, so no scale makes them unit-variance; the "
                         "autoencoder has collapsed (train it longer or with a smaller beta)")
    return {"scale_factor": 1.0 / std, "latent_mean": mu, "latent_std": std,
            "posterior_std": math.sqrt(float(total[2]) / count), "examples": examples}


@torch.no_grad()
def reconstruct(model: KLAutoencoder, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 images (N, H, W, C) through the posterior mean and back: uint8 (N, H, W, C)."""
    device = next(model.parameters()).device
    parts = [tensor_to_images(model.decode(model.encode(images_to_tensor(pixels[i:i + batch_size]).to(device)).mean))
             for i in range(0, len(pixels), batch_size)]
    return np.concatenate(parts)


def reconstruction_error(real: np.ndarray, recon: np.ndarray) -> dict[str, Any]:
    """MSE on the [0, 1] pixel scale over uint8 images (N, H, W, C), and PSNR = 10 log10(1 / MSE) in dB."""
    mse = float(np.mean((real.astype(np.float64) / 255 - recon.astype(np.float64) / 255) ** 2))
    return {"mse": mse, "psnr_db": 10 * math.log10(1 / mse) if mse > 0 else math.inf, "n": len(real)}


def reconstruction_strip(real: np.ndarray, recon: np.ndarray, columns: int = PICTURE_COLUMNS) -> np.ndarray:
    """A picture (H', W', 3) uint8 of images (N, H, W, C) in rows of `columns`, each row above the row of their
    reconstructions."""
    return trajectory_strip(*_columns(real, recon, columns), row_names=PICTURE_ROW_NAMES)


def reconstruction_picture(real: np.ndarray, recon: np.ndarray, path: Path, columns: int = PICTURE_COLUMNS) -> Path:
    """reconstruction_strip(real, recon, columns) as a PNG at `path`."""
    return save_trajectory_strip(*_columns(real, recon, columns), path, row_names=PICTURE_ROW_NAMES)


def _columns(real: np.ndarray, recon: np.ndarray, columns: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images (N, H, W, C) and their reconstructions as the picture's columns, each (rows, H, W, C)."""
    rows = len(real) // columns
    if rows < 1:
        columns, rows = len(real), 1
    picked = [slice(k, rows * columns, columns) for k in range(columns)]  # column k: images k, k + columns, ...
    return [real[s] for s in picked], [recon[s] for s in picked]


__all__ = ["AutoencoderConfig", "AutoencoderResult", "AutoencoderLoss", "train_autoencoder", "trainer_options",
           "latent_scale", "reconstruct", "reconstruction_error", "reconstruction_picture", "reconstruction_strip"]
