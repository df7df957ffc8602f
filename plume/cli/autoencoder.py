"""`plume autoencoder train`: the first stage of latent diffusion (plume.images.latent, docs/latent.md).

    plume autoencoder train --data shapes --out runs/ae --minutes 5
    plume train --data shapes --latent runs/ae --out runs/latent --minutes 5
    plume sample runs/latent            # samples decoded to images
    plume autoencoder train --out runs/ae --resume --steps 40000   # continue it (a stopped run, or more steps)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import torch

from ..images.modality import IMAGES
from ..modality import DataRequest, modality_for_source
from ..errors import PlumeError
from ..images.latent import AutoencoderConfig, KLAutoencoder, train_autoencoder
from ..images.latent.checkpoint import read_autoencoder_config
from ..train import TrainingInterrupted
from ..run import pick_device
from .common import resume_flags, set_threads

POSITIVE = click.IntRange(min=1)
RESUME_FLAGS = {"out", "resume", "steps", "minutes", "device", "threads", "quiet"}  # what a resume may change


@click.group()
def autoencoder() -> None:
    """The autoencoder of latent diffusion: train it, then `plume train --latent FOLDER`."""


@autoencoder.command("train")
@click.option("--data", help="An image set (digits, lfw, photos, shapes), a folder of images, an .npz file, or hf:PATH. "
              "Required unless --resume.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--factor", type=POSITIVE, default=4, show_default=True,
              help="Downsampling factor f: latents are (z, H/f, W/f); a power of 2.")
@click.option("--latent-channels", type=POSITIVE, default=4, show_default=True, help="Latent channels z.")
@click.option("--width", type=POSITIVE, default=16, show_default=True,
              help="Channels at full resolution (doubled at every level).")
@click.option("--blocks-per-level", type=POSITIVE, default=1, show_default=True)
@click.option("--norm-groups", type=POSITIVE, default=8, show_default=True)
@click.option("--beta", type=click.FloatRange(min=0), default=AutoencoderConfig.beta,
              show_default=True, help="Weight of the KL term (LDM: 1e-6).")
@click.option("--steps", type=POSITIVE, default=AutoencoderConfig.steps, show_default=True)
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), help="Time budget; stops early and saves.")
@click.option("--batch-size", type=POSITIVE, default=AutoencoderConfig.batch_size, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=AutoencoderConfig.lr, show_default=True)
@click.option("--image-size", type=POSITIVE, help="Resize and center-crop images to this size.")
@click.option("--channels", type=click.Choice(["rgb", "gray"]), help="Image channels (default: the data's).")
@click.option("--limit", type=POSITIVE, help="Use at most this many images.")
@click.option("--holdout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Keep this fraction of the images out of training; the reconstruction error is measured on it.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the weights, the data and every batch.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... (auto: cuda if present).")
@click.option("--threads", type=POSITIVE, help="CPU threads (default: all cores).")
@click.option("--resume", is_flag=True, help="Continue the autoencoder in --out exactly (to --steps / for --minutes); "
              "latent runs trained on it before will refuse it afterwards (its weights change).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def train(ctx: click.Context, **flags: Any) -> None:
    """Train a KL-regularized autoencoder on images; writes OUT/checkpoint, OUT/loss.csv, OUT/reconstructions.png."""
    if flags["resume"]:
        model, data, config = _resumed(ctx, flags)
    elif flags["data"] is None:
        raise click.UsageError("--data is required (or --resume to continue an autoencoder)")
    else:
        set_threads(flags["threads"])
        model, data, config = _new(flags)
    try:
        result = train_autoencoder(model, data, flags["out"], config, progress=not flags["quiet"],
                                   resume=flags["resume"])
    except TrainingInterrupted as stop:  # saved where it stopped, scale and reconstructions measured
        error = click.ClickException(str(stop))
        error.exit_code = 130
        raise error from None
    error = result.reconstruction
    click.echo(f"step {result.step} in {result.seconds:.1f} s (training MSE {result.last_mse:.4g} on [-1, 1]); latents "
               f"{model.latent_shape(data.shape)}, scale_factor {result.scale_factor:.4g}; reconstruction of "
               f"{error['n']} {error['images']} images: MSE {error['mse']:.3g}, PSNR {error['psnr_db']:.2f} dB; "
               f"autoencoder {result.out / 'checkpoint'}; picture {result.out / 'reconstructions.png'}")


def _new(flags: dict[str, Any]) -> tuple[KLAutoencoder, Any, AutoencoderConfig]:
    """A new autoencoder, its data and training options, from the flags."""
    modality, source = modality_for_source(flags["data"])
    if modality is not IMAGES:
        raise PlumeError(f"an autoencoder encodes images; the data {flags['data']!r} are {modality.name}")
    options = {k: flags[k] for k in ("image_size", "channels", "limit", "holdout") if flags[k] is not None}
    data = IMAGES.training_data(source, DataRequest(seed=flags["seed"], progress=not flags["quiet"], options=options))
    shape = tuple(data.shape)
    architecture = {"in_channels": shape[0], **{k: flags[k] for k in ("latent_channels", "factor", "width",
                                                                        "blocks_per_level", "norm_groups")}}
    model = _seeded(architecture, flags["seed"]).to(pick_device(flags["device"]))
    config = AutoencoderConfig(steps=flags["steps"], minutes=flags["minutes"], batch_size=flags["batch_size"],
                               lr=flags["lr"], beta=flags["beta"], seed=flags["seed"])
    return model, data, config


def _resumed(ctx: click.Context, flags: dict[str, Any]) -> tuple[KLAutoencoder, Any, AutoencoderConfig]:
    """The autoencoder saved in --out (built with its saved options; train_autoencoder loads its state), its data
    and training options from its config.json, with the few flags a resume may change."""
    given = resume_flags(ctx, RESUME_FLAGS)
    directory, saved = read_autoencoder_config(flags["out"])
    source = str(directory / "config.json")
    set_threads(flags["threads"] or saved.get("runtime", {}).get("cpu_threads"))  # the saved count resumes exactly
    data = IMAGES.data_from_info(saved.get("data", {}), source)
    try:
        model = _seeded(saved["autoencoder"]["options"], 0)  # initial weights that train_autoencoder replaces
        config = AutoencoderConfig(**{**saved["training"], "minutes": flags["minutes"],  # a new budget, or none
                                      **({"steps": flags["steps"]} if "steps" in given else {})})
    except (KeyError, TypeError) as e:
        raise PlumeError(f"{source}: cannot rebuild the autoencoder and its training options ({e})") from None
    return model.to(pick_device(flags["device"])), data, config


def _seeded(options: dict[str, Any], seed: int) -> KLAutoencoder:
    """KLAutoencoder(**options) with initial weights drawn from torch's generator seeded by `seed`, inside
    fork_rng: the caller's global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):  # modules draw their initial weights from the global generator
        torch.manual_seed(seed)
        return KLAutoencoder(**options)


__all__ = ["autoencoder"]
