"""Captioned "shapes" scenes: one to three coloured shapes on black, drawn from a seed, captioned in a fixed grammar.

A scene is a list of shapes, each (kind, color, size, x, y) with the centre (x, y) in fractions of the image side
(x to the right, y downwards), so one scene renders at any resolution (32 x 32 by default; 16 x 16 works too).
Geometry, in units of the image side S (the default 32 x 32 in brackets):
- radius r: small 3.5 / 32 (a 7-pixel box), large 6 / 32 (12 pixels); every kind fills a 2r x 2r box:
  circle of radius r, axis-aligned square of side 2r, upward triangle with base 2r and height 2r;
- centres keep the whole box at least MARGIN (1 px) inside the image; boxes of two shapes are at least GAP (2 px)
  apart along x or y (no overlap, no touching);
- no two shapes of a scene share size, color and kind (so a caption names each shape unambiguously);
- the first two shapes are placed so that their relation is unambiguous: the larger of |dx|, |dy| exceeds the
  smaller by at least RELATION_MARGIN (3 px), which (with the gap) also separates the two boxes along that axis.
Rendering covers pixels by 4 x 4 supersampling (mild anti-aliasing) over a black background.

Caption grammar (all words in VOCABULARY; `caption` always writes the size, a prompt may leave it out):
    caption  := object | object relation object | object relation object "and" object
                | object "and" object | object "and" object "and" object       (prompts only: no relation)
    object   := "a" [size] color kind
    size     := "small" | "large"
    color    := "red" | "green" | "blue" | "yellow" | "magenta" | "cyan"
    kind     := "circle" | "square" | "triangle"
    relation := "left of" | "right of" | "above" | "below"        (first object relative to the second)
e.g. "a small red circle", "a large blue square above a small green triangle",
"a small red circle left of a large yellow square and a small blue triangle".

Held-out prompts (`HELDOUT_RULES`): the caption space is split by object descriptions, so a model trained on
split="train" never sees a held-out description in any scene, while every word, and every color with at least two
kinds, is seen:
- "pairs": six (color, kind) pairs, one per color, each kind twice: red square, green triangle, blue circle,
  yellow square, magenta triangle, cyan circle (either size);
- "triples": the same pairs with one size each (small for red, blue, magenta; large for green, yellow, cyan), so
  every (color, kind), (size, color) and (size, kind) pair is still seen: an easier compositional test.
split="heldout" scenes hold at least one held-out object; `heldout_prompts` lists the single-object ones.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..errors import PlumeError

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
    "yellow": (255, 255, 0), "magenta": (255, 0, 255), "cyan": (0, 255, 255),
}
KINDS = ("circle", "square", "triangle")
SIZES = ("small", "large")
RELATIONS = ("left of", "right of", "above", "below")
RADIUS = {"small": 3.5 / 32, "large": 6 / 32}  # half the side of a shape's box, in image sides
MARGIN, GAP, RELATION_MARGIN = 1 / 32, 2 / 32, 3 / 32  # border to box, box to box, |dx| vs |dy| for the relation
VOCABULARY: tuple[str, ...] = ("a", *SIZES, *COLORS, *KINDS, "left", "right", "of", "above", "below", "and")
HELDOUT_RULES = ("pairs", "triples")
SPLITS = ("all", "train", "heldout")
SUPERSAMPLE = 4  # sub-pixels per pixel side for coverage
_CANDIDATES, _ATTEMPTS = 32, 20  # positions tried at once per shape; placements before new objects are drawn


@dataclass(frozen=True)
class Shape:
    """One shape: kind, color, size ("small"/"large"), centre (x, y) in fractions of the image side."""
    kind: str
    color: str
    size: str
    x: float
    y: float

    @property
    def radius(self) -> float:
        return RADIUS[self.size]

    def phrase(self) -> str:
        return f"a {self.size} {self.color} {self.kind}"


@dataclass(frozen=True)
class Scene:
    """A scene: its shapes in caption order (the relation is between shapes[0] and shapes[1])."""
    shapes: tuple[Shape, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ObjectSpec:
    """One object a prompt asks for; size None means either size."""
    color: str
    kind: str
    size: Optional[str] = None


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt asks for: the objects in order and the relation of the first to the second (None: any)."""
    objects: tuple[ObjectSpec, ...]
    relation: Optional[str] = None


# ---------------------------------------------------------------------------------------------------------- relations

