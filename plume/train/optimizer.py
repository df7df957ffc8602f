"""The optimizer every Plume run trains with: AdamW (Loshchilov & Hutter 2019) in its fastest safe kernel.

The fused kernel (one pass over a parameter, its gradient and both moments, on the CPU and CUDA) updates 33M
parameters in ~30 ms on 2 CPU cores against ~170 ms for `foreach` and for torch.optim.AdamW's default there
(bench/throughput.py measures whole training steps with it). Sharded (FSDP2 DTensor) parameters and other
devices take the `foreach` kernel.
"""
from __future__ import annotations

from typing import Iterable

import torch

FUSED_DEVICES = ("cpu", "cuda")


def adamw(parameters: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0, fused: bool = True,
          device: torch.device | str = "cpu", sharded: bool = False) -> torch.optim.AdamW:
    """AdamW over `parameters`: the fused kernel where `fused` and the device allows it, `foreach` otherwise."""
    use_fused = fused and torch.device(device).type in FUSED_DEVICES and not sharded
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay,
                             **({"fused": True} if use_fused else {"foreach": True}))
