"""Anomaly scores (plume.tasks.anomaly, plume anomaly): closed forms under exact Gaussian denoisers, seeds, shapes,
heat-maps, and the command end to end on tiny runs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from plume.cli.anomaly import anomaly
from plume.denoiser import Denoiser
from plume.backbones import backbone
from plume.errors import PlumeError
from plume.processes import process as build_process
from plume.tasks.anomaly import AnomalyScores, LevelStats, anomaly_scores, level_stats, reconstruct
from plume.images.tasks.anomaly_plots import colour_maps, heatmap_pairs
from plume.train import TrainConfig, train


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian_denoiser(process):
    """Exact E[x0 | x_t] for data N(0, I): with x_t = alpha (x0 + s eps), E[x0 | x_t] = (x_t / alpha) / (1 + s^2)."""
    process = build_process(process)

    def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.double()
        alpha, s = process.alpha(t), process.sigma(t) / process.alpha(t)  # (B,)
        shape = (-1,) + (1,) * (x_t.ndim - 1)
        return (x_t / alpha.view(shape).to(x_t) / (1 + s.view(shape).to(x_t) ** 2))
    return fn


@pytest.mark.parametrize("process", ["edm", "vp"])
def test_posterior_mean_error_matches_closed_form(process):
    """One step: x_hat = (x0 + s eps) / (1 + s^2), so per coordinate
    E[(x0 - x_hat)^2] = (s^4 x0^2 + s^2) / (1 + s^2)^2."""
    x0 = torch.tensor([[0.0, 0.0], [2.0, -1.0], [4.0, 3.0]])  # (3, 2)
    levels = (0.3, 0.8)
    r = anomaly_scores(gaussian_denoiser(process), process, x0, levels=levels, seeds=2000, steps=1)
    for k, s in enumerate(levels):
        expected = (s ** 4 * x0.square().mean(1).double() + s ** 2) / (1 + s ** 2) ** 2  # (3,)
        torch.testing.assert_close(r.level_errors[k], expected, rtol=0.08, atol=0.0)
    torch.testing.assert_close(r.scores, r.level_errors.mean(0))


def test_many_steps_follow_the_probability_flow():
    """The ODE from level s for N(0, I) data under EDM ends at x_t / sqrt(1 + s^2); one step at the posterior mean."""
    fn = gaussian_denoiser("edm")
    x0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    seeds = [11, 12]
    x_hat = reconstruct(fn, "edm", x0, 0.7, seeds, steps=40, sampler="heun")
    from plume.tasks.start import noise_to
    x_t = noise_to("edm", x0, 0.7, seeds)
    torch.testing.assert_close(x_hat, x_t / (1 + 0.7 ** 2) ** 0.5, rtol=1e-3, atol=1e-3)
    one = reconstruct(fn, "edm", x0, 0.7, seeds, steps=1)
    torch.testing.assert_close(one, x_t / (1 + 0.7 ** 2))


def test_far_points_score_higher_and_standardized_levels():
    fn = gaussian_denoiser("edm")
    g = torch.Generator().manual_seed(0)
    normal = torch.randn(300, 2, generator=g)
    far = torch.randn(100, 2, generator=g) + torch.tensor([3.0, 3.0])
    stats = level_stats(fn, "edm", normal, levels=(0.3, 1.0), seeds=4)
    held = torch.randn(100, 2, generator=g)
    r = anomaly_scores(fn, "edm", torch.cat([held, far]), levels=(0.3, 1.0), seeds=4, stats=stats, seed=5)
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(np.r_[np.zeros(100), np.ones(100)], r.scores.numpy()) > 0.95
    standardized = (r.level_errors - stats.mean[:, None]) / stats.std[:, None]  # (L, B)
    torch.testing.assert_close(r.scores, standardized.mean(0))
    assert abs(float(standardized[:, :100].mean())) < 0.3  # normal held-out rows sit near 0 after standardizing
    assert LevelStats.from_dict(json.loads(json.dumps(stats.to_dict()))).levels == stats.levels


def test_scores_are_a_function_of_the_seeds_not_the_batch():
    fn = gaussian_denoiser("vp")
    x0 = torch.randn(7, 3, 4, 4, generator=torch.Generator().manual_seed(1))  # images (B, C, H, W)
    a = anomaly_scores(fn, "vp", x0, seeds=3, seed=4, batch_size=7)
    b = anomaly_scores(fn, "vp", x0, seeds=3, seed=4, batch_size=2)
    c = anomaly_scores(fn, "vp", x0, seeds=3, seed=5, batch_size=7)
    torch.testing.assert_close(a.scores, b.scores)
    torch.testing.assert_close(a.maps, b.maps)
    assert not torch.allclose(a.scores, c.scores)
    assert isinstance(a, AnomalyScores) and a.maps.shape == (7, 4, 4) and a.level_errors.shape == (3, 7)
    torch.testing.assert_close(a.maps.flatten(1).mean(1).double(), a.scores, rtol=1e-5, atol=1e-7)
    vectors = anomaly_scores(fn, "vp", x0.flatten(1), seeds=2)
    assert vectors.maps.shape == (7, 48)


def test_heatmap_pictures():
    x0 = torch.rand(2, 1, 8, 8) * 2 - 1
    maps = torch.zeros(2, 8, 8)
    maps[1, 2, 3] = 1.0
    colours = colour_maps(maps, vmax=1.0)  # (2, 8, 8, 3)
    assert colours.shape == (2, 8, 8, 3) and colours.dtype == np.uint8
    assert (colours[0] == colours[0, 0, 0]).all() and not (colours[1, 2, 3] == colours[1, 0, 0]).all()
    pairs = heatmap_pairs(x0, maps)
    assert pairs.ndim == 4 and pairs.shape[0] == 2 and pairs.shape[2] > 2 * 8 and pairs.shape[-1] == 3


def test_bad_arguments():
    fn = gaussian_denoiser("edm")
    x0 = torch.zeros(2, 2)
    with pytest.raises(PlumeError, match="levels"):
        anomaly_scores(fn, "edm", x0, levels=(0.2, -1.0))
    with pytest.raises(PlumeError, match="levels"):
        anomaly_scores(fn, "edm", x0, levels=(0.2,), stats=LevelStats((0.3,), torch.ones(1), torch.ones(1)))
    with pytest.raises(PlumeError, match="NaN"):
        anomaly_scores(fn, "edm", torch.tensor([[0.0, float("nan")]]))


def tiny_run(tmp_path: Path, shape: tuple[int, ...], name: str) -> Path:
    """A run trained a few steps: a 1-level U-Net on (C, 8, 8) images or an MLP on vectors (D,)."""
    torch.manual_seed(0)
    if len(shape) == 3:
        net = backbone("unet", in_channels=shape[0], channels=[8], blocks_per_level=1, attention_levels=[],
                      norm_groups=4, mid_attention=False, embed_features=16)
    else:
        net = backbone("mlp", dim=shape[0], width=16, depth=2)
    data = torch.rand(32, *shape) * 2 - 1
    out = tmp_path / name
    train(Denoiser(net, process="edm", prediction="edm"), data, out,
          TrainConfig(steps=3, batch_size=8, sample_count=4, sample_steps=2, log_every=1, warmup_steps=1),
          progress=False)
    return out


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_cli_images_end_to_end(tmp_path):
    run = tiny_run(tmp_path, (1, 8, 8), "run")
    folder = tmp_path / "inputs"
    rng = np.random.default_rng(0)
    for k in range(3):
        write_png(folder / f"img{k}.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    write_png(folder / "sub" / "big.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))  # resized, with a note
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    args = [str(run), "--images", str(folder), "--out", str(out), "--levels", "0.3,0.6", "--seeds", "2"]
    stopped = CliRunner().invoke(anomaly, args)
    assert isinstance(stopped.exception, PlumeError) and "broken.png" in str(stopped.exception)
    result = CliRunner().invoke(anomaly, args + ["--on-error", "skip"])
    assert result.exit_code == 0, result.output
    assert "resized" in result.output
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == ["img0.png", "img1.png", "img2.png", "sub/big.png"]
    assert sorted(int(r["rank"]) for r in rows) == [1, 2, 3, 4] and "error_at_0.6" in rows[0]
    assert all(np.isfinite(float(r["score"])) for r in rows)
    assert sorted(p.name for p in (out / "heatmaps").iterdir()) == ["img0.png", "img1.png", "img2.png", "sub__big.png"]
    assert (out / "histogram.png").stat().st_size > 0
    assert json.loads((out / "anomaly.json").read_text())["stats"] is None  # a Python-trained run: plain mean
    again = CliRunner().invoke(anomaly, args + ["--on-error", "skip", "--out", str(tmp_path / "again")])
    assert again.exit_code == 0
    assert (tmp_path / "again" / "scores.csv").read_text() == (out / "scores.csv").read_text()


def test_cli_bad_inputs(tmp_path):
    run = tiny_run(tmp_path, (1, 8, 8), "run")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(anomaly, [str(run), "--images", str(empty), "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, PlumeError) and "no image files" in str(result.exception)
    colour = tmp_path / "colour"
    write_png(colour / "rgb.png", np.full((8, 8, 3), [255, 0, 0], dtype=np.uint8))
    result = CliRunner().invoke(anomaly, [str(run), "--images", str(colour), "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, PlumeError) and "rgb.png" in str(result.exception)
    result = CliRunner().invoke(anomaly, [str(run), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--images" in result.output
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(anomaly, [str(run), "--table", str(table), "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, PlumeError) and "not vectors" in str(result.exception)


def test_cli_table(tmp_path):
    run = tiny_run(tmp_path, (3,), "vec")
    table = tmp_path / "rows.csv"
    table.write_text("a,b,c\n0.1,0.2,0.3\n5,5,5\n-0.2,0.0,0.1\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(anomaly, [str(run), "--table", str(table), "--out", str(out), "--seeds", "2"])
    assert result.exit_code == 0, result.output
    with open(out / "scores.csv") as f:
        assert [r["file"] for r in csv.DictReader(f)] == ["row 1", "row 2", "row 3"]
    lik = tmp_path / "lik"
    result = CliRunner().invoke(anomaly, [str(run), "--table", str(table), "--out", str(lik), "--score",
                                          "likelihood", "--smoothing", "0.3"])
    assert result.exit_code == 0, result.output
    with open(lik / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == ["row 1", "row 2", "row 3"]
    assert all(np.isfinite(float(r["score"])) for r in rows)
    assert json.loads((lik / "anomaly.json").read_text())["smoothing"] == 0.3
    table.write_text("0.1,0.2,0.3\n0.1,x,0.3\n")
    bad = CliRunner().invoke(anomaly, [str(run), "--table", str(table), "--out", str(out)])
    assert isinstance(bad.exception, PlumeError) and "row 2, column 2" in str(bad.exception)
    table.write_text("0.1,0.2\n")
    bad = CliRunner().invoke(anomaly, [str(run), "--table", str(table), "--out", str(out)])
    assert isinstance(bad.exception, PlumeError) and "2 columns" in str(bad.exception)


def test_likelihood_scores_match_the_gaussian_density_and_choose_smoothing():
    """For data N(0, I) the smoothed density p_s is N(0, (1 + s^2) I) in closed form (EDM: x_t = x0 + s eps), so
    -log p_s(x) from the probability-flow ODE matches it; held-out normal data picks the smallest s (the exact
    model has nothing memorized to smooth away, and p_s widens with s)."""
    from plume.tasks.anomaly import choose_smoothing, likelihood_scores

    fn = gaussian_denoiser("edm")
    x0 = torch.tensor([[0.0, 0.0], [1.0, -1.0], [3.0, 2.0]])  # (3, 2)
    s = 0.3
    nll = likelihood_scores(fn, "edm", x0, s_min=s, rtol=1e-6, atol=1e-6)
    var = 1 + s ** 2
    expected = 0.5 * x0.double().square().sum(1) / var + np.log(2 * np.pi * var)  # (3,) 2 dims: d/2 log(2 pi var)
    torch.testing.assert_close(nll, expected, rtol=0, atol=0.05)
    assert int(nll.argmax()) == 2
    normal = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    chosen, means = choose_smoothing(fn, "edm", normal, candidates=(0.1, 0.5, 1.5))
    assert chosen == 0.1 and set(means) == {0.1, 0.5, 1.5}
    with pytest.raises(PlumeError):
        likelihood_scores(fn, "edm", x0, s_min=0.0)
