"""Frame interpolation: the moving-shapes videos, training triples (x0 and cond from one draw), the task functions,
`plume train --data moving-shapes` and `plume interpolate` end to end, and the messages for bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from plume.backbones import backbone
from plume.cli import main
from plume.cli.interpolate import interpolate as interpolate_command
from plume.images.frames import natural_key, read_frames, read_videos
from plume.images.interpolation_data import FrameTriples, interpolation_condition
from plume.images.moving_shapes import moving_shapes, reflect, video_at
from plume.denoiser import Denoiser
from plume.errors import PlumeError
from plume.images.tasks.interpolate import draw_seed, interpolate, interpolate_sequence, positions_between
from plume.train import draw_micro_batch
from plume.train.data import ConditionedData, PairedData

TINY = {"channels": [8, 16], "blocks_per_level": 1, "attention_levels": [], "head_channels": 8, "norm_groups": 4,
        "embed_features": 16}


@pytest.fixture(scope="module")
def model() -> Denoiser:
    torch.manual_seed(0)
    net = backbone("image_conditioned", in_channels=3, cond_channels=7, inner="unet", inner_options=TINY)
    return Denoiser(net, process="edm", prediction="edm", weighting="edm", time_sampling="lognormal",
                    sigma_data=0.5).eval()


def save_frames(folder, frames, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / (names[i] if names else f"f{i}.png"))
    return folder


def find(video: torch.Tensor, frame: torch.Tensor) -> int:
    hits = [i for i in range(len(video)) if torch.equal(video[i], frame)]
    assert hits, "frame not in its video"
    return hits[0]


def test_moving_shapes_deterministic_moving_and_splits_disjoint():
    a, b = moving_shapes(6, size=16, seed=3), moving_shapes(6, size=16, seed=3)
    assert a.shape == (6, 8, 16, 16, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.array_equal(a[4], video_at(3, 4, "train"))  # video i depends on its key alone
    assert not np.array_equal(a, moving_shapes(6, size=16, seed=4))
    assert all((np.abs(v[0].astype(int) - v[-1]).sum() > 0) for v in a)  # the shapes move
    held = moving_shapes(40, size=16, seed=3, split="heldout")
    train = moving_shapes(40, size=16, seed=3, split="train")
    assert not {v.tobytes() for v in train} & {v.tobytes() for v in held}
    lo, hi = 0.2, 0.8
    assert reflect(0.1, lo, hi) == pytest.approx(0.3) and reflect(0.9, lo, hi) == pytest.approx(0.7)
    assert all(lo <= reflect(p, lo, hi) <= hi for p in np.linspace(-3, 3, 101))


def test_condition_comes_from_the_same_draw_as_x0(model):
    videos = moving_shapes(5, size=16, seed=1)
    data = FrameTriples(list(videos), max_gap=4)
    frames = [data.frames[i] for i in range(len(data))]
    for start, stop in ((0, 40), (8, 40), (16, 33)):  # one process, and the shares of ranks of a split batch
        batch = draw_micro_batch(data, model, 40, seed=7, step=3, micro=0, start=start, stop=stop)
        cond = batch.cond  # drawn with x0 (PairedData)
        assert cond.shape == (stop - start, 7, 16, 16)
        for x0, c in zip(batch.x0, cond):
            v = next(f for f in frames if any(torch.equal(f[i], x0) for i in range(len(f))))
            ia, im, ib = find(v, c[:3]), find(v, x0), find(v, c[3:6])
            assert ia < im < ib and ib - ia <= 4
            assert torch.allclose(c[6], torch.full((16, 16), (im - ia) / (ib - ia)))
    again = draw_micro_batch(data, model, 40, seed=7, step=3, micro=0, start=16, stop=33)
    assert torch.equal(again.x0, batch.x0) and torch.equal(again.cond, batch.cond)  # functions of (seed, step, micro)
    assert isinstance(data, PairedData) and not isinstance(data, ConditionedData)


def test_preview_picture_shows_each_made_frame_between_its_two_frames():
    """render draws what it is given, never what an earlier call left: with the conditioning, A, made, B per triple;
    without, the samples alone, whether or not a preview's conditioning was drawn before."""
    data = FrameTriples(list(moving_shapes(4, size=16, seed=1)), max_gap=4)
    cond = data.preview_condition(4, seed=0)  # (4, 7, 16, 16)
    x = cond[:, :3]  # (4, 3, 16, 16) stand-in samples
    beside, alone = data.render(x, cond=cond), data.render(x)
    assert beside.shape[1] > 2 * alone.shape[1]  # 12 images in a row against 4 (a stateful render drew 12 in both)
    assert np.array_equal(alone, data.render(x))


