"""A trained run as one object: `run = plume.load("runs/digits")`, then `run.sample(...)`, `run.save(...)`,
`run.evaluate(...)`.

A run directory holds a checkpoint (config.json + safetensors, plume.train.checkpoint) whose "data" record names
its data type (plume.modality); the run asks that data type how samples leave the model (a latent run decodes them),
how they are written and how they are measured, so the same calls serve every data type. The command line
(`plume sample`, `plume eval`), the task commands and the server are thin layers over this object. This is what a
diffusers user looks for under `from_pretrained`.

Sample k is a function of (run, sampler settings, seed k, condition k): `run.sample(seeds=[17])` equals row 17 of
`run.sample(n=1000)` (plume.draw).
"""
from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from .denoiser import Denoiser
from .draw import draw, record_trajectory
from .errors import PlumeError, PlumeUsageError
from .modality import Decoder, Modality, modality_of
from .sampling import resolve_seeds
from .train.checkpoint import find_checkpoint, load_denoiser, read_config
from .train.distributed import Distributed, finish, from_environment, rank_device

PathLike = Union[str, os.PathLike]
Labels = Union[int, Sequence[int], torch.Tensor]
TRAJECTORY_ROWS, TRAJECTORY_COLUMNS = 8, 12


def pick_device(name: "str | torch.device | None" = "auto") -> torch.device:
    """A torch device from a name: "auto" (or None) is CUDA when present, else the CPU; a CUDA name on a machine
    without CUDA is refused."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PlumeError(f"--device {name!r} is not a device name (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PlumeError(f"--device {name}: this machine has no CUDA device (torch {torch.__version__})")
    return device


class Run:
    """A trained model with its data type and data info: sample, save, evaluate (plume.load makes one)."""

    def __init__(self, path: Path, config: dict[str, Any], denoiser: Denoiser, place: Distributed,
                 weights: str = "ema"):
        self.path, self.config, self.denoiser, self.place, self.weights = Path(path), config, denoiser, place, weights
        self.source = str(find_checkpoint(self.path) / "config.json")  # the config.json read, for messages
        self.modality: Modality = modality_of(self.info, self.source)
        self.training: Any = None  # plume.fit's plume.train.TrainResult, for a run just trained

    @property
    def info(self) -> dict[str, Any]:
        """The run's data record (config.json's "data": its data type's description, shape, size)."""
        return self.config.get("data", {})

    @property
    def name(self) -> str:
        """What the run is called in messages: its directory."""
        return str(self.path)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example in the model's space (a latent run's latents)."""
        return tuple(self.info.get("shape", []))

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def num_classes(self) -> Optional[int]:
        """The class count of a class-conditional run, else None."""
        return self.config.get("backbone", {}).get("options", {}).get("num_classes")

    @cached_property
    def decoder(self) -> Optional[Decoder]:
        """How model-space samples become data-space ones (a latent run's autoencoder), or None."""
        return self.modality.decoder(self.info, self.source, self.device)

    def sample(self, n: Optional[int] = None, seeds: Optional[Sequence[int]] = None, seed: int = 0,
               sampler: str = "dpm++2m", steps: int = 20, grid: Optional[str] = None, labels: Optional[Labels] = None,
               prompt: "str | Sequence[str] | None" = None, negative_prompt: Optional[str] = None,
               guidance: float = 1.0, autoguidance: "Run | PathLike | None" = None, batch_size: int = 500,
               progress: bool = True, decode: bool = True) -> Optional[torch.Tensor]:
        """Samples of seeds `seeds` (or seed .. seed + n - 1), in the data's space (decoded, unless decode=False).

        `labels` (a class-conditional run) or `prompt` (a text-conditioned one): sample k gets the (k mod count)-th,
        under classifier-free guidance of scale `guidance` (1: the conditional model alone, 0: unconditional),
        steered away from `negative_prompt` if given. `autoguidance`: a weaker run of the same data (or its path)
        guides instead (Karras et al. 2024). Under torchrun every process draws its share and process 0 gets them
        all (the others get None)."""
        seed_list = sample_seeds(n, seeds, seed)
        cond, negative = self.conditions(labels, prompt, negative_prompt)
        weaker = self.weaker(autoguidance).denoiser if autoguidance is not None else None
        x = draw(self.denoiser, self.shape, seed_list, batch_size, dict(sampler=sampler, steps=steps, grid=grid),
                 self.place, cond, guidance, weaker, negative, progress)  # (n, *shape) on process 0
        if x is None or not decode or self.decoder is None:
            return x
        return self.decoder(x)  # (n, ...) in the data's space

    def conditions(self, labels: Optional[Labels], prompt: "str | Sequence[str] | None",
                   negative_prompt: Optional[str] = None) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """The condition rows (L,) of class labels or (L, T) of prompts' token ids, and the negative prompt's (T,),
        each checked against what the run was trained on."""
        if labels is not None and prompt is not None:
            raise PlumeUsageError("give labels (a class-conditional run) or a prompt (a text-conditioned run), not both")
        if negative_prompt is not None and prompt is None:
            raise PlumeUsageError("a negative prompt needs a prompt")
        if labels is not None:
            return self.class_labels(labels), None
        if prompt is None:
            return None, None
        text = getattr(self.denoiser.backbone, "text", None)
        if text is None:
            raise PlumeUsageError(f"the run {self.path} is not text-conditioned (train on captioned data with "
                                  "--conditional); it takes no prompt")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        tokenizer = text.encoder.tokenizer
        negative = tokenizer.encode([negative_prompt])[0] if negative_prompt is not None else None  # (T,)
        return tokenizer.encode(prompts), negative  # (P, T)

    def class_labels(self, labels: Labels) -> torch.Tensor:
        """Class labels (L,) as int64, checked against the run's classes."""
        classes = self.num_classes
        if not classes:
            raise PlumeUsageError(f"the run {self.path} was not trained with class labels (train with --conditional); "
                                  "it takes no labels")
        values = torch.as_tensor([labels] if isinstance(labels, int) else labels, dtype=torch.long).reshape(-1)
        bad = values[(values < 0) | (values >= classes)]
        if len(bad):
            names = self.info.get("class_names")
            raise PlumeUsageError(f"label {int(bad[0])} is not a class of {self.path}: it has {classes} classes (0.."
                                  f"{classes - 1}" + (f": {', '.join(map(str, names))}" if names else "") + ")")
        return values

    def weaker(self, other: "Run | PathLike") -> "Run":
        """A weaker run for autoguidance, refused unless it was trained on data of this run's shape and classes."""
        weak = other if isinstance(other, Run) else load(other, weights=self.weights, device=self.device)
        for what, get in (("data shape", lambda run: list(run.shape)), ("class count", lambda run: run.num_classes)):
            if get(self) != get(weak):
                raise PlumeError(f"autoguidance by {weak.path}: its {what} is {get(weak)}, the run {self.path}'s is "
                                 f"{get(self)}; guide with a weaker run of the same data and conditioning (e.g. "
                                 "trained for fewer minutes, or with a smaller --preset)")
        return weak

    def save(self, samples: torch.Tensor, out: PathLike, title: str = "") -> list[Path]:
        """Write data-space samples in the data type's formats (images: .npz arr_0 uint8 NHWC and a PNG grid; points:
        .npz and a scatter plot) at `out` (its suffix replaced); returns the paths, the data file first."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        return self.modality.write_samples(samples, out, self.info, title)

    def evaluate(self, samples: Optional[torch.Tensor] = None, out: Optional[PathLike] = None,
                 **options: Any) -> Optional[dict[str, Any]]:
        """The data type's evaluation of `samples` (data space; None: drawn here, `options` saying how) against the
        run's data; pictures beside `out` (default RUN/eval.json). See plume.images.evaluate / plume.points."""
        return self.modality.evaluate(samples, self, options, Path(out) if out else self.path / "eval.json")

    def trajectory(self, seeds: Sequence[int], path: PathLike, sampler: str = "dpm++2m", steps: int = 20,
                   grid: Optional[str] = None) -> Path:
        """A picture of x_t and x0_hat along the sampler's steps for `seeds` (images: a strip, rows of x_t above
        x0_hat, pure noise on the left)."""
        frames = record_trajectory(self.denoiser, self.shape, seeds, dict(sampler=sampler, steps=steps, grid=grid),
                                   TRAJECTORY_COLUMNS)
        return self.modality.trajectory_picture(frames, Path(path), self.decoder)

    def then(self, stage: "Run | PathLike", **options: Any) -> Any:
        """A run-like object (sample, save) whose samples are this run's passed through `stage` (images: a
        cascade's super-resolution stage; options: augment)."""
        stage = stage if isinstance(stage, Run) else load(stage, weights=self.weights, device=self.device)
        return self.modality.chain(self, stage, options)

    def check_samples(self) -> None:
        """Refuse, saying what to use instead, a run that draws nothing by itself (e.g. an inpainting model)."""
        self.modality.check_sampling(self.config, self.path)

    def close(self) -> None:
        """Leave torchrun's process group, if this run joined one (after the last collective)."""
        finish(self.place)

    def compile(self) -> None:
        """torch.compile the backbone (CUDA graphs on a GPU): faster for many samples after compiling."""
        self.denoiser.backbone.compile(mode="reduce-overhead" if self.device.type == "cuda" else None)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, {self.modality.name}, shape {list(self.shape)})"


