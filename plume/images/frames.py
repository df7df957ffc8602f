"""Users' videos as folders of frames: the frames of one video are the image files directly in a folder, in natural
name order (frame2.png before frame10.png), all of one size.

`read_frames(folder)` reads one video to uint8 (T, H, W, C); `read_videos(folder)` reads a folder of frames, or a
folder of subfolders each holding one video's frames, for training frame interpolation (plume.images.moving_shapes
.FrameTriples). Every picture goes through plume.images.files.pil_to_array (gray modes give one channel, others
three, transparency composited on white).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import PlumeError
from .files import IMAGE_EXTENSIONS, fit_square, read_image_file, set_channels

MIN_FRAMES = 2


def natural_key(name: str) -> list[Union[int, str]]:
    """Sort key reading digit runs as numbers: frame2 < frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def frame_paths(folder: Union[str, Path]) -> list[Path]:
    """The image files directly in `folder`, in natural name order; at least MIN_FRAMES of them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PlumeError(f"{folder} is not a folder of frames (give a folder holding one image file per frame)")
    paths = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                   key=lambda p: natural_key(p.name))
    if len(paths) < MIN_FRAMES:
        raise PlumeError(f"{folder} holds {len(paths)} frame(s); frame interpolation needs at least {MIN_FRAMES} "
                         f"image files ({', '.join(IMAGE_EXTENSIONS)}) directly in the folder")
    return paths


def read_frames(folder: Union[str, Path], channels: Optional[str] = None,
                image_size: Optional[int] = None) -> tuple[np.ndarray, list[Path]]:
    """One video: (frames uint8 (T, H, W, C), their paths). All frames must share one size (else a PlumeError names
    files of each size); channels "rgb"/"gray" (default: rgb if any frame is colour); image_size: resize and
    centre-crop each frame to a square of that side (plume.images.files.fit_square)."""
    paths = frame_paths(folder)
    arrays = [read_image_file(path, "frame") for path in paths]  # (H, W, C) each
    check_one_size(arrays, paths)
    if image_size is not None:
        arrays = [fit_square(a, int(image_size)) for a in arrays]
    channels = channels or ("rgb" if any(a.shape[-1] == 3 for a in arrays) else "gray")
    return np.stack([set_channels(a, channels) for a in arrays]), paths  # (T, H, W, C)


def check_one_size(arrays: list[np.ndarray], paths: list[Path]) -> None:
    """A PlumeError naming one file of each size when the frames do not all share one height and width."""
    first: dict[tuple[int, int], Path] = {}
    for a, p in zip(arrays, paths):
        first.setdefault(a.shape[:2], p)
    if len(first) > 1:
        sizes = "; ".join(f"{p} is {w}x{h}" for (h, w), p in first.items())
        raise PlumeError(f"frames must all have one size, found {len(first)} sizes: {sizes} (width x height); "
                         f"resize them, or pass image_size (CLI: --image-size) to fit every frame to one square")


def read_videos(folder: Union[str, Path], channels: Optional[str] = None,
                image_size: Optional[int] = None) -> tuple[list[np.ndarray], list[Path]]:
    """Videos for training: `folder` of frames (one video), or of subfolders each holding one video's frames
    (sorted naturally). Returns (videos, each uint8 (T_i, H, W, C), their folders); every video has one size."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PlumeError(f"{folder} is not a folder (give a folder of frames, or of one subfolder of frames per video)")
    subfolders = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
    has_frames = any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())
    folders = [folder] if has_frames or not subfolders else subfolders
    videos = [read_frames(f, channels, image_size)[0] for f in folders]  # each (T_i, H, W, C)
    if channels is None and len({v.shape[-1] for v in videos}) > 1:
        videos = [set_channels(v, "rgb") for v in videos]  # some colour video: all in colour
    shapes = {v.shape[1:]: f for v, f in zip(videos, folders)}
    if len(shapes) > 1:
        sizes = "; ".join(f"{f} has frames {s[1]}x{s[0]}" for s, f in shapes.items())
        raise PlumeError(f"all videos must have frames of one size, found {sizes} (width x height); pass image_size "
                         f"(CLI: --image-size) to fit every frame to one square")
    return videos, folders


__all__ = ["MIN_FRAMES", "natural_key", "frame_paths", "read_frames", "check_one_size", "read_videos"]
