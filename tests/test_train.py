"""Training: it learns (loss falls, samples land on the modes of a mixture whose answer is known), resumes
exactly, honours its time budget, and rejects bad data with a message that names the problem."""
import csv
import math

import pytest
import torch

from plume import Denoiser, PlumeError, backbone, load_denoiser, sample
from plume.points import toy_data, toy_mixture
from plume.train import TrainConfig, check_data, load_checkpoint, train
from plume.train import trainer as trainer_module



def small_denoiser(seed: int, width: int = 16, depth: int = 1, **kinds) -> Denoiser:
    torch.manual_seed(seed)
    return Denoiser(backbone("mlp", dim=2, width=width, depth=depth), **kinds)


def test_training_lowers_the_loss_and_samples_land_on_the_modes(tmp_path):
    mixture = toy_mixture("8gaussians")  # 8 modes on a ring, std 0.1
    data = toy_data("8gaussians", 20_000, seed=0)
    den = small_denoiser(0, width=64, depth=2, process="edm", prediction="edm", weighting="edm", time_sampling="lognormal")
    probe = data[:4096]

    def probe_loss() -> float:
        with torch.no_grad():
            return float(den.loss(probe, generator=torch.Generator().manual_seed(123)).mean())

    before = probe_loss()
    config = TrainConfig(steps=1000, batch_size=256, lr=5e-3, sample_count=200, checkpoint_every=500)
    result = train(den, data, tmp_path / "run", config, data_info={"name": "8gaussians"}, progress=False)
    assert result.step == 1000 and (tmp_path / "run" / "samples.png").stat().st_size > 10_000
    assert probe_loss() < 0.8 * before

    with open(tmp_path / "run" / "loss.csv", newline="") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 1000 // config.log_every and losses[-1] < losses[0]

    model = load_denoiser(tmp_path / "run")  # EMA weights, rebuilt from config.json
    with torch.no_grad():
        x = sample(model, model.process, (1000, 2), sampler="dpm++2m", steps=20, prediction="x0", seed=0)
    distance = torch.cdist(x.double(), mixture.means)  # (1000, 8)
    close = distance.min(1).values < 3 * 0.1
    counts = torch.bincount(distance.argmin(1)[close], minlength=8)
    assert close.float().mean() > 0.75, f"only {close.float().mean():.2f} of samples within 3 std of a mode"
    assert (counts >= 0.05 * len(x)).all(), f"modes under-covered: {counts.tolist()}"


OPTIONS = dict(batch_size=64, accumulate=2, log_every=5, checkpoint_every=10, ema_decay=0.99, sample_count=20,
               sample_steps=4)
KINDS = dict(process="vp", prediction="eps", time_sampling="uniform")


def final_state(run):
    ck = load_checkpoint(run)
    with open(run / "loss.csv", newline="") as f:
        losses = [(row["step"], row["loss"]) for row in csv.DictReader(f)]
    return ck, losses


def assert_same_run(a, b):
    (ca, la), (cb, lb) = a, b
    assert ca.step == cb.step
    for part in ("model", "ema"):
        for key, value in getattr(ca, part).items():
            assert torch.equal(getattr(cb, part)[key], value), f"{part} {key} differs after resume"
    for index, state in ca.optimizer["state"].items():
        for name, value in state.items():
            assert torch.equal(cb.optimizer["state"][index][name], torch.as_tensor(value)), (index, name)
    assert la == lb


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    data = toy_data("moons", 2000, seed=0)
    train(small_denoiser(0, **KINDS), data, tmp_path / "a", TrainConfig(steps=30, **OPTIONS), progress=False)
    train(small_denoiser(0, **KINDS), data, tmp_path / "b", TrainConfig(steps=20, **OPTIONS), progress=False)
    # a different initialisation: every weight must come from the checkpoint
    resumed = train(small_denoiser(7, **KINDS), data, tmp_path / "b", TrainConfig(steps=30, **OPTIONS), resume=True,
                    progress=False)
    assert resumed.start_step == 20 and resumed.step == 30
    assert_same_run(final_state(tmp_path / "a"), final_state(tmp_path / "b"))


