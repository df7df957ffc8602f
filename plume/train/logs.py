"""What a run records as it trains: loss.csv, TensorBoard scalars and images (optional), PNG pictures.

loss.csv holds one row per log interval (step, loss, lr, grad_norm, steps_per_second, skipped_steps: the steps
so far whose loss was not finite, time); a resumed run keeps
the rows up to its checkpoint's step and drops the rest, so the file reads as one uninterrupted run.
TensorBoard (`pip install 'plume[tensorboard]'`) gets the same scalars and every sample picture.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..errors import PlumeError


COLUMNS = ("step", "loss", "lr", "grad_norm", "steps_per_second", "skipped_steps", "time")


class RunLog:
    """loss.csv (`columns`, "step" first and "time" last), the optional TensorBoard writer in RUN/tensorboard, and
    sample pictures."""

    def __init__(self, out: Path, start: int, tensorboard: bool = False, columns: tuple[str, ...] = COLUMNS):
        path = out / "loss.csv"
        rows = []
        if start > 0 and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= start]
        self.file = open(path, "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=columns, extrasaction="ignore")
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.file.flush()
        self.board = _tensorboard_writer(out / "tensorboard", start) if tensorboard else None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """One loss.csv row, and the same values as TensorBoard scalars under train/."""
        self.writer.writerow({"step": step, **{k: f"{v:.6g}" for k, v in values.items()}, "time": f"{time.time():.3f}"})
        self.file.flush()
        if self.board is not None:
            for name, value in values.items():
                self.board.add_scalar(f"train/{name}", value, step)

    def picture(self, step: int, image: np.ndarray, path: Path) -> Path:
        """Save an (H, W, 3) uint8 picture as a PNG at `path`, and to TensorBoard as samples."""
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        if self.board is not None:
            self.board.add_image("samples", image, step, dataformats="HWC")
            self.board.flush()
        return path

    def close(self) -> None:
        self.file.close()
        if self.board is not None:
            self.board.close()


def _tensorboard_writer(directory: Path, start: int) -> "Optional[object]":
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise PlumeError("TensorBoard logging needs the tensorboard package: pip install 'plume[tensorboard]'") from None
    return SummaryWriter(str(directory), purge_step=start if start > 0 else None)
