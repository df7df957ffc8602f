"""The captioned shapes set (plume.images.shapes), its prompt checker (plume.images.evaluation.shapes_checker) and the loader of
users' captioned folders (plume.images.captions). Everything is drawn from seeds; files are written in tmp_path."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from plume.images.captions import load_captioned_folder
from plume.images.shapes import (COLORS, GAP, HELDOUT_RULES, KINDS, MARGIN, RELATION_MARGIN, SIZES, VOCABULARY,
    Scene, Shape, caption, coverage, heldout_combinations, heldout_prompts, is_heldout, parse_caption, relation,
    relation_margin, render, scene_at, scene_spec, shapes_dataset)
from plume.errors import PlumeError
from plume.images.evaluation.shapes_checker import check_image, match_rate

NEXT_COLOR = dict(zip(COLORS, list(COLORS)[1:] + list(COLORS)[:1]))
NEXT_KIND = dict(zip(KINDS, KINDS[1:] + KINDS[:1]))
OTHER_SIZE = {"small": "large", "large": "small"}


def _blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """images (N, H, W, C) blurred by a Gaussian of std sigma pixels (edges repeated), float64."""
    m = int(np.ceil(3 * sigma))
    k = np.exp(-np.arange(-m, m + 1) ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    h, w = images.shape[1:3]
    x = np.pad(images.astype(np.float64), ((0, 0), (m, m), (m, m), (0, 0)), mode="edge")  # (N, H + 2m, W + 2m, C)
    x = sum(k[i] * x[:, i:i + h] for i in range(2 * m + 1))  # (N, H, W + 2m, C)
    return sum(k[i] * x[:, :, i:i + w] for i in range(2 * m + 1))  # (N, H, W, C)


def _degrade(images: np.ndarray, sigma: float = 0.5, noise: float = 10.0, seed: int = 0) -> np.ndarray:
    """What a generator's output may look like: blurred, with additive Gaussian noise (std in 0..255 units)."""
    noisy = _blur(images, sigma) + np.random.default_rng(seed).normal(0, noise, images.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)  # (N, H, W, 3)


def _redraw(scenes: list[Scene], change, size: int = 32) -> np.ndarray:
    return np.stack([render(Scene(tuple(change(s) for s in scene.shapes)), size) for scene in scenes])  # (N, S, S, 3)


# ----------------------------------------------------------------------------------------------------------- data set

def test_dataset_is_a_function_of_its_seed():
    images, captions, scenes = shapes_dataset(40, seed=7)
    assert images.shape == (40, 32, 32, 3) and images.dtype == np.uint8 and len(captions) == len(scenes) == 40
    again, captions_again, _ = shapes_dataset(40, seed=7)
    np.testing.assert_array_equal(images, again)
    assert captions == captions_again
    prefix, prefix_captions, _ = shapes_dataset(10, seed=7)  # scene i does not depend on the data set's size
    np.testing.assert_array_equal(prefix, images[:10])
    assert prefix_captions == captions[:10] and scene_at(7, 3) == scenes[3]
    other, _, _ = shapes_dataset(40, seed=8)
    assert not np.array_equal(other, images)
    small, small_captions, _ = shapes_dataset(10, size=16, seed=7)  # one scene, any resolution
    assert small.shape == (10, 16, 16, 3) and small_captions == captions[:10]
    assert {len(s.shapes) for s in scenes} == {1, 2, 3}
    assert all(len(s.shapes) == 1 for s in shapes_dataset(20, max_objects=1, seed=7)[2])


def test_2000_scenes_render():
    images, captions, scenes = shapes_dataset(2000, seed=1)
    assert images.shape == (2000, 32, 32, 3) and len(set(captions)) > 1000
    lit = (images.max(axis=-1) > 0).sum(axis=(1, 2))  # (N,) pixels drawn
    assert lit.min() >= 30  # the smallest shape, a small triangle, covers about 25 pixels plus its soft edge


