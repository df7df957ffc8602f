"""Image runs that learn more than drawing images alone: diffusion on an autoencoder's latents (`latent`), a
cascade's super-resolution stage (`super_resolution`), inpainting (`inpainting`) and frame interpolation
(`interpolation`). Each is a data option of plume.images (`plume train --latent AE`, `--super-resolution 8`,
`--inpainting`, `--interpolation`) that changes the data the trainer sees and, for the three tasks, wraps the
recipe's backbone (whatever the user chose) as the inner network of a conditioned one (`wrap_backbone`).

Which options cannot go together, and why, is one table (`CONFLICTS`).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch

from ..errors import PlumeUsageError
from ..modality import DataRequest, RecipeChoices
from ..objective import P_MEAN
from ..train.data import TrainingData
from .interpolation_data import FrameTriples, load_interpolation_data
from .latent.cache import cache_data, is_latent_cache
from .latent.data import latent_data
from .masks import InpaintingData
from .moving_shapes import MOVING_SHAPES
from .sets import load_image_data
from .super_resolution import AUGMENT_MAX, residual_std
from .super_resolution_data import SuperResolutionData

WRAPPERS = ("super_resolution", "image_conditioned")  # backbones that wrap an inner one
RESIDUAL_SAMPLE = 1024  # images a new stage's residual sigma_data is measured on
INTERPOLATION_ONLY = "does not apply to frame interpolation (--interpolation, or --data moving-shapes)"

# (option, other option, why they cannot be combined); an option is "given" when neither None nor False.
CONFLICTS: tuple[tuple[str, str, str], ...] = (
    ("latent", "super_resolution", "a super-resolution stage trains on pixels (a cascade's second stage); train the "
                                   "latent model and the stage separately"),
    ("super_resolution", "conditional", "a super-resolution stage conditions on the low-resolution image, not on "
                                        "class labels; drop --conditional"),
    *(("inpainting", other, "the model is conditioned on the masked image alone")
      for other in ("conditional", "super_resolution", "interpolation", "latent")),
    ("interpolation", "conditional", "frame interpolation conditions on the neighbouring frames, not on labels or "
                                     "captions; drop --conditional"),
    *(("interpolation", other, f"--{other.replace('_', '-')} {INTERPOLATION_ONLY}")
      for other in ("flip", "holdout", "latent", "super_resolution", "augment_max")),
)
STREAM_CHOICES = {"auto": None, "on": True, "off": False}  # the stream option -> load_image_data's
NEEDS = (("augment_max", "super_resolution", "a stage with a conditioning image"),)  # (option, what it needs, why)


def check_conflicts(options: dict[str, Any]) -> None:
    """A usage error for the first pair of given options in CONFLICTS, or an option given without what it needs."""
    given = {k for k, v in options.items() if v is not None and v is not False}
    for a, b, why in CONFLICTS:
        if a in given and b in given:
            raise PlumeUsageError(f"--{a.replace('_', '-')} and --{b.replace('_', '-')} cannot be combined: {why}")
    for option, needed, why in NEEDS:
        if option in given and needed not in given:
            raise PlumeUsageError(f"--{option.replace('_', '-')} needs --{needed.replace('_', '-')} ({why})")


def stream_choice(value: Any) -> Optional[bool]:
    """The stream option ("auto", "on", "off", a bool or None) as load_image_data's stream (None: auto)."""
    if value is None or isinstance(value, bool):
        return value
    if value not in STREAM_CHOICES:
        raise PlumeUsageError(f"stream must be one of auto, on, off, got {value!r}")
    return STREAM_CHOICES[value]


def wants_interpolation(source: str, options: dict[str, Any]) -> bool:
    """Whether the data trains frame interpolation (--interpolation, or the moving-shapes videos)."""
    return bool(options.get("interpolation")) or source == MOVING_SHAPES


