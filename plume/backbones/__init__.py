"""Backbones by name: networks forward(x, noise_level, cond=None) -> x's shape that know nothing of schedules."""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ..errors import PlumeError, unknown_name
from .mlp import MLP

BACKBONES: dict[str, type[nn.Module]] = {
    "mlp": MLP,
}


def backbone(name: str, **options: Any) -> nn.Module:
    """Build a backbone by name with its constructor options; unknown names or options list the valid ones."""
    if name not in BACKBONES:
        raise unknown_name("backbone", name, list(BACKBONES))
    cls = BACKBONES[name]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    bad = [k for k in options if k not in valid]
    if bad:
        raise PlumeError(f"backbone {name!r} has no option {bad[0]!r}; valid options: {', '.join(valid)}")
    try:
        return cls(**options)
    except TypeError as e:  # a missing required option, e.g. dim
        raise PlumeError(f"backbone {name!r}: {e}") from None


def backbone_name(module: nn.Module) -> str:
    """The registry name of a backbone instance (what config.json records)."""
    for name, cls in BACKBONES.items():
        if type(module) is cls:
            return name
    raise PlumeError(f"{type(module).__name__} is not a registered backbone; registered: {', '.join(BACKBONES)}")


__all__ = ["BACKBONES", "backbone", "backbone_name", "MLP"]
