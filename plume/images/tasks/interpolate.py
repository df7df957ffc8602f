"""Frame interpolation with a conditioned denoiser: the frames between A and B are samples of a model whose backbone
(plume.backbones.ImageConditioned) reads cond = [A, B, tau] (plume.images.interpolation_data), the conditional
formulation of video frame interpolation by diffusion (Danier, Zhang & Bull 2024, "LDMVFI"; Voleti et al. 2022,
"MCVD"), with one model for every position tau in (0, 1).

`interpolate(model, a, b, tau)` draws the frames at tau between frames a and b with any sampler, frame i from
seeds[i] (the same whether drawn alone or in a batch); with draws > 1 it returns the mean of that many draws
(seeds derived from seeds[i]), an estimate of E[frame | A, B] with a higher PSNR and a softer look.
`interpolate_sequence` inserts k frames between each pair of consecutive frames of a sequence.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from ...progress import progress_bar

from ..image_conditioned import ImageConditioned
from ..interpolation_data import interpolation_condition
from ...denoiser import Denoiser
from ...errors import PlumeError
from ...samplers import derive_seed
from ...draw import draw
from ...sampling import resolve_seeds


def positions_between(k: int) -> list[float]:
    """The positions tau = 1/(k+1), ..., k/(k+1) of k evenly spaced frames between two frames."""
    if not isinstance(k, int) or k < 1:
        raise PlumeError(f"the number of frames between two frames must be a whole number >= 1, got {k!r}")
    return [j / (k + 1) for j in range(1, k + 1)]


def draw_seed(seed: int, draw: int) -> int:
    """The seed of draw `draw` of the frame with `seed` (draw 0: the seed itself)."""
    return int(seed) if draw == 0 else derive_seed(seed, draw)


def check_interpolator(model: Denoiser, frame_shape: Sequence[int]) -> None:
    """A PlumeError unless `model` is a frame-interpolation model (ImageConditioned with 2C + 1 condition channels)
    for frames of channels frame_shape[0]."""
    net = getattr(model, "backbone", None)
    if not isinstance(net, ImageConditioned) or net.cond_channels != 2 * net.in_channels + 1:
        kind = type(net).__name__ if net is not None else type(model).__name__
        raise PlumeError(f"frame interpolation needs a model trained for it (plume train --interpolation: an "
                         f"ImageConditioned backbone reading [A, B, tau], 2C + 1 channels), got a {kind}")
    if int(frame_shape[0]) != net.in_channels:
        raise PlumeError(f"this model interpolates frames of {net.in_channels} channel(s), the frames have "
                         f"{int(frame_shape[0])}")


@torch.no_grad()
def interpolate(model: Denoiser, a: torch.Tensor, b: torch.Tensor, tau: "torch.Tensor | float | Sequence[float]",
                seeds: Optional[Sequence[int]] = None, seed: int = 0, draws: int = 1, sampler: str = "dpm++2m",
                steps: int = 20, batch_size: Optional[int] = None, **sampler_options: Any) -> torch.Tensor:
    """Frames (B, C, H, W) in [-1, 1] at positions tau (B,) (or one float) between a and b (B, C, H, W) in [-1, 1];
    frame i from seeds[i] (default seed + i), the mean of `draws` draws."""
    cond = interpolation_condition(a.float(), b.float(), torch.as_tensor(tau, dtype=torch.float32))  # checks A, B
    check_interpolator(model, a.shape[1:])
    if not isinstance(draws, int) or draws < 1:
        raise PlumeError(f"draws must be a whole number >= 1, got {draws!r}")
    seed_list = resolve_seeds(len(a), seed, seeds)
    cond = cond.to(next(model.parameters()).device)  # (B, 2C + 1, H, W): frame k's condition is row k
    options = dict(sampler=sampler, steps=steps, **sampler_options)
    total = torch.zeros(a.shape, dtype=torch.float32)  # (B, C, H, W)
    for d in range(draws):
        total += draw(model, a.shape[1:], [draw_seed(s, d) for s in seed_list], batch_size or len(a), options,
                      labels=cond, progress=False).clamp(-1, 1)  # (B, C, H, W)
    return total / draws  # (B, C, H, W)


def interpolate_sequence(model: Denoiser, frames: torch.Tensor, between: int, seed: int = 0, draws: int = 1,
                         progress: bool = False, **options: Any) -> torch.Tensor:
    """The sequence frames (T, C, H, W) with `between` frames made between each consecutive pair:
    (T + (T - 1) between, C, H, W); the j-th frame made between frames i and i + 1 uses seed + i * between + j."""
    if frames.ndim != 4 or len(frames) < 2:
        raise PlumeError(f"interpolating a sequence needs at least 2 frames shaped (T, C, H, W), got "
                         f"{tuple(frames.shape)}")
    taus = positions_between(between)
    out = [frames[:1].cpu()]
    for i in progress_bar(range(len(frames) - 1), desc="interpolating", unit="pair", enabled=progress):
        a = frames[i:i + 1].expand(between, *frames.shape[1:])  # (k, C, H, W)
        b = frames[i + 1:i + 2].expand(between, *frames.shape[1:])  # (k, C, H, W)
        made = interpolate(model, a, b, torch.tensor(taus), seeds=[seed + i * between + j for j in range(between)],
                           draws=draws, **options)  # (k, C, H, W)
        out += [made, frames[i + 1:i + 2].cpu()]
    return torch.cat(out)  # (T + (T - 1) k, C, H, W)


__all__ = ["positions_between", "draw_seed", "check_interpolator", "interpolate", "interpolate_sequence"]
