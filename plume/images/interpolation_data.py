"""Training data for frame interpolation: triples (A, middle, B) cut from videos; the model makes the middle frame
(x0) given cond = [A, B, tau] (plume.backbones.ImageConditioned, K = 2C + 1), tau in (0, 1) being where the middle
frame lies between A and B (a constant channel), so one model makes any in-between frame.

An example is a video (the trainer's index) and a triple drawn in `batch_with_condition` from the trainer's
generator: a gap g in [2, max_gap] between A and B, A's frame a, and the middle frame a + m, m in [1, g - 1],
tau = m / g. The frame and its conditioning come from that one draw (plume.train.data.PairedData), a function of
the trainer's (seed, step, micro-batch, block) generator, so resumed runs see the same triples.

Sources: "moving-shapes" (plume.images.moving_shapes, its "train" split), or a folder of frames / of one subfolder of
frames per video (plume.images.frames).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..errors import PlumeError
from .frames import read_videos
from .grid import add_title, image_grid
from .sets import images_to_tensor, tensor_to_images
from .moving_shapes import COUNT, FRAMES, MOVING_SHAPES, SIZE, moving_shapes

MAX_GAP = 4  # A and B at most this many frames apart in training (k = 3 in-between frames)


def interpolation_condition(a: torch.Tensor, b: torch.Tensor, tau: "torch.Tensor | float") -> torch.Tensor:
    """cond (B, 2C + 1, H, W) = [A, B, tau] from frames a, b (B, C, H, W) in [-1, 1] and positions tau (B,) or float."""
    if a.ndim != 4 or a.shape != b.shape:
        raise PlumeError(f"frames A and B must both be shaped (B, C, H, W), got {tuple(a.shape)} and {tuple(b.shape)}")
    tau = torch.as_tensor(tau, dtype=a.dtype, device=a.device).expand(len(a))  # (B,)
    if not bool(((tau > 0) & (tau < 1)).all()):
        raise PlumeError(f"positions tau must lie strictly between 0 (frame A) and 1 (frame B), got {tau.tolist()}")
    plane = tau[:, None, None, None].expand(len(a), 1, *a.shape[2:])  # (B, 1, H, W)
    return torch.cat([a, b, plane], dim=1)  # (B, 2C + 1, H, W)


class FrameTriples:
    """The trainer's view of videos: x0 = a middle frame (C, H, W), cond = [A, B, tau] (2C + 1, H, W)."""

    def __init__(self, videos: Sequence[np.ndarray], max_gap: int = MAX_GAP, info: Optional[dict[str, Any]] = None):
        if len(videos) == 0:
            raise PlumeError("frame interpolation needs at least one video")
        short = [i for i, v in enumerate(videos) if len(v) < 3]
        if short:
            raise PlumeError(f"video {short[0]} has {len(videos[short[0]])} frames; a training triple (A, middle, B) "
                             f"needs at least 3 frames per video")
        if int(max_gap) < 2:
            raise PlumeError(f"max_gap must be >= 2 (A and B two frames apart around one middle frame), got {max_gap}")
        self.frames = [images_to_tensor(np.asarray(v)) for v in videos]  # each (T_i, C, H, W) in [-1, 1]
        self.lengths = torch.tensor([len(v) for v in self.frames])  # (N,)
        self.max_gap = int(max_gap)
        self.shape, self.labels = tuple(self.frames[0].shape[1:]), None
        self._info = dict(info or {"name": "videos"})

    def __len__(self) -> int:
        return len(self.frames)

    def batch_with_condition(self, index: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0 (B, C, H, W), cond (B, 2C + 1, H, W)) for videos `index` (B,), gaps and frames drawn from generator."""
        u = torch.rand(len(index), 3, generator=generator, device=generator.device).cpu().double()  # (B, 3)
        length = self.lengths[index.cpu()]  # (B,)
        top = torch.clamp(length - 1, max=self.max_gap)  # (B,) the widest gap each video allows
        gap = 2 + (u[:, 0] * (top - 1)).long()  # (B,) in [2, top]
        first = (u[:, 1] * (length - gap)).long()  # (B,) A's frame, in [0, T - 1 - gap]
        step = 1 + (u[:, 2] * (gap - 1)).long()  # (B,) in [1, gap - 1]
        rows = [(self.frames[int(i)], int(f), int(f + s), int(f + g)) for i, f, s, g in zip(index, first, step, gap)]
        x0 = torch.stack([v[m] for v, _, m, _ in rows])  # (B, C, H, W)
        a, b = torch.stack([v[f] for v, f, _, _ in rows]), torch.stack([v[e] for v, _, _, e in rows])  # (B, C, H, W)
        return x0, interpolation_condition(a, b, step.float() / gap.float())  # (B, C, H, W), (B, 2C + 1, H, W)

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The middle frames x0 (B, C, H, W) of triples drawn for videos `index` (the trainer asks
        batch_with_condition, which also gives their conditioning)."""
        return self.batch_with_condition(index, generator)[0]

    def preview_condition(self, n: int, seed: int) -> torch.Tensor:
        """cond (n, 2C + 1, H, W) for the trainer's preview: triples of videos 0, 1, ..., drawn with `seed`."""
        return self.batch_with_condition(torch.arange(n) % len(self), torch.Generator().manual_seed(int(seed)))[1]

    def info(self) -> dict[str, Any]:
        """JSON-able description; interpolation_data_from_info rebuilds the same data."""
        return {"kind": "interpolation", **self._info, "max_gap": self.max_gap}

    def render(self, x: torch.Tensor, title: str = "", cond: Optional[torch.Tensor] = None) -> np.ndarray:
        """Samples x (B, C, H, W) as a grid; with their conditioning cond (B, 2C + 1, H, W), each between the two
        frames it was made from (A, made, B per triple)."""
        c = self.shape[0]
        if cond is not None:
            a, b = cond[:, :c].cpu(), cond[:, c:2 * c].cpu()  # (B, C, H, W) each
            x = torch.stack([a, x.cpu(), b], dim=1).flatten(0, 1)  # (3B, C, H, W): A, made, B, ...
            return add_title(image_grid(tensor_to_images(x), columns=12), title + " (A, made, B)")
        return add_title(image_grid(tensor_to_images(x)), title)


