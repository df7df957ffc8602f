"""Points as a Plume data type: vectors (D,), the 2-D toy sets (moons, swissroll, 8gaussians, checkerboard, gmm) or any
numeric array; EDM on an MLP by default; samples as float32 `arr_0` of an .npz beside a scatter plot; measured by
the energy distance to fresh draws of the toy set (and, for Gaussian mixtures, the log-density gap and the
mode-weight total variation), each beside its floor: the same measure between two exact sets.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..errors import PlumeError
from ..modality import DataRequest, Modality, refuse_options
from ..train.data import TensorData, TrainingData
from ..train.plots import scatter_plot
from .metrics import vector_report
from .toy import MIXTURES, TOY_SETS, toy_data, toy_mixture

VECTOR_RECIPE: dict[str, Any] = {
    "backbone": {"name": "mlp", "preset": None, "options": {"width": 64, "depth": 3}},
    "denoiser": {"process": "edm", "prediction": "edm", "weighting": "edm", "time_sampling": "lognormal"},
    "training": {"steps": 2000, "batch_size": 512, "lr": 5e-3, "ema_decay": 0.999, "warmup_steps": 100},
}
TOY_POINTS = 50_000  # toy-set size for training
REFERENCE_POINTS = 5000  # data points drawn beside the samples in the scatter plot
HELD_OUT_SEEDS = (1_000_001, 2_000_003)  # offsets of the seeds of the two fresh sets an evaluation draws
EVALUATION_OPTIONS = ("n", "seeds", "sampler", "steps", "batch_size", "seed", "ref", "progress", "optional", "labels",
                      "prompts", "guidance")


class Points(Modality):
    """Vectors: the 2-D toy sets by name; samples as .npz (float32 arr_0) + scatter plot."""

    name = "points"
    summary = "vectors (D,): the 2-D toy sets"
    embedded = tuple(TOY_SETS)
    data_options = ("limit",)
    threads = 1  # tiny ops, where threads cost more than they gain

    def recognizes(self, source: str) -> bool:
        return source in TOY_SETS

    def describes(self, info: dict[str, Any]) -> bool:
        return info.get("modality") == self.name or info.get("kind") == "toy" or info.get("name") in TOY_SETS \
            or len(info.get("shape", [])) == 1

    def training_data(self, source: Any, request: DataRequest) -> TrainingData:
        if not isinstance(source, str) or source not in TOY_SETS:
            raise PlumeError(f"unknown toy set {source!r}; valid toy sets: {', '.join(TOY_SETS)} (or train on your "
                             "own vectors from Python: plume.train.train(model, array))")
        refuse_options(self, request.options, f"{source!r}")
        n = request.options.get("limit") or TOY_POINTS
        return toy_training_data(source, int(n), request.seed)

    def data_from_info(self, info: dict[str, Any], source: str = "config.json") -> TrainingData:
        if info.get("name") in TOY_SETS and "n" in info and "seed" in info:
            return toy_training_data(info["name"], int(info["n"]), int(info["seed"]))
        return super().data_from_info(info, source)

    def default_recipe(self, shape: Sequence[int]) -> dict[str, Any]:
        return copy.deepcopy(VECTOR_RECIPE)

    def write_samples(self, samples: torch.Tensor, out: Path, info: dict[str, Any], title: str) -> list[Path]:
        """out.npz (arr_0: float32 (n, D)) and out.png, the samples beside the toy set's points (when it is one)."""
        npz = out.with_suffix(".npz")
        np.savez(npz, arr_0=samples.numpy().astype(np.float32))
        reference = toy_data(info["name"], min(int(info.get("n", REFERENCE_POINTS)), REFERENCE_POINTS),
                             info.get("seed", 0)) if info.get("name") in TOY_SETS else None
        return [npz, scatter_plot(out.with_suffix(".png"), samples, reference, title=f"samples ({title})")]

    def read_samples(self, path: Path) -> torch.Tensor:
        with np.load(path, allow_pickle=False) as archive:
            if "arr_0" not in archive:
                raise PlumeError(f"{path} has no arr_0; Plume reads point samples as arr_0, float (N, D)")
            samples = archive["arr_0"]
        if samples.ndim != 2 or not np.issubdtype(samples.dtype, np.floating):
            raise PlumeError(f"{path}: arr_0 is {samples.dtype} {samples.shape}; expected float points (N, D)")
        return torch.from_numpy(samples).float()

    def evaluate(self, samples: Optional[torch.Tensor], run: Any, options: dict[str, Any],
                 out: Path) -> Optional[dict[str, Any]]:
        """Samples against two fresh draws of the run's toy set (seeds its training data did not use)."""
        info = run.info if run is not None else {"name": options.get("ref"), "seed": 0}
        unknown = sorted(k for k, v in options.items() if v not in (None, False) and k not in EVALUATION_OPTIONS)
        if unknown:
            raise PlumeError(f"the evaluation of points takes no option {unknown[0]!r}; its options: "
                             f"{', '.join(EVALUATION_OPTIONS)}")
        if info.get("name") not in TOY_SETS:
            why = (f"points are measured against fresh draws of a toy set ({', '.join(TOY_SETS)}); "
                   f"{info.get('name')!r} is none" + ("" if run is not None else " (give --ref TOY_SET)"))
            if options.get("optional"):
                return {"skipped": why}
            raise PlumeError(why)
        if samples is None:
            samples = run.sample(n=options.get("n") or 1000, seeds=options.get("seeds"),
                                 sampler=options.get("sampler") or "dpm++2m", steps=options.get("steps") or 20,
                                 batch_size=options.get("batch_size") or 500, progress=options.get("progress", True))
        name, seed = info["name"], int(info.get("seed", 0))
        held_out, floor_set = (toy_data(name, len(samples), seed + offset) for offset in HELD_OUT_SEEDS)
        report: dict[str, Any] = vector_report(samples, held_out, floor_set,
                                               toy_mixture(name) if name in MIXTURES else None)
        report = {**report, "n_samples": int(len(samples)), "reference": f"two fresh draws of {name}"}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        return report

    def report_text(self, report: dict[str, Any], path: Path) -> str:
        if "skipped" in report:
            return f"no evaluation: {report['skipped']}"
        lines = [f"  {k}: {report[k]:.4f} (two exact sets: {report[k + '_floor']:.4f})" for k in report
                 if k + "_floor" in report]
        return f"evaluation against held-out data -> {path}\n" + "\n".join(lines)


def toy_training_data(name: str, n: int, seed: int) -> TensorData:
    """n points of toy set `name` drawn with `seed`, as the trainer's data (its info rebuilds it)."""
    return TensorData(toy_data(name, n, seed), info={"modality": "points", "kind": "toy", "name": name, "n": n,
                                                     "seed": seed})


POINTS = Points()

__all__ = ["POINTS", "Points", "REFERENCE_POINTS", "TOY_POINTS", "VECTOR_RECIPE", "toy_training_data"]
