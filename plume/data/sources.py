"""Training data by name: a toy set, an embedded image set, a folder, an .npz file or a saved Hugging Face data set.

`load_data` turns what a user types after `--data` into a TrainingData object (plume.train.data); the object's
info(), saved in the run's config.json, is what `data_from_info` reads to rebuild the same data for a resume or
an evaluation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ..errors import PlumeError
from ..train.data import TensorData, TrainingData
from .images import IMAGE_SETS, image_data_from_info, load_image_data
from .toy import TOY_SETS, toy_data

TOY_POINTS = 50_000  # toy-set size for training


def load_data(source: str, seed: int = 0, image_size: Optional[int] = None, channels: Optional[str] = None,
              flip: bool = False, on_error: str = "stop", limit: Optional[int] = None,
              progress: bool = True, holdout: float = 0.0) -> TrainingData:
    """The training data named by `source`: a toy set (plume.data.TOY_SETS), an embedded image set
    (plume.data.IMAGE_SETS), a folder of images, an .npz file, or "hf:PATH" (a data set saved with save_to_disk)."""
    if source in TOY_SETS:
        if image_size is not None or channels is not None or flip or holdout:
            raise PlumeError(f"{source!r} is a toy set of 2-D points; image options (size, channels, flip, holdout) do not apply")
        n = limit or TOY_POINTS
        return TensorData(toy_data(source, n, seed), info={"kind": "toy", "name": source, "n": n, "seed": seed})
    if source not in IMAGE_SETS and not source.startswith("hf:") and not Path(source).exists():
        raise PlumeError(f"no data named {source!r}: not a toy set ({', '.join(TOY_SETS)}), not an image set "
                         f"({', '.join(IMAGE_SETS)}), and no file or folder of that name exists; "
                         "give a folder of images, an .npz file or hf:PATH")
    return load_image_data(source, flip=flip, holdout=holdout, image_size=image_size, channels=channels, on_error=on_error,
                           limit=limit, seed=seed, progress=progress)


def data_from_info(info: dict[str, Any], source: str = "config.json") -> TrainingData:
    """Rebuild the data a run was trained on from its config.json "data" entry."""
    kind = info.get("kind", "toy" if info.get("name") in TOY_SETS else None)
    if kind == "toy" and info.get("name") in TOY_SETS and "n" in info and "seed" in info:
        return TensorData(toy_data(info["name"], int(info["n"]), int(info["seed"])),
                          info={k: info[k] for k in ("kind", "name", "n", "seed") if k in info})
    if kind == "images":
        return image_data_from_info(info)
    if kind == "super_resolution":
        from .super_resolution import super_resolution_data_from_info
        return super_resolution_data_from_info(info, source)
    if kind == "inpainting":
        from .masks import inpainting_data_from_info
        return inpainting_data_from_info(info, source)
    if kind == "interpolation":
        from .interpolation import interpolation_data_from_info
        return interpolation_data_from_info(info, source)
    raise PlumeError(f"{source}: the run was trained on data {info.get('name')!r}, which Plume cannot load by itself "
                     f"(toy sets: {', '.join(TOY_SETS)}; image sets: {', '.join(IMAGE_SETS)}, folders, .npz, hf:PATH); "
                     "pass the data from Python with plume.train.train(..., resume=True)")
