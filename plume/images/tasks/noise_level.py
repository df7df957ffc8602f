"""The noise level of a noisy image, without its clean version: Donoho & Johnstone's wavelet estimator.

Donoho & Johnstone 1994 ("Ideal spatial adaptation by wavelet shrinkage", sec. 4.2): in the finest diagonal
subband HH of an orthonormal wavelet transform, a natural image is nearly zero except at edges, while white
Gaussian noise of std sigma stays white with the same std. The median absolute deviation is robust to the few
large (edge) coefficients, so

    sigma_hat = median(|HH|) / 0.6745,    0.6745 = Phi^-1(3/4), the MAD of a standard normal.

HH here is the Daubechies-2 (4-tap) diagonal detail, taken at stride 2 over the interior ("valid" filtering, so no
boundary extension adds fake edges), one estimate per image and channel; scikit-image's
restoration.estimate_sigma computes the same statistic with PyWavelets (tests/test_denoise.py compares them).
The process's scaled level follows from the image scale: images in [-1, 1] are x = p / 127.5 - 1 for pixels p in
0..255, so a std of sigma_255 pixel values is s = sigma_255 / 127.5 (plume.sampling: y = x0 + s eps).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ...errors import PlumeError

# Daubechies-2 decomposition high-pass filter (PyWavelets' pywt.Wavelet("db2").dec_hi), orthonormal: sum of squares 1.
DB2_HIGH = (-0.48296291314469025, 0.836516303737469, -0.22414386804185735, -0.12940952255092145)
MAD_NORMAL = 0.6744897501960817  # Phi^-1(3/4): median |z| of z ~ N(0, 1)
PIXEL_SCALE = 127.5  # pixel values 0..255 per unit of the [-1, 1] image scale


def diagonal_detail(x: torch.Tensor) -> torch.Tensor:
    """The finest diagonal wavelet subband HH (B, C, H', W') of images x (B, C, H, W): db2 high-pass along both axes."""
    if x.ndim != 4 or min(x.shape[-2:]) < len(DB2_HIGH):
        raise PlumeError(f"noise estimation needs images (B, C, H, W) of at least 4x4 pixels, got {tuple(x.shape)}")
    h = torch.tensor(DB2_HIGH, dtype=torch.float64)
    kernel = (h[:, None] * h[None, :]).flip(0, 1)[None, None]  # (1, 1, 4, 4); flipped: conv2d correlates
    b, c, height, width = x.shape
    flat = x.to(torch.float64).reshape(b * c, 1, height, width)  # (B C, 1, H, W)
    hh = F.conv2d(flat, kernel, stride=2)  # (B C, 1, H', W')
    return hh.reshape(b, c, *hh.shape[-2:])


def estimate_noise_std(x: torch.Tensor, per_channel: bool = False) -> torch.Tensor:
    """sigma_hat = median(|HH|) / 0.6745 (Donoho & Johnstone 1994) in x's units: (B,), or (B, C) with per_channel
    (the mean over channels otherwise, like estimate_sigma(average_sigmas=True)). Exact zeros in HH (flat,
    saturated regions) are left out, as in scikit-image."""
    hh = diagonal_detail(x).abs().flatten(2)  # (B, C, N)
    sigma = torch.empty(hh.shape[:2], dtype=torch.float64)  # (B, C)
    for i in range(hh.shape[0]):
        for j in range(hh.shape[1]):
            nonzero = hh[i, j][hh[i, j] > 0]
            sigma[i, j] = nonzero.median() / MAD_NORMAL if nonzero.numel() else 0.0
    return sigma if per_channel else sigma.mean(1)


def estimate_level(x: torch.Tensor) -> torch.Tensor:
    """The scaled noise level s (B,) of images x (B, C, H, W) in [-1, 1]: the estimated std, in those units."""
    return estimate_noise_std(x)


def level_from_pixels(sigma_255: float) -> float:
    """s for a noise std given in pixel values 0..255: sigma_255 / 127.5."""
    if not sigma_255 > 0:
        raise PlumeError(f"the noise std must be > 0 (in pixel values 0..255), got {sigma_255}")
    return float(sigma_255) / PIXEL_SCALE


def level_to_pixels(s: "float | torch.Tensor | np.ndarray") -> "float | torch.Tensor | np.ndarray":
    """The noise std in pixel values 0..255 of a scaled level s: 127.5 s."""
    return s * PIXEL_SCALE


__all__ = ["diagonal_detail", "estimate_noise_std", "estimate_level", "level_from_pixels", "level_to_pixels"]
