"""Folders written whole or not at all: what `plume prepare` writes (prepared image sets, latent caches)."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator, Union

from .errors import PlumeError


def writable_folder(out: Union[str, os.PathLike]) -> Path:
    """`out` as a Path, if it is new or an empty folder; else a PlumeError naming it."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PlumeError(f"{out} already exists and is not an empty folder; choose another --out or remove it")
    return out


@contextlib.contextmanager
def written_at_once(out: Path) -> Iterator[Path]:
    """A hidden sibling folder to write `out` in, renamed to `out` (new or empty) when the block ends, removed if it
    raises: `out` is whole or absent."""
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        if out.exists():
            out.rmdir()
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


__all__ = ["writable_folder", "written_at_once"]
