"""Stop training cleanly on Ctrl-C (SIGINT) or SIGTERM (what schedulers and `kill` send).

Inside `with StopOnSignal() as stop:` the first signal only sets `stop.signal` (its name); the loop checks it
between steps, saves a checkpoint and stops, so no step is left half-done. A second Ctrl-C raises
KeyboardInterrupt at once. The previous handlers come back on exit. Off the main thread (where Python cannot
install handlers) it does nothing and signals behave as before.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, Optional


class StopOnSignal:
    """A context that records the first SIGINT/SIGTERM instead of dying of it."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal: Optional[str] = None
        self._previous: dict[int, Any] = {}

    def _handle(self, number: int, frame: Optional[FrameType]) -> None:
        if self.signal is not None and number == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signal = signal.Signals(number).name

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
