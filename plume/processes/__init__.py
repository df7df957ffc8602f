"""Forward processes by name: `plume.process("vp", schedule="cosine")`."""
from __future__ import annotations

import inspect
from typing import Any

from ..errors import PlumeError, unknown_name
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
    if name not in PROCESSES:
        raise unknown_name("process", name, list(PROCESSES))
    cls = PROCESSES[name]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    bad = [k for k in options if k not in valid]
    if bad:
        raise PlumeError(f"process {name!r} has no option {bad[0]!r}; valid options: {', '.join(valid) or 'none'}")
    return cls(**options)


__all__ = ["GaussianProcess", "PROCESSES", "process", "time_derivative", "DDPM", "VP", "SubVP", "VE", "EDM", "Flow"]
