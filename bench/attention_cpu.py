"""Which scaled-dot-product-attention kernel is faster on this CPU, by sequence length: math against flash.

For each shape (batch, heads, tokens, head width) it times F.scaled_dot_product_attention under
sdpa_kernel(MATH) and sdpa_kernel(FLASH_ATTENTION), in training (forward + backward) and in inference (forward
under inference_mode), and prints math / flash time ratios (< 1: math faster). Plume's SelfAttention takes the
math kernel on the CPU up to plume.backbones.attention.MATH_ATTENTION_MAX_TOKENS tokens, read off this table.

Run alone (other processes skew timings):  python bench/attention_cpu.py [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from plume.backbones.attention import MATH_ATTENTION_MAX_TOKENS  # noqa: E402

SHAPES = [(256, 4, 16, 32), (64, 4, 32, 32), (32, 4, 64, 32), (32, 4, 64, 64), (16, 2, 96, 64),
          (16, 4, 128, 32), (8, 6, 128, 64), (8, 4, 256, 32), (8, 6, 256, 64)]  # (B, h, L, d)


def seconds(run: Callable[[], None], repeats: int = 5, rounds: int = 5) -> float:
    """Median over rounds of the mean time of `repeats` calls, after 3 warm-up calls."""
    for _ in range(3):
        run()
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(repeats):
            run()
        times.append((time.perf_counter() - began) / repeats)
    return statistics.median(times)


def kernel_times(shape: tuple[int, int, int, int], backend: SDPBackend) -> dict[str, float]:
    """Seconds per training call (forward + backward) and per inference call of one kernel on random q, k, v."""
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))  # (B, h, L, d) each
    grad = torch.randn(shape)

    def training() -> None:
        F.scaled_dot_product_attention(q, k, v).backward(grad)

    def inference() -> None:
        with torch.inference_mode():
            F.scaled_dot_product_attention(q.detach(), k.detach(), v.detach())

    with sdpa_kernel(backend):
        return {"training": seconds(training), "inference": seconds(inference)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} threads; Plume uses math up to {MATH_ATTENTION_MAX_TOKENS} tokens")
    print(f"{'(B, h, L, d)':>20s}  training math/flash  inference math/flash")
    for shape in SHAPES:
        math, flash = kernel_times(shape, SDPBackend.MATH), kernel_times(shape, SDPBackend.FLASH_ATTENTION)
        print(f"{str(shape):>20s}  {math['training'] / flash['training']:19.2f}  "
              f"{math['inference'] / flash['inference']:20.2f}")


if __name__ == "__main__":
    main()
