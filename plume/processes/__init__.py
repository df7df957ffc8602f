"""Forward processes by name: `plume.process("vp", schedule="cosine")`."""
from __future__ import annotations

from typing import Any

from ..registry import build
from .base import GaussianProcess, time_derivative
from .ddpm import DDPM
from .simple import EDM, VE, Flow
from .vp import VP, SubVP

PROCESSES: dict[str, type[GaussianProcess]] = {
    "ddpm": DDPM,
    "vp": VP,
    "subvp": SubVP,
    "ve": VE,
    "edm": EDM,
    "flow": Flow,
}


def process(name: str, **options: Any) -> GaussianProcess:
    """Build a process by name: "ddpm", "vp", "subvp", "ve", "edm" or "flow", with its options."""
    if isinstance(name, GaussianProcess):
        return name
    return build("process", PROCESSES, name, **options)


__all__ = ["GaussianProcess", "PROCESSES", "process", "time_derivative", "DDPM", "VP", "SubVP", "VE", "EDM", "Flow"]
