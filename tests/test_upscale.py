"""Upscaling a user's image (plume.images.tasks.upscale, `plume upscale`): the exact-size path is super_resolve, tiles
reproduce the untiled stage where one tile covers a pixel, draws average, and bad input says what is wrong."""
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from plume import PlumeError
from plume.images.cascade import POSTERIOR_LEVEL, stage_seed, super_resolve, super_resolve_mean
from plume.cli import main
from plume.cli.upscale import upscale as upscale_command
from plume.images.tasks.tiles import tile_starts, tile_window
from plume.images.tasks.upscale import piece_seed, upscale, upscale_pixels
from plume.train import load_denoiser

INNER = {"channels": [16, 32], "blocks_per_level": 1, "attention_levels": [], "norm_groups": 8, "head_channels": 16,
         "embed_features": 16}
STEPS = 2  # sampler steps: the identities hold at any count


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    """A super-resolution stage 8 -> 16 (RGB), trained a few steps through the command line."""
    root = tmp_path_factory.mktemp("upscale")
    before = torch.get_num_threads()
    result = CliRunner().invoke(main, [str(a) for a in [
        "train", "--data", "shapes", "--image-size", 16, "--super-resolution", 8, "--out", root / "sr", "--steps", 3,
        "--batch-size", 4, "--limit", 16, "--sample-count", 2, "--quiet", "--threads", 1,
        *[a for k, v in INNER.items() for a in ("--backbone-option", f"{k}={json.dumps(v)}")]]])
    torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    return root / "sr"


@pytest.fixture(scope="module")
def sr(sr_run):
    return load_denoiser(sr_run)


def lows(n, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g) * 2 - 1  # (n, 3, h, w)


def test_tile_layout_covers_with_overlap_and_ends_flush():
    assert tile_starts(8, 8, 2) == [0]
    assert tile_starts(16, 8, 0) == [0, 8]
    for length in range(8, 60):
        starts = tile_starts(length, 8, 2)
        assert starts[0] == 0 and starts[-1] == length - 8, "first and last tiles touch the borders"
        gaps = np.diff(starts)
        assert all(1 <= g <= 8 - 1 for g in gaps), f"neighbours overlap, no gap: {starts}"
    with pytest.raises(PlumeError, match="smaller than a tile"):
        tile_starts(7, 8, 2)
    window = tile_window(6, 4)
    assert window.shape == (6, 4) and bool((window > 0).all()) and window[2:4, 1:3].min() == window.max()


def test_exact_size_is_super_resolve(sr):
    low = lows(2, 8, 8)
    got = upscale(sr, low, seeds=[5, 9], estimate="sample", draws=1, steps=STEPS)
    want = super_resolve(sr, low, [5, 9], augment=0.0, steps=STEPS)
    assert got.shape == (2, 3, 16, 16)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    other = upscale(sr, low, seeds=[6, 9], estimate="sample", draws=1, steps=STEPS)
    assert (other[0] - got[0]).abs().max() > 1e-3 and torch.allclose(other[1], got[1], atol=1e-5), "seed per image"


