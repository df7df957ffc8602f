"""`plume prepare`: decode an image source once into a prepared set that training streams (plume.images.prepare), or
with --latent, encode it once through an autoencoder into a latent cache (plume.images.latent.cache)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ..images.latent.cache import cache_summary, prepare_latents
from ..images.prepare import prepare_images, summary
from ..images.sets import load_image_data
from ..run import pick_device
from .common import PlumeCommand, set_threads


@click.command("prepare", cls=PlumeCommand)
@click.option("--data", "source", required=True, help="The images: a folder of image files (searched recursively; "
              "class subfolders give labels), an embedded set, an .npz or hf:PATH; with --latent also a prepared set.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The folder to write (new, or empty): `plume train --data OUT` then reads it.")
@click.option("--image-size", type=click.IntRange(min=1), help="Resize and center-crop to this size (default: the "
              "files' own if they share one square size, else 64).")
@click.option("--channels", type=click.Choice(["rgb", "gray"]), help="Image channels (default: rgb if any file is "
              "in colour).")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop", show_default=True,
              help="An unreadable file stops the preparation (nothing is written), or is left out and listed.")
@click.option("--limit", type=click.IntRange(min=1), help="A seeded random subset of this many images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds that subset (and the hold-out split).")
@click.option("--workers", type=click.IntRange(min=0), help="Processes that decode files (default: one less than "
              "the cores, at most 4).")
@click.option("--latent", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Encode the images through this autoencoder (`plume autoencoder train`) into a latent cache that "
              "`plume train --data OUT` trains latent diffusion on.")
@click.option("--flip", is_flag=True, help="With --latent: also cache the mirrored images' latents, so training can "
              "flip.")
@click.option("--holdout", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              help="With --latent: keep this fraction of the images out of the cache (seeded), as `plume train "
              "--holdout` would.")
@click.option("--device", default="auto", show_default=True, help="With --latent: where to encode (auto, cpu, cuda).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: torch's own).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def prepare(source: str, out: Path, image_size: Optional[int], channels: Optional[str], on_error: str,
            limit: Optional[int], seed: int, workers: Optional[int], latent: Optional[Path], flip: bool,
            holdout: float, device: str, threads: Optional[int], quiet: bool) -> None:
    """Decode the images of --data once into --out (images.npy, labels.npy, plume-images.json), which `plume train
    --data OUT` streams from disk; with --latent AE, encode them into a latent cache instead (docs/streaming.md)."""
    set_threads(threads)
    if latent is None:
        if flip or holdout:
            raise click.UsageError("--flip and --holdout apply to a latent cache (--latent); a prepared image set "
                                   "keeps every image, and `plume train --flip --holdout` applies them")
        about = prepare_images(source, out, image_size, channels, on_error, limit, seed, workers, not quiet)
        click.echo(summary(about, out))
        return
    images = load_image_data(source, flip=flip, holdout=holdout, image_size=image_size, channels=channels,
                             on_error=on_error, limit=limit, seed=seed, workers=workers, progress=not quiet)
    about = prepare_latents(images, latent, out, progress=not quiet, device=pick_device(device))
    click.echo(cache_summary(about, out))
