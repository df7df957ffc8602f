"""Per-sample random streams: sample k is a function of seed k alone, whatever the batch."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def derive_seed(seed: int, *keys: int) -> int:
    """A seed for the stream `keys` of the sample with `seed` (e.g. a cascade's stage, a tile and a draw): a 63-bit
    hash of (seed, *keys) by numpy's SeedSequence, so derived streams never share a seed with each other."""
    state = np.random.SeedSequence([int(seed) % 2**64, *map(int, keys)]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1  # 63 bits: a valid torch seed


class SeedNoise:
    """One torch.Generator per sample; draws are stacked so a batch equals its samples drawn alone."""

    def __init__(self, seeds: Sequence[int], device: "torch.device | str" = "cpu"):
        self.seeds = [int(s) for s in seeds]
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A (len(seeds), *shape) standard normal draw, row k from generator k."""
        rows = [torch.randn(tuple(shape), generator=g, device=self.device, dtype=dtype) for g in self.generators]
        return torch.stack(rows)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like x (B, ...), one generator per row."""
        return self.randn(x.shape[1:], dtype=x.dtype).to(x.device)
