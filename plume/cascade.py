"""Cascaded sampling (Ho et al. 2021, "Cascaded Diffusion Models for High Fidelity Image Generation", sec. 3): a base
model draws low-resolution images, and a super-resolution model (plume.backbones.super_resolution) draws the
high-resolution images conditioned on them, noise-augmented at a fixed level (sec. 4.1), in one call.

Sample k is a function of seed k alone, whatever the batch: the base draws it from seed k (plume.sample's
per-seed generators), and the second stage takes its augmentation noise and its own starting noise from two
seeds derived from seed k (`stage_seed`), so the stages never share a random stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from .backbones.super_resolution import SAMPLE_AUGMENT, SuperResolution, augment_condition
from .denoiser import Denoiser
from .errors import PlumeError
from .sampling import resolve_seeds, sample
from .samplers import SeedNoise, derive_seed
from .tasks.start import noise_to

POSTERIOR_LEVEL = 2.0  # super_resolve_mean's level s: >> a residual stage's sigma_data (about 0.1)


@dataclass
class CascadeSamples:
    """A cascade's draws in [-1, 1]: the base's low-resolution images (n, C, h, w) and the final ones (n, C, H, W)."""

    low: torch.Tensor
    high: torch.Tensor


def stage_seed(seed: int, stage: int) -> int:
    """The seed of stage `stage` (1: augmentation noise, 2: super-resolution sampling) of the sample with `seed`."""
    return derive_seed(seed, stage)


def super_resolution_of(sr: Denoiser, name: str = "the second stage") -> SuperResolution:
    """sr's SuperResolution backbone, or an error saying what a cascade's second stage must be."""
    if not isinstance(getattr(sr, "backbone", None), SuperResolution):
        kind = type(getattr(sr, "backbone", sr)).__name__
        raise PlumeError(f"{name} must be a super-resolution model (a SuperResolution backbone; plume train "
                         f"--super-resolution LOW_SIZE), got a {kind}")
    return sr.backbone


def check_chain(base_shape: Sequence[int], sr: Denoiser, base_name: str = "the base",
                sr_name: str = "the super-resolution stage") -> tuple[int, ...]:
    """The base's image shape (C, h, w), checked to be what `sr` is conditioned on; else an error with both sizes."""
    net = super_resolution_of(sr, sr_name)
    want = (net.in_channels, *net.low_size)
    shape = tuple(int(d) for d in base_shape)
    if shape != want:
        raise PlumeError(f"{sr_name} upsamples {want[1]}x{want[2]} images of {want[0]} channel(s), but {base_name} "
                         f"draws {'x'.join(map(str, shape[1:]))} images of {shape[0]} channel(s); chain it after a base "
                         f"trained at {want[1]}x{want[2]} (plume train --image-size {want[1]}) or train the "
                         f"super-resolution stage with --super-resolution {shape[-1]}")
    return shape


@torch.no_grad()
def sample_cascade(base: Denoiser, sr: Denoiser, n: int = 1, seed: int = 0, seeds: Optional[Sequence[int]] = None,
                   base_shape: Optional[Sequence[int]] = None, augment: float = SAMPLE_AUGMENT,
                   sampler: str = "dpm++2m", steps: int = 20, sr_sampler: Optional[str] = None,
                   sr_steps: Optional[int] = None, batch_size: Optional[int] = None, base_cond: Any = None,
                   **sampler_options: Any) -> CascadeSamples:
    """n samples (seeds seed, seed + 1, ... or `seeds`): the base at low resolution, then `sr` conditioned on them.

    base_shape: the base's image shape (C, h, w) if known (e.g. its run's data shape), checked against what `sr`
    is conditioned on (default: that shape); augment: the conditioning-augmentation level s of the second stage;
    sr_sampler, sr_steps: default to sampler, steps; base_cond: class labels (n,) for a class-conditional base;
    batch_size: samples per sampling call (each sample depends on its seed alone, whatever the batch).
    """
    net = super_resolution_of(sr)
    shape = check_chain(base_shape if base_shape is not None else (net.in_channels, *net.low_size), sr)
    seed_list = resolve_seeds(n, seed, seeds)
    device = next(base.parameters()).device
    lows, highs, step = [], [], batch_size or len(seed_list)
    for first in range(0, len(seed_list), step):
        chunk = seed_list[first:first + step]
        cond = None if base_cond is None else torch.as_tensor(base_cond)[first:first + len(chunk)].to(device)
        fn = base if cond is None else (lambda x, t, c=cond: base(x, t, c))
        low = sample(fn, base.process, (len(chunk), *shape), sampler=sampler, steps=steps, seeds=chunk,
                     device=device, **sampler_options).clamp(-1, 1)  # (b, C, h, w)
        highs.append(super_resolve(sr, low, chunk, augment, sr_sampler or sampler, sr_steps or steps,
                                   **sampler_options))  # (b, C, H, W)
        lows.append(low.cpu())
    return CascadeSamples(torch.cat(lows), torch.cat(highs))


