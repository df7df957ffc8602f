"""What the benchmark scripts share: running a `plume` command in this process, printing how long it took."""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plume.cli import main as plume_cli  # noqa: E402


def plume(*args: Any) -> str:
    """Run one `plume` command in this process; returns the command line as typed."""
    words = [str(a) for a in args]
    started = time.monotonic()
    plume_cli.main(words, standalone_mode=False)
    print(f"  ({time.monotonic() - started:.0f} s) plume {' '.join(words)}", flush=True)
    return "plume " + " ".join(shlex.quote(w) for w in words)
