"""What the benchmark scripts share: running a `plume` command in this process, printing how long it took."""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plume.cli import main as plume_cli  # noqa: E402


def shown(path: Any) -> str:
    """A path as docs record it: relative to the repository when inside it (never the machine's absolute path)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def command_line(*args: Any) -> str:
    """`plume ARGS` as typed from the repository root, paths inside the repository made relative."""
    return "plume " + " ".join(shlex.quote(shown(a) if isinstance(a, Path) else str(a)) for a in args)


def plume(*args: Any) -> str:
    """Run one `plume` command in this process; returns the command line as typed from the repository root."""
    started = time.monotonic()
    plume_cli.main([str(a) for a in args], standalone_mode=False)
    line = command_line(*args)
    print(f"  ({time.monotonic() - started:.0f} s) {line}", flush=True)
    return line
