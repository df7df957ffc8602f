"""The image codec: uint8 pixels (N, H, W, C) <-> float32 examples (N, C, H, W) in [-1, 1], the random flips of
training, and the held-out split of a set's images; shared by the in-memory (plume.images.sets) and the streamed
(plume.images.streaming) views."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import PlumeError


def images_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1], x / 127.5 - 1."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 4:
        raise PlumeError(f"images_to_tensor: expected uint8 (N, H, W, C), got {pixels.dtype} {pixels.shape}")
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)  # (N, C, H, W)
    return (x.to(torch.float32) / 127.5 - 1).contiguous()


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W), clamped to [-1, 1] -> uint8 (N, H, W, C), round((x + 1) * 127.5)."""
    if x.ndim != 4:
        raise PlumeError(f"tensor_to_images: expected a tensor (N, C, H, W), got shape {tuple(x.shape)}")
    u = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (N, C, H, W)
    return u.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, C)


def mirrored(n: int, generator: torch.Generator) -> torch.Tensor:
    """Which of n examples a random flip mirrors, (n,) bool, each with probability 1/2, drawn from `generator`: the
    one draw that images (random_flips) and their latent caches (plume.images.latent) share."""
    return torch.rand(n, generator=generator, device=generator.device) < 0.5  # (n,)


def random_flips(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x (B, C, H, W) with each example mirrored left-right with probability 1/2, drawn from `generator`."""
    mirror = mirrored(len(x), generator)  # (B,)
    return torch.where(mirror.to(x.device)[:, None, None, None], x.flip(-1), x)  # (B, C, H, W)


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices (training, held out) of n examples, round(fraction * n) held out by a seeded permutation."""
    held = np.sort(np.random.default_rng([int(seed), 7]).permutation(n)[: int(round(fraction * n))])
    return np.setdiff1d(np.arange(n), held), held


__all__ = ["holdout_split", "images_to_tensor", "mirrored", "random_flips", "tensor_to_images"]
