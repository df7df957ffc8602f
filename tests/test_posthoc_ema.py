"""Post-hoc EMA (EDM2): the power-function EMA averages exactly with weights ~ tau^gamma, the profile fit is exact
where it should be and close where it can be, the snapshots written in training rebuild the EMA of another width,
they resume exactly, and `plume ema` writes a run that loads and samples."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from plume import Denoiser, PlumeError, backbone, load_denoiser
from plume.cli import main
from plume.points import toy_data
from plume.train import TrainConfig, train
from plume.train.ema_snapshots import list_snapshots, posthoc_ema, read_snapshot, snapshot_path, write_snapshot
from plume.train.power_ema import PowerEMA, gamma_of, profile_weights, sigma_rel_of


def test_gamma_and_sigma_rel_invert_each_other_with_edm2s_values():
    assert gamma_of(0.05) == pytest.approx(16.97, abs=0.01)  # EDM2 sec. 3.1: sigma_rel 0.05 <-> gamma 16.97
    assert gamma_of(0.10) == pytest.approx(6.94, abs=0.01)  # and 0.10 <-> 6.94
    for width in (0.01, 0.03, 0.08, 0.2, 0.27):
        assert sigma_rel_of(gamma_of(width)) == pytest.approx(width, rel=1e-9)
    for bad in (0.0, -0.1, 0.3):
        with pytest.raises(PlumeError, match="sigma_rel must lie in"):
            gamma_of(bad)


class Scalar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))


def trajectory(steps: int) -> np.ndarray:
    """theta after each 1-based step t: a drifting, oscillating, noisy path (seeded)."""
    t = np.arange(1, steps + 1)
    return np.sin(t / 37.0) + t / 150.0 + 0.3 * np.random.default_rng(0).standard_normal(steps)


def run_power_emas(widths, steps, every, folder):
    """PowerEMAs of a scalar driven along trajectory(steps), snapshotted every `every` steps into `folder`;
    returns their final averages."""
    model, path = Scalar(), trajectory(steps)
    emas = [PowerEMA(model, w) for w in widths]
    for step in range(steps):
        model.theta.data.fill_(path[step])
        for e in emas:
            e.update(model, step)
        if (step + 1) % every == 0:
            for e in emas:
                write_snapshot(folder, e.state_dict(), e.sigma_rel, step + 1)
    return {e.sigma_rel: float(e.shadow["theta"]) for e in emas}


def test_power_ema_weights_each_step_by_the_telescoped_power_profile(tmp_path):
    steps, width = 300, 0.1
    final = run_power_emas([width], steps, 1000, tmp_path)[width]
    g, t = gamma_of(width), np.arange(1, steps + 1)
    weights = (t ** (g + 1) - (t - 1) ** (g + 1)) / steps ** (g + 1)  # prod of betas telescopes (module doc, eq. 2)
    assert weights.sum() == pytest.approx(1.0)
    assert final == pytest.approx(float(weights @ trajectory(steps)), rel=1e-10)


def test_profile_fit_is_exact_on_a_snapshot_and_close_between_widths():
    steps = list(range(50, 1001, 50)) * 2
    gammas = [gamma_of(0.05)] * 20 + [gamma_of(0.10)] * 20
    w, error = profile_weights(steps, gammas, 1000, gamma_of(0.10))
    assert error < 1e-12 and w[-1] == pytest.approx(1.0) and np.abs(w[:-1]).max() < 1e-6
    for width in (0.06, 0.08, 0.12):
        assert profile_weights(steps, gammas, 1000, gamma_of(width))[1] < 1e-3
    assert profile_weights(steps, gammas, 1000, gamma_of(0.25))[1] > 1e-3  # far outside the snapshots: a poor fit


def test_snapshots_rebuild_the_ema_of_another_width(tmp_path):
    finals = run_power_emas([0.05, 0.08, 0.10], 1000, 50, tmp_path / "run")
    for path in (tmp_path / "run" / "ema-snapshots").glob("sigma0.080-*"):
        path.unlink()  # the 0.08 average is the answer; its snapshots may not help
    result = posthoc_ema(tmp_path / "run", 0.08)
    assert result.step == 1000 and result.fit_error < 1e-3 and len(result.snapshots) == 40
    spread = abs(finals[0.05] - finals[0.10])
    assert abs(float(result.state["theta"]) - finals[0.08]) < 0.1 * spread  # much nearer than either neighbour
    exact = posthoc_ema(tmp_path / "run", 0.05)  # a stored width: its own last snapshot
    assert float(exact.state["theta"]) == pytest.approx(finals[0.05], abs=1e-9)
    with pytest.raises(PlumeError, match="no EMA snapshot .* at or before step 10"):
        posthoc_ema(tmp_path / "run", 0.08, step=10)
    with pytest.raises(PlumeError, match="last EMA snapshot .* is at step 1000; an EMA after step 1001"):
        posthoc_ema(tmp_path / "run", 0.08, step=1001)
    with pytest.raises(PlumeError, match="holds no EMA snapshots"):
        posthoc_ema(tmp_path / "empty", 0.08)


OPTIONS = dict(batch_size=64, log_every=5, checkpoint_every=7, sample_count=20, sample_steps=4,
               ema_profiles=(0.05, 0.1), ema_snapshot_every=5)


def small_denoiser(seed: int) -> Denoiser:
    torch.manual_seed(seed)
    return Denoiser(backbone("mlp", dim=2, width=16, depth=1), process="vp", prediction="eps")


def test_training_writes_snapshots_resumes_them_exactly_and_plume_ema_makes_a_run(tmp_path):
    data = toy_data("moons", 2000, seed=0)
    train(small_denoiser(0), data, tmp_path / "a", TrainConfig(steps=20, **OPTIONS), progress=False)
    steps = sorted({s.step for s in list_snapshots(tmp_path / "a")})
    assert steps == [5, 7, 10, 14, 15, 20]  # every 5 steps, and at each checkpoint (every 7) for the resume
    train(small_denoiser(0), data, tmp_path / "b", TrainConfig(steps=14, **OPTIONS), progress=False)
    train(small_denoiser(3), data, tmp_path / "b", TrainConfig(steps=20, **OPTIONS), resume=True, progress=False)
    for width in (0.05, 0.1):
        a, b = (read_snapshot(snapshot_path(tmp_path / r, width, 20)) for r in "ab")
        assert all(torch.equal(a[k], b[k]) for k in a), f"the resumed EMA of width {width} differs"

    snapshot_path(tmp_path / "b", 0.1, 20).unlink()  # the 0.05 snapshot is there: the message names the missing one
    with pytest.raises(PlumeError, match="cannot resume the power-function EMA of width 0.1: .*step0000020"):
        train(small_denoiser(0), data, tmp_path / "b", TrainConfig(steps=25, **OPTIONS), resume=True, progress=False)

    runner = CliRunner()
    listed = runner.invoke(main, ["ema", str(tmp_path / "a")])
    assert listed.exit_code == 0 and "sigma_rel 0.05: 6 snapshots, steps 5-20" in listed.output
    made = runner.invoke(main, ["ema", str(tmp_path / "a"), "--sigma-rel", "0.07", "--out", str(tmp_path / "c")])
    assert made.exit_code == 0, made.output
    assert "after step 20: 12 snapshots combined" in made.output
    assert (tmp_path / "c" / "ema-profile.png").stat().st_size > 5000
    model = load_denoiser(tmp_path / "c")  # samples and evaluates like any run
    expected = posthoc_ema(tmp_path / "a", 0.07).state
    assert all(torch.equal(v, expected[k]) for k, v in model.backbone.state_dict().items())
    again = runner.invoke(main, ["ema", str(tmp_path / "a"), "--sigma-rel", "0.07", "--out", str(tmp_path / "c")])
    assert again.exit_code == 1 and "already holds a run" in again.output
    for args, message in ((["--sigma-rel", "0.07"], "--sigma-rel needs --out"), (["--sigma-rel", "0.5"], "0.5"),
                          (["--out", "x"], "--out and --step need --sigma-rel")):
        bad = runner.invoke(main, ["ema", str(tmp_path / "a"), *args])
        assert bad.exit_code == 2 and message in bad.output, bad.output
    old = tmp_path / "old"  # a run from before post-hoc EMA (no ema_profiles in its config.json) still resumes
    train(small_denoiser(0), data, old, TrainConfig(steps=3, batch_size=64, sample_count=4), progress=False)
    config = json.loads((old / "checkpoint" / "config.json").read_text())
    del config["training"]["ema_profiles"], config["training"]["ema_snapshot_every"]
    (old / "checkpoint" / "config.json").write_text(json.dumps(config))
    assert train(small_denoiser(0), data, old, TrainConfig(steps=5, batch_size=64, sample_count=4), resume=True,
                 progress=False).step == 5
    refused = runner.invoke(main, ["train", "--data", "moons", "--out", str(tmp_path / "d"), "--ema-profiles",
                                   "0.05,0.4", "--steps", "2"])
    assert refused.exit_code == 1 and "ema_profiles must be distinct widths" in refused.output, refused.output