def test_resume_after_a_crash_from_the_last_periodic_checkpoint(tmp_path, monkeypatch):
    data = toy_data("moons", 2000, seed=0)
    train(small_denoiser(0, **KINDS), data, tmp_path / "a", TrainConfig(steps=30, **OPTIONS), progress=False)

    real_step = trainer_module.train_step

    def crash_at_25(denoiser, optimizer, data, config, step, *rest):
        if step == 25:
            raise RuntimeError("simulated crash")
        return real_step(denoiser, optimizer, data, config, step, *rest)

    monkeypatch.setattr(trainer_module, "train_step", crash_at_25)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(small_denoiser(0, **KINDS), data, tmp_path / "b", TrainConfig(steps=30, **OPTIONS), progress=False)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "b").step == 20  # steps 21-25 were lost with the crash, and logged
    train(small_denoiser(3, **KINDS), data, tmp_path / "b", TrainConfig(steps=30, **OPTIONS), resume=True, progress=False)
    assert_same_run(final_state(tmp_path / "a"), final_state(tmp_path / "b"))  # loss.csv rows 21-25 rewritten once


def test_resume_refuses_changed_settings_and_existing_runs_need_resume(tmp_path):
    data = toy_data("moons", 500, seed=0)
    train(small_denoiser(0), data, tmp_path / "run", TrainConfig(steps=2, **OPTIONS), progress=False)
    with pytest.raises(PlumeError, match="already holds a checkpoint; pass resume=True"):
        train(small_denoiser(0), data, tmp_path / "run", TrainConfig(steps=4, **OPTIONS), progress=False)
    with pytest.raises(PlumeError, match="cannot resume with lr=0.1: the run .* was trained with lr=0.005"):
        train(small_denoiser(0), data, tmp_path / "run", TrainConfig(steps=4, **{**OPTIONS, "lr": 0.1}), resume=True,
              progress=False)
    with pytest.raises(PlumeError, match="cannot resume: .* has backbone"):
        train(small_denoiser(0, width=8), data, tmp_path / "run", TrainConfig(steps=4, **OPTIONS), resume=True,
              progress=False)
    with pytest.raises(PlumeError, match="no Plume checkpoint"):
        train(small_denoiser(0), data, tmp_path / "empty", TrainConfig(steps=4, **OPTIONS), resume=True, progress=False)


def test_time_budget_stops_early_with_a_checkpoint(tmp_path):
    data = toy_data("gmm", 500, seed=0)
    result = train(small_denoiser(0), data, tmp_path / "run", TrainConfig(steps=10**6, minutes=0.002, **OPTIONS),
                   progress=False)
    assert 0 < result.step < 10**6
    assert load_checkpoint(tmp_path / "run").step == result.step


@pytest.mark.parametrize("bad, message", [
    (torch.ones(10), r"shaped \(N, D\) .* got shape \(10,\) \(for scalar data use data\[:, None\]\)"),
    (torch.ones(0, 2), "data is empty"),
    (torch.ones(5, 2, dtype=torch.long), "must be floating point, got torch.int64"),
    ("moons", "must be a tensor or array"),
])
def test_bad_data_shapes_and_types(bad, message):
    with pytest.raises(PlumeError, match=message):
        check_data(bad)


@pytest.mark.parametrize("value, kind", [(math.nan, "NaN"), (math.inf, "inf"), (-math.inf, "inf")])
def test_non_finite_data_names_the_first_bad_row(tmp_path, value, kind):
    data = torch.zeros(10, 2)
    data[3, 1] = data[7, 0] = value
    with pytest.raises(PlumeError, match=rf"data row 3 contains {kind} \(2 non-finite rows in all\)"):
        train(small_denoiser(0), data, tmp_path / "run", TrainConfig(steps=1), progress=False)


def test_labels_must_match_the_rows():
    with pytest.raises(PlumeError, match=r"labels must be integers shaped \(4,\)"):
        check_data(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))


