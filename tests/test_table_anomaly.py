"""Table anomaly detectors (plume.points.whitening, plume.points.table_anomaly, plume fit-detector): the change of
variables against closed forms, the label-free choice, and the commands end to end on a tiny table."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy.stats import multivariate_normal

from plume.cli import main
from plume.points.whitening import Whitening
from plume.errors import PlumeError
from plume.points.table_anomaly import TableDetector, fit_table_detector, load_table_detector

from test_anomaly import gaussian_denoiser, one_thread  # noqa: F401 - one_thread: the autouse fixture


def correlated_rows(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) rows with very different column scales and a strong correlation between columns 0 and 1."""
    g = np.random.default_rng(seed)
    a, b = g.normal(size=n), g.normal(size=n)
    return np.stack([100 + 20 * a, 5 + 1.0 * (a + 0.05 * b), 0.01 * g.normal(size=n)], 1)


@pytest.mark.parametrize("kind", ["pca", "standardize"])
def test_whitening_moments_inverse_and_record(kind):
    x = correlated_rows(400)
    w = Whitening.fit(x, kind)
    z = w(x).numpy()  # (N, 3)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    cov = np.cov(z, rowvar=False, bias=True)
    if kind == "pca":
        np.testing.assert_allclose(cov, np.eye(3), atol=1e-8)
    else:
        np.testing.assert_allclose(np.diag(cov), 1, atol=1e-9)
        assert abs(cov[0, 1]) > 0.9  # standardizing keeps the correlation
    np.testing.assert_allclose(w.invert(z).numpy(), x, rtol=1e-9, atol=1e-9)
    assert w.log_abs_det == pytest.approx(np.log(abs(np.linalg.det(w.matrix))))
    again = Whitening.from_dict(json.loads(json.dumps(w.to_dict())))
    np.testing.assert_allclose(again(x).numpy(), z)


def test_whitening_refuses_bad_rows_with_names():
    x = correlated_rows(20)
    with pytest.raises(PlumeError, match="column 'c' is constant"):
        Whitening.fit(np.c_[x[:, :2], np.ones(20)], columns=["a", "b", "c"])
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(PlumeError, match="row 3, column 1 is NaN"):
        Whitening.fit(bad)
    with pytest.raises(PlumeError, match="unknown whitening kind"):
        Whitening.fit(x, "zca")
    with pytest.raises(PlumeError, match=r"shaped \(N, 3\)"):
        Whitening.fit(x)(x[:, :2])
    with pytest.raises(PlumeError, match="not a whitening record"):
        Whitening.from_dict({"kind": "pca"})


def test_detector_scores_are_the_density_of_the_raw_rows():
    """A model that is exactly N(0, I) in z = (x - mu) W makes x ~ N(mu, (1 + s^2) W^-T W^-1) once smoothed to s:
    the detector's score, -log p_s(z) - log|det W|, must be that Gaussian's -log density of the raw rows."""
    x = correlated_rows(300)
    w, s = Whitening.fit(x, "pca"), 0.3
    detector = TableDetector(gaussian_denoiser("edm"), w, s, process="edm")
    rows = np.array([[100.0, 5.0, 0.0], [120.0, 6.0, 0.01], [100.0, 6.0, 0.0]])  # the last breaks the correlation
    inv = np.linalg.inv(w.matrix)
    expected = -multivariate_normal(w.mean, (1 + s ** 2) * inv.T @ inv).logpdf(rows)
    scores = detector.scores(rows)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-3, atol=0.05)  # ODE tolerance 1e-4
    assert int(scores.argmax()) == 2


