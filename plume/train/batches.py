"""The randomness of one training micro-batch as a function of (seed, step, micro-batch) alone, whatever the
number of processes that share it.

A micro-batch of B examples draws, from the generator of (seed, step, micro):
    index (B,) with replacement, then one seed for dropout;
and, for each block of RNG_BLOCK consecutive examples, from the generator of (seed, step, micro, block):
    the data's augmentation (flips), the training times t (b,) and the noise (b, ...).
A process that computes examples [start, stop) draws only the blocks that range touches, so one process
computing all B and two computing B / 2 each see the same examples, times and noise. Blocks cost one
generator each (a few microseconds); RNG_BLOCK = 16 keeps that below 1% of a step for the smallest models.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch

from ..denoiser import Denoiser
from ..guidance import null_condition
from .data import PairedData, TrainingData

RNG_BLOCK = 16


def step_generator(seed: int, step: int, micro: int = 0, *block: int) -> torch.Generator:
    """The CPU generator of micro-batch `micro` of step `step` (and of one block of it): a function of its key."""
    state = np.random.SeedSequence([int(seed), int(step), int(micro), *map(int, block)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def blocks(batch_size: int, start: int, stop: int) -> Iterator[tuple[int, slice, tuple[int, int]]]:
    """The RNG blocks that rows [start, stop) of a micro-batch of batch_size touch: (block number, the whole block's
    rows, the range [lo, hi) of it that [start, stop) holds)."""
    for block in range(start // RNG_BLOCK, -(-stop // RNG_BLOCK)):
        full = slice(block * RNG_BLOCK, min(batch_size, (block + 1) * RNG_BLOCK))  # the whole block's examples
        yield block, full, (max(start, full.start), min(stop, full.stop))


def micro_batch_reads(n: int, batch_size: int, seed: int, step: int, micro: int, start: int = 0,
                      stop: Optional[int] = None) -> list[torch.Tensor]:
    """The example indices draw_micro_batch reads from data of n examples for rows [start, stop), one tensor (b,) per
    data.batch call in the order it makes them: what a streamed source (plume.train.streaming) fetches ahead."""
    stop = batch_size if stop is None else stop
    index = torch.randint(n, (batch_size,), generator=step_generator(seed, step, micro))  # (B,) as draw_micro_batch
    return [index[full] for _, full, _ in blocks(batch_size, start, stop)]


@dataclass
class MicroBatch:
    """Examples [start, stop) of a micro-batch: clean data x0 (b, ...), times t (b,), noise like x0, labels (b,)
    or None, the seed for dropout's global generator, and the conditioning drawn with the examples (b, ...) for
    PairedData (else None)."""

    x0: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor
    labels: Optional[torch.Tensor]
    dropout_seed: int
    cond: Optional[torch.Tensor] = None


def draw_micro_batch(data: TrainingData, denoiser: Denoiser, batch_size: int, seed: int, step: int, micro: int,
                     start: int = 0, stop: Optional[int] = None, labelled: bool = False,
                     label_dropout: float = 0.0) -> MicroBatch:
    """Examples [start, stop) (default: all) of micro-batch `micro` of step `step`; on the CPU.

    With labels and label_dropout p > 0, each label becomes "no label" (index num_classes; for token ids the
    empty prompt) with probability p,
    drawn last in its block: the unconditional model that classifier-free guidance needs (Ho & Salimans 2022).
    """
    stop = batch_size if stop is None else stop
    g = step_generator(seed, step, micro)
    index = torch.randint(len(data), (batch_size,), generator=g)  # (B,) the whole micro-batch's examples
    dropout_seed = int(torch.randint(2**62, (), generator=g))
    paired = isinstance(data, PairedData)
    xs, ts, noises, labels, conds = [], [], [], [], []
    for block, full, (lo, hi) in blocks(batch_size, start, stop):
        gb = step_generator(seed, step, micro, block)
        if paired:
            x, cond = data.batch_with_condition(index[full], gb)  # (b_block, ...), (b_block, ...)
        else:
            x = data.batch(index[full], gb)  # (b_block, ...)
        t = denoiser.draw_times(len(x), gb)  # (b_block,)
        noise = torch.randn(x.shape, generator=gb, dtype=x.dtype)  # (b_block, ...)
        keep = slice(lo - full.start, hi - full.start)  # this range's part of the block
        xs.append(x[keep]), ts.append(t[keep]), noises.append(noise[keep])
        if paired:
            conds.append(cond[keep])
        if labelled:
            c = data.labels[index[full]]  # (b_block,) labels or (b_block, T) token ids
            if label_dropout > 0:
                drop = torch.rand(len(c), generator=gb) < label_dropout  # (b_block,)
                c = torch.where(drop.view(-1, *[1] * (c.ndim - 1)), null_condition(denoiser, len(c), c.device), c)
            labels.append(c[keep])
    return MicroBatch(torch.cat(xs), torch.cat(ts), torch.cat(noises), torch.cat(labels) if labelled else None,
                      dropout_seed, torch.cat(conds) if paired else None)
