"""Plume's one error type: a message a person can act on, never a bare traceback."""


class PlumeError(ValueError):
    """Bad input or state, with a message that names the file, field, row or value at fault."""


def unknown_name(kind: str, name: str, valid: "list[str] | tuple[str, ...]") -> PlumeError:
    """The error for a name missing from a registry; lists the valid names."""
    return PlumeError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")


class PlumeUsageError(PlumeError):
    """Options that cannot go together, or one given without what it needs: the command line's usage error (exit 2)."""
