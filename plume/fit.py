"""A new run from a data name in one call: `plume.fit("digits", "runs/digits", minutes=4)` is `plume train --data
digits --out runs/digits --minutes 4`, and returns the trained run (plume.load).

The data type that reads the data (plume.modality) makes the training data and its default recipe; the user's
choices override the recipe (backbone, preset, backbone options, denoiser settings, training options), the model is
conditioned on the data's captions or class labels when asked (plume.recipes.recipe_model), and plume.train.train
trains it. `resume=True` continues the run in `out` exactly, with the few training options a resume may change.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Union

from .backbones import is_conditional
from .denoiser import Denoiser
from .errors import PlumeUsageError
from .modality import DataRequest, RecipeChoices, modality_for_source, modality_of
from .recipes import recipe_model
from .run import Run, load, pick_device
from .train import build_denoiser, find_checkpoint, read_config, train, train_config

PathLike = Union[str, os.PathLike]
LABEL_DROPOUT = 0.1  # a conditional run's default: the share of labels dropped, for classifier-free guidance


def fit(data: Any, out: PathLike, *, resume: bool = False, data_options: Optional[dict[str, Any]] = None,
        conditional: bool = False, text_encoder: Optional[str] = None, backbone: Optional[str] = None,
        preset: Optional[str] = None, backbone_options: Optional[dict[str, Any]] = None,
        denoiser: Optional[dict[str, Any]] = None, seed: Optional[int] = None, device: Any = "auto",
        progress: bool = True, **training: Any) -> Run:
    """Train a run on `data` (a `--data` string: "digits", "moons", a folder, "images:PATH", ...) into `out`; returns
    it loaded (EMA weights), with `run.training` the plume.train.TrainResult.

    data_options: the data type's options (images: image_size, channels, flip, holdout, latent, super_resolution,
    inpainting, interpolation, ...; plume.modality.Modality.data_options); conditional: condition on the data's
    captions (text_encoder: a pretrained encoder's folder) or else its class labels; backbone, preset,
    backbone_options, denoiser (process, prediction, weighting, time_sampling, sigma_data): the recipe's choices;
    training: plume.train.TrainConfig's options (steps, minutes, batch_size, lr, ...). With resume=True, `data`
    and the recipe come from the run in `out`, and `training` may change only what a resume may
    (plume.train.trainer.RESUMABLE_CHANGES)."""
    device = pick_device(device)
    if resume:
        model, training_data, options = resumed(out, training)
    elif data is None:
        raise PlumeUsageError("give the data to train on (or resume=True to continue a run)")
    else:
        seed = 0 if seed is None else int(seed)
        model, training_data, options = fresh(data, seed, data_options or {}, conditional, text_encoder, RecipeChoices(
            backbone, preset, dict(backbone_options or {}), dict(denoiser or {})), device, progress, training)
    result = train(model.to(device), training_data, out, train_config(options), resume=resume, progress=progress)
    run = load(out, device=device)
    run.training = result
    return run


def fresh(source: Any, seed: int, data_options: dict[str, Any], conditional: bool, text_encoder: Optional[str],
          choices: RecipeChoices, device: Any, progress: bool,
          training: dict[str, Any]) -> tuple[Denoiser, Any, dict[str, Any]]:
    """A new run's model, data and training options."""
    modality, rest = modality_for_source(source) if isinstance(source, str) else (None, source)
    if modality is None:
        raise PlumeUsageError(f"give the data as a --data string (a data set's name, a path, TYPE:SOURCE), got "
                              f"{type(source).__name__}; train on Python objects with plume.train.train")
    request = DataRequest(seed=seed, progress=progress, device=device, conditional=conditional,
                          options={k: v for k, v in data_options.items() if v is not None and v is not False})
    data = modality.training_data(rest, request)
    recipe = modality.recipe(data, choices)
    model = recipe_model(data, recipe, seed, conditional, text_encoder, choices)
    labelled = is_conditional(model.backbone)
    options = {**recipe["training"], **({"label_dropout": LABEL_DROPOUT} if labelled else {}),
               **{k: v for k, v in training.items() if v is not None}, "seed": seed}
    if options.get("label_dropout") and not labelled:
        raise PlumeUsageError("--label-dropout needs --conditional (class labels or captions to drop)")
    return model, data, options


def resumed(out: PathLike, training: dict[str, Any]) -> tuple[Denoiser, Any, dict[str, Any]]:
    """The saved run's model and data, rebuilt from its config.json, and its training options with `training`'s
    changes (a new time budget, or none)."""
    saved = read_config(out)
    source = str(find_checkpoint(out) / "config.json")
    model = build_denoiser(saved, source)
    data = modality_of(saved.get("data", {}), source).data_from_info(saved["data"], source)  # e.g. latents again
    text = getattr(model.backbone, "text", None)
    if text is not None:
        data.tokenize(text.encoder.tokenizer)  # labels = token ids (N, T), as in the first session
    return model, data, {**saved.get("training", {}), "minutes": None,
                         **{k: v for k, v in training.items() if v is not None}}


__all__ = ["LABEL_DROPOUT", "fit", "fresh", "resumed"]
