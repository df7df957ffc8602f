"""`plume img2img RUN --image guide.png --strength 0.5 --out out.png`: SDEdit (plume.images.tasks.image_to_image) with a
run's model: the guide noised part-way and denoised by the run's reverse process, --n outputs from seeds seed,
seed + 1, ...; conditional runs take --labels or --prompt (and --guidance) as in `plume sample`.

The guide is brought to the run's image format first, each change printed: a gray guide for an RGB run is
repeated over three channels, an RGB guide for a gray run converted to luma, and a guide of another size resized
(its central square, Lanczos; the data loader's geometry), since SDEdit makes one coherent picture at the model's
size (tiles would be made independently of each other).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
import torch

from ..images.files import fit_square, read_image_file, set_channels, write_image_file
from ..images.grid import save_image_grid
from ..images.sets import images_to_tensor, tensor_to_images
from ..errors import PlumeError
from ..images.latent.data import KIND as LATENT_KIND
from ..images.modality import refuse_stage_alone
from ..samplers import SAMPLERS
from ..images.tasks.image_to_image import conditioned, image_to_image
from ..run import load
from ..train import read_config
from .common import parse_seeds, set_threads


def image_run_shape(run: Path, config: dict[str, Any], command: str, allow: tuple[str, ...] = ()) -> tuple[int, int, int]:
    """(C, H, W) of a pixel-space image run; a clear error for point, latent and super-resolution runs, and for
    inpainting and interpolation runs unless their data kind is in `allow`."""
    info = config.get("data", {})
    shape = tuple(int(d) for d in info.get("shape", []))
    if len(shape) != 3:
        raise PlumeError(f"{run} was trained on data of shape {shape}, not images; {command} needs an image run")
    if info.get("kind") == LATENT_KIND:
        raise PlumeError(f"{run} is a latent run; {command} works on pixel-space runs (train without --latent)")
    refuse_stage_alone(config, run, allow)
    return shape  # type: ignore[return-value]


def to_run_channels(pixels: np.ndarray, channels: int, path: Path) -> np.ndarray:
    """pixels (..., c) uint8 with the run's channel count (1 gray, 3 RGB), converting with a printed note."""
    if pixels.shape[-1] == channels:
        return pixels
    if channels not in (1, 3):
        raise PlumeError(f"{path} has {pixels.shape[-1]} channels; the run takes {channels}, which images cannot give")
    name = "gray" if channels == 1 else "rgb"
    click.echo(f"note: {path} is {'RGB' if channels == 1 else 'gray'}; the run's model is {name}: converted "
               f"({'ITU-R 601 luma' if channels == 1 else 'gray repeated over R, G, B'})", err=True)
    return set_channels(pixels, name)


def guide_for_run(path: Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """The image at `path` as a guide (1, C, H, W) in [-1, 1] of the run's shape (converted and resized, with notes)."""
    pixels = to_run_channels(read_image_file(path), shape[0], path)  # (h, w, C)
    if pixels.shape[:2] != shape[1:]:
        click.echo(f"note: {path} is {pixels.shape[1]}x{pixels.shape[0]}; the run makes {shape[2]}x{shape[1]} "
                   f"images: its central square is resized to that (Lanczos)", err=True)
        if shape[1] != shape[2]:
            raise PlumeError(f"{path}: resizing to the run's non-square {shape[2]}x{shape[1]} is not supported; "
                             "give an image of exactly that size")
        pixels = fit_square(pixels, shape[1])  # (H, W, C)
    return images_to_tensor(pixels[None].copy())  # (1, C, H, W)


@click.command("img2img")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--image", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The guide image.")
@click.option("--strength", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
              help="How far to noise the guide: 1 ignores it (ordinary sampling), near 0 returns it.")
@click.option("--n", type=click.IntRange(min=1), default=1, show_default=True, help="Outputs (seeds seed .. seed + n - 1).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sampler", type=click.Choice(list(SAMPLERS)), default="dpm++2m", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True,
              help="Sampler steps actually run (the full grid has steps / strength).")
@click.option("--labels", "label_text", help="Class labels for a conditional run, e.g. 3 or 0-9 (output k gets the "
              "(k mod count)-th).")
@click.option("--prompt", "prompts", multiple=True, help="A text prompt for a text-conditioned run (repeatable).")
@click.option("--negative-prompt", help="With --prompt: a prompt to steer away from (classifier-free guidance).")
@click.option("--guidance", type=float, default=1.0, show_default=True, help="Classifier-free guidance scale.")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output image (with --n > 1, a grid of the outputs).")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: all cores).")
def img2img(run: Path, image: Path, strength: float, n: int, seed: int, sampler: str, steps: int,
            label_text: Optional[str], prompts: tuple[str, ...], negative_prompt: Optional[str], guidance: float,
            weights: str, out: Path, device: str, threads: Optional[int]) -> None:
    """Edit IMAGE with the run RUN's model by SDEdit (Meng et al. 2022): noise it to --strength, then denoise."""
    config = read_config(run)
    shape = image_run_shape(run, config, "plume img2img")
    set_threads(threads)
    guide = guide_for_run(image, shape)  # (1, C, H, W)
    model_run = load(run, weights=weights, device=device)
    denoiser = model_run.denoiser
    labels, negative = model_run.conditions(parse_seeds(label_text) if label_text else None, list(prompts) or None,
                                            negative_prompt)  # (L,) or (L, T), (T,) or None
    cond = None if labels is None else torch.as_tensor(labels)[torch.arange(n) % len(labels)]  # (n,) or (n, T)
    dev = next(denoiser.parameters()).device
    model = conditioned(denoiser, None if cond is None else cond.to(dev), guidance, negative)
    with torch.no_grad():
        x = image_to_image(model, denoiser.process, guide.to(dev).expand(n, *shape), strength,
                           list(range(seed, seed + n)), steps=steps, sampler=sampler).cpu()  # (n, C, H, W)
    pixels = tensor_to_images(x)  # (n, H, W, C)
    if n == 1:
        write_image_file(pixels[0], out)
    else:
        save_image_grid(pixels, out, title=f"strength {strength:g}, {sampler}, {steps} steps")
    click.echo(f"{n} output{'s' if n > 1 else ''} (strength {strength:g}) -> {out}")