def test_the_default_estimate_is_one_denoiser_call_at_the_posterior_level(sr):
    low = lows(2, 8, 8, seed=4)
    got = upscale(sr, low, seeds=[5, 9])  # estimate="mean"
    assert got.shape == (2, 3, 16, 16)
    torch.testing.assert_close(got, super_resolve_mean(sr, low, [5, 9]), rtol=0, atol=1e-6)
    # by hand: x_t = alpha (up(low) + s eps), eps from the image's stage-2 seed; D(x_t, t(s), low)
    s = torch.tensor(POSTERIOR_LEVEL, dtype=torch.float64)
    t = sr.process.time_of_sigma_ratio(s).float()
    up = torch.nn.functional.interpolate(low, size=(16, 16), mode="bicubic", align_corners=False)
    eps = torch.stack([torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(stage_seed(k, 2)))
                       for k in (5, 9)])  # (2, 3, 16, 16)
    with torch.no_grad():
        want = sr(float(sr.process.alpha(t)) * (up + POSTERIOR_LEVEL * eps), t.expand(2), low).clamp(-1, 1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert (got - upscale(sr, low, seeds=[5, 9], estimate="sample", steps=STEPS)).abs().max() > 1e-3
    assert (got - upscale(sr, low, seeds=[5, 9], level=0.5)).abs().max() > 1e-4, "the level reaches the call"
    with pytest.raises(PlumeError, match="unknown estimate"):
        upscale(sr, low, estimate="median")


def test_tiles_partitioning_the_image_reproduce_the_untiled_stage(sr):
    low = lows(1, 16, 24, seed=1)  # 2 x 3 tiles of 8 x 8 with no overlap
    got = upscale(sr, low, seed=4, estimate="sample", draws=1, steps=STEPS, overlap=0)
    assert got.shape == (1, 3, 32, 48)
    layout = [(top, left) for top in (0, 8) for left in (0, 8, 16)]
    tiles = torch.stack([low[0, :, t:t + 8, l:l + 8] for t, l in layout])  # (6, 3, 8, 8)
    want = super_resolve(sr, tiles, [piece_seed(4, j, 0) for j in range(6)], augment=0.0, steps=STEPS)
    for j, (t, l) in enumerate(layout):
        torch.testing.assert_close(got[0, :, 2 * t:2 * t + 16, 2 * l:2 * l + 16], want[j], rtol=0, atol=1e-5)


def test_overlapping_tiles_blend_only_where_they_overlap(sr):
    low = lows(1, 8, 14, seed=2)  # tiles at columns 0 and 6: low columns 6, 7 are shared
    got = upscale(sr, low, seed=1, estimate="sample", draws=1, steps=STEPS, overlap=2)[0]  # (3, 16, 28)
    want = super_resolve(sr, torch.stack([low[0, :, :, :8], low[0, :, :, 6:]]), [piece_seed(1, 0, 0),
                         piece_seed(1, 1, 0)], augment=0.0, steps=STEPS)  # (2, 3, 16, 16)
    torch.testing.assert_close(got[:, :, :12], want[0, :, :, :12], rtol=0, atol=1e-5)
    torch.testing.assert_close(got[:, :, 16:], want[1, :, :, 4:], rtol=0, atol=1e-5)
    a, b, mid = want[0, :, :, 12:], want[1, :, :, :4], got[:, :, 12:16]
    assert bool((mid >= torch.minimum(a, b) - 1e-5).all() and (mid <= torch.maximum(a, b) + 1e-5).all())
    assert (mid - a).abs().max() > 1e-4 and (mid - b).abs().max() > 1e-4, "the overlap mixes both tiles"


def test_draws_average_to_the_mean_of_single_draws(sr):
    low = lows(1, 8, 12, seed=3)  # two tiles
    mean = upscale(sr, low, seed=7, estimate="sample", draws=3, steps=STEPS)
    singles = []
    for k in range(3):
        tiles = torch.stack([low[0, :, :, :8], low[0, :, :, 4:]])
        singles.append(super_resolve(sr, tiles, [piece_seed(7, j, k) for j in range(2)], augment=0.0, steps=STEPS))
    one = upscale(sr, low, seed=7, estimate="sample", draws=1, steps=STEPS)
    assert (mean - one).abs().max() > 1e-3, "more draws change the result"
    draws = torch.stack(singles).mean(0)  # (2, 3, 16, 16)
    torch.testing.assert_close(mean[0, :, :, :8], draws[0, :, :, :8], rtol=0, atol=1e-5)
    torch.testing.assert_close(mean[0, :, :, 16:], draws[1, :, :, 8:], rtol=0, atol=1e-5)
    batched = upscale(sr, torch.cat([lows(1, 8, 12, seed=9), low]), seeds=[0, 7], estimate="sample", draws=3,
                      steps=STEPS, batch_size=4)
    torch.testing.assert_close(batched[1], mean[0], rtol=0, atol=1e-5)


def invoke(*args, code=0):
    result = CliRunner().invoke(upscale_command, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, result.output
    return result.output


def test_cli_writes_the_upscaled_image_and_the_comparison(sr_run, sr, tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "low.png")
    out = invoke(sr_run, "--image", tmp_path / "low.png", "--out", tmp_path / "high.png", "--draws", 2,
                 "--steps", STEPS, "--seed", 3, "--threads", 1, "--quiet")
    assert "high.png (24x20)" in out
    high = np.asarray(Image.open(tmp_path / "high.png"))
    assert high.shape == (20, 24, 3)
    np.testing.assert_array_equal(high, upscale_pixels(sr, pixels, seed=3, draws=2, steps=STEPS))
    compare = np.asarray(Image.open(tmp_path / "high-compare.png"))
    assert compare.shape[1] > 2 * 24
    invoke(sr_run, "--image", tmp_path / "low.png", "--out", tmp_path / "sharp.png", "--estimate", "sample",
           "--steps", STEPS, "--seed", 3, "--threads", 1, "--quiet")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "sharp.png")),
                                  upscale_pixels(sr, pixels, seed=3, estimate="sample", steps=STEPS))


def test_cli_bad_input_names_the_problem(sr_run, tmp_path):
    gray = np.zeros((12, 12), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    assert f"--image {tmp_path / 'gray.png'} is gray (1 channel), but the model upscales RGB" in invoke(
        sr_run, "--image", tmp_path / "gray.png", "--out", tmp_path / "o.png", code=1)
    Image.fromarray(np.zeros((6, 20, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    assert "small.png is 6x20 pixels, smaller than the model's low resolution 8x8" in invoke(
        sr_run, "--image", tmp_path / "small.png", "--out", tmp_path / "o.png", code=1)
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    assert f"cannot read image {tmp_path / 'broken.png'}" in invoke(
        sr_run, "--image", tmp_path / "broken.png", "--out", tmp_path / "o.png", code=1)
    assert "no such file" in invoke(sr_run, "--image", tmp_path / "none.png", "--out", tmp_path / "o.png", code=1)
    base = tmp_path / "base"
    shutil.copytree(sr_run, base)
    config_path = base / "checkpoint" / "config.json"
    config = json.loads(config_path.read_text())
    config["data"] = config["data"]["high"]  # what an ordinary (base) run records
    config_path.write_text(json.dumps(config))
    message = invoke(base, "--image", tmp_path / "small.png", "--out", tmp_path / "o.png", code=1)
    assert "is not a super-resolution run" in message and "--super-resolution LOW_SIZE" in message
    assert not (tmp_path / "o.png").exists()


def test_api_refuses_bad_arguments(sr):
    with pytest.raises(PlumeError, match="draws must be"):
        upscale(sr, lows(1, 8, 8), draws=0)
    with pytest.raises(PlumeError, match="one seed per"):
        upscale(sr, lows(2, 8, 8), seeds=[1])
    with pytest.raises(PlumeError, match="uint8"):
        upscale_pixels(sr, np.zeros((8, 8, 3), dtype=np.float32))
