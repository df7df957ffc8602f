"""A deterministic checker of whether an image of the "shapes" set (plume.images.shapes) shows what its prompt asks for.

Rules, in units of u = image side / 32 (pixels at the default 32 x 32):
1. pixels: a pixel is foreground if its brightest channel is at least FOREGROUND (128, half the palette's full
   intensity: a blurred edge is cut where the drawn edge was); a foreground pixel takes the palette color whose
   direction in RGB is closest (largest cosine: a darker or blurred pixel keeps its hue), or "other" if it is
   unsaturated ((max - min) / max < SATURATION, e.g. white or gray);
2. objects: 8-connected components of pixels of one color; components smaller than MIN_AREA (6 u^2) pixels are
   noise and ignored;
3. kind, by fitting templates: the object's soft mask is its color's intensity (rgb . c / c . c, 1 for the full
   color) over its box widened by WINDOW (3 u), other objects' pixels zeroed; for each kind the ideal shape of the
   same mass (radius r = sqrt(mass / area per r^2)) is centred on the mask's centroid (a triangle's centre r / 3
   above it), drawn with 4 x 4 supersampling, and blurred by each of BLURS (0, 0.6, 1.2 u); the kind with the least
   squared misfit per unit mass wins. No kind (None) if the box's aspect max(w, h) / min(w, h) exceeds MAX_ASPECT
   (1.6) or the least misfit exceeds MAX_FIT_ERROR (0.15; renders misfit by <= 0.08 even blurred by 1 px with noise
   of std 15/255, a ring, cross, L, 1.5:1 ellipse or downward triangle by 0.2 or more);
4. size, from the fitted diameter 2r: below SMALL_SIDE (9.5 u) "small" (drawn 7 u), else "large" (drawn 12 u);
5. score: the prompt's objects are matched to distinct detected objects (all injective assignments are tried; the
   best one satisfies the most criteria). Criteria: count (as many objects as the prompt names), colors, kinds,
   sizes (the prompt's colors / kinds / given sizes are present as multisets), objects (every described object is
   present with its color, kind and size together), relation (the first matched object lies on the stated side of
   the second: its centroid offset along the stated axis is at least MIN_SEPARATION (2 u) and at least the offset
   across it). match = count and objects and relation.
"""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..shapes import COLORS, KINDS, PromptSpec, parse_caption, pixel_coverage
from ...errors import PlumeError

FOREGROUND, SATURATION = 128, 0.5
MIN_AREA, MIN_SEPARATION, SMALL_SIDE = 6.0, 2.0, 9.5  # in u^2, u, u (u = image side / 32)
MAX_ASPECT, MAX_FIT_ERROR, WINDOW = 1.6, 0.15, 3.0  # box aspect, template misfit per unit mass, soft margin (u)
BLURS = (0.0, 0.6, 1.2)  # blurs (u) of the templates fitted to an object
MAX_OBJECTS = 8  # the largest components kept for matching
CRITERIA = ("count", "colors", "kinds", "sizes", "objects", "relation")
_NAMES = (*COLORS, "other")
_AREA = {"circle": np.pi, "square": 4.0, "triangle": 2.0}  # area / radius^2 of each kind
_DIRECTIONS = np.array(list(COLORS.values()), dtype=np.float64)  # (P, 3)
_DIRECTIONS /= np.linalg.norm(_DIRECTIONS, axis=1, keepdims=True)


@dataclass(frozen=True)
class DetectedObject:
    """One object found in an image: color/kind None when unrecognised; centroid (x, y) in fractions of the side."""
    color: Optional[str]
    kind: Optional[str]
    size: str
    x: float
    y: float
    area: int
    box: tuple[int, int, int, int]  # (top, left, bottom, right), bottom/right exclusive


@dataclass(frozen=True)
class CheckResult:
    """The checker's verdict on one image and prompt: match, each criterion, what was found and how it was matched."""
    match: bool
    count: bool
    colors: bool
    kinds: bool
    sizes: bool
    objects: bool
    relation: bool
    detected: tuple[DetectedObject, ...]
    prompt: PromptSpec
    assignment: tuple[Optional[int], ...]  # detected index for each prompt object (None: nothing left to match)