def _stage_condition(sr: Denoiser, low: torch.Tensor, seeds: Sequence[int], augment: float) -> torch.Tensor:
    """The second stage's cond (n, C + 1, h, w) on sr's device: low (n, C, h, w) checked against the stage and
    noise-augmented at level `augment`, the noise of image k from stage_seed(seeds[k], 1)."""
    shape = check_chain(low.shape[1:], sr, base_name="the given low-resolution images")
    if len(seeds) != len(low):
        raise PlumeError(f"got {len(seeds)} seeds for {len(low)} low-resolution images; give one seed per image")
    if not augment >= 0:
        raise PlumeError(f"the conditioning-augmentation level must be >= 0, got {augment}")
    device = next(sr.parameters()).device
    noise = SeedNoise([stage_seed(s, 1) for s in seeds], device).randn(shape).to(device)  # (n, C, h, w)
    return augment_condition(low.to(device), augment, noise)  # (n, C + 1, h, w)


@torch.no_grad()
def super_resolve(sr: Denoiser, low: torch.Tensor, seeds: Sequence[int], augment: float = SAMPLE_AUGMENT,
                  sampler: str = "dpm++2m", steps: int = 20, **sampler_options: Any) -> torch.Tensor:
    """The second stage alone: high-resolution samples (n, C, H, W) for given low-resolution images low (n, C, h, w)
    in [-1, 1], sample k from seeds[k] (augmentation noise and starting noise as in sample_cascade)."""
    net, c = super_resolution_of(sr), _stage_condition(sr, low, seeds, augment)  # c: (n, C + 1, h, w)
    shape, device = low.shape[1:], c.device
    x = sample(lambda x_t, t: sr(x_t, t, c), sr.process, (len(low), shape[0], *net.high_size), sampler=sampler,
               steps=steps, seeds=[stage_seed(s, 2) for s in seeds], device=device, **sampler_options)  # (n, C, H, W)
    return x.clamp(-1, 1).cpu()


@torch.no_grad()
def super_resolve_mean(sr: Denoiser, low: torch.Tensor, seeds: Sequence[int], augment: float = 0.0,
                       level: float = POSTERIOR_LEVEL) -> torch.Tensor:
    """The second stage's estimate of the posterior mean E[high | low] (n, C, H, W), in one denoiser call per image.

    The denoiser is E[x0 | x_t, low] (Tweedie); at a level s far above the data's spread (s >> sigma_data) x_t
    carries next to nothing about x0, so D(x_t, t(s)) approaches E[x0 | low], the estimate squared error (PSNR)
    rewards. x_t = alpha (up(low) + s eps), eps from stage_seed(seeds[k], 2); the default level s = 2 is some 20
    times a residual stage's sigma_data (about 0.1), so x_t keeps about 0.25% of the residual's variance; levels 0.5
    to 4 give held-out PSNR within 0.25 dB of each other (docs/super-resolution.md).
    """
    if not level > 0:
        raise PlumeError(f"the posterior-mean level must be a noise level > 0, got {level!r}")
    net, c = super_resolution_of(sr), _stage_condition(sr, low, seeds, augment)  # c: (n, C + 1, h, w)
    x = torch.zeros(len(low), low.shape[1], *net.high_size, device=c.device, dtype=c.dtype)  # (n, C, H, W)
    up = net.upsampled(x, c)[0]  # (n, C, H, W): the centre the noise is drawn around
    t = sr.process.time_of_sigma_ratio(torch.tensor(float(level), dtype=torch.float64))
    x_t = noise_to(sr.process, up, level, [stage_seed(k, 2) for k in seeds])  # (n, C, H, W)
    return sr(x_t, t.to(c.device, c.dtype).expand(len(low)), c).clamp(-1, 1).cpu()  # (n, C, H, W)
