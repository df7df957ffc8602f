"""Default recipes: the backbone, denoiser and training options Plume uses when the user names only the data.

A recipe is plain data (DESIGN.md: presets as plain data); `build_recipe` turns it into a Denoiser and a
TrainConfig, and the command line's flags override any value. The image recipe is EDM's (Karras et al. 2022:
EDM preconditioning, log-normal noise levels, EDM loss weighting) on an ADM-style U-Net; bench/digits.py
measures it against diffusers' own recipe.
"""
from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import torch

from .backbones import backbone
from .denoiser import Denoiser

VECTOR_RECIPE: dict[str, Any] = {
    "backbone": {"name": "mlp", "preset": None, "options": {"width": 64, "depth": 3}},
    "denoiser": {"process": "edm", "prediction": "edm", "weighting": "edm", "time_sampling": "lognormal"},
    "training": {"steps": 2000, "batch_size": 512, "lr": 5e-3, "ema_decay": 0.999, "warmup_steps": 100},
}

IMAGE_RECIPE: dict[str, Any] = {
    "backbone": {"name": "unet", "preset": "tiny", "options": {}},
    "denoiser": {"process": "edm", "prediction": "edm", "weighting": "edm", "time_sampling": "lognormal",
                 "sigma_data": 0.5},
    "training": {"steps": 100_000, "batch_size": 128, "lr": 2e-3, "ema_decay": 0.999, "warmup_steps": 200,
                 "lr_schedule": "constant", "sample_count": 100},
}


def default_recipe(shape: Sequence[int]) -> dict[str, Any]:
    """The recipe for examples shaped `shape`: (C, H, W) images get IMAGE_RECIPE, vectors (D,) VECTOR_RECIPE."""
    return copy.deepcopy(IMAGE_RECIPE if len(shape) == 3 else VECTOR_RECIPE)


def build_recipe(recipe: dict[str, Any], shape: Sequence[int], num_classes: Optional[int] = None,
                 seed: int = 0, text: Optional[dict[str, Any]] = None) -> Denoiser:
    """The recipe's Denoiser for examples shaped `shape` (its weights seeded by `seed`), conditioned on class
    labels (num_classes) or text (`text`: text-encoder options, plume.text.text_options)."""
    spec = recipe["backbone"]
    data_options = {"dim": int(shape[0])} if len(shape) == 1 else {"in_channels": int(shape[0])}
    if spec["name"] == "dit":
        data_options["image_size"] = [int(shape[1]), int(shape[2])]
    if num_classes is not None:
        data_options["num_classes"] = int(num_classes)
    if text is not None:
        data_options["text"] = dict(text)
    torch.manual_seed(seed)
    preset = {"preset": spec["preset"]} if spec.get("preset") else {}
    net = backbone(spec["name"], **preset, **{**data_options, **spec.get("options", {})})
    return Denoiser(net, **recipe["denoiser"])