def relation(a: Shape | tuple[float, float], b: Shape | tuple[float, float]) -> str:
    """Where a lies relative to b along the dominant axis: "left of", "right of", "above" or "below"."""
    (ax, ay), (bx, by) = _xy(a), _xy(b)
    dx, dy = bx - ax, by - ay  # image y points down: "above" means a smaller y
    if abs(dx) >= abs(dy):
        return "left of" if dx > 0 else "right of"
    return "above" if dy > 0 else "below"


def relation_margin(a: Shape | tuple[float, float], b: Shape | tuple[float, float]) -> float:
    """||dx| - |dy||: how clearly one axis dominates (RELATION_MARGIN or more in generated scenes)."""
    (ax, ay), (bx, by) = _xy(a), _xy(b)
    return abs(abs(bx - ax) - abs(by - ay))


def _xy(p: Shape | tuple[float, float]) -> tuple[float, float]:
    return (p.x, p.y) if isinstance(p, Shape) else (float(p[0]), float(p[1]))


# ---------------------------------------------------------------------------------------------------------- held out

def _heldout_triples(rule: str) -> frozenset[tuple[str, str, str]]:
    """The held-out (size, color, kind) triples of a rule (see the module docstring)."""
    if rule not in HELDOUT_RULES:
        raise PlumeError(f"unknown held-out rule {rule!r}; valid rules: {', '.join(HELDOUT_RULES)}")
    out = set()
    for i, color in enumerate(COLORS):
        kind = KINDS[(i + 1) % len(KINDS)]
        sizes = SIZES if rule == "pairs" else (SIZES[i % 2],)
        out.update((size, color, kind) for size in sizes)
    return frozenset(out)


def heldout_combinations(rule: str = "pairs") -> list[tuple[str, str, str]]:
    """The (size, color, kind) object descriptions held out from split="train" under `rule`, sorted."""
    return sorted(_heldout_triples(rule))


def is_heldout(item: Scene | PromptSpec | str, rule: str = "pairs") -> bool:
    """Whether a scene, prompt spec or caption names a held-out object (an object without a size: if either is)."""
    held = _heldout_triples(rule)
    if isinstance(item, str):
        item = parse_caption(item)
    if isinstance(item, Scene):
        return any((s.size, s.color, s.kind) in held for s in item.shapes)
    return any((size, o.color, o.kind) in held for o in item.objects for size in ((o.size,) if o.size else SIZES))


def heldout_prompts(rule: str = "pairs") -> list[str]:
    """Every single-object held-out prompt, e.g. "a small green triangle", in a fixed order."""
    return [f"a {size} {color} {kind}" for size, color, kind in heldout_combinations(rule)]


def _allowed_triples(split: str, rule: str) -> list[tuple[str, str, str]]:
    every = list(itertools.product(SIZES, COLORS, KINDS))
    if split == "train":
        held = _heldout_triples(rule)
        return [t for t in every if t not in held]
    return every


# ---------------------------------------------------------------------------------------------------------- scenes

def random_scene(rng: np.random.Generator, max_objects: int = 3, min_objects: int = 1, split: str = "all",
                 heldout: str = "pairs") -> Scene:
    """A random scene of min_objects..max_objects shapes (uniform count), placed as the module docstring says."""
    if split not in SPLITS:
        raise PlumeError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if not 1 <= min_objects <= max_objects <= 3:
        raise PlumeError(f"object counts must satisfy 1 <= min_objects <= max_objects <= 3, got {min_objects}, "
                         f"{max_objects}")
    count = int(rng.integers(min_objects, max_objects + 1))
    allowed = _allowed_triples(split, heldout)
    while True:
        triples = [allowed[int(i)] for i in rng.integers(0, len(allowed), size=count)]
        if split == "heldout":
            held = heldout_combinations(heldout)
            triples[int(rng.integers(0, count))] = held[int(rng.integers(0, len(held)))]
        if len(set(triples)) < count:  # two alike shapes would make the caption ambiguous
            continue
        centres = _place([RADIUS[t[0]] for t in triples], rng)
        if centres is not None:
            return Scene(tuple(Shape(kind, color, size, x, y) for (size, color, kind), (x, y) in zip(triples, centres)))


