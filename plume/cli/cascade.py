"""The command line's cascade: `plume train --super-resolution LOW_SIZE` (a second stage) and
`plume sample BASE --then SR` (the base's samples super-resolved, in one command; plume.cascade)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
import torch

from ..backbones.super_resolution import AUGMENT_MAX, residual_std
from ..cascade import check_chain, sample_cascade
from ..data.image_grid import save_image_grid
from ..data.images import tensor_to_images
from ..data.super_resolution import SuperResolutionData, stage_of
from ..errors import PlumeError
from ..objective import P_MEAN
from ..train import load_denoiser, read_config

RESIDUAL_SAMPLE = 1024  # images a new stage's residual sigma_data is measured on


def super_resolution_stage(data: Any, recipe: dict[str, Any], low_size: int, augment_max: Optional[float],
                           conditional: bool, sigma_data_given: bool = False) -> SuperResolutionData:
    """Turn a fresh run's data and recipe into a super-resolution stage: the data's images become the targets and
    their low_size copies the conditioning; the recipe's backbone becomes the inner network of a residual
    SuperResolution, whose sigma_data (unless given) is the residual's, measured on up to RESIDUAL_SAMPLE images, and
    whose lognormal training levels keep EDM's ratio to that sigma_data."""
    if conditional:
        raise click.UsageError("--super-resolution conditions on the low-resolution image, not on class labels; "
                               "drop --conditional")
    if len(data.shape) != 3:
        raise PlumeError(f"--super-resolution needs image data; this data has examples shaped {list(data.shape)}")
    spec = recipe["backbone"]
    if spec["name"] == "super_resolution":
        raise click.UsageError("--backbone names the inner network of a super-resolution stage (unet, dit); the "
                               "stage itself comes from --super-resolution LOW_SIZE")
    wrapped = SuperResolutionData(data, low_size, AUGMENT_MAX if augment_max is None else augment_max)
    recipe["backbone"] = {"name": "super_resolution", "preset": None, "options": {
        "low_size": list(wrapped.low_size), "high_size": list(data.shape[1:]), "inner": spec["name"],
        "inner_preset": spec.get("preset"), "inner_options": dict(spec.get("options", {}))}}
    if not sigma_data_given:
        index = torch.arange(min(len(data), RESIDUAL_SAMPLE))
        high = data.batch(index, torch.Generator().manual_seed(0))  # (n, C, H, W)
        recipe["denoiser"]["sigma_data"] = max(round(residual_std(high, wrapped.low_size), 4), 1e-3)  # > 0 if flat
    # EDM's lognormal levels (P_mean -1.2) are set for sigma_data 0.5: keep their ratio to the stage's sigma_data
    recipe["denoiser"]["lognormal_mean"] = round(P_MEAN + math.log(float(recipe["denoiser"]["sigma_data"]) / 0.5), 4)
    return wrapped


def refuse_stage_alone(config: dict[str, Any], run: Path, allow: tuple[str, ...] = ()) -> None:
    """A super-resolution, inpainting or frame-interpolation run draws nothing by itself: say what to use instead
    (data kinds in `allow` pass: the command that uses them)."""
    kind = config.get("data", {}).get("kind")
    if kind in allow:
        return
    if kind == "interpolation":
        raise PlumeError(f"{run} is a frame-interpolation model: it draws frames between two given ones; use "
                         f"plume interpolate {run} --frames DIR")
    if kind == "inpainting":
        raise PlumeError(f"{run} is an inpainting model: it fills the holes of a given image; use plume inpaint {run} "
                         f"--image IMAGE --mask MASK")
    low = stage_of(config.get("data", {}))
    if low is not None:
        raise PlumeError(f"{run} is a super-resolution stage (it makes {config['data']['shape'][1]}x"
                         f"{config['data']['shape'][2]} images from {low[0]}x{low[1]} ones); sample it after a base "
                         f"run: plume sample BASE --then {run}")


def sample_then(base_run: Path, sr_run: Path, seeds: list[int], options: dict[str, Any], augment: float,
                batch_size: int, out: Optional[Path], weights: str, device: Any) -> tuple[Path, Path]:
    """Draw the cascade BASE -> SR for `seeds`; write the final images (.npz arr_0, uint8 NHWC; the base's images as
    `low`) and a PNG grid of the first 100. Returns (npz, png)."""
    base_config, sr_config = read_config(base_run), read_config(sr_run)
    refuse_stage_alone(base_config, base_run)
    if stage_of(sr_config.get("data", {})) is None:
        raise PlumeError(f"--then {sr_run}: that run is not a super-resolution stage (train one with plume train "
                         f"--super-resolution LOW_SIZE)")
    base = load_denoiser(base_run, ema=weights == "ema", device=device)
    sr = load_denoiser(sr_run, ema=weights == "ema", device=device)
    shape = check_chain(base_config["data"]["shape"], sr, base_name=f"the base run {base_run}",
                        sr_name=f"the super-resolution run {sr_run}")
    result = sample_cascade(base, sr, len(seeds), seeds=seeds, base_shape=shape, augment=augment,
                            batch_size=batch_size, **options)
    high, low = tensor_to_images(result.high), tensor_to_images(result.low)  # (n, H, W, C), (n, h, w, C) uint8
    sampler, steps = options.get("sampler", "dpm++2m"), options.get("steps", 20)
    out = out or base_run / f"cascade-{sr_run.name}-{sampler}-{steps}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, arr_0=high, low=low)
    png = save_image_grid(high[:100], out.with_suffix(".png"),
                          title=f"{base_run.name} -> {sr_run.name}, {sampler}, {steps} steps, augmentation {augment:g}")
    return out, png


__all__ = ["super_resolution_stage", "refuse_stage_alone", "sample_then"]
