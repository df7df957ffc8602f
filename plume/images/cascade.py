"""Cascaded sampling (Ho et al. 2021, "Cascaded Diffusion Models for High Fidelity Image Generation", sec. 3): a base
model draws low-resolution images, and a super-resolution model (plume.images.super_resolution) draws the
high-resolution images conditioned on them, noise-augmented at a fixed level (sec. 4.1), in one call.

Sample k is a function of seed k alone, whatever the batch: the base draws it from seed k (plume.sample's
per-seed generators), and the second stage takes its augmentation noise and its own starting noise from two
seeds derived from seed k (`stage_seed`), so the stages never share a random stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .super_resolution import SAMPLE_AUGMENT, SuperResolution, augment_condition
from ..denoiser import Denoiser
from ..errors import PlumeError
from ..sampling import resolve_seeds
from ..samplers import SeedNoise, derive_seed
from ..draw import draw, in_batches
from ..run import sample_seeds
from ..tasks.start import noise_to

POSTERIOR_LEVEL = 2.0  # super_resolve_mean's level s: >> a residual stage's sigma_data (about 0.1)


@dataclass
class CascadeSamples:
    """A cascade's draws in [-1, 1]: the base's low-resolution images (n, C, h, w) and the final ones (n, C, H, W)."""

    low: torch.Tensor
    high: torch.Tensor

    def __len__(self) -> int:
        return len(self.high)


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
                   progress: bool = False, **sampler_options: Any) -> CascadeSamples:
    """n samples (seeds seed, seed + 1, ... or `seeds`): the base at low resolution, then `sr` conditioned on them.

    base_shape: the base's image shape (C, h, w) if known (e.g. its run's data shape), checked against what `sr`
    is conditioned on (default: that shape); augment: the conditioning-augmentation level s of the second stage;
    sr_sampler, sr_steps: default to sampler, steps; base_cond: class labels (n,) for a class-conditional base;
    batch_size: samples per sampling call (each sample depends on its seed alone, whatever the batch). Both stages
    are drawn by plume.draw.draw in one process.
    """
    net = super_resolution_of(sr)
    shape = check_chain(base_shape if base_shape is not None else (net.in_channels, *net.low_size), sr)
    seed_list = resolve_seeds(n, seed, seeds)
    step = batch_size or len(seed_list)
    low = draw(base, shape, seed_list, step, dict(sampler=sampler, steps=steps, **sampler_options),
               labels=base_cond, progress=progress).clamp(-1, 1)  # (n, C, h, w)
    high = super_resolve(sr, low, seed_list, augment, sr_sampler or sampler, sr_steps or steps, step, progress,
                         **sampler_options)  # (n, C, H, W)
    return CascadeSamples(low, high)


def stage_condition(sr: Denoiser, low: torch.Tensor, seeds: Sequence[int], augment: float) -> torch.Tensor:
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
                  sampler: str = "dpm++2m", steps: int = 20, batch_size: Optional[int] = None, progress: bool = False,
                  **sampler_options: Any) -> torch.Tensor:
    """The second stage alone: high-resolution samples (n, C, H, W) for given low-resolution images low (n, C, h, w)
    in [-1, 1], sample k from seeds[k] (augmentation noise and starting noise as in sample_cascade), drawn by
    plume.draw.draw in batches of `batch_size`."""
    net, c = super_resolution_of(sr), stage_condition(sr, low, seeds, augment)  # c: (n, C + 1, h, w)
    x = draw(sr, (low.shape[1], *net.high_size), [stage_seed(s, 2) for s in seeds], batch_size or len(low),
             dict(sampler=sampler, steps=steps, **sampler_options), labels=c, progress=progress)  # (n, C, H, W)
    return x.clamp(-1, 1)


@torch.no_grad()
def super_resolve_mean(sr: Denoiser, low: torch.Tensor, seeds: Sequence[int], augment: float = 0.0,
                       level: float = POSTERIOR_LEVEL, batch_size: Optional[int] = None,
                       progress: bool = False) -> torch.Tensor:
    """The second stage's estimate of the posterior mean E[high | low] (n, C, H, W), in one denoiser call per image.

    The denoiser is E[x0 | x_t, low] (Tweedie); at a level s far above the data's spread (s >> sigma_data) x_t
    carries next to nothing about x0, so D(x_t, t(s)) approaches E[x0 | low], the estimate squared error (PSNR)
    rewards. x_t = alpha (up(low) + s eps), eps from stage_seed(seeds[k], 2); the default level s = 2 is some 20
    times a residual stage's sigma_data (about 0.1), so x_t keeps about 0.25% of the residual's variance; levels 0.5
    to 4 give held-out PSNR within 0.25 dB of each other (docs/super-resolution.md). One call per batch of
    `batch_size` images (default: all).
    """
    if not level > 0:
        raise PlumeError(f"the posterior-mean level must be a noise level > 0, got {level!r}")
    net, cond = super_resolution_of(sr), stage_condition(sr, low, seeds, augment)  # cond: (n, C + 1, h, w)
    t = sr.process.time_of_sigma_ratio(torch.tensor(float(level), dtype=torch.float64))

    def estimate(rows: slice) -> torch.Tensor:
        c = cond[rows]  # (b, C + 1, h, w)
        x = torch.zeros(len(c), low.shape[1], *net.high_size, device=c.device, dtype=c.dtype)  # (b, C, H, W)
        up = net.upsampled(x, c)[0]  # (b, C, H, W): the centre the noise is drawn around
        x_t = noise_to(sr.process, up, level, [stage_seed(k, 2) for k in seeds[rows]])  # (b, C, H, W)
        return sr(x_t, t.to(c.device, c.dtype).expand(len(c)), c).clamp(-1, 1)  # (b, C, H, W)

    return in_batches(estimate, len(low), batch_size, progress, "upscaling tiles")  # (n, C, H, W)


class CascadeRun:
    """A base run chained with a super-resolution run (`plume.load(BASE).then(SR)`, `plume sample BASE --then SR`):
    `sample` draws CascadeSamples, `save` writes the final images (.npz arr_0, uint8 NHWC; the base's images as
    `low`) and a PNG grid of the first 100."""

    def __init__(self, base: Any, stage: Any, augment: float = SAMPLE_AUGMENT):
        base.check_samples()
        if stage.info.get("kind") != "super_resolution":
            raise PlumeError(f"{stage.path}: that run is not a super-resolution stage (train one with plume train "
                             f"--super-resolution LOW_SIZE)")
        check_chain(base.shape, stage.denoiser, base_name=f"the base run {base.path}",
                    sr_name=f"the super-resolution run {stage.path}")
        self.base, self.stage, self.augment = base, stage, float(augment)
        self.path, self.modality = base.path, base.modality
        self.name = f"cascade {base.path} -> {stage.path}"

    def sample(self, n: Optional[int] = None, seeds: Optional[Sequence[int]] = None, seed: int = 0,
               sampler: str = "dpm++2m", steps: int = 20, grid: Optional[str] = None, labels: Any = None,
               batch_size: int = 500, progress: bool = True, **unconditional: Any) -> CascadeSamples:
        """The cascade's samples of seeds `seeds` (or seed .. seed + n - 1); `labels` for a class-conditional base."""
        if any(v is not None and v != 1.0 for v in unconditional.values()):
            raise PlumeError(f"a cascade draws with class labels at most; {', '.join(unconditional)} do not apply")
        cond, _ = self.base.conditions(labels, None)
        seed_list = sample_seeds(n, seeds, seed)
        return sample_cascade(self.base.denoiser, self.stage.denoiser, len(seed_list), seeds=seed_list,
                              base_shape=self.base.shape, augment=self.augment, sampler=sampler, steps=steps,
                              grid=grid, batch_size=batch_size, base_cond=cond, progress=progress)

    def close(self) -> None:
        self.base.close()

    def evaluate(self, samples: CascadeSamples, out: Any, **options: Any) -> Any:
        """The final images measured as the super-resolution stage's own images would be (plume.images.evaluate)."""
        return self.stage.evaluate(samples.high, out, **options)

    def trajectory(self, *args: Any, **options: Any) -> Path:
        raise PlumeError("a cascade draws no trajectory picture; draw one of the base run alone")

    def save(self, samples: CascadeSamples, out: Any, title: str = "") -> list[Path]:
        from .grid import save_image_grid
        from .sets import tensor_to_images

        high, low = tensor_to_images(samples.high), tensor_to_images(samples.low)  # (n, H, W, C), (n, h, w, C)
        out = Path(out).with_suffix(".npz")
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, arr_0=high, low=low)
        title = f"{self.base.path.name} -> {self.stage.path.name}, {title}, augmentation {self.augment:g}"
        return [out, save_image_grid(high[:100], out.with_suffix(".png"), title=title)]
