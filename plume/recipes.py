"""Recipes: the backbone, denoiser and training options of a run, as plain data (DESIGN.md: presets as plain data).

Each data type gives its default recipe (plume.modality.Modality.default_recipe: plume.images uses EDM on an
ADM-style U-Net, plume.points EDM on an MLP); the command line's flags override any value
(plume.modality.apply_choices); `build_recipe` turns a recipe into a Denoiser for examples of a given shape.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from .backbones import backbone
from .backbones.text import text_options
from .denoiser import Denoiser
from .errors import PlumeError, PlumeUsageError
from .modality import RecipeChoices


def build_recipe(recipe: dict[str, Any], shape: Sequence[int], num_classes: Optional[int] = None,
                 seed: int = 0, text: Optional[dict[str, Any]] = None) -> Denoiser:
    """The recipe's Denoiser for examples shaped `shape` (its weights drawn from a generator seeded by `seed`; the
    caller's global random state is left as it was), conditioned on class labels (num_classes) or text (`text`:
    text-encoder options, plume.backbones.text.text_options)."""
    spec = recipe["backbone"]
    data_options = {"dim": int(shape[0])} if len(shape) == 1 else {"in_channels": int(shape[0])}
    if spec["name"] == "dit":
        data_options["image_size"] = [int(shape[1]), int(shape[2])]
    if num_classes is not None:
        data_options["num_classes"] = int(num_classes)
    if text is not None:
        data_options["text"] = dict(text)
    preset = {"preset": spec["preset"]} if spec.get("preset") else {}
    with torch.random.fork_rng(devices=[]):  # modules draw their initial weights from the global generator
        torch.manual_seed(seed)
        net = backbone(spec["name"], **preset, **{**data_options, **spec.get("options", {})})
    return Denoiser(net, **recipe["denoiser"])


def recipe_model(data: Any, recipe: dict[str, Any], seed: int = 0, conditional: bool = False,
                 text_encoder: Optional[str] = None, choices: RecipeChoices = RecipeChoices()) -> Denoiser:
    """The recipe's Denoiser for `data`, conditioned (with `conditional`) on the data's captions (a text encoder
    trained with the model, or the frozen pretrained one in the folder `text_encoder`) or else its class labels. A
    text-conditioned recipe samples training times log-SNR-uniformly unless `choices` chose otherwise; the data's
    labels then become the captions' token ids."""
    captions = getattr(data, "train_captions", None) if conditional else None
    text = text_options(captions, text_encoder) if captions else None
    if text_encoder is not None and text is None:
        raise PlumeUsageError("--text-encoder needs --conditional and captioned data (a folder with a captions "
                              "file, or shapes)")
    if text is not None and choices.denoiser.get("time_sampling") is None:
        # Prompts decide layout, colour and size at high noise, which EDM's lognormal rarely trains: in 30 CPU
        # minutes on shapes the prompt-match rate went from 0.06 to 0.17 with log-SNR-uniform times
        # (docs/text-to-image.md).
        recipe["denoiser"]["time_sampling"] = "logsnr"
    num_classes = getattr(data, "num_classes", None) if conditional and text is None else None
    if conditional and not num_classes and text is None:
        raise PlumeError(f"--conditional needs class labels or captions, and the data {data.info().get('name')!r} "
                         "has neither")
    denoiser = build_recipe(recipe, data.shape, num_classes=num_classes, seed=seed, text=text)
    if text is not None:
        data.tokenize(denoiser.backbone.text.encoder.tokenizer)  # labels = token ids (N, T)
    return denoiser
