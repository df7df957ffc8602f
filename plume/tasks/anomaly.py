"""Anomaly scores by diffusion reconstruction: noise an input part-way, denoise it back, measure how far it lands.

AnoDDPM (Wyatt et al. 2022) and DDPM-OOD (Graham et al. 2023, "Denoising diffusion models for out-of-distribution
detection") both rest on one observation: a denoiser trained on normal data pulls a noised input back towards the
normal data, so a normal input is reconstructed closely and an unusual one is not. For an input x0, a scaled level
s (plume.sampling: x_t = alpha(t) (x0 + s eps)) and a seed,

    x_t   = alpha(t) (x0 + s eps),                      eps ~ N(0, I) from the seed's own generator (noise_to)
    x_hat = the sampler run from x_t down `steps` levels to 0 (denoise_from); with steps = 1 this is one call of
            the denoiser, the posterior mean E[x0 | x_t] (Tweedie's formula, Efron 2011)
    e     = (x0 - x_hat)^2                              per element: the heat map (averaged over channels)
    r_s   = mean of e over the elements and the seeds   the reconstruction error at level s

and the score averages r_s over the levels. Errors at different levels live on different scales (a larger s
loses more of the input), so, as Graham et al. do, each level can first be standardized by the mean and standard
deviation of r_s on normal data (`level_stats`): score = mean_s (r_s - mu_s) / sd_s. Repeat k of input i uses the
seed seed + k * SEED_STRIDE + i (i counted across the whole call), so a score is a function of (model, levels,
steps, seed, the input's position), whatever the batch size. Works on any shape (B, ...): images (B, C, H, W) give
maps (B, H, W), vectors (B, D) give per-feature maps (B, D).

Likelihood score (`likelihood_scores`): the negative log-density of x0 under the model's data distribution
smoothed to level s_min, -log p_{s_min}(x0), computed exactly by the probability-flow ODE (plume.likelihood;
Song et al. 2021, sec. 4.3 and appendix D.2; exact trace up to 64 dimensions). s_min plays the part of a kernel
bandwidth: with few normal examples the denoiser memorizes them at small levels (their density spikes), and
smoothing to s_min undoes that. `choose_smoothing` picks s_min from candidates by the largest mean log-likelihood of
held-out NORMAL examples (bandwidth selection by held-out likelihood); no anomaly is needed to choose it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from ..progress import progress_bar

from ..errors import PlumeError
from ..processes import GaussianProcess, process as build_process
from .start import denoise_from, noise_to, sigmas_below

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SEED_STRIDE = 1_000_003  # seeds of repeat k start here (k * SEED_STRIDE): distinct for calls under a million inputs
DEFAULT_LEVELS = (0.2, 0.4, 0.6)


@dataclass
class LevelStats:
    """Mean and standard deviation (L,) of the per-level errors r_s on normal data, for the levels `levels`."""
    levels: tuple[float, ...]
    mean: torch.Tensor
    std: torch.Tensor

    def to_dict(self) -> dict[str, list[float]]:
        return {"levels": list(self.levels), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LevelStats":
        return cls(tuple(float(v) for v in d["levels"]), torch.tensor(d["mean"], dtype=torch.float64),
                   torch.tensor(d["std"], dtype=torch.float64))


@dataclass
class AnomalyScores:
    """scores (B,): the anomaly score (higher: more unusual); level_errors (L, B): r_s per level, averaged over the
    seeds; maps (B, H, W) for images or (B, D) for vectors: e averaged over levels, seeds (and channels)."""
    scores: torch.Tensor
    level_errors: torch.Tensor
    maps: torch.Tensor
    levels: tuple[float, ...]


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Levels as a tuple of floats > 0, refused if empty or not positive."""
    levels = tuple(float(s) for s in levels)
    if not levels or any(not s > 0 for s in levels):
        raise PlumeError(f"levels must be one or more noise levels s > 0 (e.g. 0.2,0.4,0.6), got {list(levels)}")
    return levels


