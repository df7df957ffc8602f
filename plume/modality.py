"""Data types behind one interface: a Modality says how a user's data becomes training tensors and back.

Each data type is one package, plume/<name>/, whose __init__ registers one Modality object by name
(`register_modality`; plume/__init__.py imports Plume's own). A modality answers, for its data:

- which `--data` strings it reads (`recognizes`; "NAME:SOURCE" picks a modality by name), how such a string or a
  Python object becomes TrainingData (`training_data`), and how a run's saved data info rebuilds it
  (`data_from_info`); what its data options are (`data_options`: image_size, channels, ...);
- its default recipe (backbone, process, prediction, training options) for the data's shape (`default_recipe`),
  with the user's choices applied (`recipe`);
- how samples leave the model (`decoder`: e.g. a latent run's autoencoder) and are written in the format its users
  expect (`write_samples`), and read back (`read_samples`);
- its default evaluation (`evaluate`, `report_text`), the picture of a sampling trajectory (`trajectory_picture`),
  runs that draw nothing by themselves (`check_sampling`) and runs chained after another (`chain`).

Its training preview picture is its data's `render` (plume.train.data.TrainingData). The command line and
plume.load ask a run's modality and hold no data-type branch; the core imports no modality package.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import torch

from .backbones import PRESETS
from .errors import PlumeError
from .registry import Registry

if TYPE_CHECKING:  # annotations only: plume.run imports this module
    from .run import Run
    from .train.data import TrainingData

Decoder = Callable[[torch.Tensor], torch.Tensor]  # model-space samples (B, ...) -> data-space samples (B, ...)


@dataclass(frozen=True)
class DataRequest:
    """What a new run asks of its data beside the source: the seed (subsets, generated sets), a progress bar, the
    device (for any encoding), whether the model is to be conditional, and the data type's own options, each given
    by name (e.g. {"image_size": 32}); a modality refuses options it does not take, by name."""

    seed: int = 0
    progress: bool = True
    device: torch.device = torch.device("cpu")
    conditional: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecipeChoices:
    """The user's choices over a default recipe: a backbone (name, preset, options) and denoiser settings (process,
    prediction, weighting, time_sampling, sigma_data), each None or empty when not given."""

    backbone: Optional[str] = None
    preset: Optional[str] = None
    backbone_options: dict[str, Any] = field(default_factory=dict)
    denoiser: dict[str, Any] = field(default_factory=dict)


class Modality:
    """One data type. Subclasses set the class attributes and override what their data needs; the defaults refuse
    what a data type does not offer, with a message that names it."""

    name: str = ""  # registry name and package name (plume/<name>/)
    summary: str = ""  # one line for help texts and errors
    embedded: tuple[str, ...] = ()  # names of the data sets that ship with Plume's dependencies
    data_options: tuple[str, ...] = ()  # the names of its data options (DataRequest.options)
    threads: Optional[int] = None  # default CPU threads (None: torch's own); tiny models run faster on one

    def recognizes(self, source: str) -> bool:
        """Whether a `--data` string (without a "NAME:" prefix) names data of this type."""
        return False

    def describes(self, info: dict[str, Any]) -> bool:
        """Whether a run's saved data info (config.json's "data") is of this type, for runs that do not name it."""
        return info.get("modality") == self.name

    def training_data(self, source: Any, request: DataRequest) -> "TrainingData":
        """The training data named by `source` (a `--data` string or a Python object)."""
        raise NotImplementedError

    def data_from_info(self, info: dict[str, Any], source: str = "config.json") -> "TrainingData":
        """Rebuild the data a run was trained on from its saved data info (a resume, an evaluation)."""
        raise PlumeError(f"{source}: Plume cannot load the {self.name} data {info.get('name')!r} by itself; "
                         "pass the data from Python with plume.train.train(..., resume=True)")

    def default_recipe(self, shape: Sequence[int]) -> dict[str, Any]:
        """The recipe (plain data: backbone, denoiser, training) for examples shaped `shape`."""
        raise NotImplementedError

    def recipe(self, data: "TrainingData", choices: RecipeChoices) -> dict[str, Any]:
        """The default recipe for `data` with the user's `choices` applied."""
        return apply_choices(self.default_recipe(data.shape), choices)

    def decoder(self, info: dict[str, Any], source: str, device: torch.device) -> Optional[Decoder]:
        """How model-space samples become data-space samples for a run (None: they are the same)."""
        return None

    def check_sampling(self, config: dict[str, Any], run: Path) -> None:
        """Refuse, saying what to use instead, a run that draws nothing by itself."""

    def write_samples(self, samples: torch.Tensor, out: Path, info: dict[str, Any], title: str) -> list[Path]:
        """Write data-space samples (n, ...) at `out` (its suffix replaced) in the data type's formats, with a
        picture; returns the paths, the data file first."""
        raise NotImplementedError

    def read_samples(self, path: Path) -> torch.Tensor:
        """Samples written by write_samples (or by another tool in the same format), as data-space tensors."""
        raise PlumeError(f"{path}: Plume cannot read {self.name} samples from a file")

    def evaluate(self, samples: torch.Tensor, run: "Optional[Run]", options: dict[str, Any],
                 out: Path) -> Optional[dict[str, Any]]:
        """The data type's default evaluation of data-space `samples` against the run's data (or options' reference);
        pictures go beside `out`. None when nothing can measure them (the report says why not)."""
        raise PlumeError(f"Plume has no evaluation for {self.name} yet")

    def report_text(self, report: dict[str, Any], path: Path) -> str:
        """The few lines of a report a person reads (the JSON at `path` holds all of it)."""
        return f"report -> {path}"

    def trajectory_picture(self, frames: list[tuple[float, torch.Tensor, torch.Tensor]], path: Path,
                           decoder: Optional[Decoder]) -> Path:
        """A picture of (noise level, x_t, x0_hat) along a sampler's steps."""
        raise PlumeError(f"a trajectory picture is drawn for images; this run's data are {self.name}")

    def chain(self, run: "Run", then: "Run", options: dict[str, Any]) -> Any:
        """A run-like object (sample, save) that draws `run`'s samples and passes them through `then` (a cascade)."""
        raise PlumeError(f"{then.path}: {self.name} runs do not chain")

    def __repr__(self) -> str:
        return f"<{self.name} data>"


