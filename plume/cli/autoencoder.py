"""`plume autoencoder train`: the first stage of latent diffusion (plume.latent, docs/latent.md).

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

from ..data.sources import data_from_info, load_data
from ..errors import PlumeError
from ..latent import AutoencoderConfig, KLAutoencoder, train_autoencoder
from ..latent.checkpoint import read_autoencoder_config
from .options import resume_flags
from .train import _device, set_threads

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
    set_threads(flags["threads"], False)
    if flags["resume"]:
        model, data, config = _resumed(ctx, flags)
    elif flags["data"] is None:
        raise click.UsageError("--data is required (or --resume to continue an autoencoder)")
    else:
        model, data, config = _new(flags)
    result = train_autoencoder(model, data, flags["out"], config, progress=not flags["quiet"], resume=flags["resume"])
    error = result.reconstruction
    click.echo(f"step {result.step} in {result.seconds:.1f} s (training MSE {result.last_mse:.4g} on [-1, 1]); latents "
               f"{model.latent_shape(data.shape)}, scale_factor {result.scale_factor:.4g}; reconstruction of "
               f"{error['n']} {error['images']} images: MSE {error['mse']:.3g}, PSNR {error['psnr_db']:.2f} dB; "
               f"autoencoder {result.out / 'checkpoint'}; picture {result.out / 'reconstructions.png'}")


def _new(flags: dict[str, Any]) -> tuple[KLAutoencoder, Any, AutoencoderConfig]:
    """A new autoencoder, its data and training options, from the flags."""
    data = load_data(flags["data"], seed=flags["seed"], image_size=flags["image_size"], channels=flags["channels"],
                     limit=flags["limit"], holdout=flags["holdout"], progress=not flags["quiet"])
    shape = tuple(getattr(data, "shape", ()))
    if len(shape) != 3:
        raise PlumeError(f"an autoencoder encodes images; the data {flags['data']!r} are points of shape {shape}")
    torch.manual_seed(flags["seed"])
    model = KLAutoencoder(in_channels=shape[0], latent_channels=flags["latent_channels"], factor=flags["factor"],
                          width=flags["width"], blocks_per_level=flags["blocks_per_level"],
                          norm_groups=flags["norm_groups"]).to(_device(flags["device"]))
    config = AutoencoderConfig(steps=flags["steps"], minutes=flags["minutes"], batch_size=flags["batch_size"],
                               lr=flags["lr"], beta=flags["beta"], seed=flags["seed"])
    return model, data, config


def _resumed(ctx: click.Context, flags: dict[str, Any]) -> tuple[KLAutoencoder, Any, AutoencoderConfig]:
    """The autoencoder saved in --out (built with its saved options; train_autoencoder loads its state), its data
    and training options from its config.json, with the few flags a resume may change."""
    given = resume_flags(ctx, RESUME_FLAGS)
    directory, saved = read_autoencoder_config(flags["out"])
    source = str(directory / "config.json")
    data = data_from_info(saved.get("data", {}), source)
    try:
        model = KLAutoencoder(**saved["autoencoder"]["options"])
        config = AutoencoderConfig(**{**saved["training"], "minutes": flags["minutes"],  # a new budget, or none
                                      **({"steps": flags["steps"]} if "steps" in given else {})})
    except (KeyError, TypeError) as e:
        raise PlumeError(f"{source}: cannot rebuild the autoencoder and its training options ({e})") from None
    return model.to(_device(flags["device"])), data, config


__all__ = ["autoencoder"]
