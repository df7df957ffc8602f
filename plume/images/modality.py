"""Images as a Plume data type: float32 (C, H, W) in [-1, 1] inside Plume, uint8 (N, H, W, C) on disk (`arr_0` of an
.npz, guided-diffusion's convention) beside a PNG grid; EDM on an ADM-style U-Net by default; measured by FID, KID,
precision/recall and the memorization audit in the features of a classifier trained on the data (labelled sets) or
Inception-v3 / DINOv2 (plume.images.evaluate).

`--data` names an embedded set (digits, lfw, photos, shapes, shapes-triples, moving-shapes), a folder of image files,
an .npz file, hf:PATH (a saved Hugging Face data set), a prepared set (`plume prepare`) or a latent cache (`plume
prepare --latent`, plume.images.latent.cache). The data options are those of plume.images.sets (image_size,
channels, flip, on_error, holdout, limit), of plume.images.streaming (stream: "auto" | "on" | "off", workers), and
the tasks of plume.images.stages (latent, super_resolution, augment_max, inpainting, interpolation).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..errors import PlumeError
from ..modality import DataRequest, Decoder, Modality, RecipeChoices, apply_choices, refuse_options
from ..train.data import TrainingData
from .grid import save_image_grid, save_trajectory_strip
from .interpolation_data import interpolation_data_from_info
from .latent.cache import is_latent_cache, latents_from_info
from .latent.data import KIND as LATENT, decode_latents, latent_autoencoder
from .masks import inpainting_data_from_info
from .moving_shapes import MOVING_SHAPES
from .sets import IMAGE_SETS, image_data_from_info, images_to_tensor, tensor_to_images
from .stages import stage_data, stage_of_info, stage_recipe
from .super_resolution_data import super_resolution_data_from_info

IMAGE_RECIPE: dict[str, Any] = {
    "backbone": {"name": "unet", "preset": "tiny", "options": {}},
    "denoiser": {"process": "edm", "prediction": "edm", "weighting": "edm", "time_sampling": "lognormal",
                 "sigma_data": 0.5},
    "training": {"steps": 100_000, "batch_size": 128, "lr": 2e-3, "ema_decay": 0.999, "warmup_steps": 200,
                 "lr_schedule": "constant", "sample_count": 100},
}  # EDM (Karras et al. 2022) on the "tiny" U-Net; bench/digits.py measures it against diffusers' own recipe
GRID_SIZE = 100  # samples in the PNG grid beside the .npz
FROM_INFO = {"images": lambda info, source: image_data_from_info(info),
             LATENT: latents_from_info,
             "super_resolution": super_resolution_data_from_info,
             "inpainting": inpainting_data_from_info,
             "interpolation": interpolation_data_from_info}  # data info "kind" -> the loader that rebuilds it


class Images(Modality):
    """Images: embedded sets, folders, .npz files and saved Hugging Face sets; samples as .npz + PNG grid."""

    name = "images"
    summary = "images (C, H, W): embedded sets, folders of PNG/JPEG, .npz, hf:PATH"
    embedded = (*IMAGE_SETS, MOVING_SHAPES)
    data_options = ("image_size", "channels", "flip", "on_error", "holdout", "limit", "latent", "super_resolution",
                    "augment_max", "inpainting", "interpolation", "stream", "workers")

    def recognizes(self, source: str) -> bool:
        if source in self.embedded or source.startswith("hf:"):
            return True
        path = Path(source).expanduser()
        return is_latent_cache(path) or path.is_dir() or (path.is_file() and path.suffix.lower() == ".npz")

    def describes(self, info: dict[str, Any]) -> bool:
        return info.get("modality") == self.name or info.get("kind") in FROM_INFO or len(info.get("shape", [])) == 3

    def training_data(self, source: Any, request: DataRequest) -> TrainingData:
        refuse_options(self, request.options, f"{source!r}")
        return stage_data(str(source), request)

    def data_from_info(self, info: dict[str, Any], source: str = "config.json") -> TrainingData:
        kind = info.get("kind")
        if kind not in FROM_INFO:
            raise PlumeError(f"{source}: the run was trained on image data of kind {kind!r}, which Plume cannot load "
                             f"by itself (kinds: {', '.join(FROM_INFO)}); pass the data from Python with "
                             "plume.train.train(..., resume=True)")
        return FROM_INFO[kind](info, source)

    def default_recipe(self, shape: Sequence[int]) -> dict[str, Any]:
        return copy.deepcopy(IMAGE_RECIPE)

    def recipe(self, data: TrainingData, choices: RecipeChoices) -> dict[str, Any]:
        recipe = self.default_recipe(data.shape)
        if data.info().get("kind") == LATENT:
            recipe["denoiser"]["sigma_data"] = 1.0  # the latents are scaled to unit variance
        return stage_recipe(data, apply_choices(recipe, choices), choices)

    def decoder(self, info: dict[str, Any], source: str, device: torch.device) -> Optional[Decoder]:
        autoencoder = latent_autoencoder(info, source, device)  # a latent run's, checked unchanged; else None
        return None if autoencoder is None else (lambda z: decode_latents(autoencoder, z))

    def check_sampling(self, config: dict[str, Any], run: Path) -> None:
        refuse_stage_alone(config, run)

    def write_samples(self, samples: torch.Tensor, out: Path, info: dict[str, Any], title: str) -> list[Path]:
        """out.npz (arr_0: uint8 (n, H, W, C)) and out.png, the grid of the first GRID_SIZE."""
        pixels = tensor_to_images(samples)  # (n, H, W, C) uint8
        npz = out.with_suffix(".npz")
        np.savez(npz, arr_0=pixels)
        return [npz, save_image_grid(pixels[:GRID_SIZE], out.with_suffix(".png"), title=title)]

    def read_samples(self, path: Path) -> torch.Tensor:
        return images_to_tensor(read_sample_pixels(path))

    def evaluate(self, samples: Optional[torch.Tensor], run: Any, options: dict[str, Any],
                 out: Path) -> Optional[dict[str, Any]]:
        from .evaluate import evaluate_images  # late: the feature networks load only when measured

        return evaluate_images(samples, run, options, out)

    def report_text(self, report: dict[str, Any], path: Path) -> str:
        from .evaluate import summary

        return summary(report, path)

    def trajectory_picture(self, frames: list[tuple[float, torch.Tensor, torch.Tensor]], path: Path,
                           decoder: Optional[Decoder]) -> Path:
        """A strip: x_t (above) and x0_hat (below) of each seed at each kept noise level, decoded first."""
        decode = decoder or (lambda x: x)
        return save_trajectory_strip([tensor_to_images(decode(x)) for _, x, _ in frames],
                                     [tensor_to_images(decode(x0)) for _, _, x0 in frames], path,
                                     labels=[f"s={s:.3g}" for s, _, _ in frames])

    def chain(self, run: Any, then: Any, options: dict[str, Any]) -> Any:
        from .cascade import CascadeRun

        return CascadeRun(run, then, **options)


def read_sample_pixels(path: Path) -> np.ndarray:
    """arr_0 of a samples .npz as uint8 (N, H, W, C); gray images without a channel axis, (N, H, W), get one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "arr_0" not in archive:
                raise PlumeError(f"{path} has no arr_0; Plume reads image samples as arr_0, uint8 (N, H, W, C)")
            samples = archive["arr_0"]
    except (OSError, ValueError) as e:
        raise PlumeError(f"{path} is not a readable .npz file: {e}") from None
    if samples.dtype == np.uint8 and samples.ndim == 3:
        samples = samples[..., None]  # (N, H, W) gray -> (N, H, W, 1)
    if samples.dtype != np.uint8 or samples.ndim != 4 or samples.shape[-1] not in (1, 3):
        raise PlumeError(f"{path}: arr_0 is {samples.dtype} {samples.shape}; expected uint8 (N, H, W, C) images with "
                         "1 or 3 channels, or gray ones (N, H, W)")
    return samples


def refuse_stage_alone(config: dict[str, Any], run: Path, allow: tuple[str, ...] = ()) -> None:
    """A super-resolution, inpainting or frame-interpolation run draws nothing by itself: say what to use instead
    (tasks in `allow` pass: the command that uses them)."""
    info = config.get("data", {})
    task = stage_of_info(info)
    if task is None or task in allow:
        return
    if task == "interpolation":
        raise PlumeError(f"{run} is a frame-interpolation model: it draws frames between two given ones; use "
                         f"plume interpolate {run} --frames DIR")
    if task == "inpainting":
        raise PlumeError(f"{run} is an inpainting model: it fills the holes of a given image; use plume inpaint {run} "
                         f"--image IMAGE --mask MASK")
    low = info["low_size"]
    raise PlumeError(f"{run} is a super-resolution stage (it makes {info['shape'][1]}x{info['shape'][2]} images "
                     f"from {low[0]}x{low[1]} ones); sample it after a base run: plume sample BASE --then {run}")


IMAGES = Images()

__all__ = ["IMAGES", "IMAGE_RECIPE", "Images", "read_sample_pixels", "refuse_stage_alone"]
