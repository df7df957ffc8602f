"""Inpainting: fill the holes of images with a diffusion model, the known pixels kept exactly.

Masks are `keep` (B, 1, H, W) or (H, W): 1 where a pixel is known, 0 where it is to be filled (plume.images.masks).
Three methods, all ending with the composite keep * image + (1 - keep) * x, so known pixels come back bit-exact:

- "replace", for any unconditional model: after every sampler step to level s, the known region of the state is
  replaced by the image noised to that level, x^known_s = alpha (x0 + s eps) with fresh eps (RePaint, Lugmayr et al.
  2022, eq. 8; the "replacement" method of Song et al. 2021, "Score-Based Generative Modeling through SDEs", app. I.2).
  The state is combined as x_s = keep * x^known_s + (1 - keep) * x^unknown_s (RePaint eq. 8, bottom).
- "repaint", also for any unconditional model: replacement plus resampling (RePaint sec. 4.2, Alg. 1): at every
  `jump`-th level the state is noised back up `jump` levels with the forward kernel, q(x_t | x_{t-1}) = N(sqrt(1 -
  beta_t) x_{t-1}, beta_t I) (DDPM eq. 2) composed over the jump, which in scaled coordinates y = x / alpha is
  y_high = y_low + sqrt(s_high^2 - s_low^2) z, then denoised again; each segment is passed `resample` times. The
  visited levels are `repaint_schedule` (the official code's get_schedule_jump), so resample = 1 is "replace".
- "conditioned", for a model trained for it (`plume train --inpainting`): fn(x_t, t, cond) with cond = [image * keep,
  keep] (Palette, Saharia et al. 2022, sec. 2: the source image concatenated to the noisy input).

Randomness: sample k depends on seeds[k] alone. Its starting noise, its known-region noise and the sampler's own
noise in each segment come from separate seeds derived from seeds[k] (plume.images.cascade.stage_seed).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from ...progress import progress_bar

from ..cascade import stage_seed
from ..masks import masked_condition
from ...errors import PlumeError
from ...processes import GaussianProcess, process as build_process
from ...samplers import SeedNoise
from ...sampling import build_grid, resolve_seeds, sample
from ...tasks.start import denoise_from, noise_to

METHODS = ("replace", "repaint", "conditioned")
# Default samplers: a stochastic one blends the replaced region best; the conditioned model did best with ddpm
# (bench/inpaint.py, docs/inpainting.md).
DEFAULT_SAMPLERS = {"replace": "euler-maruyama", "repaint": "euler-maruyama", "conditioned": "ddpm"}
START_STREAM, KNOWN_STREAM, SEGMENT_STREAM = 1, 2, 1000  # stage_seed keys: start noise, known/renoise noise, segments
ModelFn = Callable[..., torch.Tensor]


def check_keep(keep: torch.Tensor, image: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """keep as floats (B, 1, H, W) for images (B, C, H, W); an error naming `name` unless it is 0/1 of their size."""
    if not torch.is_tensor(image) or image.ndim != 4 or not image.is_floating_point():
        got = f"{image.dtype} {tuple(image.shape)}" if torch.is_tensor(image) else type(image).__name__
        raise PlumeError(f"the images to inpaint must be floats shaped (B, C, H, W), got {got}")
    keep = torch.as_tensor(keep)
    b, _, h, w = image.shape
    shaped = keep.reshape(1, 1, h, w) if keep.shape in ((h, w), (1, h, w)) else keep
    if shaped.ndim != 4 or shaped.shape[1] != 1 or shaped.shape[2:] != (h, w) or shaped.shape[0] not in (1, b):
        raise PlumeError(f"{name}: shaped {tuple(keep.shape)}, but the images are {tuple(image.shape)}; give one "
                         f"mask (H, W) = ({h}, {w}) or one per image (B, 1, H, W) = ({b}, 1, {h}, {w})")
    if not bool(((shaped == 0) | (shaped == 1)).all()):
        raise PlumeError(f"{name}: must be binary (1 = known, 0 = to fill); it holds other values, e.g. "
                         f"{float(shaped[(shaped != 0) & (shaped != 1)][0]):g}")
    return shaped.to(device=image.device, dtype=image.dtype).expand(b, 1, h, w)  # (B, 1, H, W)


def compose(image: torch.Tensor, keep: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """keep * image + (1 - keep) * x (B, C, H, W): the known pixels exactly, the rest from x."""
    return torch.where(keep.bool(), image, x)  # (B, C, H, W)


def repaint_schedule(steps: int, jump: int, resample: int) -> list[int]:
    """Grid indices visited by RePaint (sec. 4.2): 0 is the first (noisiest) level, `steps` the clean end.

    Going down one index is a denoising step, going up a forward renoising. The official get_schedule_jump with
    t_T = steps, jump_length = jump, jump_n_sample = resample, its times t mapped to indices steps - 1 - t."""
    if min(steps, jump, resample) < 1:
        raise PlumeError(f"steps, jump and resample must be >= 1, got {steps}, {jump} and {resample}")
    if resample > 1 and jump >= steps:
        raise PlumeError(f"a jump of {jump} levels leaves no room in {steps} steps; use a jump < steps")
    jumps = {t: resample - 1 for t in range(0, steps - jump, jump)}
    t, times = steps, []
    while t >= 1:
        t -= 1
        times.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump):
                t += 1
                times.append(t)
    times.append(-1)
    return [steps - 1 - t for t in times]


def segments(schedule: Sequence[int]) -> list[tuple[int, int]]:
    """The schedule as monotone runs (start, end): end > start denoises down the levels, end < start renoises."""
    runs, start = [], 0
    for k in range(1, len(schedule)):
        last = k == len(schedule) - 1
        if last or (schedule[k + 1] - schedule[k]) * (schedule[k] - schedule[k - 1]) < 0:
            runs.append((schedule[start], schedule[k]))
            start = k
    return runs


def alpha_at(process: GaussianProcess, s: float) -> float:
    """alpha(t) at the time whose scaled level sigma / alpha is s."""
    return float(process.alpha(process.time_of_sigma_ratio(torch.tensor(float(s), dtype=torch.float64))))


def renoise(process: GaussianProcess, x: torch.Tensor, s_low: float, s_high: float, noise: SeedNoise) -> torch.Tensor:
    """x at level s_high from x at s_low < s_high by the forward kernel: y_high = y_low + sqrt(s_high^2 - s_low^2) z."""
    y = x / alpha_at(process, s_low)  # (B, C, H, W), scaled coordinates
    return alpha_at(process, s_high) * (y + (s_high ** 2 - s_low ** 2) ** 0.5 * noise.randn_like(y))


def replacement_hook(process: GaussianProcess, image: torch.Tensor, keep: torch.Tensor,
                     noise: SeedNoise) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """hook(x, t) -> keep * alpha (x0 + s eps) + (1 - keep) * x (RePaint eq. 8), eps fresh from `noise`."""

    def hook(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.to(torch.float64)
        alpha = process.alpha(t)
        s = float(process.sigma(t) / alpha) if float(alpha) > 0 else 0.0
        known = float(alpha) * (image + s * noise.randn_like(image))  # (B, C, H, W)
        return compose(known, keep, x)

    return hook


@torch.no_grad()
def inpaint(fn: ModelFn, process: "str | GaussianProcess", image: torch.Tensor, keep: torch.Tensor,
            method: str = "replace", sampler: Optional[str] = None, steps: int = 30, prediction: str = "x0",
            seed: int = 0, seeds: Optional[Sequence[int]] = None, jump: int = 10, resample: int = 10,
            grid: Optional[str] = None, progress: bool = False, **sampler_options: Any) -> torch.Tensor:
    """Images (B, C, H, W) with the holes (keep == 0) filled, known pixels exactly those of `image`.

    fn(x_t, t) -> `prediction` is any unconditional model for "replace" and "repaint" (jump, resample: RePaint's
    j and r); fn(x_t, t, cond) a model trained on cond = [image * keep, keep] for "conditioned". Sample k uses
    seeds[k] (default seed + k); `sampler` (default: DEFAULT_SAMPLERS[method]), `steps` and `grid` are
    plume.sample's. Values are not clamped.
    """
    if method not in METHODS:
        raise PlumeError(f"unknown inpainting method {method!r}; valid: {', '.join(METHODS)}")
    keep = check_keep(keep, image)  # (B, 1, H, W)
    sampler = sampler or DEFAULT_SAMPLERS[method]
    process = build_process(process)
    seeds = resolve_seeds(len(image), seed, seeds)
    if method == "conditioned":
        cond = masked_condition(image, keep)  # (B, C + 1, H, W)
        x = sample(lambda x_t, t: fn(x_t, t, cond), process, tuple(image.shape), sampler=sampler, steps=steps,
                   prediction=prediction, seeds=seeds, grid=grid, device=image.device, dtype=image.dtype,
                   progress=progress, **sampler_options)  # (B, C, H, W)
        return compose(image, keep, x)
    schedule = repaint_schedule(steps, jump, resample if method == "repaint" else 1)
    sigmas = build_grid(process, sampler, steps, grid, None, None).sigmas.to(image.dtype)  # (steps + 1,)
    noise = SeedNoise([stage_seed(s, KNOWN_STREAM) for s in seeds], image.device)
    hook = replacement_hook(process, image, keep, noise)
    x = noise_to(process, image * keep, float(sigmas[0]), [stage_seed(s, START_STREAM) for s in seeds])
    runs = segments(schedule)
    for k, (a, b) in enumerate(progress_bar(runs, desc=f"inpaint ({method})", enabled=progress and len(runs) > 1)):
        if b > a:  # denoise levels a -> b, the known region re-imposed after every step
            x = denoise_from(fn, process, x, sigmas[a:b + 1].to(image.device),
                             [stage_seed(s, SEGMENT_STREAM + k) for s in seeds], sampler=sampler, prediction=prediction,
                             hook=hook, **sampler_options)  # (B, C, H, W)
        else:  # resampling: back up from level a to b with the forward kernel
            x = renoise(process, x, float(sigmas[a]), float(sigmas[b]), noise)
    return compose(image, keep, x)


__all__ = ["METHODS", "DEFAULT_SAMPLERS", "check_keep", "compose", "repaint_schedule", "segments", "renoise", "replacement_hook",
           "inpaint"]