def _place(radii: Sequence[float], rng: np.random.Generator) -> Optional[list[tuple[float, float]]]:
    """Centres for shapes of these radii, placed one after another (each the first valid of _CANDIDATES random
    positions), or None if some shape found no room in _ATTEMPTS attempts."""
    for _ in range(_ATTEMPTS):
        centres: list[np.ndarray] = []
        for k, r in enumerate(radii):
            lo = r + MARGIN
            cand = lo + rng.random((_CANDIDATES, 2)) * (1 - 2 * lo)  # (C, 2) centres keeping the box inside
            ok = np.ones(_CANDIDATES, dtype=bool)  # (C,)
            for j, placed in enumerate(centres):
                ok &= np.abs(cand - placed).max(axis=1) >= r + radii[j] + GAP  # boxes GAP apart along x or y
            if k == 1:
                d = np.abs(cand - centres[0])  # (C, 2)
                ok &= np.abs(d[:, 0] - d[:, 1]) >= RELATION_MARGIN  # one axis clearly dominates
            found = np.flatnonzero(ok)
            if len(found) == 0:
                break
            centres.append(cand[found[0]])
        if len(centres) == len(radii):
            return [(float(c[0]), float(c[1])) for c in centres]
    return None


def scene_at(seed: int, index: int, max_objects: int = 3, min_objects: int = 1, split: str = "all",
             heldout: str = "pairs") -> Scene:
    """Scene number `index` of the data set drawn with `seed` (the same whatever the data set's size)."""
    code = SPLITS.index(split) if split in SPLITS else 0
    rng = np.random.default_rng([seed, index, code, max_objects, min_objects])
    return random_scene(rng, max_objects, min_objects, split, heldout)


def shapes_dataset(n: int, size: int = 32, max_objects: int = 3, seed: int = 0, min_objects: int = 1,
                   split: str = "all", heldout: str = "pairs",
                   antialias: bool = True) -> tuple[np.ndarray, list[str], list[Scene]]:
    """n scenes of `split` ("all", "train": no held-out object, "heldout": at least one), rendered size x size:
    (images uint8 (n, size, size, 3), captions, scenes); scene i depends only on (seed, i, split and counts)."""
    scenes = [scene_at(seed, i, max_objects, min_objects, split, heldout) for i in range(n)]
    images = np.zeros((n, size, size, 3), dtype=np.uint8)  # (N, H, W, 3)
    for i, scene in enumerate(scenes):
        images[i] = render(scene, size, antialias)
    return images, [caption(s) for s in scenes], scenes


# ---------------------------------------------------------------------------------------------------------- drawing

