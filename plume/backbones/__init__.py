"""Backbones by name: networks forward(x, noise_level, cond=None) -> x's shape that know nothing of schedules."""
from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import PlumeError
from ..registry import build
from .mlp import MLP

BACKBONES: dict[str, type[nn.Module]] = {
    "mlp": MLP,
}


def backbone(name: str, **options: Any) -> nn.Module:
    """Build a backbone by name with its constructor options; unknown names or options list the valid ones."""
    return build("backbone", BACKBONES, name, **options)


def backbone_name(module: nn.Module) -> str:
    """The registry name of a backbone instance (what config.json records)."""
    for name, cls in BACKBONES.items():
        if type(module) is cls:
            return name
    raise PlumeError(f"{type(module).__name__} is not a registered backbone; registered: {', '.join(BACKBONES)}")


__all__ = ["BACKBONES", "backbone", "backbone_name", "MLP"]
