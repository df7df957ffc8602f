"""Moving shapes: short videos of one to three coloured shapes (the scenes of plume.images.shapes) gliding at constant
velocity and bouncing off the image borders: the data set Plume's frame interpolation trains and is measured on.

A video is drawn from (seed, index, split) alone: its first frame is plume.images.shapes.random_scene (so shapes start
apart; later they may pass over each other, colours adding), each shape gets a direction uniform on the circle and a
speed uniform in SPEED (image sides per frame), and its centre moves on a straight line, reflected at the borders so
that its box stays MARGIN inside the image (a triangle wave per axis). Frames are rendered by
plume.images.shapes.render (4 x 4 supersampled coverage on black). The "train" and "heldout" splits draw from
different random streams, so held-out videos are never trained on.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from ..progress import progress_bar

from ..errors import PlumeError
from .shapes import MARGIN, Scene, Shape, random_scene, render

MOVING_SHAPES = "moving-shapes"
SIZE, FRAMES, COUNT = 16, 8, 512  # default side, frames per video and training videos
SPEED = (0.04, 0.10)  # image sides per frame (0.6 to 1.6 pixels at 16 x 16)
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class Motion:
    """A shape at frame 0 and its velocity (vx, vy) in image sides per frame."""
    shape: Shape
    vx: float
    vy: float

    def at(self, t: float) -> Shape:
        """The shape at time t (frames), its centre reflected at the borders."""
        lo = self.shape.radius + MARGIN
        return replace(self.shape, x=reflect(self.shape.x + self.vx * t, lo, 1 - lo),
                       y=reflect(self.shape.y + self.vy * t, lo, 1 - lo))


def reflect(p: float, lo: float, hi: float) -> float:
    """p folded into [lo, hi] by mirror reflections at both ends (a triangle wave of period 2 (hi - lo))."""
    width = hi - lo
    u = (p - lo) % (2 * width)
    return lo + (u if u <= width else 2 * width - u)


def random_motions(rng: np.random.Generator, max_objects: int = 3, min_objects: int = 1) -> list[Motion]:
    """Shapes of a random scene, each with a random direction and a speed uniform in SPEED."""
    scene = random_scene(rng, max_objects, min_objects)
    angles = rng.uniform(0, 2 * np.pi, len(scene.shapes))  # (k,)
    speeds = rng.uniform(*SPEED, len(scene.shapes))  # (k,)
    return [Motion(s, float(v * np.cos(a)), float(v * np.sin(a))) for s, a, v in zip(scene.shapes, angles, speeds)]


def video_at(seed: int, index: int, split: str = "train", frames: int = FRAMES, size: int = SIZE,
             max_objects: int = 3, min_objects: int = 1) -> np.ndarray:
    """Video number `index` of `split` drawn with `seed`: uint8 (frames, size, size, 3)."""
    if split not in SPLITS:
        raise PlumeError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    rng = np.random.default_rng([int(seed), int(index), SPLITS.index(split), 0x6D76])  # "mv": apart from shapes'
    motions = random_motions(rng, max_objects, min_objects)
    return np.stack([render(Scene(tuple(m.at(t) for m in motions)), size) for t in range(frames)])  # (T, S, S, 3)


def moving_shapes(n: int, size: int = SIZE, frames: int = FRAMES, seed: int = 0, split: str = "train",
                  max_objects: int = 3, min_objects: int = 1, progress: bool = False) -> np.ndarray:
    """n videos of `split`: uint8 (n, frames, size, size, 3); video i depends only on (seed, i, split, counts)."""
    if n < 1 or frames < 3 or size < 8:
        raise PlumeError(f"moving shapes need n >= 1 videos of frames >= 3 (a triple) and size >= 8 pixels, got "
                         f"n={n}, frames={frames}, size={size}")
    videos = np.zeros((n, frames, size, size, 3), dtype=np.uint8)  # (N, T, S, S, 3)
    for i in progress_bar(range(n), desc=f"drawing {split} moving shapes", unit="video", enabled=progress):
        videos[i] = video_at(seed, i, split, frames, size, max_objects, min_objects)
    return videos


__all__ = ["MOVING_SHAPES", "SIZE", "FRAMES", "COUNT", "SPEED", "SPLITS", "Motion", "reflect", "random_motions",
           "video_at", "moving_shapes"]