def _inside(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership of points (u, v) (offsets from the centre in radii, v downwards) in a unit shape of `kind`."""
    if kind == "circle":
        return u * u + v * v <= 1.0
    if kind == "square":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if kind == "triangle":  # apex (0, -1), base from (-1, 1) to (1, 1)
        return (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)
    raise PlumeError(f"unknown shape kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def coverage(shape: Shape, size: int, antialias: bool = True) -> tuple[np.ndarray, slice, slice]:
    """The fraction of each pixel the shape covers, over its bounding pixels: (coverage (h, w), rows, columns)."""
    r = shape.radius * size
    cx, cy = shape.x * size, shape.y * size  # pixel units; pixel (i, j) spans [j, j + 1) x [i, i + 1)
    rows = slice(max(int(np.floor(cy - r)), 0), min(int(np.ceil(cy + r)), size))
    cols = slice(max(int(np.floor(cx - r)), 0), min(int(np.ceil(cx + r)), size))
    return pixel_coverage(shape.kind, cx, cy, r, rows, cols, SUPERSAMPLE if antialias else 1), rows, cols


def pixel_coverage(kind: str, cx: float, cy: float, r: float, rows: slice, cols: slice,
                   supersample: int = SUPERSAMPLE) -> np.ndarray:
    """Coverage (h, w) of the pixels rows x cols by a shape of `kind` centred at (cx, cy) with radius r, in pixels."""
    k = supersample
    ys = (np.arange(rows.start * k, rows.stop * k) + 0.5) / k  # (h k,) sub-pixel centres
    xs = (np.arange(cols.start * k, cols.stop * k) + 0.5) / k  # (w k,)
    hit = _inside(kind, (xs[None, :] - cx) / r, (ys[:, None] - cy) / r)  # (h k, w k)
    return hit.reshape(rows.stop - rows.start, k, cols.stop - cols.start, k).mean(axis=(1, 3))  # (h, w)


def render(scene: Scene, size: int = 32, antialias: bool = True) -> np.ndarray:
    """The scene drawn on black: uint8 (size, size, 3); pixels are color x coverage (4 x 4 supersampling)."""
    image = np.zeros((size, size, 3), dtype=np.float32)  # (H, W, 3)
    for shape in scene.shapes:
        cover, rows, cols = coverage(shape, size, antialias)  # (h, w)
        image[rows, cols] += cover[..., None] * np.asarray(COLORS[shape.color], dtype=np.float32)  # (h, w, 3)
    return np.rint(np.clip(image, 0, 255)).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------- captions

def caption(scene: Scene) -> str:
    """The scene's caption: "a {size} {color} {kind}" per shape; the first two joined by their relation, a third by
    "and"."""
    shapes = scene.shapes
    if not 1 <= len(shapes) <= 3:
        raise PlumeError(f"a scene has one to three shapes, this one has {len(shapes)}")
    text = shapes[0].phrase()
    if len(shapes) >= 2:
        text += f" {relation(shapes[0], shapes[1])} {shapes[1].phrase()}"
    if len(shapes) == 3:
        text += f" and {shapes[2].phrase()}"
    return text


def scene_spec(scene: Scene) -> PromptSpec:
    """The PromptSpec that the scene's caption parses to."""
    objects = tuple(ObjectSpec(s.color, s.kind, s.size) for s in scene.shapes)
    return PromptSpec(objects, relation(scene.shapes[0], scene.shapes[1]) if len(objects) >= 2 else None)


def _vocabulary_text() -> str:
    return (f"known sizes: {', '.join(SIZES)}; colors: {', '.join(COLORS)}; kinds: {', '.join(KINDS)}; "
            f"relations: {', '.join(RELATIONS)}; other words: a, and")


GRAMMAR = ('"a [size] color kind", optionally followed by "<relation> a [size] color kind" or "and a [size] color '
           'kind", then optionally "and a [size] color kind" (at most three objects)')


def tokenize(text: str) -> list[str]:
    """Lower-case words of a prompt (whitespace-separated; a final full stop is ignored)."""
    return text.strip().rstrip(".").lower().split()


def parse_caption(text: str) -> PromptSpec:
    """The objects and relation a prompt asks for; a PlumeError names an unknown word or where the grammar breaks."""
    words = tokenize(text)
    for word in words:
        if word not in VOCABULARY:
            raise PlumeError(f"unknown word {word!r} in prompt {text!r}; {_vocabulary_text()}")
    if not words:
        raise PlumeError(f"empty prompt {text!r}; a prompt reads {GRAMMAR}")
    objects, rel, pos = [], None, 0
    while True:
        obj, pos = _parse_object(words, pos, text)
        objects.append(obj)
        if pos == len(words):
            break
        if len(objects) == 3:
            raise PlumeError(f"cannot parse prompt {text!r}: at most three objects, extra words from word {pos + 1} "
                             f"{words[pos]!r}")
        if words[pos] == "and":
            pos += 1
            continue
        if len(objects) == 1:
            rel, pos = _parse_relation(words, pos, text)
            continue
        raise PlumeError(f"cannot parse prompt {text!r}: expected 'and' at word {pos + 1} {words[pos]!r} (only the "
                         f"first two objects have a relation); a prompt reads {GRAMMAR}")
    return PromptSpec(tuple(objects), rel)


def _expect(words: list[str], pos: int, valid: Sequence[str], what: str, text: str) -> str:
    if pos >= len(words) or words[pos] not in valid:
        found = f"word {pos + 1} {words[pos]!r}" if pos < len(words) else "the end of the prompt"
        raise PlumeError(f"cannot parse prompt {text!r}: expected {what} ({', '.join(valid)}) at {found}; "
                         f"a prompt reads {GRAMMAR}")
    return words[pos]


def _parse_object(words: list[str], pos: int, text: str) -> tuple[ObjectSpec, int]:
    _expect(words, pos, ("a",), "'a'", text)
    pos += 1
    size = None
    if pos < len(words) and words[pos] in SIZES:
        size, pos = words[pos], pos + 1
    color = _expect(words, pos, tuple(COLORS), "a color", text)
    kind = _expect(words, pos + 1, KINDS, "a kind", text)
    return ObjectSpec(color, kind, size), pos + 2


def _parse_relation(words: list[str], pos: int, text: str) -> tuple[str, int]:
    first = _expect(words, pos, ("left", "right", "above", "below", "and"), "a relation or 'and'", text)
    if first in ("left", "right"):
        _expect(words, pos + 1, ("of",), f"'of' after {first!r}", text)
        return f"{first} of", pos + 2
    return first, pos + 1
