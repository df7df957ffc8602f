"""Inpainting (plume.images.tasks.inpaint, plume.images.masks, plume train --inpainting, plume inpaint): known pixels exact,
oracle denoisers, RePaint's schedule against the official code, the command line and its error messages."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from plume.cli.inpaint import inpaint as inpaint_command
from plume.cli.train import train as train_command
from plume.images.masks import (FAMILIES, InpaintingData, centre_mask, half_mask, masked_condition, random_masks,
    read_mask)
from plume.images.sets import load_image_data
from plume.errors import PlumeError
from plume.processes import process as build_process
from plume.images.tasks.inpaint import check_keep, inpaint, repaint_schedule, segments
from plume.train import load_denoiser

TINY = ["--backbone-option", "channels=[16,16]", "--backbone-option", "norm_groups=4", "--backbone-option",
        "head_channels=16", "--backbone-option", "attention_levels=[]", "--backbone-option", "mid_attention=false"]
H = W = 8


def official_schedule(t_T: int, jump_length: int, jump_n_sample: int) -> list[int]:
    """RePaint's get_schedule_jump (andreas128/RePaint, guided_diffusion/scheduler.py) with jump_sr = 1,
    n_sample = 1 and no jump2 options, as published; times t in {-1, ..., t_T - 1}."""
    jumps = {}
    for j in range(0, t_T - jump_length, jump_length):
        jumps[j] = jump_n_sample - 1
    t = t_T
    ts = []
    while t >= 1:
        t = t - 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] = jumps[t] - 1
            for _ in range(jump_length):
                t = t + 1
                ts.append(t)
    ts.append(-1)
    return ts


def holes() -> torch.Tensor:
    return centre_mask(H, W)  # (1, 1, 8, 8)


def images(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, H, W, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # (n, 1, 8, 8)


# ---- masks -------------------------------------------------------------------------------------------------------

def test_fixed_masks_have_the_documented_holes():
    keep = centre_mask(H, W)[0, 0]
    assert keep.sum() == 64 - 16 and bool((keep[2:6, 2:6] == 0).all())
    assert bool((half_mask(H, W, "left")[0, 0, :, :4] == 0).all()) and half_mask(H, W, "left").sum() == 32
    bottom = half_mask(H, W, "bottom")[0, 0]
    assert bool((bottom[4:] == 0).all()) and bool((bottom[:4] == 1).all())
    with pytest.raises(PlumeError, match="unknown half"):
        half_mask(H, W, "middle")


@pytest.mark.parametrize("family", FAMILIES)
def test_random_masks_are_binary_seeded_and_have_holes(family):
    a = random_masks(family, 64, H, W, torch.Generator().manual_seed(3))
    b = random_masks(family, 64, H, W, torch.Generator().manual_seed(3))
    assert a.shape == (64, 1, H, W) and torch.equal(a, b)
    assert bool(((a == 0) | (a == 1)).all())
    hole = 1 - a.flatten(1).mean(1)  # (64,) fraction to fill
    assert bool((hole > 0).all()) and bool((hole < 1).all())
    if family in ("rectangles", "strokes", "mixed", "half"):
        assert len(torch.unique(a, dim=0)) > 1


def test_training_condition_is_the_masked_image_and_split_independent():
    data = InpaintingData(load_image_data("digits", limit=64), "mixed")
    x0 = data.batch(torch.arange(8), torch.Generator())
    whole = data.condition(x0, torch.Generator().manual_seed(5), 0, 8)  # (8, 2, 8, 8)
    part = data.condition(x0[4:], torch.Generator().manual_seed(5), 4, 8)
    assert whole.shape == (8, 2, H, W) and torch.equal(whole[4:], part)
    keep = whole[:, 1:]
    assert torch.equal(whole[:, :1], x0 * keep) and bool((keep == 0).any())
    assert data.info()["kind"] == "inpainting" and data.preview_condition(4, 0).shape == (4, 2, H, W)


def test_check_keep_accepts_one_mask_or_one_per_image_and_rejects_the_rest():
    x = images(2)
    assert check_keep(holes()[0, 0], x).shape == (2, 1, H, W)
    with pytest.raises(PlumeError, match="binary"):
        check_keep(holes() * 0.5, x)
    with pytest.raises(PlumeError, match=r"shaped \(4, 4\)"):
        check_keep(torch.ones(4, 4), x)
    with pytest.raises(PlumeError, match="unknown inpainting method"):
        inpaint(lambda x, t: x, "edm", x, holes(), method="magic")


# ---- RePaint's schedule ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps,jump,resample", [(250, 10, 10), (20, 5, 3), (10, 3, 2), (7, 2, 1), (12, 4, 4)])
def test_repaint_schedule_is_the_official_one(steps, jump, resample):
    ours = repaint_schedule(steps, jump, resample)
    assert ours == [steps - 1 - t for t in official_schedule(steps, jump, resample)]
    down = sum(b > a for a, b in zip(ours, ours[1:]))
    assert down == steps + (resample - 1) * jump * len(range(0, steps - jump, jump))
    runs = segments(ours)
    assert runs[0][0] == 0 and runs[-1][1] == steps and all(r[1] == n[0] for r, n in zip(runs, runs[1:]))
    assert len(runs) == 1 + 2 * (resample - 1) * len(range(0, steps - jump, jump))


def test_repaint_schedule_refuses_a_jump_without_room():
    with pytest.raises(PlumeError, match="no room"):
        repaint_schedule(5, 5, 2)


# ---- oracle denoisers --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["replace", "repaint"])
@pytest.mark.parametrize("sampler", ["ddpm", "euler", "dpm++2m", "heun"])
def test_constant_denoiser_fills_with_its_image_and_keeps_known_pixels(method, sampler):
    x, z = images(2), torch.full((2, 1, H, W), 0.3)
    out = inpaint(lambda x_t, t: z, "edm", x, holes(), method=method, sampler=sampler, steps=8, jump=2, resample=3)
    known = holes().bool().expand_as(x)
    assert torch.equal(out[known], x[known])  # bit-exact
    assert torch.allclose(out[~known], z[~known], atol=1e-5)  # E[x0 | x_t] = z, so every sampler ends at z


def test_conditioned_model_sees_the_masked_image_and_mask():
    x, seen = images(2), []

    def model(x_t, t, cond):  # an x0-predictor that fills with the known pixels' mean, from cond alone
        seen.append(cond)
        masked, keep = cond[:, :1], cond[:, 1:]
        mean = masked.sum((1, 2, 3), keepdim=True) / keep.sum((1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
        return masked + (1 - keep) * mean

    out = inpaint(model, "edm", x, holes(), method="conditioned", sampler="heun", steps=4)
    keep = holes().expand_as(x)
    assert torch.equal(seen[0], masked_condition(x, keep))
    expected = (x * keep).sum((1, 2, 3), keepdim=True) / keep.sum((1, 2, 3), keepdim=True)
    assert torch.allclose(out, torch.where(keep.bool(), x, expected.expand_as(x)), atol=1e-5)


def test_replacement_re_imposes_the_noised_known_pixels_at_every_step():
    """With a denoiser that predicts z far from the image, the model's inputs still hold the image (plus noise of
    the current level) on the known pixels; without replacement they would hold z."""
    proc = build_process("edm")
    x, z, inputs = images(4), torch.full((4, 1, H, W), 0.9), []

    def model(x_t, t):
        inputs.append((x_t.clone(), t.clone()))
        return z

    inpaint(model, proc, x, holes(), method="replace", sampler="euler", steps=12)
    known = holes().bool().expand_as(x)
    late = [(x_t, t) for x_t, t in inputs if float(proc.sigma(t[0]) / proc.alpha(t[0])) < 1.0]
    assert len(late) >= 3
    for x_t, t in late:
        s = float(proc.sigma(t[0]) / proc.alpha(t[0]))
        residual = (x_t / proc.alpha(t[0]) - x)[known] / s  # eps of the known pixels: about N(0, 1)
        assert 0.5 < float(residual.pow(2).mean()) < 1.6
        assert float(((x_t / proc.alpha(t[0]) - z)[~known]).abs().max()) < 3 * s  # holes follow the denoiser


def test_repaint_runs_every_scheduled_step_and_each_sample_depends_on_its_seed_alone():
    calls = []

    def model(x_t, t):
        calls.append(len(x_t))
        return torch.tanh(x_t.mean((1, 2, 3), keepdim=True)).expand_as(x_t)  # couples pixels, like a network

    x = images(3)
    both = inpaint(model, "edm", x, holes(), method="repaint", sampler="ddpm", steps=6, jump=2, resample=3, seed=10)
    schedule = repaint_schedule(6, 2, 3)
    assert len(calls) == sum(b > a for a, b in zip(schedule, schedule[1:]))
    alone = inpaint(model, "edm", x[1:2], holes(), method="repaint", sampler="ddpm", steps=6, jump=2, resample=3,
                    seed=11)
    assert torch.allclose(alone, both[1:2], atol=1e-6)
    again = inpaint(model, "edm", x, holes(), method="repaint", sampler="ddpm", steps=6, jump=2, resample=3, seed=10)
    assert torch.equal(again, both)
    replaced = inpaint(model, "edm", x, holes(), method="replace", sampler="ddpm", steps=6, seed=10)
    assert not torch.allclose(replaced, both)  # the resampling passes change the result


# ---- trained models and the command line -------------------------------------------------------------------------

def run_cli(command, args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpaint")
    common = ["--data", "digits", "--limit", "200", "--steps", 3, "--batch-size", 16, "--threads", 1, "--quiet",
              "--sample-count", 4, "--preview-every", 0, *TINY]
    for name, extra in (("plain", []), ("masked", ["--inpainting"])):
        result = run_cli(train_command, [*common, *extra, "--out", root / name])
        assert result.exit_code == 0, result.output + repr(result.exception)
    digit = load_image_data("digits", limit=1).images.pixels[0]  # (8, 8, 1) uint8
    Image.fromarray(digit[..., 0]).save(root / "digit.png")
    Image.fromarray((centre_mask(H, W)[0, 0].numpy() * 255).astype(np.uint8)).save(root / "mask.png")
    return root


def test_trained_models_keep_known_pixels_exactly(runs):
    x = images(2)
    plain, masked = load_denoiser(runs / "plain"), load_denoiser(runs / "masked")
    known = holes().bool().expand_as(x)
    for model, method in ((plain, "replace"), (plain, "repaint"), (masked, "conditioned")):
        out = inpaint(model, model.process, x, holes(), method=method, steps=4, jump=2, resample=2)
        assert torch.equal(out[known], x[known]) and not torch.equal(out[~known], x[~known])
        assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize("run,options,method", [("plain", [], "replace"),
                                                ("plain", ["--method", "repaint", "--jump", 2, "--resample", 2],
                                                 "repaint"),
                                                ("masked", ["--n", 2], "conditioned")])
def test_cli_completes_the_image_and_writes_the_side_by_side(runs, run, options, method):
    out = runs / f"out-{run}-{method}.png"
    result = run_cli(inpaint_command, [runs / run, "--image", runs / "digit.png", "--mask", runs / "mask.png",
                                       "--steps", 4, "--threads", 1, "--out", out, *options])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"({method})" in result.output
    paths = [out] if "--n" not in options else [out.with_name(f"{out.stem}-{k}.png") for k in range(2)]
    digit = np.asarray(Image.open(runs / "digit.png"))
    keep = centre_mask(H, W)[0, 0].numpy().astype(bool)
    for path in paths:
        completed = np.asarray(Image.open(path))
        assert completed.shape == (H, W) and np.array_equal(completed[keep], digit[keep])
    assert out.with_name(f"{out.stem}-side.png").exists()


def test_other_commands_point_an_inpainting_run_to_plume_inpaint(runs):
    from plume.cli import main

    for command in (["sample", runs / "masked", "--n", 1], ["img2img", runs / "masked", "--image", runs / "digit.png", "--out", runs / "x.png"]):
        result = run_cli(main, command)
        assert result.exit_code == 1 and "is an inpainting model" in result.output, result.output


def test_cli_mask_white_fill_inverts_the_mask(runs):
    inverted = runs / "holes-white.png"
    Image.fromarray(((1 - centre_mask(H, W)[0, 0].numpy()) * 255).astype(np.uint8)).save(inverted)
    out = runs / "inverted.png"
    result = run_cli(inpaint_command, [runs / "plain", "--image", runs / "digit.png", "--mask", inverted,
                                       "--mask-white", "fill", "--steps", 3, "--threads", 1, "--out", out])
    assert result.exit_code == 0, result.output + repr(result.exception)
    keep = centre_mask(H, W)[0, 0].numpy().astype(bool)
    assert np.array_equal(np.asarray(Image.open(out))[keep], np.asarray(Image.open(runs / "digit.png"))[keep])


def test_cli_names_the_bad_input(runs):
    def fails(run, image, mask, *extra):
        result = run_cli(inpaint_command, [runs / run, "--image", image, "--mask", mask, "--steps", 2, "--threads", 1,
                                           "--out", runs / "bad.png", *extra])
        assert result.exit_code != 0
        return str(result.exception) + result.output

    Image.fromarray(np.zeros((10, 10), np.uint8)).save(runs / "big.png")
    gray = np.full((H, W), 255, np.uint8)
    gray[0, 0] = 128
    Image.fromarray(gray).save(runs / "soft.png")
    Image.fromarray(np.zeros((H, W, 3), np.uint8) + np.array([255, 0, 0], np.uint8)).save(runs / "red.png")
    message = fails("plain", runs / "big.png", runs / "mask.png")
    assert "big.png" in message and "10x10" in message and "8x8" in message
    message = fails("plain", runs / "digit.png", runs / "big.png")
    assert "big.png" in message and "must match" in message
    message = fails("plain", runs / "digit.png", runs / "soft.png")
    assert "soft.png" in message and "binary" in message and "128" in message
    assert "coloured" in fails("plain", runs / "digit.png", runs / "red.png")
    assert "--inpainting" in fails("plain", runs / "digit.png", runs / "mask.png", "--method", "conditioned")
    assert "unconditional run" in fails("masked", runs / "digit.png", runs / "mask.png", "--method", "replace")
    assert "no such file" in fails("plain", runs / "missing.png", runs / "mask.png")
    with pytest.raises(PlumeError, match="cannot read the mask"):
        read_mask(runs / "missing.png", H, W)


def test_train_inpainting_saves_its_data_and_resumes(runs):
    config = json.loads((runs / "masked" / "checkpoint" / "config.json").read_text())
    assert config["data"]["kind"] == "inpainting" and config["data"]["masks"] == "mixed"
    assert config["backbone"]["name"] == "image_conditioned" and config["backbone"]["options"]["cond_channels"] == 2
    result = run_cli(train_command, ["--out", runs / "masked", "--resume", "--steps", 4, "--quiet", "--threads", 1])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert json.loads((runs / "masked" / "checkpoint" / "config.json").read_text())["step"] == 4
    result = run_cli(train_command, ["--data", "digits", "--inpainting", "--conditional", "--out", runs / "x"])
    assert result.exit_code != 0 and "--conditional" in result.output
