"""`plume upscale SR_RUN --image low.png --out high.png`: super-resolve a user's image with a super-resolution run
(plume.images.tasks.upscale: tiles for images larger than the run's low size), and write a side-by-side picture of
bicubic upsampling and Plume's result (OUT-compare.png)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click
import numpy as np
from PIL import Image

from ..images.cascade import POSTERIOR_LEVEL
from ..images.files import read_image_file, write_image_file
from ..images.grid import save_image_grid
from ..images.sets import images_to_tensor
from ..images.super_resolution_data import stage_of
from ..errors import PlumeError
from ..samplers import SAMPLERS
from ..images.tasks.upscale import (UPSCALE_AUGMENT, UPSCALE_DRAWS, UPSCALE_ESTIMATE, UPSCALE_ESTIMATES, check_image,
    upscale_pixels)
from ..run import load
from ..train import read_config
from .common import set_threads


def check_stage(run: Path) -> None:
    """An error, with how to train one, unless `run` is a super-resolution run."""
    config = read_config(run)
    if stage_of(config.get("data", {})) is None:
        raise PlumeError(f"{run} is not a super-resolution run; train one with plume train --data IMAGES "
                         f"--super-resolution LOW_SIZE --out RUN (it learns to make the images from their LOW_SIZE "
                         f"copies), then plume upscale RUN --image low.png --out high.png")


def bicubic(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL bicubic resize of uint8 (h, w, C) to (height, width, C)."""
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC)).reshape(height, width, -1)


def how(estimate: str, draws: int, sampler: str, steps: int) -> str:
    """What the result is, for the comparison picture's title."""
    what = "posterior mean" if estimate == "mean" else f"{sampler}, {steps} steps"
    return what if draws == 1 else f"{what}, {draws} averaged"


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--image", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The low-resolution image (any size at least the run's low size; larger ones go by tiles).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where the upscaled image goes; OUT-compare.png gets bicubic and Plume side by side.")
@click.option("--estimate", type=click.Choice(list(UPSCALE_ESTIMATES)), default=UPSCALE_ESTIMATE, show_default=True,
              help="mean: the posterior mean in one model call per tile (highest PSNR, softer); sample: a draw by "
                   "the sampler (sharper, invented detail).")
@click.option("--draws", type=click.IntRange(min=1), default=UPSCALE_DRAWS, show_default=True,
              help="Pieces averaged per tile (with --estimate sample, K draws tend to the posterior mean).")
@click.option("--augment", type=click.FloatRange(min=0), default=UPSCALE_AUGMENT, show_default=True,
              help="Conditioning-augmentation level (noise std the model is told the image carries).")
@click.option("--sampler", type=click.Choice(list(SAMPLERS)), default="dpm++2m", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True,
              help="Sampler steps (--estimate sample).")
@click.option("--level", type=click.FloatRange(min=0, min_open=True), default=POSTERIOR_LEVEL, show_default=True,
              help="The noise level of the posterior-mean call (--estimate mean); far above the residual's spread.")
@click.option("--seed", type=int, default=0, show_default=True, help="Tiles and draws take seeds derived from it.")
@click.option("--overlap", type=click.IntRange(min=0), help="Low-resolution pixels shared by neighbouring tiles "
              "(default: a quarter of the tile).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Tiles per batch.")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... (auto: cuda if present).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: all cores).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def upscale(run: Path, image: Path, out: Path, estimate: str, draws: int, augment: float, sampler: str, steps: int,
            level: float, seed: int, overlap: Optional[int], batch_size: int, weights: str, device: str,
            threads: Optional[int], quiet: bool) -> None:
    """Super-resolve the image --image with the super-resolution run RUN (plume train --super-resolution)."""
    try:
        set_threads(threads)
        check_stage(run)
        low = read_image_file(image)  # (h, w, C)
        sr = load(run, weights=weights, device=device).denoiser
        check_image(sr, images_to_tensor(low[None]), name=f"--image {image}")
        high = upscale_pixels(sr, low, seed=seed, estimate=estimate, draws=draws, augment=augment, sampler=sampler,
                              steps=steps, level=level, overlap=overlap, batch_size=batch_size,
                              progress=not quiet)  # (H, W, C)
    except PlumeError as error:  # also when this command runs outside the `plume` group
        raise click.ClickException(str(error)) from None
    write_image_file(high, out)
    side = np.stack([bicubic(low, *high.shape[:2]), high])  # (2, H, W, C)
    compare = save_image_grid(side, out.with_name(out.stem + "-compare.png"), columns=2,
                              title=f"bicubic | Plume ({how(estimate, draws, sampler, steps)})")
    click.echo(f"{image} ({low.shape[1]}x{low.shape[0]}) -> {out} ({high.shape[1]}x{high.shape[0]}); "
               f"side by side -> {compare}")


__all__ = ["upscale"]
