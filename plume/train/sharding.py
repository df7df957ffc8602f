"""FSDP2 (torch.distributed.fsdp.fully_shard) for models too large for one device: each rank keeps 1/world of
the weights, gradients, AdamW moments and EMA; the full tensors exist only one block at a time in forward and
backward (Zhao et al. 2023, "PyTorch FSDP").

Checkpoints stay in Plume's one format (plume.train.checkpoint): every rank gathers the full tensors (a
collective), rank 0 writes them, and a resume spreads them again, so a sharded run resumes unsharded, on
another world size, or under DDP, and the other way round.

Which modules are sharded: every block a backbone keeps in an nn.ModuleList (U-Net resolution blocks, DiT and
MLP residual blocks), then the backbone itself for the rest (embeddings, input and output layers).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor


def shard_backbone(backbone: nn.Module) -> nn.Module:
    """Apply fully_shard to each ModuleList element of `backbone` (blocks), then to `backbone`; in place."""
    blocks = [child for parent in backbone.modules() if isinstance(parent, nn.ModuleList)
              for child in parent.children() if not isinstance(child, nn.ModuleList)]
    for block in blocks:
        fully_shard(block)
    fully_shard(backbone)
    return backbone


def is_sharded(module: nn.Module) -> bool:
    """Whether `module`'s weights are sharded (FSDP2 DTensors)."""
    return any(isinstance(p, DTensor) for p in module.parameters())


def full_tensor(value: Any) -> Any:
    """The whole tensor behind a DTensor (a collective: every rank must call it); anything else as it is."""
    return value.full_tensor() if isinstance(value, DTensor) else value


def like(full: torch.Tensor, reference: Any) -> Any:
    """`full` laid out as `reference`: sharded the same way when `reference` is a DTensor, in its memory layout
    (e.g. channels_last) when it is a tensor of the same shape with other strides, else unchanged. The layout
    matters for optimizer moments: the fused AdamW kernel walks a parameter and its moments as flat arrays."""
    if isinstance(reference, DTensor):
        return distribute_tensor(full.to(reference.device, reference.dtype), reference.device_mesh, reference.placements)
    if torch.is_tensor(reference) and full.shape == reference.shape and full.stride() != reference.stride():
        return torch.empty_like(reference).copy_(full)
    return full


def full_state(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict with every DTensor gathered (nested dicts, e.g. an optimizer's, included); a collective."""
    return {k: full_state(v) if isinstance(v, dict) else full_tensor(v) for k, v in state.items()}


def sharded_like(full: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """`full` (nested) with each tensor laid out as the tensor of the same key in `reference`."""
    return {k: sharded_like(v, reference.get(k, {})) if isinstance(v, dict)
            else like(v, reference[k]) if isinstance(reference, dict) and k in reference else v
            for k, v in full.items()}


def optimizer_state_like(full: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A full optimizer state dict (integer ids in param_groups order) with each per-parameter tensor of the
    parameter's shape laid out as that parameter (sharded under FSDP, in its memory layout), ready for
    optimizer.load_state_dict."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = {}
    for key, entry in full.get("state", {}).items():
        param = params[int(key)] if int(key) < len(params) else None
        state[key] = {name: like(value, param) if param is not None and torch.is_tensor(value)
                      and value.shape == param.shape else value for name, value in entry.items()}
    return {**full, "state": state}