def reconstruct(fn: ModelFn, process: "str | GaussianProcess", x0: torch.Tensor, s: float, seeds: Sequence[int],
                steps: int = 1, sampler: str = "dpm++2m", prediction: str = "x0") -> torch.Tensor:
    """x_hat (B, ...): x0 (B, ...) noised to level s with one seed per row, then denoised in `steps` steps."""
    x_t = noise_to(process, x0, s, seeds)  # (B, ...)
    sigmas = sigmas_below(process, steps, s)  # (steps + 1,) s ... 0
    return denoise_from(fn, process, x_t, sigmas, seeds, sampler=sampler, prediction=prediction)  # (B, ...)


def _channel_mean(e: torch.Tensor) -> torch.Tensor:
    """Per-element errors (B, ...) -> the map: (B, H, W) for (B, C, H, W), (B, L) for (B, C, L), (B, D) as is."""
    return e.mean(1) if e.ndim >= 3 else e


def _batch_errors(fn: ModelFn, process: GaussianProcess, x0: torch.Tensor, first: int, levels: tuple[float, ...],
                  repeats: int, seed: int, steps: int, sampler: str, prediction: str,
                  bar: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """r_s (L, b) and the summed maps over levels (b, ...) of rows first.. of the call, all repeats in one batch."""
    b = len(x0)
    seeds = [seed + k * SEED_STRIDE + first + i for k in range(repeats) for i in range(b)]  # (R * b,) repeat-major
    x_rep = x0.repeat(repeats, *([1] * (x0.ndim - 1)))  # (R * b, ...)
    errors, map_sum = [], None
    for s in levels:
        x_hat = reconstruct(fn, process, x_rep, s, seeds, steps, sampler, prediction)  # (R * b, ...)
        e = (x_rep - x_hat).square().reshape(repeats, b, *x0.shape[1:]).mean(0)  # (b, ...) mean over seeds
        errors.append(e.flatten(1).mean(1))  # (b,)
        m = _channel_mean(e)  # (b, H, W) or (b, D)
        map_sum = m if map_sum is None else map_sum + m
        bar.update(1)
    return torch.stack(errors), map_sum  # (L, b), (b, ...)


def anomaly_scores(fn: ModelFn, process: "str | GaussianProcess", x0: torch.Tensor,
                   levels: Sequence[float] = DEFAULT_LEVELS, seeds: int = 4, seed: int = 0, steps: int = 1,
                   sampler: str = "dpm++2m", stats: Optional[LevelStats] = None, batch_size: int = 256,
                   prediction: str = "x0", progress: bool = False) -> AnomalyScores:
    """Reconstruction anomaly scores of x0 (B, ...) under the denoiser fn(x_t, t) -> `prediction` (module doc).

    levels: scaled noise levels s (the t0s); seeds: noise draws per input and level; steps: sampler steps back to 0
    (1: the posterior mean); stats: per-level statistics on normal data (level_stats) to standardize r_s by, else
    the plain mean over levels. batch_size counts inputs; each batch runs seeds x batch_size rows at once.
    """
    levels = check_levels(levels)
    process = build_process(process)
    if x0.ndim < 2 or len(x0) == 0:
        raise PlumeError(f"inputs must be shaped (B, ...) with B >= 1, got {tuple(x0.shape)}")
    if any(not isinstance(v, int) or v < 1 for v in (seeds, steps, batch_size)):
        raise PlumeError(f"seeds, steps and batch_size must be whole numbers >= 1, got seeds={seeds!r}, "
                         f"steps={steps!r}, batch_size={batch_size!r}")
    if stats is not None and tuple(stats.levels) != levels:
        raise PlumeError(f"the level statistics are for levels {list(stats.levels)}, not {list(levels)}; "
                         "compute them with level_stats at the same levels")
    if not bool(torch.isfinite(x0).all()):
        raise PlumeError("inputs contain NaN or inf; remove or impute them first")
    errors, maps = [], []
    starts = range(0, len(x0), batch_size)
    with torch.no_grad(), progress_bar(total=len(starts) * len(levels), desc="anomaly", unit="level",
                                       enabled=progress) as bar:
        for first in starts:
            r, m = _batch_errors(fn, process, x0[first:first + batch_size], first, levels, seeds, seed, steps,
                                 sampler, prediction, bar)
            errors.append(r)
            maps.append(m / len(levels))
    level_errors = torch.cat(errors, dim=1).double()  # (L, B)
    return AnomalyScores(combine(level_errors, stats), level_errors, torch.cat(maps).float(), levels)


def combine(level_errors: torch.Tensor, stats: Optional[LevelStats] = None) -> torch.Tensor:
    """Scores (B,) from r_s (L, B): mean over levels of (r_s - mu_s) / sd_s with stats, else of r_s."""
    if stats is None:
        return level_errors.mean(0)
    mean, std = stats.mean.to(level_errors)[:, None], stats.std.to(level_errors)[:, None]  # (L, 1)
    return ((level_errors - mean) / std).mean(0)  # (B,)


def likelihood_scores(fn: ModelFn, process: "str | GaussianProcess", x0: torch.Tensor, s_min: float = 0.2,
                      prediction: str = "x0", batch_size: int = 256, rtol: float = 1e-4, atol: float = 1e-4,
                      progress: bool = False) -> torch.Tensor:
    """Scores (B,): -log p_{s_min}(x0) in nats by the probability-flow ODE (module doc; Song et al. 2021, app. D.2),
    computed in float64 (in the module's own dtype when fn is a torch module: call .double() on it first for
    float64, on its device); higher is more unusual. s_min: the smoothing level (choose_smoothing picks one)."""
    from ..likelihood import ode_likelihood

    process = build_process(process)
    if x0.ndim < 2 or len(x0) == 0:
        raise PlumeError(f"inputs must be shaped (B, ...) with B >= 1, got {tuple(x0.shape)}")
    if not s_min > 0:
        raise PlumeError(f"s_min must be a noise level > 0, got {s_min!r}")
    if not bool(torch.isfinite(x0).all()):
        raise PlumeError("inputs contain NaN or inf; remove or impute them first")
    weight = first_parameter(fn)
    dtype = weight.dtype if weight is not None else torch.float64
    device = weight.device if weight is not None else x0.device
    parts = []
    for first in progress_bar(range(0, len(x0), batch_size), desc="likelihood", unit="batch", enabled=progress):
        x = x0[first:first + batch_size].to(device=device, dtype=dtype)  # (b, ...) on the model's device
        parts.append(ode_likelihood(fn, process, x, prediction=prediction, s_min=s_min, rtol=rtol, atol=atol).nll)
    return torch.cat(parts)  # (B,)


def first_parameter(fn: Any) -> Optional[torch.Tensor]:
    """A module's first parameter (its dtype and device are the model's), or None for a plain function."""
    return next(iter(fn.parameters()), None) if isinstance(fn, torch.nn.Module) else None


def choose_smoothing(fn: ModelFn, process: "str | GaussianProcess", normal_val: torch.Tensor,
                     candidates: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5),
                     **options: Any) -> tuple[float, dict[float, float]]:
    """The s_min among candidates with the lowest mean -log p_{s_min} of held-out normal examples (N, ...) (not
    used in training), and that mean for each candidate: bandwidth selection by held-out likelihood."""
    if len(normal_val) < 1 or not candidates:
        raise PlumeError("choose_smoothing needs held-out normal examples and at least one candidate level")
    means = {float(s): float(likelihood_scores(fn, process, normal_val, s, **options).mean()) for s in candidates}
    return min(means, key=means.get), means


def level_stats(fn: ModelFn, process: "str | GaussianProcess", normal: torch.Tensor,
                levels: Sequence[float] = DEFAULT_LEVELS, **options: Any) -> LevelStats:
    """Mean and standard deviation of r_s over normal examples (N, ...) (N >= 2), for standardized scores."""
    if len(normal) < 2:
        raise PlumeError(f"level statistics need at least 2 normal examples, got {len(normal)}")
    r = anomaly_scores(fn, process, normal, levels, **options).level_errors  # (L, N)
    return LevelStats(check_levels(levels), r.mean(1), r.std(1).clamp_min(1e-12))


__all__ = ["AnomalyScores", "LevelStats", "DEFAULT_LEVELS", "SEED_STRIDE", "anomaly_scores", "check_levels",
           "choose_smoothing", "combine", "level_stats", "likelihood_scores", "reconstruct"]
