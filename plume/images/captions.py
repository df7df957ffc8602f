"""Users' own captioned images: a folder of images and a captions file naming each image's caption.

The captions file is CSV with a header holding the columns `file` and `caption` (other columns are ignored), or JSON
Lines with one object {"file": ..., "caption": ...} a line (blank lines are skipped); by default `captions.csv` or
`captions.jsonl` in the folder. `file` is a path relative to the folder. Every image file under the folder (searched
recursively, extensions as plume.images.files.IMAGE_EXTENSIONS) needs exactly one row, and every row an existing
image and a non-empty caption; messages name the captions file and the row's 1-based line number.
Images are read like every Plume image (plume.images.files.pil_to_array: transparency on white) as RGB; with
image_size=S each is cut to its central square and resized to S x S with Lanczos (fit_square), otherwise all must
share one size.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image

from ..errors import PlumeError
from .files import IMAGE_EXTENSIONS, fit_square, pil_to_array, set_channels

CAPTION_FILES = ("captions.csv", "captions.jsonl")
_SHOWN = 5  # missing files listed in a message


@dataclass
class CaptionedImages:
    """Images uint8 (N, H, W, 3) with their captions and file names (relative to the folder), sorted by file."""
    images: np.ndarray
    captions: list[str]
    files: list[str]


def _captions_path(folder: Path, captions_file: Optional[Union[str, Path]]) -> Path:
    if captions_file is not None:
        path = Path(captions_file)
        path = path if path.is_absolute() or path.exists() else folder / path
        if not path.is_file():
            raise PlumeError(f"captions file {path} does not exist")
        return path
    found = [folder / name for name in CAPTION_FILES if (folder / name).is_file()]
    if not found:
        raise PlumeError(f"no captions file in {folder}: expected {' or '.join(CAPTION_FILES)} (columns file, "
                         f"caption), or pass captions_file=")
    if len(found) > 1:
        raise PlumeError(f"{folder} holds both {CAPTION_FILES[0]} and {CAPTION_FILES[1]}; pass captions_file= to "
                         "choose one")
    return found[0]


def _read_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line number, file, caption) for each row of a CSV or JSONL captions file."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    raise PlumeError(f"captions file {path}: unknown format {path.suffix!r}; use .csv (columns file, caption) or "
                     ".jsonl ({\"file\": ..., \"caption\": ...} a line)")


def _read_csv(path: Path) -> list[tuple[int, str, str]]:
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        names = [h.strip().lower() for h in header or []]
        missing = [c for c in ("file", "caption") if c not in names]
        if missing:
            raise PlumeError(f"{path} line 1: the header lacks column(s) {', '.join(missing)}; found "
                             f"{', '.join(repr(h) for h in header or []) or 'no header'}; expected a header "
                             "'file,caption'")
        i_file, i_caption = names.index("file"), names.index("caption")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(i_file, i_caption):
                raise PlumeError(f"{path} line {reader.line_num}: {len(row)} column(s), expected at least "
                                 f"{max(i_file, i_caption) + 1} (file, caption)")
            rows.append((reader.line_num, row[i_file].strip(), row[i_caption].strip()))
    return rows


def _read_jsonl(path: Path) -> list[tuple[int, str, str]]:
    rows = []
    with open(path, encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise PlumeError(f"{path} line {line_number}: not valid JSON ({error.msg})") from error
            if not isinstance(record, dict) or "file" not in record or "caption" not in record:
                keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise PlumeError(f"{path} line {line_number}: expected an object with keys 'file' and 'caption', "
                                 f"found {keys}")
            if not isinstance(record["caption"], str) or not isinstance(record["file"], str):
                raise PlumeError(f"{path} line {line_number}: 'file' and 'caption' must be strings")
            rows.append((line_number, record["file"].strip(), record["caption"].strip()))
    return rows


def _check_rows(rows: list[tuple[int, str, str]], folder: Path, path: Path) -> dict[str, tuple[int, str]]:
    """{file (posix, relative to folder): (line, caption)}; PlumeErrors: missing files, empty captions, duplicates."""
    seen: dict[str, tuple[int, str]] = {}
    for line, name, text in rows:
        if not name:
            raise PlumeError(f"{path} line {line}: empty file name")
        key = Path(name).as_posix()
        if not (folder / key).is_file():
            raise PlumeError(f"{path} line {line}: image {name!r} does not exist in {folder}")
        if not text:
            raise PlumeError(f"{path} line {line}: empty caption for {name!r}")
        if key in seen:
            raise PlumeError(f"{path} line {line}: {name!r} already has a caption on line {seen[key][0]}; give each "
                             "image one row")
        seen[key] = (line, text)
    return seen


def _read_image(folder: Path, name: str, image_size: Optional[int], path: Path, line: int) -> np.ndarray:
    try:
        with Image.open(folder / name) as image:
            image.seek(0)
            pixels = set_channels(pil_to_array(image), "rgb")  # (H, W, 3)
    except Exception as error:  # noqa: BLE001 - any decoder failure is the file's fault
        reason = f"{type(error).__name__}: {error}"
        raise PlumeError(f"cannot read image {folder / name} ({path} line {line}): {reason}") from error
    return pixels if image_size is None else fit_square(pixels, image_size)


def load_captioned_folder(folder: Union[str, Path], captions_file: Optional[Union[str, Path]] = None,
                          image_size: Optional[int] = None) -> CaptionedImages:
    """The images of `folder` and their captions, sorted by file; image_size=S resizes each to S x S (central
    square, Lanczos), otherwise the images must share one size."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PlumeError(f"{folder} is not a folder; give a folder of images with a {' or '.join(CAPTION_FILES)}")
    path = _captions_path(folder, captions_file)
    captions = _check_rows(_read_rows(path), folder, path)
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                     if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    uncaptioned = [name for name in on_disk if name not in captions]
    if uncaptioned:
        more = len(uncaptioned) - _SHOWN
        shown = ", ".join(uncaptioned[:_SHOWN]) + (f" and {more} more" if more > 0 else "")
        raise PlumeError(f"{len(uncaptioned)} image(s) in {folder} have no row in {path}: {shown}; add a row "
                         "(file, caption) for each, or move them out of the folder")
    if not captions:
        raise PlumeError(f"{path} has no rows; add one row (file, caption) per image")
    files = sorted(captions)
    arrays = [_read_image(folder, name, image_size, path, captions[name][0]) for name in files]
    first = arrays[0].shape[:2]
    for name, array in zip(files, arrays):
        if array.shape[:2] != first:
            raise PlumeError(f"images in {folder} have different sizes: {files[0]} is {first[1]}x{first[0]} "
                             f"(width x height), {name} is {array.shape[1]}x{array.shape[0]}; pass image_size=S "
                             "to resize every image to S x S (central square, Lanczos)")
    images = np.stack(arrays)  # (N, H, W, 3)
    return CaptionedImages(images, [captions[name][1] for name in files], files)