def test_caption_grammar_round_trip():
    _, captions, scenes = shapes_dataset(300, seed=2)
    for text, scene in zip(captions, scenes):
        assert text == caption(scene) and set(text.split()) <= set(VOCABULARY)
        spec = parse_caption(text)
        assert spec == scene_spec(scene)
        assert [(o.size, o.color, o.kind) for o in spec.objects] == [(s.size, s.color, s.kind) for s in scene.shapes]
        assert spec.relation == (relation(scene.shapes[0], scene.shapes[1]) if len(scene.shapes) > 1 else None)
    one = parse_caption("A Red circle.")  # case and a final full stop do not matter; the size may be left out
    assert one.objects[0].size is None and (one.objects[0].color, one.objects[0].kind) == ("red", "circle")
    both = parse_caption("a red circle and a large blue square")
    assert both.relation is None and both.objects[1].size == "large"
    three = parse_caption("a small red circle left of a yellow square and a small blue triangle")
    assert three.relation == "left of" and [o.kind for o in three.objects] == ["circle", "square", "triangle"]


@pytest.mark.parametrize("prompt, message", [
    ("a purple circle", "unknown word 'purple' in prompt 'a purple circle'; known sizes: small, large; colors: red, "
                        "green, blue, yellow, magenta, cyan; kinds: circle, square, triangle"),
    ("a red hexagon", "unknown word 'hexagon'"),
    ("red circle", "expected 'a' (a) at word 1 'red'"),
    ("a red", "expected a kind (circle, square, triangle) at the end of the prompt"),
    ("a red circle left a blue square", "expected 'of' after 'left'"),
    ("a red circle above a blue square above a green circle", "expected 'and' at word 8 'above'"),
    ("a red circle and a blue square and a green circle and a red square", "at most three objects"),
    ("", "empty prompt"),
])
def test_bad_prompts_name_the_word(prompt, message):
    with pytest.raises(PlumeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_caption(prompt)


def test_shapes_are_apart_and_relations_unambiguous():
    _, _, scenes = shapes_dataset(400, seed=3)
    for scene in scenes:
        shapes = scene.shapes
        assert len({(s.size, s.color, s.kind) for s in shapes}) == len(shapes)  # each caption phrase names one shape
        for s in shapes:
            assert s.radius + MARGIN - 1e-9 <= min(s.x, s.y) and max(s.x, s.y) <= 1 - s.radius - MARGIN + 1e-9
        for i in range(len(shapes)):
            for j in range(i + 1, len(shapes)):
                a, b = shapes[i], shapes[j]
                reach = a.radius + b.radius + GAP
                assert max(abs(a.x - b.x), abs(a.y - b.y)) >= reach - 1e-9  # boxes GAP apart along x or y
                drawn = [np.zeros((32, 32), bool) for _ in range(2)]
                for mask, s in zip(drawn, (a, b)):
                    cover, rows, cols = coverage(s, 32)
                    mask[rows, cols] = cover > 0
                assert not (drawn[0] & drawn[1]).any()
        if len(shapes) >= 2:
            a, b = shapes[:2]
            assert relation_margin(a, b) >= RELATION_MARGIN - 1e-9
            along = {"left of": b.x - a.x, "right of": a.x - b.x, "above": b.y - a.y, "below": a.y - b.y}
            assert along[relation(a, b)] >= a.radius + b.radius + GAP - 1e-9  # apart along the stated axis


@pytest.mark.parametrize("rule", HELDOUT_RULES)
def test_heldout_split(rule):
    held = set(heldout_combinations(rule))
    _, captions, scenes = shapes_dataset(1500, seed=4, split="train", heldout=rule)
    seen = {(s.size, s.color, s.kind) for scene in scenes for s in scene.shapes}
    assert not seen & held and not any(is_heldout(c, rule) for c in captions)
    assert set(" ".join(captions).split()) == set(VOCABULARY)  # every word is trained
    for color in COLORS:  # each color with at least two kinds, each kind with at least four colors
        assert len({k for _, c, k in seen if c == color}) >= 2
    for kind in KINDS:
        assert len({c for _, c, k in seen if k == kind}) >= 4
    if rule == "triples":  # every pair of attributes of a held-out triple is seen
        for size, color, kind in held:
            assert {(s, c) for s, c, _ in seen} >= {(size, color)} and {(c, k) for _, c, k in seen} >= {(color, kind)}
            assert (size, kind) in {(s, k) for s, _, k in seen}
    assert len({c for _, c, _ in held}) == len(COLORS) and {k for _, _, k in held} == set(KINDS)
    _, test_captions, test_scenes = shapes_dataset(200, seed=4, split="heldout", heldout=rule)
    assert all(is_heldout(s, rule) for s in test_scenes) and all(is_heldout(c, rule) for c in test_captions)
    prompts = heldout_prompts(rule)
    assert len(prompts) == len(held)
    assert all(is_heldout(p, rule) and len(parse_caption(p).objects) == 1 for p in prompts)
    assert "a small green triangle" in heldout_prompts("pairs")
    with pytest.raises(PlumeError, match="unknown held-out rule 'colors'; valid rules: pairs, triples"):
        heldout_combinations("colors")


# ----------------------------------------------------------------------------------------------------------- checker

def test_checker_scores_clean_renders_perfectly():
    images, captions, _ = shapes_dataset(300, seed=5)
    rates = match_rate(images, captions)
    assert rates["n"] == 300 and set(rates["by_objects"]) == {1, 2, 3}
    for name in ("match", "count", "colors", "kinds", "sizes", "objects", "relation"):
        assert rates[name] == 1.0, name
    big, big_captions, _ = shapes_dataset(20, size=64, seed=5)  # the rules scale with the image side
    assert match_rate(big, big_captions)["match"] == 1.0
    small, small_captions, _ = shapes_dataset(60, size=16, max_objects=1, seed=5)
    assert match_rate(small, small_captions)["match"] == 1.0


def test_checker_tolerates_a_generators_blur_and_noise():
    images, captions, _ = shapes_dataset(300, seed=6)
    rates = match_rate(_degrade(images, sigma=0.5, noise=10.0), captions)
    assert rates["by_objects"][1]["match"] >= 0.95 and rates["match"] >= 0.95
    single, single_captions, _ = shapes_dataset(100, max_objects=1, seed=6)
    assert match_rate(_degrade(single, sigma=1.0, noise=15.0, seed=1), single_captions)["match"] >= 0.95


def test_checker_rejects_wrong_images():
    images, captions, scenes = shapes_dataset(150, seed=7)
    noise = np.random.default_rng(0).integers(0, 256, images.shape).astype(np.uint8)  # (N, H, W, 3)
    assert match_rate(noise[:60], captions[:60])["match"] == 0.0
    assert match_rate(np.zeros_like(images[:20]), captions[:20])["match"] == 0.0
    for change, criterion in ((lambda s: replace(s, color=NEXT_COLOR[s.color]), "colors"),
                              (lambda s: replace(s, kind=NEXT_KIND[s.kind]), "kinds"),
                              (lambda s: replace(s, size=OTHER_SIZE[s.size]), "sizes")):
        rates = match_rate(_redraw(scenes, change), captions)
        single = rates["by_objects"][1]
        assert single["match"] == single["objects"] == single[criterion] == 0.0
        assert rates["match"] <= 0.02 and rates["objects"] <= 0.05  # e.g. two red circles may trade sizes
        assert rates["count"] >= 0.9  # (grown shapes may touch a neighbour of their color)
    pairs = [(s, c) for s, c in zip(scenes, captions) if len(s.shapes) == 2]
    mirrored = _redraw([s for s, _ in pairs], lambda s: replace(s, x=1 - s.x, y=1 - s.y))
    rates = match_rate(mirrored, [c for _, c in pairs])
    assert rates["relation"] == 0.0 and rates["objects"] == 1.0 and rates["match"] == 0.0
    shuffled = match_rate(images, captions[1:] + captions[:1])
    assert shuffled["match"] <= 0.02


def test_check_result_reports_each_criterion():
    red = Shape("circle", "red", "small", 0.25, 0.5)
    blue = Shape("square", "blue", "large", 0.7, 0.5)
    image = render(Scene((red, blue)))
    result = check_image(image, "a small red circle left of a large blue square")
    assert result.match and result.assignment == (1, 0)  # detected largest first: the blue square, then the circle
    found = [(o.color, o.kind, o.size) for o in result.detected]
    assert found == [("blue", "square", "large"), ("red", "circle", "small")]
    assert (result.detected[1].x, result.detected[1].y) == pytest.approx((0.25, 0.5), abs=0.02)
    wrong = check_image(image, "a red circle right of a blue square")
    assert (wrong.count, wrong.colors, wrong.kinds, wrong.sizes, wrong.objects) == (True,) * 5
    assert not wrong.relation and not wrong.match
    extra = check_image(image, "a small red circle")
    assert not extra.count and extra.objects and not extra.match
    missing = check_image(image, "a small red circle left of a large blue square and a green triangle")
    assert not missing.count and not missing.colors and not missing.kinds and missing.sizes and not missing.match
    with pytest.raises(PlumeError, match="unknown word 'purple'"):
        check_image(image, "a purple circle")
    with pytest.raises(PlumeError, match="2 images but 1 prompts"):
        match_rate(np.stack([image, image]), ["a red circle"])


# ----------------------------------------------------------------------------------------------------------- captions

def _folder(root, sizes=((8, 8), (8, 8), (8, 8))):
    root.mkdir(exist_ok=True)
    names = [f"img{i}.png" for i in range(len(sizes))]
    for i, (name, (w, h)) in enumerate(zip(names, sizes)):
        Image.fromarray(np.full((h, w, 3), 40 * i, dtype=np.uint8)).save(root / name)
    return names


def test_captions_csv_and_jsonl(tmp_path):
    names = _folder(tmp_path / "a")
    rows = 'file,caption,extra\nimg2.png,a blue dog,x\nimg0.png,"a cat, red",y\nimg1.png,a bird,z\n'
    (tmp_path / "a" / "captions.csv").write_text(rows)
    data = load_captioned_folder(tmp_path / "a")
    assert data.images.shape == (3, 8, 8, 3) and data.images.dtype == np.uint8
    assert data.files == names and data.captions == ["a cat, red", "a bird", "a blue dog"]
    assert data.images[2, 0, 0, 0] == 80
    _folder(tmp_path / "b")
    rows = [{"file": f"img{i}.png", "caption": f"caption {i}"} for i in (1, 0, 2)]
    (tmp_path / "b" / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert load_captioned_folder(tmp_path / "b").captions == ["caption 0", "caption 1", "caption 2"]
    (tmp_path / "b" / "other.csv").write_text("file,caption\nimg0.png,x\nimg1.png,y\nimg2.png,z\n")
    assert load_captioned_folder(tmp_path / "b", captions_file="other.csv").captions == ["x", "y", "z"]


@pytest.mark.parametrize("text, message", [
    ("file,caption\nimg0.png,a\nimg9.png,b\nimg1.png,c\nimg2.png,d\n", r"captions.csv line 3: image 'img9.png' does "
                                                                        "not exist"),
    ("file,caption\nimg0.png,a\nimg1.png,c\n", r"1 image\(s\) in .* have no row in .*captions.csv: img2.png"),
    ("name,text\nimg0.png,a\n", r"captions.csv line 1: the header lacks column\(s\) file, caption; found 'name', "
                                "'text'"),
    ("file,caption\nimg0.png,a\nimg1.png,  \nimg2.png,c\n", r"captions.csv line 3: empty caption for 'img1.png'"),
    ("file,caption\nimg0.png,a\nimg1.png,b\nimg2.png,c\nimg0.png,d\n", r"captions.csv line 5: 'img0.png' already has a "
                                                                        "caption on line 2"),
])
def test_captions_csv_errors_name_file_and_line(tmp_path, text, message):
    _folder(tmp_path)
    (tmp_path / "captions.csv").write_text(text)
    with pytest.raises(PlumeError, match=message):
        load_captioned_folder(tmp_path)


def test_captions_other_errors(tmp_path):
    with pytest.raises(PlumeError, match="no captions file in .*: expected captions.csv or captions.jsonl"):
        _folder(tmp_path / "none")
        load_captioned_folder(tmp_path / "none")
    _folder(tmp_path / "j")
    (tmp_path / "j" / "captions.jsonl").write_text('{"file": "img0.png", "caption": "a"}\n{"file": "img1.png"}\n')
    with pytest.raises(PlumeError, match=r"captions.jsonl line 2: expected an object with keys 'file' and 'caption', "
                                         r"found \['file'\]"):
        load_captioned_folder(tmp_path / "j")
    (tmp_path / "j" / "captions.jsonl").write_text('{"file": "img0.png", "caption": "a"}\n\n{oops\n')
    with pytest.raises(PlumeError, match="captions.jsonl line 3: not valid JSON"):
        load_captioned_folder(tmp_path / "j")
    _folder(tmp_path / "m", sizes=((8, 8), (12, 10), (8, 8)))
    (tmp_path / "m" / "captions.csv").write_text("file,caption\nimg0.png,a\nimg1.png,b\nimg2.png,c\n")
    with pytest.raises(PlumeError, match="different sizes: img0.png is 8x8 .*, img1.png is 12x10; pass image_size=S"):
        load_captioned_folder(tmp_path / "m")
    resized = load_captioned_folder(tmp_path / "m", image_size=6)
    assert resized.images.shape == (3, 6, 6, 3) and resized.captions == ["a", "b", "c"]
