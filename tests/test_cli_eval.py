"""`plume eval`: a run or a samples file against reference images, with every figure labelled by sample count,
feature network and reference; the memorization audit flags training images fed back as samples."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from plume.cli import main
from plume.images import load_image_data

TINY = ["--backbone-option", "channels=[16,32]", "--backbone-option", "norm_groups=8", "--backbone-option",
        "head_channels=16", "--steps", "10", "--batch-size", "16", "--sample-count", "4", "--quiet"]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("PLUME_CACHE", str(tmp_path / "cache"))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run(*args, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, result.output
    return result.output


def test_eval_a_run_with_bits_per_dim(tmp_path):
    out = tmp_path / "run"
    run("train", "--data", "digits", "--out", out, *TINY)
    digits = load_image_data("digits").images.pixels
    np.savez(tmp_path / "held_out.npz", arr_0=digits[:6])
    output = run("eval", out, "--n", "40", "--steps", "4", "--nll", "--nll-data", tmp_path / "held_out.npz")
    report = json.loads((out / "eval.json").read_text())
    for key in ("fid", "fid_floor", "kid", "precision", "recall", "inception_score", "memorization", "nll"):
        assert key in report, key
    assert report["n_samples"] == 40 and report["n_reference"] == 1797
    assert "40 samples vs 1797 reference images" in output and "classifier" in output and "bits/dim" in output
    assert report["nll"]["n_images"] == 6 and report["nll"]["probes"] == 1 and "uniform" in report["nll"]["dequantization"]
    assert (out / "eval-audit.png").is_file()
    assert report["reference_cache"] and (tmp_path / "cache").is_dir()
    assert 0 < report["fid_floor"] < report["fid"] and "floor" in output


def test_training_images_fed_back_are_flagged_and_the_cache_is_reused(tmp_path):
    digits = load_image_data("digits").images.pixels
    np.savez(tmp_path / "copies.npz", arr_0=digits[:50])
    run("eval", tmp_path / "copies.npz", "--ref", "digits")
    first = json.loads((tmp_path / "copies-eval.json").read_text())
    assert first["memorization"]["copies"] == 50 and first["fid"] < 5 and first["precision"] == 1.0
    run("eval", tmp_path / "copies.npz", "--ref", "digits", "--out", tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["reference_cache"] == first["reference_cache"] and again["fid"] == first["fid"]


def test_gray_samples_without_a_channel_axis_are_one_channel(tmp_path):
    """arr_0 shaped (N, H, W) is read as (N, H, W, 1): the same report as with the channel axis."""
    digits = load_image_data("digits").images.pixels  # (1797, 8, 8, 1)
    np.savez(tmp_path / "flat.npz", arr_0=digits[:60, ..., 0])  # (60, 8, 8)
    np.savez(tmp_path / "axis.npz", arr_0=digits[:60])
    run("eval", tmp_path / "flat.npz", "--ref", "digits")
    run("eval", tmp_path / "axis.npz", "--ref", "digits")
    flat, axis = (json.loads((tmp_path / f"{name}-eval.json").read_text()) for name in ("flat", "axis"))
    assert flat["n_samples"] == axis["n_samples"] == 60 and flat["fid"] == axis["fid"]
    np.savez(tmp_path / "rgb-flat.npz", arr_0=np.zeros((4, 8, 8, 8), np.uint8))  # 8 "channels": not images
    assert "expected uint8 (N, H, W, C) images with 1 or 3 channels" in run("eval", tmp_path / "rgb-flat.npz", "--ref",
                                                                               "digits", code=1)


def test_eval_errors_are_one_line(tmp_path):
    np.savez(tmp_path / "points.npz", arr_0=np.zeros((4, 2), np.float32))
    assert "--ref is required" in run("eval", tmp_path / "points.npz", code=2)
    assert "expected uint8 (N, H, W, C)" in run("eval", tmp_path / "points.npz", "--ref", "digits", code=1)
    np.savez(tmp_path / "big.npz", arr_0=np.zeros((4, 16, 16, 3), np.uint8))
    assert "reference of the samples' size" in run("eval", tmp_path / "big.npz", "--ref", "digits", code=1)


def test_inception_without_its_weights_file_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("PLUME_INCEPTION", raising=False)
    np.savez(tmp_path / "s.npz", arr_0=np.zeros((4, 8, 8, 1), np.uint8))
    output = run("eval", tmp_path / "s.npz", "--ref", "digits", "--features", "inception", code=1)
    assert "pt_inception-2015-12-05" in output and "--weights PATH" in output and "PLUME_INCEPTION" in output


def test_sampler_sweep_plots_fid_against_nfe(tmp_path):
    out = tmp_path / "run"
    run("train", "--data", "digits", "--out", out, *TINY)
    output = run("eval", out, "--n", "24", "--steps", "3", "--sweep", "--sweep-samplers", "euler,heun",
                 "--sweep-nfe", "3,6")
    sweep = json.loads((out / "eval.json").read_text())["sweep"]
    assert [(p["sampler"], p["nfe"], p["steps"], p["evaluations"]) for p in sweep["points"]] == [
        ("euler", 3, 3, 3), ("euler", 6, 6, 6), ("heun", 3, 2, 3), ("heun", 6, 3, 5)]  # Heun: 2 * steps - 1
    assert all(p["fid"] > 0 for p in sweep["points"]) and (out / "eval-sweep.png").stat().st_size > 5000
    assert "sweep: best FID" in output
    # Bad sweep options fail before any work, naming the option.
    for option, value, said in (("--sweep-samplers", "ode", "fixed-step"), ("--sweep-nfe", "5,x", "whole numbers")):
        output = run("eval", out, "--sweep", option, value, code=2)
        assert option in output and said in output


def test_holdout_images_are_never_trained_on_and_serve_nll(tmp_path):
    out = tmp_path / "run"
    run("train", "--data", "digits", "--holdout", "0.1", "--out", out, *TINY)
    from plume.modality import modality_of
    from plume.train import read_config
    info = read_config(out)["data"]
    data = modality_of(info).data_from_info(info)
    assert len(data.held_out) == 180 and len(data) == 1797 - 180 and data.info()["holdout"] == 0.1
    rows = lambda x: {bytes(r) for r in x.reshape(len(x), -1)}  # noqa: E731
    everything = load_image_data("digits").images.pixels  # (1797, 8, 8, 1), no two alike
    assert len(rows(everything)) == len(everything)
    assert len(data) == len(data.train_pixels) and not rows(data.held_out) - rows(everything)
    # A partition: no held-out image is a training image, and together they are the whole set, each once.
    held, trained = rows(data.held_out), rows(data.train_pixels)
    assert len(held) == 180 and len(trained) == 1797 - 180
    assert not held & trained, f"{len(held & trained)} held-out images are also training images"
    assert held | trained == rows(everything), f"{len(rows(everything) - held - trained)} images are in neither part"
    # What the trainer draws from (every index of its batches) is the training part, never a held-out image.
    seen = data.batch(torch.arange(len(data)), torch.Generator())  # (1617, 1, 8, 8) in [-1, 1]
    seen = np.round((seen.numpy() + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)  # the uint8 pixels back
    assert not rows(seen) & held, f"the trainer's data hold {len(rows(seen) & held)} held-out images"
    assert rows(seen) == trained
    output = run("eval", out, "--n", "20", "--steps", "3", "--nll", "--nll-limit", "4")
    report = json.loads((out / "eval.json").read_text())
    assert report["nll"]["data"] == "the run's held-out images" and report["n_reference"] == 1797 - 180
    assert report["nll"]["n_images"] == 4 and "bits/dim" in output


def test_a_ddpm_run_also_reports_its_elbo(tmp_path, monkeypatch):
    from plume.images import evaluate as image_evaluation
    from plume.images.evaluation.features import feature_network
    # The classifier's quality is not under test here: 20 steps instead of 400 pay for recomputing the ELBO below.
    monkeypatch.setattr(image_evaluation, "feature_network",
                        lambda *a, **k: feature_network(*a, **{**k, "classifier_steps": 20}))
    out = tmp_path / "run"
    run("train", "--data", "digits", "--holdout", "0.05", "--process", "ddpm", "--prediction", "eps",
        "--weighting", "simple", "--time-sampling", "uniform", "--out", out, *TINY)
    output = run("eval", out, "--n", "10", "--steps", "3", "--sampler", "ddim", "--nll", "--nll-limit", "3")
    nll = json.loads((out / "eval.json").read_text())["nll"]
    elbo = nll["elbo"]
    assert elbo["n_images"] == 3 and elbo["bits_per_dim"] > 0 and "DDPM ELBO bound" in output
    # The same figures from the Python functions on the same images (the run's first 3 held-out digits), the same
    # model (the EMA weights plume eval loads) and the same seed (plume eval's --seed, 0).
    from plume.images.evaluation.bits_per_dim import image_bits_per_dim, image_elbo_bits_per_dim
    from plume.modality import modality_of
    from plume.train import load_denoiser, read_config
    info = read_config(out)["data"]
    held_out = modality_of(info).data_from_info(info).held_out[:3]  # (3, 8, 8, 1) uint8
    model = load_denoiser(out)
    expected = image_elbo_bits_per_dim(model, held_out, seed=0)
    assert elbo["bits_per_dim"] == pytest.approx(expected["bits_per_dim"], rel=1e-6, abs=0)
    assert elbo["standard_error"] == pytest.approx(expected["standard_error"], rel=1e-5, abs=0)
    ode = image_bits_per_dim(model, held_out, probes=1, seed=0)
    assert nll["bits_per_dim"] == pytest.approx(ode["bits_per_dim"], rel=1e-6, abs=0) and nll["n_images"] == 3