def test_fit_chooses_the_best_held_out_likelihood_and_round_trips(tmp_path):
    x = correlated_rows(200)
    logs = []
    detector = fit_table_detector(x, tmp_path / "det", grid=dict(weight_decay=(0.0,), steps=(150,), s_min=(0.2, 0.4)),
                                  progress=False, log=logs.append)
    assert len(detector.cells) == 4 and len(logs) == 5  # 2 representations x 2 levels, then the choice
    chosen = [c for c in detector.cells if c.get("chosen")]
    assert len(chosen) == 1 and chosen[0]["validation_nll"] == min(c["validation_nll"] for c in detector.cells)
    assert (detector.whitening.kind, detector.s_min) == (chosen[0]["representation"], chosen[0]["s_min"])
    # the thin correlated ellipse is far easier to model whitened: the Jacobian-corrected likelihood says so
    assert chosen[0]["representation"] == "pca"
    rows = np.array([[100.0, 5.0, 0.0], [100.0, 7.0, 0.0]])  # normal; off the correlation by 2 units
    scores = detector.scores(rows)
    assert scores[1] > scores[0] + 5
    with pytest.raises(PlumeError, match="already holds a run"):
        fit_table_detector(x, tmp_path / "det")
    loaded = load_table_detector(tmp_path / "det")
    torch.testing.assert_close(loaded.scores(rows), scores)
    assert loaded.cells == json.loads(json.dumps(detector.cells))


def test_load_refuses_a_run_that_is_not_a_detector(tmp_path):
    from plume import Denoiser, backbone
    from plume.train import TrainConfig, train

    run = tmp_path / "plain"
    train(Denoiser(backbone("mlp", dim=2, width=8, depth=1), "edm", "edm"), torch.randn(64, 2), run,
          TrainConfig(steps=2, batch_size=8, sample_count=4, sample_steps=2), progress=False)
    with pytest.raises(PlumeError, match="not a table detector"):
        load_table_detector(run)


def test_commands_fit_and_score_raw_rows(tmp_path):
    x = correlated_rows(120)
    normal = tmp_path / "normal.csv"
    with open(normal, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["size", "length", "noise"])
        w.writerows(x.tolist())
    run = tmp_path / "det"
    fit = CliRunner().invoke(main, ["fit-detector", "--table", str(normal), "--out", str(run), "--steps", "60",
                                    "--weight-decay", "1", "--smoothing", "0.3", "--representation", "pca"])
    assert fit.exit_code == 0, fit.output
    assert "pca, weight decay 1, 60 steps, s_min 0.3" in fit.output
    rows = tmp_path / "rows.csv"
    rows.write_text("size,length,noise\n100,5,0\n100,7,0\n")
    out = tmp_path / "scored"
    scored = CliRunner().invoke(main, ["anomaly", str(run), "--table", str(rows), "--out", str(out)])
    assert scored.exit_code == 0, scored.output
    with open(out / "scores.csv") as f:
        got = {r["file"]: float(r["score"]) for r in csv.DictReader(f)}
    expected = load_table_detector(run).scores(np.array([[100, 5, 0], [100, 7, 0]], dtype=float))
    assert got["row 1"] == pytest.approx(float(expected[0]), rel=1e-5)
    assert got["row 2"] > got["row 1"]
    assert json.loads((out / "anomaly.json").read_text())["representation"] == "pca"
    wider = CliRunner().invoke(main, ["anomaly", str(run), "--table", str(rows), "--out", str(tmp_path / "wider"),
                                      "--smoothing", "0.6"])
    assert wider.exit_code == 0 and "instead of the detector's chosen 0.3" in wider.output
    assert json.loads((tmp_path / "wider" / "anomaly.json").read_text())["smoothing"] == 0.6
    refused = CliRunner().invoke(main, ["anomaly", str(run), "--table", str(rows), "--out", str(out),
                                        "--score", "reconstruction"])
    assert refused.exit_code == 2 and "likelihood only" in refused.output
    rows.write_text("size,length,noise\n100,five,0\n")
    bad = CliRunner().invoke(main, ["anomaly", str(run), "--table", str(rows), "--out", str(out)])
    assert bad.exit_code == 1 and "row 1, column 2 ('length')" in bad.output
    wrong = CliRunner().invoke(main, ["fit-detector", "--table", str(normal), "--out", str(run), "--steps", "x"])
    assert wrong.exit_code == 2 and "--steps" in wrong.output