MODALITIES: Registry[Modality] = Registry("data type")


def register_modality(modality: Modality) -> Modality:
    """Make a data type known by its name: `--data NAME:SOURCE`, plume.load of its runs, the CLI and the server."""
    if not modality.name:
        raise PlumeError(f"{type(modality).__name__} has no name")
    return MODALITIES.register(modality.name, modality)


def modality_named(name: str) -> Modality:
    """The registered data type `name`, or an error that lists them."""
    return MODALITIES.named(name)


def modality_for_source(source: str) -> tuple[Modality, str]:
    """The data type a `--data` string names, and the source without its "NAME:" prefix: the prefix's, or else the
    first registered data type that recognizes the string."""
    prefix, sep, rest = str(source).partition(":")
    if sep and prefix in MODALITIES:
        return MODALITIES[prefix], rest
    for modality in MODALITIES.values():
        if modality.recognizes(str(source)):
            return modality, str(source)
    kinds = "; ".join(f"{m.name}: {', '.join(m.embedded) or m.summary}" for m in MODALITIES.values())
    raise PlumeError(f"no data named {source!r}: no data type recognizes it (embedded sets by type: {kinds}), and no "
                     f"file or folder of that name exists; prefix the data type to say which reads it "
                     f"({', '.join(f'{name}:...' for name in MODALITIES)})")


def modality_of(info: dict[str, Any], source: str = "config.json") -> Modality:
    """The data type of a run's saved data info: the one it names, else the one that describes it."""
    if "modality" in info:
        if info["modality"] not in MODALITIES:
            raise PlumeError(f"{source}: the run's data type {info['modality']!r} is not known to this Plume (known: "
                             f"{', '.join(MODALITIES)}); install the package that provides it")
        return MODALITIES[info["modality"]]
    for modality in MODALITIES.values():
        if modality.describes(info):
            return modality
    raise PlumeError(f"{source}: no data type describes the run's data {info.get('name')!r} shaped "
                     f"{info.get('shape')}; known data types: {', '.join(MODALITIES)}")


def apply_choices(recipe: dict[str, Any], choices: RecipeChoices) -> dict[str, Any]:
    """A copy of `recipe` with the user's choices applied: another backbone starts from its "tiny" preset where it
    has one (a CPU-sized default; a preset choice picks a bigger one), its options and the denoiser's settings given
    override the recipe's."""
    recipe = copy.deepcopy(recipe)
    spec = recipe["backbone"]
    if choices.backbone is not None and choices.backbone != spec["name"]:
        spec.update(name=choices.backbone, preset="tiny" if "tiny" in PRESETS.get(choices.backbone, {}) else None,
                    options={})
    if choices.preset is not None:
        spec["preset"] = choices.preset
    spec.setdefault("options", {}).update(choices.backbone_options)
    recipe["denoiser"].update({k: v for k, v in choices.denoiser.items() if v is not None})
    return recipe


def refuse_options(modality: Modality, options: dict[str, Any], what: str) -> None:
    """An error naming the first given option (not None or False) that `modality`'s data `what` does not take."""
    given = [k for k, v in options.items() if v not in (None, False) and k not in modality.data_options]
    if given:
        raise PlumeError(f"{what} is {modality.name} data; the option {given[0]!r} does not apply to it (its options: "
                         f"{', '.join(modality.data_options) or 'none'})")


__all__ = ["DataRequest", "Decoder", "MODALITIES", "Modality", "RecipeChoices", "apply_choices", "modality_for_source",
           "modality_named", "modality_of", "refuse_options", "register_modality"]
