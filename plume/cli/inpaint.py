"""`plume inpaint RUN --image x.png --mask m.png` (fill the holes with any image run; plume.images.tasks.inpaint)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
import torch

from ..images.image_conditioned import ImageConditioned
from ..images.grid import save_image_grid
from ..images.files import read_image_file, write_image_file
from ..images.sets import images_to_tensor, tensor_to_images
from ..images.masks import is_inpainting, read_mask
from ..errors import PlumeError
from ..samplers import SAMPLERS
from ..images.tasks.inpaint import DEFAULT_SAMPLERS, METHODS, compose, inpaint as inpaint_images
from ..run import load
from ..train import read_config
from .img2img import image_run_shape, to_run_channels
from .common import set_threads


def check_model(run: Path, config: dict[str, Any], model: Any, method: str) -> str:
    """The method to use with this run (auto: conditioned for an --inpainting run, else replace), checked against it."""
    inpainting = is_inpainting(config.get("data", {}))
    if method == "auto":
        method = "conditioned" if inpainting else "replace"
    net = getattr(model, "backbone", None)
    if method == "conditioned":
        if not inpainting or not isinstance(net, ImageConditioned):
            raise PlumeError(f"--method conditioned needs a run trained for inpainting (plume train --inpainting); "
                             f"{run} is not one: use --method replace or repaint with it")
        if net.cond_channels != net.in_channels + 1:
            raise PlumeError(f"{run}: its model reads {net.cond_channels} conditioning channels; an inpainting model "
                             f"reads {net.in_channels + 1} (the masked image and the mask)")
    elif inpainting or isinstance(net, ImageConditioned):
        raise PlumeError(f"{run} is conditioned on an image (trained with {'--inpainting' if inpainting else 'a task'})"
                         f"; --method {method} needs an unconditional run (use --method conditioned or auto)")
    elif getattr(net, "num_classes", None) or getattr(net, "text", None) is not None:
        raise PlumeError(f"{run} is a class- or text-conditional run; plume inpaint takes unconditional runs")
    return method


def read_inputs(run: Path, config: dict[str, Any], image: Path, mask: Path,
                white: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The image (1, C, H, W) in [-1, 1] and keep (1, 1, H, W), checked against the run's image shape."""
    channels, height, width = image_run_shape(run, config, "plume inpaint", allow=("inpainting",))
    pixels = np.array(to_run_channels(read_image_file(image), channels, image))  # (h, w, C), writable
    if pixels.shape[:2] != (height, width):
        raise PlumeError(f"--image {image}: the image is {pixels.shape[1]}x{pixels.shape[0]} (width x height) but "
                         f"{run} makes {width}x{height} images; give an image of exactly that size (the mask is "
                         f"pixel-aligned, so plume inpaint does not resize)")
    keep = read_mask(mask, height, width, white)  # (H, W)
    return images_to_tensor(pixels[None]), keep[None, None]


def side_by_side(image: torch.Tensor, keep: torch.Tensor, results: torch.Tensor, path: Path, title: str) -> Path:
    """A PNG row: the input with its holes gray, the mask (white = kept), then each result."""
    masked = compose(image, keep, torch.zeros_like(image))  # (1, C, H, W), holes at mid-gray
    mask = (keep * 2 - 1).expand_as(image)  # (1, C, H, W): white kept, black filled
    tiles = tensor_to_images(torch.cat([masked, mask, results]))  # (2 + n, H, W, C)
    return save_image_grid(tiles, path, columns=len(tiles), title=title)


@click.command("inpaint")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--image", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The image to complete, exactly the run's size.")
@click.option("--mask", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Black-and-white image of the same size: white = known pixels, black = to fill (see --mask-white).")
@click.option("--mask-white", type=click.Choice(["keep", "fill"]), default="keep", show_default=True,
              help="What the mask's white pixels mean (fill: white marks the holes, as OpenCV and most editors do).")
@click.option("--method", type=click.Choice(["auto", *METHODS]), default="auto", show_default=True,
              help="replace / repaint: any unconditional run; conditioned: a run trained with --inpainting; auto "
                   "picks conditioned for such a run, else replace.")
@click.option("--jump", type=click.IntRange(min=1), default=10, show_default=True,
              help="repaint: levels to jump back up (RePaint's j).")
@click.option("--resample", type=click.IntRange(min=1), default=10, show_default=True,
              help="repaint: passes through each jump (RePaint's r; 1 is plain replacement).")
@click.option("--n", type=click.IntRange(min=1), default=1, show_default=True,
              help="Completions (seeds seed .. seed + n - 1).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sampler", type=click.Choice(list(SAMPLERS)),
              help="Default: euler-maruyama for replace and repaint, ddpm for conditioned (docs/inpainting.md).")
@click.option("--steps", type=click.IntRange(min=1), default=30, show_default=True, help="Sampler steps (a pass).")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The completed image (with --n > 1: OUT-0.png, OUT-1.png, ...); also OUT-side.png.")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: all cores).")
def inpaint(run: Path, image: Path, mask: Path, mask_white: str, method: str, jump: int, resample: int, n: int,
            seed: int, sampler: Optional[str], steps: int, weights: str, out: Path, device: str, threads: Optional[int]) -> None:
    """Fill the holes of an image with RUN's model: the known pixels are kept exactly (docs/inpainting.md)."""
    set_threads(threads)
    config = read_config(run)
    model = load(run, weights=weights, device=device).denoiser
    method = check_model(run, config, model, method)
    x, keep = read_inputs(run, config, image, mask, mask_white)
    target = next(model.parameters()).device
    results = inpaint_images(model, model.process, x.expand(n, *x.shape[1:]).to(target), keep.to(target),
                             method=method, sampler=sampler, steps=steps, seed=seed, jump=jump, resample=resample,
                             progress=True).cpu()  # (n, C, H, W)
    pixels = tensor_to_images(results)  # (n, H, W, C)
    paths = [out] if n == 1 else [out.with_name(f"{out.stem}-{k}{out.suffix or '.png'}") for k in range(n)]
    for path, completed in zip(paths, pixels):
        write_image_file(completed, path)
    detail = f", jump {jump}, resample {resample}" if method == "repaint" else ""
    sampler = sampler or DEFAULT_SAMPLERS[method]
    side = side_by_side(x, keep, results, out.with_name(f"{out.stem}-side.png"),
                        f"{method}{detail}, {sampler} {steps} steps, seeds {seed}..{seed + n - 1}")
    click.echo(f"{len(paths)} completion(s) ({method}): {paths[0]}{' ...' if n > 1 else ''}; side by side: {side}")