def color_labels(image: np.ndarray) -> np.ndarray:
    """Per-pixel palette index (len(COLORS) for "other"), or -1 for background: int (H, W)."""
    rgb = image.astype(np.float64)  # (H, W, 3)
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)  # (H, W)
    cosine = rgb @ _DIRECTIONS.T  # (H, W, P) up to the pixel's norm, which does not change the argmax
    labels = np.argmax(cosine, axis=-1)  # (H, W)
    saturated = high - low >= SATURATION * np.maximum(high, 1)
    labels = np.where(saturated, labels, len(COLORS))
    return np.where(high >= FOREGROUND, labels, -1)


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a boolean mask (H, W), each as (n, 2) row/column indices, in scan order."""
    seen = np.zeros_like(mask)
    h, w = mask.shape
    out = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        stack, pixels = [start], []
        while stack:
            i, j = stack.pop()
            pixels.append((i, j))
            for di, dj in ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)):
                a, b = i + di, j + dj
                if 0 <= a < h and 0 <= b < w and mask[a, b] and not seen[a, b]:
                    seen[a, b] = True
                    stack.append((a, b))
        out.append(np.array(pixels))
    return out


def _intensity(image: np.ndarray, label: int) -> np.ndarray:
    """How much of palette color `label` each pixel holds: rgb . c / (c . c), 1 for the color, 0 for black: (H, W)."""
    c = np.asarray(list(COLORS.values())[label], dtype=np.float64)  # (3,)
    return image.astype(np.float64) @ c / (c @ c)  # (H, W)


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """a (h, w) convolved with a Gaussian of std sigma pixels (zeros outside); a itself for sigma 0."""
    if sigma <= 0:
        return a
    m = int(np.ceil(3 * sigma))
    k = np.exp(-np.arange(-m, m + 1) ** 2 / (2 * sigma ** 2))  # (2m + 1,)
    k /= k.sum()
    h, w = a.shape
    p = np.pad(a, m)  # (h + 2m, w + 2m)
    p = sum(k[i] * p[i:i + h] for i in range(2 * m + 1))  # (h, w + 2m) along rows
    return sum(k[i] * p[:, i:i + w] for i in range(2 * m + 1))  # (h, w) along columns


def _fit_kind(soft: np.ndarray, rows: slice, cols: slice, unit: float) -> tuple[Optional[str], float, float, float]:
    """The kind whose ideal shape (radius from the mass, centre from the centroid) best fits the soft mask (h, w):
    (kind or None, radius, centroid x, centroid y) in pixels."""
    mass = float(soft.sum())
    if mass <= 1e-6:
        return None, 0.0, (cols.start + cols.stop) / 2, (rows.start + rows.stop) / 2
    ys, xs = np.mgrid[rows, cols] + 0.5  # (h, w) pixel centres
    cx, cy = (soft * xs).sum() / mass, (soft * ys).sum() / mass
    best: tuple[float, Optional[str], float] = (np.inf, None, 0.0)
    for kind in KINDS:
        r = float(np.sqrt(mass / _AREA[kind]))
        centre_y = cy - r / 3 if kind == "triangle" else cy  # a triangle's centroid lies r / 3 below its centre
        template = pixel_coverage(kind, cx, centre_y, r, rows, cols)  # (h, w)
        for sigma in BLURS:
            blurred = _blur(template, sigma * unit)  # (h, w)
            error = float(((soft - blurred) ** 2).sum()) / mass
            best = min(best, (error, kind, r), key=lambda e: e[0])
    error, kind, r = best
    return (kind if error <= MAX_FIT_ERROR else None), r, float(cx), float(cy)


def _classify(image: np.ndarray, labels: np.ndarray, pixels: np.ndarray, label: int) -> DetectedObject:
    """One component (n, 2) of color `label` (labels (H, W)) in a uint8 (S, S, 3) image as a DetectedObject."""
    side = image.shape[0]
    u = side / 32
    top, left = pixels.min(axis=0)
    bottom, right = pixels.max(axis=0) + 1
    box = (int(top), int(left), int(bottom), int(right))
    color = _NAMES[label] if label < len(COLORS) else None
    h, w = bottom - top, right - left
    if color is None or max(h, w) / min(h, w) > MAX_ASPECT:
        cy, cx = (pixels.mean(axis=0) + 0.5) / side
        size = "small" if np.sqrt(h * w) < SMALL_SIDE * u else "large"
        return DetectedObject(color, None, size, float(cx), float(cy), len(pixels), box)
    pad = int(np.ceil(WINDOW * u))
    rows = slice(max(top - pad, 0), min(bottom + pad, side))
    cols = slice(max(left - pad, 0), min(right + pad, side))
    mine = np.zeros(labels.shape, dtype=bool)  # (H, W)
    mine[pixels[:, 0], pixels[:, 1]] = True
    others = (labels >= 0) & ~mine  # pixels of other objects do not count
    soft = np.where(others, 0.0, np.clip(_intensity(image, label), None, 1.0))[rows, cols]  # (h', w')
    kind, r, cx, cy = _fit_kind(soft, rows, cols, u)
    size = "small" if 2 * r < SMALL_SIDE * u else "large"
    return DetectedObject(color, kind, size, cx / side, cy / side, len(pixels), box)


def detect_objects(image: np.ndarray) -> list[DetectedObject]:
    """The objects in a uint8 (H, W, 3) image of the shapes set, largest first (at most MAX_OBJECTS)."""
    if image.ndim != 3 or image.shape[-1] != 3 or image.shape[0] != image.shape[1]:
        raise PlumeError(f"the shapes checker reads square RGB images (S, S, 3), got shape {image.shape}")
    side = image.shape[0]
    labels = color_labels(image)  # (H, W)
    found = []
    for label in range(len(_NAMES)):
        for pixels in _components(labels == label):
            if len(pixels) >= MIN_AREA * (side / 32) ** 2:
                found.append(_classify(image, labels, pixels, label))
    found.sort(key=lambda o: -o.area)  # stable: ties keep color then scan order
    return found[:MAX_OBJECTS]


def relation_holds(a: DetectedObject, b: DetectedObject, relation: str, side: int = 32) -> bool:
    """Whether a lies `relation` ("left of", "right of", "above", "below") b, by their centroids."""
    dx, dy = (b.x - a.x) * side, (b.y - a.y) * side  # pixels; y points down
    along, across = {"left of": (dx, dy), "right of": (-dx, dy), "above": (dy, dx), "below": (-dy, dx)}[relation]
    return along >= MIN_SEPARATION * side / 32 and along >= abs(across)


def _contains(found: Sequence[Optional[str]], wanted: Sequence[Optional[str]]) -> bool:
    need = Counter(w for w in wanted if w is not None)
    have = Counter(found)
    return all(have[k] >= n for k, n in need.items())


def check_image(image: np.ndarray, prompt: str | PromptSpec) -> CheckResult:
    """Whether a uint8 (S, S, 3) image shows `prompt` (a caption string or parsed PromptSpec), by the module's rules."""
    spec = parse_caption(prompt) if isinstance(prompt, str) else prompt
    found = detect_objects(image)
    side = image.shape[0]
    wanted = spec.objects
    best_key, best = None, (None,) * len(wanted)
    best_full = best_rel = False
    for chosen in itertools.permutations(range(len(found)), min(len(found), len(wanted))):
        assignment = tuple(chosen) + (None,) * (len(wanted) - len(chosen))
        hits = [i is not None and found[i].color == o.color and found[i].kind == o.kind and
                (o.size is None or found[i].size == o.size) for o, i in zip(wanted, assignment)]
        attrs = sum(i is not None and ((found[i].color == o.color) + (found[i].kind == o.kind) +
                                       (o.size is None or found[i].size == o.size))
                    for o, i in zip(wanted, assignment))
        rel = spec.relation is None or (assignment[1] is not None and
                                        relation_holds(found[assignment[0]], found[assignment[1]], spec.relation, side))
        key = (all(hits) and rel, all(hits), attrs, rel)
        if best_key is None or key > best_key:
            best_key, best, best_full, best_rel = key, assignment, all(hits), rel
    if not wanted or best_key is None:
        best_rel = spec.relation is None
    count = len(found) == len(wanted)
    colors = _contains([o.color for o in found], [o.color for o in wanted])
    kinds = _contains([o.kind for o in found], [o.kind for o in wanted])
    sizes = _contains([o.size for o in found], [o.size for o in wanted])
    return CheckResult(count and best_full and best_rel, count, colors, kinds, sizes, best_full, best_rel,
                       tuple(found), spec, best)


def match_rate(images: np.ndarray | Sequence[np.ndarray], prompts: Sequence[str]) -> dict:
    """The share of images matching their prompts and of each criterion, overall and by the prompt's object count:
    {"match": r, "count": r, ..., "n": N, "by_objects": {k: {"match": r, ..., "n": n_k}}}."""
    if len(images) != len(prompts):
        raise PlumeError(f"match_rate got {len(images)} images but {len(prompts)} prompts; give one prompt per image")
    results = [check_image(np.asarray(image), prompt) for image, prompt in zip(images, prompts)]

    def rates(rs: list[CheckResult]) -> dict:
        out = {name: float(np.mean([getattr(r, name) for r in rs])) if rs else float("nan")
               for name in ("match", *CRITERIA)}
        out["n"] = len(rs)
        return out

    summary = rates(results)
    groups = sorted({len(r.prompt.objects) for r in results})
    summary["by_objects"] = {k: rates([r for r in results if len(r.prompt.objects) == k]) for k in groups}
    return summary
