"""Name registries: build a class from its name and options, with errors that list what is valid.

A registry is a dict from names to what they stand for (a class, a function, a data type); `Registry.register`
adds an entry and refuses a name already taken by something else, and `Registry.named` looks one up, or says which
names are valid. Data types (plume.modality) and backbones (plume.backbones) register themselves this way, so the
core never imports the packages that fill its registries.
"""
from __future__ import annotations

import inspect
from typing import Any, Generic, TypeVar

from .errors import PlumeError, unknown_name

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """A dict of named entries of one kind ("backbone", "data type"), filled by `register`."""

    def __init__(self, kind: str, entries: "dict[str, T] | None" = None):
        super().__init__(entries or {})
        self.kind = kind

    def register(self, name: str, entry: T) -> T:
        """Add `entry` under `name` (again for the same entry is harmless); returns the entry."""
        if self.get(name, entry) is not entry:
            raise PlumeError(f"{self.kind} name {name!r} is already taken by {self[name]!r}")
        self[name] = entry
        return entry

    def named(self, name: str) -> T:
        """The entry called `name`, or an error that lists the valid names."""
        if name not in self:
            raise unknown_name(self.kind, name, list(self))
        return self[name]


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
