"""`plume denoise RUN --image noisy.png --out clean.png`: remove white Gaussian noise from a photo of any size with
a run's model (plume.images.tasks.denoise). --sigma gives the noise std in pixel values 0..255; without it the std is
estimated from the image (plume.images.tasks.noise_level) and printed. Images of another size than the run's go through
overlapping tiles of the run's size (plume.images.tasks.tiles); a gray image for an RGB run or the reverse is converted
with a printed note (the output has the run's channels).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click
import torch

from ..images.files import read_image_file, write_image_file
from ..images.sets import images_to_tensor, tensor_to_images
from ..samplers import SAMPLERS
from ..images.tasks.denoise import DEFAULT_METHOD, METHODS, denoise as denoise_images
from ..images.tasks.noise_level import estimate_level, level_from_pixels, level_to_pixels
from ..run import load
from ..train import read_config
from .img2img import image_run_shape, to_run_channels
from .common import set_threads


@click.command("denoise")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--image", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The noisy image.")
@click.option("--sigma", type=click.FloatRange(0, 255, min_open=True),
              help="Noise std in pixel values 0..255 (e.g. 25); estimated from the image if omitted.")
@click.option("--method", type=click.Choice(list(METHODS)), default=DEFAULT_METHOD, show_default=True,
              help="posterior-mean: one model evaluation, the best PSNR; reverse: the sampler from the noise level "
              "down, sharper.")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True, help="Sampler steps (reverse).")
@click.option("--sampler", type=click.Choice(list(SAMPLERS)), default="dpm++2m", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Tile k uses seed + k (stochastic samplers).")
@click.option("--overlap", type=click.IntRange(min=0), help="Pixels shared by neighbouring tiles (default: half a tile).")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The denoised image.")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: all cores).")
def denoise(run: Path, image: Path, sigma: Optional[float], method: str, steps: int, sampler: str, seed: int,
            overlap: Optional[int], weights: str, out: Path, device: str, threads: Optional[int]) -> None:
    """Denoise IMAGE with the run RUN's model (noise std --sigma, or estimated)."""
    config = read_config(run)
    shape = image_run_shape(run, config, "plume denoise")
    set_threads(threads)
    y = images_to_tensor(to_run_channels(read_image_file(image), shape[0], image)[None].copy())  # (1, C, H, W)
    if sigma is None:
        level = float(estimate_level(y)[0])
        click.echo(f"estimated noise std: {level_to_pixels(level):.2f} (of 255); give --sigma to set it")
        if not level > 0:
            raise click.ClickException(f"{image} shows no noise to remove (estimated std 0); give --sigma")
    else:
        level = level_from_pixels(sigma)
    denoiser = load(run, weights=weights, device=device).denoiser
    dev = next(denoiser.parameters()).device
    tile = shape[1] if tuple(y.shape[-2:]) != shape[1:] else None
    if tile is not None and shape[1] != shape[2]:
        raise click.ClickException(f"tiling needs a run of square images; {run} makes {shape[2]}x{shape[1]}")
    with torch.no_grad():
        x = denoise_images(denoiser, denoiser.process, y.to(dev), level, method, steps, sampler, [seed],
                           tile=tile, overlap=overlap, progress=True).cpu()  # (1, C, H, W)
    write_image_file(tensor_to_images(x)[0], out)
    click.echo(f"denoised ({method}, noise std {level_to_pixels(level):.2f}"
               f"{f', {y.shape[-1]}x{y.shape[-2]} in {tile}x{tile} tiles' if tile else ''}) -> {out}")