def load(path: PathLike, weights: str = "ema", device: "str | torch.device | None" = "auto") -> Run:
    """The run in `path` (a run directory or its checkpoint) with its EMA weights (weights="model": the raw ones), on
    `device` ("auto": CUDA when present); under torchrun each process takes its own GPU."""
    if weights not in ("ema", "model"):
        raise PlumeError(f"weights must be 'ema' or 'model', got {weights!r}")
    config = read_config(path)
    place = from_environment(pick_device(device))  # torchrun: every process draws its share of the batches
    denoiser = load_denoiser(path, ema=weights == "ema", device=rank_device(pick_device(device), place))
    return Run(Path(path), config, denoiser, place, weights)


def sample_seeds(n: Optional[int], seeds: Optional[Sequence[int]], seed: int = 0) -> list[int]:
    """Explicit seeds, or seed .. seed + n - 1 (plume.sampling.resolve_seeds), refusing neither being given."""
    if seeds is None and (n is None or n < 1):
        raise PlumeError(f"give the number of samples n (at least 1) or their seeds, got n={n}")
    return resolve_seeds(len(seeds) if seeds is not None else int(n), seed, seeds)


__all__ = ["Run", "load", "pick_device", "sample_seeds", "TRAJECTORY_ROWS", "TRAJECTORY_COLUMNS"]