def load_interpolation_data(source: str, seed: int = 0, image_size: Optional[int] = None,
                            channels: Optional[str] = None, limit: Optional[int] = None, max_gap: int = MAX_GAP,
                            progress: bool = False) -> FrameTriples:
    """Training triples from "moving-shapes" (limit videos, default COUNT, of image_size, default SIZE) or a
    folder of frames / of one subfolder of frames per video (plume.images.frames.read_videos)."""
    if source == MOVING_SHAPES:
        if channels not in (None, "rgb"):
            raise PlumeError(f"{MOVING_SHAPES} videos are in colour; drop --channels {channels}")
        n, size = int(limit or COUNT), int(image_size or SIZE)
        videos = moving_shapes(n, size, FRAMES, seed, "train", progress=progress)  # (N, T, S, S, 3)
        info = {"name": MOVING_SHAPES, "n": n, "image_size": size, "frames": FRAMES, "seed": int(seed)}
        return FrameTriples(list(videos), max_gap, info)
    if not Path(source).is_dir():
        raise PlumeError(f"frame interpolation trains on {MOVING_SHAPES!r} or a folder of frames (or of one subfolder "
                         f"of frames per video); {source!r} is neither")
    videos, _ = read_videos(source, channels, image_size)
    videos = videos[:limit] if limit else videos
    info = {"name": str(source), "folder": str(Path(source).resolve()), "channels": channels,
            "image_size": image_size, "limit": limit}
    return FrameTriples(videos, max_gap, info)


def interpolation_data_from_info(info: dict[str, Any], source: str = "config.json") -> FrameTriples:
    """Rebuild the FrameTriples whose info() gave `info` (a run's config.json "data")."""
    try:
        if info.get("name") == MOVING_SHAPES:
            data = load_interpolation_data(MOVING_SHAPES, info["seed"], info["image_size"], None, info["n"],
                                           info["max_gap"])
        else:
            data = load_interpolation_data(info["folder"], 0, info.get("image_size"), info.get("channels"),
                                           info.get("limit"), info["max_gap"])
    except KeyError as missing:
        raise PlumeError(f"{source}: interpolation data info lacks {missing}; got keys {sorted(info)}") from None
    return data


__all__ = ["MAX_GAP", "interpolation_condition", "FrameTriples", "load_interpolation_data",
           "interpolation_data_from_info"]
