"""Fidelity of a restored image to its reference, per image: PSNR and SSIM (what super-resolution, denoising,
inpainting and frame interpolation are measured by).

Both take uint8 images (N, H, W, C) or (H, W, C), data range 255. SSIM is Wang et al. 2004 (eq. 13, with
C1 = (0.01 L)^2, C2 = (0.03 L)^2) under a Gaussian window of std 1.5 truncated at 3.5 std (11 x 11), population
covariances, averaged over the pixels whose window lies inside the image and over channels: scikit-image's
structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255). Images
smaller than 11 pixels use the largest window that fits (radius (min(H, W) - 1) // 2).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ...errors import PlumeError

DATA_RANGE = 255.0


def _pair(restored: np.ndarray, reference: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as float64 tensors (N, C, H, W), after checking they are uint8 images of one shape."""
    a, b = np.asarray(restored), np.asarray(reference)
    if a.shape != b.shape or a.ndim not in (3, 4):
        raise PlumeError(f"fidelity metrics compare images (N, H, W, C) or (H, W, C) of one shape; got {a.shape} "
                         f"and {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise PlumeError(f"fidelity metrics take uint8 images (0..255); got {a.dtype} and {b.dtype}")
    a, b = (torch.from_numpy(v.reshape(-1, *v.shape[-3:]).astype(np.float64)).permute(0, 3, 1, 2) for v in (a, b))
    return a, b  # (N, C, H, W) each


def psnr(restored: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image (N,): 10 log10(255^2 / MSE); identical images give inf."""
    a, b = _pair(restored, reference)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))  # (N,)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(DATA_RANGE ** 2 / mse.numpy())


def gaussian_window(radius: int, std: float = 1.5) -> torch.Tensor:
    """Normalized 1-D Gaussian weights (2 radius + 1,)."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / std) ** 2)  # (2r + 1,)
    return weights / weights.sum()


def ssim(restored: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Structural similarity per image (N,), in [-1, 1]; 1 for identical images."""
    a, b = _pair(restored, reference)
    n, c, h, w = a.shape
    radius = min(int(3.5 * 1.5 + 0.5), (min(h, w) - 1) // 2)
    if radius < 1:
        raise PlumeError(f"SSIM needs images of at least 3x3 pixels, got {h}x{w}")
    g = gaussian_window(radius)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, 2 * radius + 1, 2 * radius + 1)  # (C, 1, k, k)

    def blur(x: torch.Tensor) -> torch.Tensor:  # weighted local means, valid region only: (N, C, H - 2r, W - 2r)
        return F.conv2d(x, kernel, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))  # eq. 13
    return index.mean(dim=(1, 2, 3)).numpy()  # (N,)


__all__ = ["psnr", "ssim", "gaussian_window"]