def test_interpolate_shapes_seeds_and_draws(model):
    assert positions_between(3) == [0.25, 0.5, 0.75]
    v = torch.from_numpy(video_at(0, 0, "heldout")).permute(0, 3, 1, 2).float() / 127.5 - 1  # (T, 3, 16, 16)
    a, b = v[[0, 0, 2]], v[[2, 4, 4]]
    options = dict(sampler="euler", steps=3)
    x = interpolate(model, a, b, [0.25, 0.5, 0.75], seeds=[5, 6, 7], **options)
    assert x.shape == (3, 3, 16, 16) and x.abs().max() <= 1
    alone = interpolate(model, a[1:2], b[1:2], 0.5, seeds=[6], **options)
    assert torch.allclose(alone, x[1:2], atol=1e-5)  # frame i depends on its seed, not on the batch
    assert not torch.allclose(interpolate(model, a[1:2], b[1:2], 0.5, seeds=[8], **options), alone, atol=1e-3)
    other = interpolate(model, a[1:2], b[1:2], 0.5, seeds=[draw_seed(6, 1)], **options)
    mean = interpolate(model, a[1:2], b[1:2], 0.5, seeds=[6], draws=2, **options)
    assert torch.allclose(mean, (alone + other) / 2, atol=1e-5)
    seq = interpolate_sequence(model, v[:3], 2, seed=1, **options)
    assert seq.shape == (7, 3, 16, 16) and torch.equal(seq[[0, 3, 6]], v[:3])
    with pytest.raises(PlumeError, match="strictly between 0"):
        interpolation_condition(a, b, 1.0)
    with pytest.raises(PlumeError, match="trained for it"):
        interpolate(Denoiser(backbone("unet", in_channels=3, **TINY)), a, b, 0.5)


def test_frames_folder_order_and_errors(tmp_path):
    video = video_at(2, 0, "heldout")  # (8, 16, 16, 3)
    names = ["frame10.png", "frame2.png", "frame1.png"]
    folder = save_frames(tmp_path / "v", video[:3], names)
    frames, paths = read_frames(folder)
    assert [p.name for p in paths] == ["frame1.png", "frame2.png", "frame10.png"]
    assert np.array_equal(frames, video[[2, 1, 0]])
    assert sorted(["b10", "b9", "a"], key=natural_key) == ["a", "b9", "b10"]
    save_frames(tmp_path / "one", video[:1])
    with pytest.raises(PlumeError, match="1 frame.*at least 2"):
        read_frames(tmp_path / "one")
    mixed = save_frames(tmp_path / "mixed", [video[0], np.zeros((20, 16, 3), np.uint8)])
    with pytest.raises(PlumeError, match=r"f0\.png is 16x16.*f1\.png is 16x20"):
        read_frames(mixed)
    root = tmp_path / "videos"
    save_frames(root / "a", video[:4]), save_frames(root / "b", video[4:])
    videos, folders = read_videos(root)
    assert [f.name for f in folders] == ["a", "b"] and [len(v) for v in videos] == [4, 4]
    with pytest.raises(PlumeError, match="at least 3 frames"):
        FrameTriples([video[:2]])


def test_train_and_interpolate_through_the_cli(tmp_path):
    runner, run = CliRunner(), tmp_path / "run"
    common = ["--steps", "2", "--threads", "1", "--quiet", "--log-every", "1", "--checkpoint-every", "2"]
    args = ["train", "--data", "moving-shapes", "--limit", "12", "--out", str(run), "--batch-size", "8",
            "--sample-count", "2", "--backbone-option", "channels=[8,16]", "--backbone-option", "attention_levels=[]",
            "--backbone-option", "head_channels=8", "--backbone-option", "norm_groups=4", *common]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "checkpoint" / "config.json").read_text())
    assert config["backbone"]["name"] == "image_conditioned"
    assert config["backbone"]["options"]["cond_channels"] == 7
    assert config["data"]["kind"] == "interpolation" and config["data"]["shape"] == [3, 16, 16]
    resumed = runner.invoke(main, ["train", "--out", str(run), "--resume", "--steps", "3", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    bad = runner.invoke(main, ["train", "--data", "moving-shapes", "--out", str(tmp_path / "x"), "--conditional"])
    assert bad.exit_code != 0 and "drop --conditional" in bad.output

    video = video_at(0, 1, "heldout")
    frames = save_frames(tmp_path / "frames", video[:3])
    out = tmp_path / "out"
    result = runner.invoke(interpolate_command, [str(run), "--frames", str(frames), "--between", "2", "--out",
                                                 str(out), "--steps", "2", "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    written = sorted(out.glob("frame-*.png"))
    assert len(written) == 7 and (out / "sequence.gif").exists() and (out / "strip.png").exists()
    for i, j in ((0, 0), (3, 1), (6, 2)):  # the given frames, unchanged, at their places
        assert np.array_equal(np.asarray(Image.open(written[i])), video[j])
    with Image.open(out / "sequence.gif") as gif:
        assert gif.n_frames == 7

    wrong = save_frames(tmp_path / "wrong", [np.zeros((8, 8, 3), np.uint8)] * 2)
    result = runner.invoke(interpolate_command, [str(run), "--frames", str(wrong), "--out", str(out)])
    assert result.exit_code == 1 and "are 8x8 with 3 channel(s)" in result.output and "16x16" in result.output
    result = runner.invoke(interpolate_command, [str(run), "--frames", str(tmp_path / "nothing"), "--out", str(out)])
    assert result.exit_code == 1 and "not a folder of frames" in result.output