def test_conditional_training_with_labels(tmp_path):
    torch.manual_seed(0)
    den = Denoiser(backbone("mlp", dim=2, width=16, depth=1, num_classes=3))
    data, labels = toy_mixture("gmm").sample(600, generator=torch.Generator().manual_seed(0))
    result = train(den, data.float(), tmp_path / "run", TrainConfig(steps=3, **OPTIONS), cond=labels, progress=False)
    assert result.step == 3
    with torch.no_grad():
        out = load_denoiser(tmp_path / "run")(torch.zeros(3, 2), torch.full((3,), 0.5), torch.tensor([0, 1, 2]))
    assert out.shape == (3, 2)


def test_a_non_finite_loss_skips_the_update_is_counted_and_reported(tmp_path, monkeypatch, watch_steps):
    data = toy_data("moons", 2000, seed=0)
    real_loss = Denoiser.loss
    bad_steps = {3, 7}
    calls = {"n": 0}

    def loss_with_bad_steps(self, *args, **kwargs):  # two micro-batches per step (OPTIONS: accumulate=2)
        step, calls["n"] = calls["n"] // 2, calls["n"] + 1
        value = real_loss(self, *args, **kwargs)
        return value * float("nan") if step in bad_steps else value

    monkeypatch.setattr(Denoiser, "loss", loss_with_bad_steps)
    seen = watch_steps(lambda denoiser: denoiser.backbone.parameters())
    with pytest.warns(UserWarning, match="2 of 12 steps were skipped"):
        result = train(small_denoiser(0, **KINDS), data, tmp_path / "run", TrainConfig(steps=12, **OPTIONS),
                       progress=False)
    assert result.skipped_steps == 2 and result.step == 12 and math.isfinite(result.last_loss)
    assert {s for s, (skipped, _) in seen.items() if skipped} == bad_steps
    assert all(unchanged == skipped for skipped, unchanged in seen.values())  # skipped steps leave the weights
    with open(tmp_path / "run" / "loss.csv", newline="") as f:
        assert [r["skipped_steps"] for r in csv.DictReader(f)] == ["1", "2", "2"]  # at steps 5, 10, 12


def test_a_diverged_run_stops_with_advice(tmp_path, monkeypatch):
    monkeypatch.setattr(Denoiser, "loss", lambda self, *a, **k: torch.full((8,), float("inf"), requires_grad=True))
    with pytest.raises(PlumeError, match="10 steps in a row had a non-finite loss"):
        train(small_denoiser(0, **KINDS), toy_data("moons", 500, seed=0), tmp_path / "run",
              TrainConfig(steps=30, **OPTIONS), progress=False)


def test_a_compiled_backbone_trains_like_the_eager_one(tmp_path):
    # torch.compile (inductor, C++ on the CPU) compiles in place: same module, same checkpoint keys, same losses
    # to float rounding. About 40 s of compiling on 2 cores.
    data = toy_data("moons", 2000, seed=0)
    config = dict(steps=4, batch_size=64, log_every=1, sample_count=8, sample_steps=2)
    eager = train(small_denoiser(0), data, tmp_path / "eager", TrainConfig(**config), progress=False)
    compiled = train(small_denoiser(0), data, tmp_path / "compiled", TrainConfig(compile=True, **config), progress=False)
    assert load_checkpoint(tmp_path / "compiled").model.keys() == load_checkpoint(tmp_path / "eager").model.keys()
    assert compiled.last_loss == pytest.approx(eager.last_loss, rel=1e-4)


def test_a_denoiser_trains_as_a_trainable(tmp_path):
    """train() takes a Denoiser through its Trainable, DenoisingLoss, and takes that Trainable itself the same way."""
    from plume.train import DenoisingLoss, Trainable

    data = toy_data("moons", 500, seed=0)
    assert isinstance(DenoisingLoss(small_denoiser(0)), Trainable)
    train(small_denoiser(0, **KINDS), data, tmp_path / "a", TrainConfig(steps=4, **OPTIONS), progress=False)
    train(DenoisingLoss(small_denoiser(0, **KINDS)), data, tmp_path / "b", TrainConfig(steps=4, **OPTIONS),
          progress=False)
    assert_same_run(final_state(tmp_path / "a"), final_state(tmp_path / "b"))
