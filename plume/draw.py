"""Drawing many samples from a denoiser: seeds in batches, under class labels or prompts with classifier-free guidance
or autoguidance, spread over the processes of torchrun, and the recorded trajectory of a few of them.

Sample k is a function of (denoiser, sampler settings, seed k, condition k), whatever the batch it is drawn in
(plume.sample's per-seed generators), up to the last bits of float arithmetic, which a batch's size can change;
distributed drawing therefore keeps one process's batches: batch k goes to rank k mod world_size and rank 0 gathers
them in order, so the samples are bit for bit one process's.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from .denoiser import Denoiser
from .guidance import autoguidance, classifier_free_guidance
from .progress import progress_bar
from .sampling import sample as draw_samples
from .train.distributed import SINGLE, Distributed, gather_rows

Trajectory = list[tuple[float, torch.Tensor, torch.Tensor]]  # (noise level s, x_t / std (B, ...), x0_hat (B, ...))


def draw(denoiser: Denoiser, shape: Sequence[int], seeds: Sequence[int], batch_size: int, options: dict[str, Any],
         place: Distributed = SINGLE, labels: Optional[Union[Sequence[int], torch.Tensor]] = None,
         guidance: float = 1.0, weaker: Optional[Denoiser] = None, negative: Optional[torch.Tensor] = None,
         progress: bool = True) -> Optional[torch.Tensor]:
    """Samples for `seeds` in batches (each sample depends on its seed alone); on the CPU, (n, *shape).

    `options` are plume.sample's (sampler, steps, grid). With `labels` (class labels (L,), or prompts' token ids
    (L, T)), sample k is drawn for labels[k % L], guided with classifier-free guidance of scale `guidance` (1: the
    conditional model alone; plume.guidance), away from `negative` (one condition row) instead of the null condition
    if given. With `weaker`, a weaker model of the same data, autoguidance of scale `guidance` replaces
    classifier-free guidance (labels optional). Under torchrun rank 0 gets every sample, the other ranks None.
    """
    shape, seeds = tuple(shape), list(seeds)
    device = next(denoiser.parameters()).device
    starts = list(range(0, len(seeds), batch_size))
    parts = []
    rounds = range(0, len(starts), place.world_size)
    with torch.no_grad():
        for first in progress_bar(rounds, desc="sample", unit="round" if place.active else "batch",
                                  enabled=progress and len(seeds) > batch_size and place.is_main):
            mine = first + place.rank
            chunk = seeds[starts[mine]:starts[mine] + batch_size] if mine < len(starts) else []
            model = guided(denoiser, starts[mine] if chunk else 0, len(chunk), labels, guidance, weaker, negative)
            x = draw_samples(model, denoiser.process, (len(chunk), *shape), prediction="x0", seeds=chunk,
                             device=device, **options).cpu() if chunk else torch.zeros((0, *shape))  # (b, *shape)
            if not place.active:
                parts.append(x)
                continue
            gathered = gather_rows(place, x, batch_size)  # (world, batch_size, *shape) on rank 0
            for rank in range(place.world_size if gathered is not None else 0):
                if first + rank < len(starts):
                    parts.append(gathered[rank, :len(seeds[starts[first + rank]:starts[first + rank] + batch_size])])
    return torch.cat(parts) if place.is_main else None


def in_batches(fn: Callable[[slice], torch.Tensor], n: int, batch_size: Optional[int] = None,
               progress: bool = False, desc: str = "batch") -> torch.Tensor:
    """fn(rows) over consecutive slices of at most batch_size (default: all) of n rows, concatenated on the CPU: one
    model call per batch where a task's estimate is a single call, not a sampler run (which `draw` batches)."""
    size = batch_size or max(n, 1)
    parts = [fn(slice(first, first + size)).cpu()
             for first in progress_bar(range(0, n, size), desc=desc, unit="batch", enabled=progress and n > size)]
    return torch.cat(parts)


def guided(denoiser: Denoiser, start: int, count: int, labels: Optional[Union[Sequence[int], torch.Tensor]],
           guidance: float, weaker: Optional[Denoiser], negative: Optional[torch.Tensor]) -> Any:
    """The model that draws samples start .. start + count - 1 of a call of `draw`: the denoiser under their
    conditions labels[k % L], guided as `draw` says."""
    device = next(denoiser.parameters()).device
    cond = None
    if labels is not None and len(labels) and count:
        rows = torch.arange(start, start + count) % len(labels)  # (b,) which condition each sample takes
        cond = torch.as_tensor(labels)[rows].to(device)  # (b,) or (b, T)
    if weaker is not None:
        return autoguidance(denoiser, weaker, cond, guidance)
    if cond is None:
        return denoiser
    if guidance != 1.0:
        return classifier_free_guidance(denoiser, cond, guidance, negative)
    return lambda x, t: denoiser(x, t, cond)


def record_trajectory(denoiser: Denoiser, shape: Sequence[int], seeds: Sequence[int], options: dict[str, Any],
                      columns: int) -> Trajectory:
    """Draw `seeds` again, recording x_t (scaled to unit variance) and x0_hat at every model evaluation; keep
    `columns` of them, evenly spaced from pure noise to the end, as (s, x_t, x0_hat) on the CPU."""
    process, frames = denoiser.process, []

    def recorded(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0 = denoiser(x_t, t)  # (B, *shape)
        t = torch.as_tensor(t).reshape(-1)[:1]
        scale = torch.rsqrt(process.alpha(t) ** 2 + process.sigma(t) ** 2).item()
        frames.append((float(process.sigma(t) / process.alpha(t)), x_t.cpu() * scale, x0.cpu()))
        return x0

    device = next(denoiser.parameters()).device
    with torch.no_grad():
        draw_samples(recorded, process, (len(seeds), *shape), prediction="x0", seeds=list(seeds), device=device,
                     **options)
    keep = np.unique(np.linspace(0, len(frames) - 1, min(columns, len(frames))).round().astype(int))
    return [frames[i] for i in keep]


__all__ = ["Trajectory", "draw", "guided", "in_batches", "record_trajectory"]
