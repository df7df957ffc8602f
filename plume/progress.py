"""Progress bars that suit where they are written: tqdm's bar on a terminal; off a terminal (a CI log, `> log`, a
pipe), a plain line every PLAIN_INTERVAL seconds and one at the end, not thousands of carriage-return updates."""
from __future__ import annotations

import io
import re
import sys
import time
from typing import Any, Iterable, Optional

from tqdm.auto import tqdm

PLAIN_INTERVAL = 30.0  # seconds between the lines of a bar written to a file or a pipe
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")  # cursor moves and carriage returns


class PlainLines(io.TextIOBase):
    """A text stream that writes tqdm's redraws as plain lines of `stream`: the first, then at most one every
    `interval` seconds (a redraw forced sooner, e.g. by refresh(), waits), and the last when the bar closes."""

    def __init__(self, stream: Any, interval: float = PLAIN_INTERVAL):
        self.stream, self.interval = stream, float(interval)
        self.last: Optional[float] = None  # when a line was last written
        self.pending = ""  # the newest redraw not written yet

    def write(self, text: str) -> int:
        line = _CONTROL.sub("", text).strip()
        now = time.monotonic()
        if line and (self.last is None or now - self.last >= self.interval):
            self.stream.write(line + "\n")
            self.last, self.pending = now, ""
        elif line:
            self.pending = line
        elif text.endswith("\n") and self.pending:  # the bar closes: its final state
            self.stream.write(self.pending + "\n")
            self.pending = ""
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def on_terminal(stream: Any = None) -> bool:
    """Whether `stream` (default stderr, where bars go) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def progress_bar(iterable: Optional[Iterable] = None, enabled: bool = True, **options: Any) -> tqdm:
    """tqdm(iterable, **options), hidden unless `enabled`, and off a terminal written as a few plain lines."""
    if enabled and not on_terminal():
        options = {**options, "file": PlainLines(sys.stderr), "mininterval": PLAIN_INTERVAL, "ncols": 100,
                   "dynamic_ncols": False, "leave": True}
    return tqdm(iterable, disable=not enabled, **options)


__all__ = ["PLAIN_INTERVAL", "PlainLines", "on_terminal", "progress_bar"]
