"""Name registries: build a class from its name and options, with errors that list what is valid."""
from __future__ import annotations

import inspect
from typing import Any

from .errors import PlumeError, unknown_name


def build(kind: str, registry: dict[str, type], name: str, **options: Any) -> Any:
    """registry[name](**options); an unknown name or option gets one message listing the valid ones."""
    if name not in registry:
        raise unknown_name(kind, name, list(registry))
    cls = registry[name]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    bad = [k for k in options if k not in valid]
    if bad:
        raise PlumeError(f"{kind} {name!r} has no option {bad[0]!r}; valid options: {', '.join(valid) or 'none'}")
    try:
        return cls(**options)
    except TypeError as error:  # a missing required option
        raise PlumeError(f"{kind} {name!r}: {error}") from None
