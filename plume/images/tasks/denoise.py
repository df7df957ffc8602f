"""Denoising a noisy image with a diffusion model trained on clean ones.

An image with additive white Gaussian noise of std s (in the [-1, 1] image scale), y = x0 + s eps, is exactly a
diffusion state at scaled level s (plume.sampling: every Gaussian process is x_t = alpha(t) (x0 + s eps)), so
any trained denoiser applies with no retraining (Kadkhodaie & Simoncelli 2021; Xie et al. 2023). Two methods:

- "posterior-mean": one evaluation x0_hat = D(y, s) = E[x0 | y], the minimum mean-squared-error estimate
  (Tweedie's formula, Efron 2011, eq. 2.8: E[x0 | y] = y + s^2 grad log p_s(y)). Optimal in PSNR; it averages
  over the plausible clean images, so fine texture comes out smooth.
- "reverse": the reverse process from x_t = alpha(t(s)) y down to 0 with any sampler on the Karras grid from s
  (plume.tasks.start.sigmas_below): a draw from (an approximation of) p(x0 | y), sharper but with a lower PSNR
  (its mean-squared error is up to twice the posterior mean's for an exact model).
The level s comes from the user (a std in pixel values 0..255, s = sigma_255 / 127.5) or is estimated from the
image (plume.images.tasks.noise_level). Images of another size than the model's go through overlapping tiles
(plume.images.tasks.tiles). docs/denoising.md compares both methods with non-local means and BM3D (bench/denoise.py).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from ...progress import progress_bar

from ...errors import PlumeError, unknown_name
from ...predictions import prediction as build_prediction
from ...processes import GaussianProcess, process as build_process
from ...sampling import scaled_denoiser
from ...tasks.start import denoise_from, sigmas_below
from .tiles import tiled

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
METHODS = ("posterior-mean", "reverse")
DEFAULT_METHOD = "posterior-mean"  # the better PSNR in docs/denoising.md (bench/denoise.py)


def posterior_mean(fn: ModelFn, process: "str | GaussianProcess", y: torch.Tensor, s: "float | torch.Tensor",
                   prediction: str = "x0") -> torch.Tensor:
    """E[x0 | y] (B, ...) = D(y, s) for noisy y = x0 + s eps (B, ...): one model evaluation at level s."""
    denoiser = scaled_denoiser(fn, build_process(process), build_prediction(prediction))
    return denoiser(y, torch.as_tensor(s, dtype=torch.float64))  # (B, ...)


def reverse(fn: ModelFn, process: "str | GaussianProcess", y: torch.Tensor, s: float, seeds: Sequence[int],
            steps: int = 10, sampler: str = "dpm++2m", prediction: str = "x0") -> torch.Tensor:
    """x0 (B, ...) by `sampler` from the state x_t = alpha(t(s)) y down `steps` Karras levels from s to 0."""
    process = build_process(process)
    t = process.time_of_sigma_ratio(torch.tensor(float(s), dtype=torch.float64))
    x_t = float(process.alpha(t)) * y  # (B, ...): y is the scaled state at level s
    return denoise_from(fn, process, x_t, sigmas_below(process, steps, float(s)), seeds, sampler, prediction)


def denoise(fn: ModelFn, process: "str | GaussianProcess", y: torch.Tensor, s: "float | Sequence[float] | torch.Tensor",
            method: str = DEFAULT_METHOD, steps: int = 10, sampler: str = "dpm++2m", seeds: Optional[Sequence[int]] = None,
            prediction: str = "x0", tile: Optional[int] = None, overlap: Optional[int] = None,
            progress: bool = False) -> torch.Tensor:
    """Denoised images (B, C, H, W) from noisy y (B, C, H, W) in [-1, 1] at levels s (one, or one per image).

    seeds: one per image (default 0, 1, ...); a tiled image's k-th tile uses its seed + k. tile: the model's size,
    to cut larger images into tiles with `overlap` pixels in common (default tile // 2); None: whole images."""
    if method not in METHODS:
        raise unknown_name("denoising method", method, METHODS)
    if y.ndim != 4:
        raise PlumeError(f"denoise takes images (B, C, H, W), got shape {tuple(y.shape)}")
    levels = torch.as_tensor(s, dtype=torch.float64).reshape(-1)  # (1,) or (B,)
    if len(levels) not in (1, len(y)):
        raise PlumeError(f"got {len(levels)} noise levels for {len(y)} images; give one, or one per image")
    levels = levels.expand(len(y))  # (B,)
    if not bool((levels > 0).all()):
        raise PlumeError(f"noise levels must be > 0, got {levels.tolist()}")
    seeds = list(range(len(y))) if seeds is None else [int(k) for k in seeds]
    if len(seeds) != len(y):
        raise PlumeError(f"got {len(seeds)} seeds for {len(y)} images; give one seed per image")
    out = []
    for image, level, seed in progress_bar(list(zip(y, levels.tolist(), seeds)), desc="denoise", unit="image",
                                           enabled=progress):
        def one(batch: torch.Tensor, level: float = level, seed: int = seed) -> torch.Tensor:
            if method == "posterior-mean":
                return posterior_mean(fn, process, batch, level, prediction)  # (K, C, T, T)
            return reverse(fn, process, batch, level, [seed + k for k in range(len(batch))], steps, sampler, prediction)

        image = image[None]  # (1, C, H, W)
        out.append(one(image) if tile is None else tiled(one, image, tile, tile // 2 if overlap is None else overlap))
    return torch.cat(out)  # (B, C, H, W)


__all__ = ["METHODS", "DEFAULT_METHOD", "posterior_mean", "reverse", "denoise"]
