"""Training and sampling on several processes, launched by torchrun: one node or many, gloo on CPU, NCCL on GPU.

`plume train` and `plume sample` need no new flags: under torchrun (WORLD_SIZE, RANK and LOCAL_RANK in the
environment) they join the process group themselves. What each rank does:

- training: `batch_size` is the *global* micro-batch. Every rank draws the same example indices for it and
  computes the loss on its own contiguous slice of B / world_size examples; DDP averages the gradients, so a
  step is the same step whatever the world size. The per-example randomness (flips, times, noise) comes in
  blocks of RNG_BLOCK examples, each from its own generator (plume.train.batches), so a rank draws only the
  blocks its slice touches and the batch does not depend on how it is split: 2 processes with B / 2 each follow
  the loss curve of 1 process with B (to float rounding), and a run resumes on any world size that divides B.
  Only rank 0 writes checkpoints, logs and pictures.
- sampling: whole batches of seeds go round-robin to the ranks, each batch exactly as one process would draw
  it, and rank 0 gathers them into one file, identical to a single process's.

Multi-node: run the same torchrun command on every node with `--nnodes N --rdzv-backend c10d
--rdzv-endpoint HOST:PORT` (docs/distributed.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

from ..errors import PlumeError


@dataclass(frozen=True)
class Distributed:
    """This process's place among `world_size` processes (rank 0 writes), and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def slice(self, batch_size: int) -> tuple[int, int]:
        """This rank's examples [start, stop) of a global batch of `batch_size`."""
        if batch_size % self.world_size:
            raise PlumeError(f"the batch size {batch_size} does not split evenly over {self.world_size} processes; "
                             f"use a multiple of {self.world_size} (it is the global batch, shared by all)")
        share = batch_size // self.world_size
        return self.rank * share, (self.rank + 1) * share

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """`values` summed over all ranks (a copy; float64 on the process group's device)."""
        total = values.detach().to(device=self.device, dtype=torch.float64).clone()
        if self.active:
            dist.all_reduce(total)
        return total

    @property
    def device(self) -> torch.device:
        """Where collectives run: this rank's GPU under NCCL, else the CPU."""
        if self.active and dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


SINGLE = Distributed()


def from_environment(device: Optional[torch.device] = None) -> Distributed:
    """Join torchrun's process group when launched by it (WORLD_SIZE > 1), else the single-process default.

    NCCL when `device` is CUDA (each rank takes GPU LOCAL_RANK), gloo otherwise. Idempotent.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device is not None and device.type == "cuda"
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Distributed(rank, world_size, local_rank)


def rank_device(device: torch.device, place: Distributed) -> torch.device:
    """The device this rank uses: its own GPU (cuda:LOCAL_RANK) when `device` is CUDA and several ranks run."""
    if device.type == "cuda" and place.active:
        return torch.device("cuda", place.local_rank)
    return device


def finish(place: Distributed) -> None:
    """Leave the process group (after the last collective)."""
    if place.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def gather_rows(place: Distributed, part: torch.Tensor, rows: int) -> Optional[torch.Tensor]:
    """Rank 0 gets every rank's `part` (rows, ...) padded to `rows` rows and stacked in rank order: (world, rows, ...);
    the other ranks get None. Tensors travel through the process group's device."""
    padded = torch.zeros((rows, *part.shape[1:]), dtype=part.dtype)  # (rows, ...)
    padded[: len(part)] = part
    padded = padded.to(place.device)
    if not place.active:
        return padded[None]
    gathered = [torch.empty_like(padded) for _ in range(place.world_size)]
    dist.all_gather(gathered, padded)
    return torch.stack(gathered).cpu() if place.is_main else None
