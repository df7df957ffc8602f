"""Bits per dimension of held-out images under a trained model, and under a per-pixel Gaussian for scale.

Images are 8-bit, so a density needs dequantization: each pixel value k becomes k + u with u ~ U[0, 1)
(Theis et al. 2016, sec. 3.1; Ho et al. 2020, sec. 4.2 report the same convention), which makes the continuous
negative log-likelihood an upper bound on the discrete one. The model sees y = x / 127.5 - 1 (the scaling of
plume.images.images_to_tensor), so with D values per image

    bits/dim = (-log p_y(y) + D log 127.5) / (D log 2),

where -log p_y comes from the probability-flow ODE (plume.likelihood.ode_likelihood) with Hutchinson's trace
estimator: `probes` Rademacher probes per image, averaged (each probe is one ODE solve).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch

from ..sets import images_to_tensor
from ...errors import PlumeError
from ...likelihood import ddpm_elbo, ode_likelihood

SCALE = 127.5  # x in [0, 256) -> y = x / SCALE - 1


def dequantize(pixels: np.ndarray, seed: int = 0) -> np.ndarray:
    """uint8 (N, ...) -> float64 pixels + U[0, 1) noise, seeded."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise PlumeError(f"bits/dim is defined here for 8-bit images; got {pixels.dtype} {pixels.shape}")
    return pixels.astype(np.float64) + np.random.default_rng(seed).random(pixels.shape)


def gaussian_bits_per_dim(train_pixels: np.ndarray, test_pixels: np.ndarray, seed: int = 0) -> float:
    """Bits/dim of dequantized test images under independent per-pixel Gaussians fitted (maximum likelihood) to
    the dequantized training images: the baseline any image model should beat."""
    train, test = dequantize(train_pixels, seed), dequantize(test_pixels, seed + 1)
    if train.shape[1:] != test.shape[1:]:
        raise PlumeError(f"training images are shaped {train.shape[1:]}, test images {test.shape[1:]}")
    mean, var = train.mean(0), train.var(0)  # (H, W, C) each; var >= 1/12 in expectation from the dequantization
    nll = 0.5 * np.log(2 * math.pi * var) + (test - mean) ** 2 / (2 * var)  # (N, H, W, C) nats
    return float(nll.mean() / math.log(2))


def image_bits_per_dim(denoiser: Any, pixels: np.ndarray, probes: int = 1, seed: int = 0, batch_size: int = 256,
                       rtol: float = 1e-4, atol: float = 1e-4, progress: Optional[Any] = None) -> dict[str, Any]:
    """Bits/dim of uint8 images (N, H, W, C) under a Plume Denoiser (an x0-predictor with .process).

    Returns the mean, its standard error over images, the per-image values, and the settings used.
    """
    if probes < 1:
        raise PlumeError(f"probes must be >= 1, got {probes}")
    x = dequantize(pixels, seed)  # (N, H, W, C)
    y = torch.from_numpy(x / SCALE - 1).permute(0, 3, 1, 2).float().contiguous()  # (N, C, H, W)
    dims = y[0].numel()
    device = next(denoiser.parameters()).device
    nll = torch.zeros(len(y), dtype=torch.float64)  # (N,) nats, averaged over probes
    for probe in range(probes):
        for start in range(0, len(y), batch_size):
            chunk = y[start:start + batch_size].to(device)  # (B, C, H, W)
            seeds = [seed * 1_000_003 + probe * len(y) + start + k for k in range(len(chunk))]
            result = ode_likelihood(denoiser, denoiser.process, chunk, prediction="x0", exact_trace=False,
                                    seeds=seeds, rtol=rtol, atol=atol)
            nll[start:start + len(chunk)] += result.nll.double().cpu() / probes
            if progress is not None:
                progress.update(len(chunk))
    bpd = (nll + dims * math.log(SCALE)) / (dims * math.log(2))  # (N,)
    return {"bits_per_dim": float(bpd.mean()), "standard_error": float(bpd.std() / math.sqrt(len(bpd))),
            "per_image": bpd.tolist(), "n_images": int(len(bpd)), "dimensions": int(dims), "probes": int(probes),
            "dequantization": "uniform: pixel + U[0, 1), then y = x / 127.5 - 1",
            "trace": "Hutchinson, Rademacher probes", "ode_tolerance": {"rtol": rtol, "atol": atol}}


def image_elbo_bits_per_dim(denoiser: Any, pixels: np.ndarray, seed: int = 0, batch_size: int = 256) -> dict[str, Any]:
    """DDPM's variational bound in bits/dim of uint8 images (N, H, W, C) with the discretized Gaussian decoder
    (Ho et al. 2020, eq. 13): a bound on the discrete likelihood itself, so no dequantization. Needs a model
    trained under the 'ddpm' process."""
    y = images_to_tensor(pixels)  # (N, C, H, W), x / 127.5 - 1 as in training
    device = next(denoiser.parameters()).device
    parts = [ddpm_elbo(denoiser, denoiser.process, y[i:i + batch_size].to(device), prediction="x0",
                       decoder="discretized", seeds=list(range(seed + i, seed + i + len(y[i:i + batch_size]))))
             .bits_per_dim.double().cpu() for i in range(0, len(y), batch_size)]
    bpd = torch.cat(parts)  # (N,)
    return {"bits_per_dim": float(bpd.mean()), "standard_error": float(bpd.std() / math.sqrt(len(bpd))),
            "n_images": int(len(bpd)), "decoder": "discretized Gaussian (Ho et al. 2020, eq. 13)"}
