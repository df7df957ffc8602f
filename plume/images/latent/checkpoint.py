"""An autoencoder on disk: <folder>/checkpoint/config.json + model.safetensors (+ optimizer.safetensors and
optimizer.json, to resume its training), written atomically and verified on load by plume.train.checkpoint (never
pickled).

config.json holds kind "autoencoder", the architecture {"name": "kl", "options": KLAutoencoder.options()}, the
latent scale_factor (with the latent statistics it came from), the training options (AutoencoderConfig), the
data's description, the runtime (device, CPU threads, processes), the step and training seconds, the
reconstruction error measured when it was saved, and the SHA-256 of model.safetensors under "files". There is no
ema.safetensors: the autoencoder trains without an average (plume.images.latent.training.trainer_options).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import torch

from ...errors import PlumeError
from ...train.checkpoint import (CHECKPOINT, Checkpoint, read_json, read_tensors, find_checkpoint, load_weights,
    read_optimizer, save_checkpoint)
from .autoencoder import KLAutoencoder

KIND, NAME = "autoencoder", "kl"
PathLike = Union[str, os.PathLike]


def save_autoencoder(out: PathLike, model: KLAutoencoder, extra: dict[str, Any],
                     optimizer: "torch.optim.Optimizer | dict[str, Any] | None" = None) -> Path:
    """Write `model` (options, weights, scale_factor), the JSON-able `extra` entries and, to resume training from,
    the `optimizer`'s state (the optimizer or its state_dict) to out/checkpoint."""
    config = {**extra, "kind": KIND, "autoencoder": {"name": NAME, "options": model.options()},
              "scale_factor": float(model.scale_factor)}
    return save_checkpoint(Path(out) / CHECKPOINT, config, model, optimizer=optimizer)


def read_autoencoder_config(path: PathLike) -> tuple[Path, dict[str, Any]]:
    """(checkpoint directory, config.json) of the autoencoder folder `path`; refuses folders that hold none."""
    path = Path(path)
    if not path.exists():
        raise PlumeError(f"autoencoder folder {path} does not exist; train one with "
                         f"`plume autoencoder train --data DATA --out {path}`")
    directory = find_checkpoint(path)
    config = read_json(directory / "config.json")
    if config.get("kind") != KIND:
        what = "a diffusion run's" if "backbone" in config else f"of kind {config.get('kind')!r}"
        raise PlumeError(f"{directory / 'config.json'} is {what}, not an autoencoder's: give the folder "
                         "`plume autoencoder train --out` wrote")
    name = config.get("autoencoder", {}).get("name")
    if name != NAME:
        raise PlumeError(f"{directory / 'config.json'}: unknown autoencoder {name!r}; this Plume reads {NAME!r}")
    return directory, config


def load_autoencoder(path: PathLike, device: "str | torch.device" = "cpu") -> KLAutoencoder:
    """The autoencoder saved in folder `path` (or its checkpoint/), with its scale_factor; in eval mode."""
    directory, config = read_autoencoder_config(path)
    source = directory / "config.json"
    options = config["autoencoder"].get("options")
    if not isinstance(options, dict) or not isinstance(config.get("scale_factor"), (int, float)):
        raise PlumeError(f"{source} needs autoencoder.options (an object) and a numeric scale_factor")
    try:
        model = KLAutoencoder(**options)
    except (PlumeError, TypeError) as e:
        raise PlumeError(f"{source}: {e}") from None
    files = config.get("files", {})
    load_weights(model, read_tensors(directory, "model.safetensors", files), directory / "model.safetensors")
    model.scale_factor = float(config["scale_factor"])
    return model.to(device).eval()


def load_training_state(path: PathLike) -> Checkpoint:
    """What resuming the training of the autoencoder in folder `path` needs: its checkpoint directory, config.json,
    weights and optimizer's state_dict (None if it was saved without one); no EMA (it keeps none)."""
    directory, config = read_autoencoder_config(path)
    files = config.get("files", {})
    return Checkpoint(directory, config, read_tensors(directory, "model.safetensors", files), None,
                      read_optimizer(directory, files))


def autoencoder_digest(path: PathLike) -> str:
    """The SHA-256 of the weights config.json records: what a latent run checks to know its autoencoder unchanged."""
    directory, config = read_autoencoder_config(path)
    return str(config.get("files", {}).get("model.safetensors", {}).get("sha256", ""))


__all__ = ["save_autoencoder", "load_autoencoder", "load_training_state", "read_autoencoder_config", "autoencoder_digest"]
