"""Training the autoencoder of latent diffusion on images, and the latent scale computed from data.

The loop: AdamW (plume.train.optimizer.adamw) with linear warm-up, gradient clipping, a step and a time budget and a
progress bar; step k's minibatch indices, flips and posterior noise come from the generator of (seed, k)
(plume.train.batches.step_generator), and the weights from torch's global generator seeded by the caller, so a run
is a function of its options (and the step count the time budget allowed), and one stopped (time budget, Ctrl-C,
SIGTERM) and resumed (`resume=True`: the checkpoint keeps the optimizer's state) ends where one run straight
through would. The objective is KLAutoencoder.loss (squared error + beta * KL; Rombach et al. 2022, app. G).

After training, the latent scale (LDM's scale_factor, sec. 4.3.2) is 1 / std of the encoded training latents, taken
over all elements. We take the posterior means, E[z | x], not samples: they are what plume.latent.LatentData
trains diffusion on (deterministic, so the latent data set is one fixed tensor), the statistic is then a function
of the data alone, and with beta = 1e-6 the posterior std is small beside the spread of the means (both are
recorded: `latent_std` and `posterior_std`), so samples would give nearly the same scale.

The folder gets checkpoint/ (plume.latent.checkpoint), loss.csv (step, loss, mse, kl, lr, time; a resumed run keeps
the rows up to its checkpoint's step) and
reconstructions.png (held-out images above their reconstructions, or training images without a hold-out).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.image_grid import save_trajectory_strip
from ..data.images import ImageData, images_to_tensor, tensor_to_images
from ..errors import PlumeError
from ..train.batches import step_generator
from ..train.checkpoint import CHECKPOINT, load_weights
from ..train.logs import RunLog
from ..train.optimizer import adamw
from ..train.signals import StopOnSignal
from .autoencoder import KLAutoencoder
from .checkpoint import load_training_state, save_autoencoder

SCALE_EXAMPLES = 4096  # training images encoded for the latent scale
PICTURE_COLUMNS, PICTURE_ROWS = 8, 2  # reconstructions.png: 16 images in two row pairs
LOSS_COLUMNS = ("step", "loss", "mse", "kl", "lr", "time")


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


def train_autoencoder(model: KLAutoencoder, data: ImageData, out: Union[str, os.PathLike],
                      config: Optional[AutoencoderConfig] = None, progress: bool = True,
                      resume: bool = False) -> AutoencoderResult:
    """Train `model` on `data`'s training images into folder `out`, set its scale_factor from data, and save it with
    its optimizer's state. Ctrl-C or SIGTERM stop it cleanly after the step under way, and save.

    With resume=True, continue the autoencoder saved in `out` to config.steps: `model` (built with the saved
    options) takes its weights and the optimizer its state. The batch and posterior noise of step k come from the
    generator of (seed, k) alone (plume.train.batches.step_generator), so with the same data and config a run
    stopped and resumed ends with the same weights as one run straight through."""
    config = config or AutoencoderConfig()
    out = Path(out)
    if (out / CHECKPOINT / "config.json").is_file() and not resume:
        raise PlumeError(f"{out} already holds an autoencoder; choose another output folder, or resume its training "
                         f"(`plume autoencoder train --out {out} --resume --steps N`)")
    model.latent_shape(data.shape)  # refuses images this autoencoder cannot take, before any work
    device = next(model.parameters()).device
    optimizer = adamw(model.parameters(), config.lr, config.weight_decay, device=device)
    start, earlier = _restore(out, model, optimizer) if resume else (0, 0.0)
    if start >= config.steps:
        raise PlumeError(f"the autoencoder in {out} is at step {start} already; resume it to more steps than that")
    out.mkdir(parents=True, exist_ok=True)
    model.train()
    began, step, rows, last = time.monotonic(), start, [], math.nan
    log = RunLog(out, start, columns=LOSS_COLUMNS)
    bar = tqdm(total=config.steps, initial=start, desc=f"autoencoder {out.name}", unit="step", disable=not progress,
               dynamic_ncols=True)
    try:
        with StopOnSignal() as stop:
            while step < config.steps:
                if config.minutes is not None and time.monotonic() - began > 60.0 * config.minutes:
                    bar.write(f"time budget of {config.minutes} min reached at step {step}")
                    break
                if stop.signal is not None:
                    bar.write(f"{stop.signal} at step {step}: saving the autoencoder (continue with --resume)")
                    break
                lr = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))  # linear warm-up
                rows.append(_step(model, optimizer, data, config, lr, step))
                step += 1
                bar.update(1)
                if step % config.log_every == 0 or step == config.steps:
                    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
                    log.scalars(step, {**mean, "lr": lr})
                    bar.set_postfix(mse=f"{mean['mse']:.4f}", kl=f"{mean['kl']:.3g}")
                    last, rows = mean["mse"], []
    finally:
        bar.close()
        log.close()
    return _finish(model, data, out, config, step, earlier + time.monotonic() - began, last, optimizer)


def _restore(out: Path, model: KLAutoencoder, optimizer: torch.optim.Optimizer) -> tuple[int, float]:
    """Load the autoencoder saved in `out` into `model` and `optimizer`; its step and training seconds."""
    saved, weights, state = load_training_state(out)
    source = out / CHECKPOINT / "config.json"
    if saved["autoencoder"].get("options") != json.loads(json.dumps(model.options())):
        raise PlumeError(f"{source}: the saved autoencoder's options {saved['autoencoder'].get('options')} differ "
                         f"from the model's {model.options()}; build the model with the saved options to resume it")
    if state is None:
        raise PlumeError(f"{source} holds no optimizer state (saved by an earlier Plume), so its training cannot "
                         "resume where it stopped; train a new autoencoder")
    load_weights(model, weights, out / CHECKPOINT / "model.safetensors")
    optimizer.load_state_dict(state)
    return int(saved.get("step", 0)), float(saved.get("seconds", 0.0))


def _step(model: KLAutoencoder, optimizer: torch.optim.Optimizer, data: ImageData, config: AutoencoderConfig,
          lr: float, step: int) -> dict[str, float]:
    """One AdamW step on a minibatch drawn from the generator of (seed, step); returns the batch means of the loss
    terms."""
    device = next(model.parameters()).device
    for group in optimizer.param_groups:
        group["lr"] = lr
    generator = step_generator(config.seed, step)
    index = torch.randint(len(data), (config.batch_size,), generator=generator)  # (B,)
    x = data.batch(index, generator).to(device)  # (B, C, H, W)
    terms = model.loss(x, config.beta, generator)
    loss = terms["loss"].mean()
    if not torch.isfinite(loss):
        raise PlumeError(f"the autoencoder's loss is {float(loss)} at step {step}; lower the learning rate "
                         f"(now {config.lr})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf)
    optimizer.step()
    return {k: float(v.detach().mean()) for k, v in terms.items()}


def _finish(model: KLAutoencoder, data: ImageData, out: Path, config: AutoencoderConfig, step: int, seconds: float,
            last: float, optimizer: torch.optim.Optimizer) -> AutoencoderResult:
    """Set the scale from the training images, measure reconstructions, save the folder and its picture."""
    model.eval()
    stats = latent_scale(model, data.data[:SCALE_EXAMPLES])
    model.scale_factor = stats["scale_factor"]
    held = len(data.held_out) > 0
    pixels = data.held_out if held else data.train_pixels[:1000]  # (K, H, W, C) uint8
    recon = reconstruct(model, pixels)
    error = {**reconstruction_error(pixels, recon), "images": "held out" if held else "training"}
    extra = {"training": asdict(config), "data": {**data.info(), "shape": list(data.shape), "size": len(data)},
             "step": step, "seconds": round(seconds, 3),
             "latent": {k: v for k, v in stats.items() if k != "scale_factor"},
             "reconstruction": error}
    save_autoencoder(out, model, extra, optimizer)
    reconstruction_picture(pixels[:PICTURE_COLUMNS * PICTURE_ROWS], recon[:PICTURE_COLUMNS * PICTURE_ROWS],
                           out / "reconstructions.png")
    return AutoencoderResult(out, step, seconds, last, model.scale_factor, error)


@torch.no_grad()
def latent_scale(model: KLAutoencoder, x: torch.Tensor, batch_size: int = 256) -> dict[str, Any]:
    """LDM's scale_factor = 1 / std of the posterior means of images x (N, C, H, W), over all elements; also the
    latents' mean and std and the root-mean-square posterior std (module docstring)."""
    device = next(model.parameters()).device
    total = torch.zeros(3, dtype=torch.float64)  # sum z, sum z^2, sum sigma^2
    count = 0
    for start in range(0, len(x), batch_size):
        posterior = model.encode(x[start:start + batch_size].to(device))
        mean = posterior.mean.double().cpu()  # (b, z, h, w)
        total += torch.stack([mean.sum(), (mean ** 2).sum(), posterior.logvar.double().exp().sum().cpu()])
        count += mean.numel()
    mu = float(total[0]) / count
    std = math.sqrt(max(float(total[1]) / count - mu ** 2, 0.0))
    if not std > 0:
        raise PlumeError("the encoded latents have zero spread, so no scale makes them unit-variance; the "
                         "autoencoder has collapsed (train it longer or with a smaller beta)")
    return {"scale_factor": 1.0 / std, "latent_mean": mu, "latent_std": std,
            "posterior_std": math.sqrt(float(total[2]) / count), "examples": len(x)}


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


def reconstruction_picture(real: np.ndarray, recon: np.ndarray, path: Path, columns: int = PICTURE_COLUMNS) -> Path:
    """A PNG of images (N, H, W, C) in rows of `columns`, each row above the row of their reconstructions."""
    rows = len(real) // columns
    if rows < 1:
        columns, rows = len(real), 1
    frames = [real[k:rows * columns:columns] for k in range(columns)]  # column k: (rows, H, W, C)
    return save_trajectory_strip(frames, [recon[k:rows * columns:columns] for k in range(columns)], path,
                                 row_names=("real", "recon"))


__all__ = ["AutoencoderConfig", "AutoencoderResult", "train_autoencoder", "latent_scale", "reconstruct",
           "reconstruction_error", "reconstruction_picture"]
