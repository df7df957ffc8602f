"""Frame interpolation on the command line: `plume train --interpolation` (a model of the frames between two frames;
`--data moving-shapes` implies it) and `plume interpolate RUN --frames DIR --between K --out OUT` (a folder of
frames with K frames made between each pair, written as PNGs, an animated GIF and a strip picture)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
from PIL import Image

from ..images.frames import read_frames
from ..images.grid import save_image_grid
from ..images.sets import images_to_tensor, tensor_to_images
from ..images.moving_shapes import MOVING_SHAPES
from ..errors import PlumeError
from ..samplers import SAMPLERS
from ..images.tasks.interpolate import interpolate_sequence
from ..run import pick_device, load
from ..train import read_config
from .common import set_threads

GIF_MS = 150  # milliseconds per frame of the animated GIF


def check_frames(frames: np.ndarray, paths: list[Path], run: Path, config: dict[str, Any]) -> None:
    """A PlumeError unless the frames (T, H, W, C) have the size and channels the run was trained on."""
    shape = config.get("data", {}).get("shape")
    if config.get("data", {}).get("kind") != "interpolation" or shape is None:
        raise PlumeError(f"{run} is not a frame-interpolation run (train one with plume train --interpolation, or "
                         f"--data {MOVING_SHAPES})")
    c, h, w = shape
    if frames.shape[1:] != (h, w, c):
        got_h, got_w, got_c = frames.shape[1:]
        raise PlumeError(f"the frames in {paths[0].parent} are {got_w}x{got_h} with {got_c} channel(s); the model "
                         f"{run} makes {w}x{h} frames with {c} channel(s) (resize or convert them, or train on "
                         f"frames like these)")


def save_sequence(images: np.ndarray, out: Path, between: int) -> tuple[list[Path], Path, Path]:
    """Write uint8 frames (N, H, W, C) as OUT/frame-0000.png ..., OUT/sequence.gif and OUT/strip.png."""
    out.mkdir(parents=True, exist_ok=True)
    pictures = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in images]
    paths = [out / f"frame-{i:04d}.png" for i in range(len(images))]
    for picture, path in zip(pictures, paths):
        picture.save(path, format="PNG")
    gif = out / "sequence.gif"
    pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=GIF_MS, loop=0)
    strip = save_image_grid(images, out / "strip.png", columns=min(len(images), 2 * (between + 1) + 1),
                            title=f"every {between + 1}th frame given, {between} made between")
    return paths, gif, strip


@click.command("interpolate")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--frames", "frames_dir", required=True, type=click.Path(path_type=Path),
              help="Folder of frames (image files, in natural name order: frame2 before frame10).")
@click.option("--between", type=click.IntRange(min=1), default=1, show_default=True,
              help="Frames to make between each pair of consecutive frames.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for frame-NNNN.png (the whole sequence), sequence.gif and strip.png.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The j-th frame made between frames i and i + 1 uses seed + i * between + j.")
@click.option("--draws", type=click.IntRange(min=1), default=1, show_default=True,
              help="Average this many draws per frame (higher PSNR, softer frames).")
@click.option("--sampler", type=click.Choice(list(SAMPLERS)), default="dpm++2m", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="Sampler steps.")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... (auto: cuda if present).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: torch's).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def interpolate(run: Path, frames_dir: Path, between: int, out: Path, seed: int, draws: int, sampler: str,
                steps: int, weights: str, device: str, threads: Optional[int], quiet: bool) -> None:
    """Make BETWEEN frames between each pair of consecutive frames of a folder with the interpolation model RUN."""
    try:
        set_threads(threads)
        config = read_config(run)
        frames, paths = read_frames(frames_dir)  # (T, H, W, C) uint8
        check_frames(frames, paths, run, config)
        where = pick_device(device)
        model = load(run, weights=weights, device=where).denoiser
        x = interpolate_sequence(model, images_to_tensor(frames).to(where), between, seed=seed, draws=draws,
                                 progress=not quiet, sampler=sampler, steps=steps)  # (T + (T - 1) k, C, H, W)
        written, gif, strip = save_sequence(tensor_to_images(x), out, between)
    except PlumeError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{len(written)} frames ({len(frames)} given, {len(written) - len(frames)} made) in {out}; "
               f"animation {gif}; strip {strip}")


__all__ = ["check_frames", "save_sequence", "interpolate"]