def stage_data(source: str, request: DataRequest) -> TrainingData:
    """The training data of `source` under the request's options: images (plume.images.sets), frame triples, latents,
    a super-resolution stage's or an inpainting model's view of the images."""
    options = dict(request.options)
    if is_latent_cache(source):  # latents encoded once by `plume prepare --latent` (plume.images.latent.cache)
        return cache_data(source, options, request.device)
    interpolation = wants_interpolation(source, options)
    check_conflicts({**options, "interpolation": interpolation, "conditional": request.conditional})
    if interpolation:
        return load_interpolation_data(source, seed=request.seed, image_size=options.get("image_size"),
                                       channels=options.get("channels"), limit=options.get("limit"),
                                       progress=request.progress)
    data: TrainingData = load_image_data(
        source, seed=request.seed, image_size=options.get("image_size"), channels=options.get("channels"),
        flip=bool(options.get("flip")), on_error=options.get("on_error") or "stop", limit=options.get("limit"),
        holdout=options.get("holdout") or 0.0, progress=request.progress,
        stream=stream_choice(options.get("stream")), workers=options.get("workers"))
    if options.get("latent") is not None:  # diffusion on an autoencoder's latents (plume.images.latent)
        data = latent_data(data, options["latent"], progress=request.progress, device=request.device)
    if options.get("super_resolution") is not None:
        augment = options.get("augment_max")
        data = SuperResolutionData(data, options["super_resolution"], AUGMENT_MAX if augment is None else augment)
    if options.get("inpainting") is not None:
        data = InpaintingData(data, options["inpainting"])
    return data


def wrap_backbone(recipe: dict[str, Any], wrapper: str, flag: str, **options: Any) -> None:
    """Make the recipe's backbone (the user's choice: unet, dit) the inner network of backbone `wrapper` (the task's,
    given by `flag`), built with `options`."""
    spec = recipe["backbone"]
    if spec["name"] in WRAPPERS:
        raise PlumeUsageError(f"--backbone names the inner network of the model {flag} trains (unet, dit); the "
                              f"conditioning itself comes from {flag}")
    recipe["backbone"] = {"name": wrapper, "preset": None, "options": {
        **options, "inner": spec["name"], "inner_preset": spec.get("preset"),
        "inner_options": dict(spec.get("options", {}))}}


def stage_recipe(data: TrainingData, recipe: dict[str, Any], choices: RecipeChoices) -> dict[str, Any]:
    """The recipe of a task's data: its backbone wrapped, and for a super-resolution stage, sigma_data (unless
    chosen) the residual's, measured on up to RESIDUAL_SAMPLE images, with EDM's lognormal training levels kept at
    their ratio to it."""
    c, height, width = data.shape
    if isinstance(data, SuperResolutionData):
        wrap_backbone(recipe, "super_resolution", "--super-resolution", low_size=list(data.low_size),
                      high_size=[height, width])
        if choices.denoiser.get("sigma_data") is None:
            index = torch.arange(min(len(data), RESIDUAL_SAMPLE))
            high = data.batch(index, torch.Generator().manual_seed(0))  # (n, C, H, W)
            recipe["denoiser"]["sigma_data"] = max(round(residual_std(high, data.low_size), 4), 1e-3)  # > 0 if flat
        # EDM's lognormal levels (P_mean -1.2) are set for sigma_data 0.5: keep their ratio to the stage's sigma_data
        recipe["denoiser"]["lognormal_mean"] = round(P_MEAN + math.log(float(recipe["denoiser"]["sigma_data"]) / 0.5),
                                                     4)
    elif isinstance(data, InpaintingData):  # cond = [image * keep, keep]
        wrap_backbone(recipe, "image_conditioned", "--inpainting", cond_channels=c + 1, image_size=[height, width])
    elif isinstance(data, FrameTriples):  # cond = [A, B, tau]
        wrap_backbone(recipe, "image_conditioned", "--interpolation", cond_channels=2 * c + 1,
                      image_size=[height, width])
    return recipe


def stage_of_info(info: dict[str, Any]) -> Optional[str]:
    """The task a run's data info trains ("super_resolution", "inpainting", "interpolation"), or None."""
    kind = info.get("kind")
    return kind if kind in ("super_resolution", "inpainting", "interpolation") else None


__all__ = ["CONFLICTS", "check_conflicts", "stage_data", "stage_recipe", "stage_of_info", "wants_interpolation",
           "wrap_backbone"]
