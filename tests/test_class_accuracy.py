"""Class accuracy (plume.images.evaluation.class_accuracy) and `plume eval` of class-conditional runs: balanced labels,
guidance, the judge's own accuracy, the guidance sweep, and errors that say what to change."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import plume
from plume.cli import main
from plume.images import evaluate as image_evaluation
from plume.draw import draw
from plume.images.evaluation.class_accuracy import (accuracy_from_predictions, balanced_labels, class_accuracy,
    confusion_plot, guidance_plot)
from plume.images.evaluation.features import feature_network
from plume.train import load_denoiser

# lr 0.01 without warm-up: 3 steps move the zero-initialised output layer far enough that labels and guidance change
# the samples by many uint8 levels, so comparisons of samples can tell a label or a scale that is ignored.
TINY = ["--backbone-option", "channels=[8,16]", "--backbone-option", "norm_groups=4", "--backbone-option",
        "head_channels=8", "--steps", "3", "--batch-size", "16", "--sample-count", "4", "--quiet", "--lr", "0.01",
        "--warmup-steps", "0"]


def run(*args, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("PLUME_CACHE", str(tmp_path / "cache"))
    # The judge's quality is not under test here: 20 classifier steps instead of 400 keep each test short.
    monkeypatch.setattr(image_evaluation, "feature_network", lambda *a, **k: feature_network(*a, **{**k, "classifier_steps": 20}))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cond") / "run"
    run("train", "--data", "digits", "--conditional", "--holdout", "0.05", "--out", out, *TINY)
    return out


@pytest.fixture(scope="module")
def weak_run(tmp_path_factory):
    """A weaker run of the same data and conditioning: the conditional run's recipe trained 1 step instead of 3."""
    out = tmp_path_factory.mktemp("weak") / "run"
    run("train", "--data", "digits", "--conditional", "--holdout", "0.05", "--out", out, *TINY, "--steps", "1")
    return out


def to_pixels(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C), round((x + 1) * 127.5): the .npz convention, by hand."""
    return np.round((x.clamp(-1, 1).numpy() + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)


def sampled_by_hand(fn, denoiser, seeds, sampler="euler", steps=2) -> np.ndarray:
    """uint8 samples of the seeds drawn by plume.sample from a model function fn(x_t, t) -> x0_hat written here."""
    with torch.no_grad():
        x = plume.sample(fn, denoiser.process, (len(seeds), 1, 8, 8), sampler=sampler, steps=steps, seeds=seeds,
                         prediction="x0")
    return to_pixels(x)


class ByFirstPixel:
    """A stand-in judge: an image's class is its first pixel's value mod 3."""

    classes = torch.tensor([0, 1, 2])

    def predict(self, images: np.ndarray) -> np.ndarray:
        return images[:, 0, 0, 0].astype(np.int64) % 3


def test_accuracy_and_confusion_of_known_predictions(tmp_path):
    requested = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    predicted = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    result = accuracy_from_predictions(requested, predicted, classes=[0, 1, 2, 3])
    assert result.overall == pytest.approx(8 / 10) and result.n == 10
    assert result.per_class == {0: 0.75, 1: 0.5, 2: 1.0, 3: None}  # class 3 was never asked for
    assert result.confusion.tolist() == [[3, 1, 0, 0], [0, 1, 1, 0], [0, 0, 4, 0], [0, 0, 0, 0]]
    report = json.loads(json.dumps(result.to_dict()))
    assert report["overall"] == 0.8 and report["per_class"]["3"] is None and report["requested"]["2"] == 4
    # Through a classifier: first pixels 0..5 for classes 0, 1, 2, 0, 1, 2 -> judged 0, 1, 2, 0, 1, 2 (all right);
    # a seventh image asked for class 2 with first pixel 7 is judged class 1.
    images = np.zeros((7, 4, 4, 1), np.uint8)
    images[:, 0, 0, 0] = [0, 1, 2, 3, 4, 5, 7]
    judged = class_accuracy(images, [0, 1, 2, 0, 1, 2, 2], ByFirstPixel())
    assert judged.overall == pytest.approx(6 / 7) and judged.confusion[2].tolist() == [0, 1, 2]
    assert balanced_labels(3, 7) == [0, 1, 2, 0, 1, 2, 0]
    assert confusion_plot(tmp_path / "c.png", judged).stat().st_size > 5000
    assert guidance_plot(tmp_path / "g.png", [0, 1, 2], [0.1, 0.8, 0.95], [3.0, 1.0, 1.5]).stat().st_size > 5000


def test_bad_inputs_say_what_to_change():
    images = np.zeros((2, 4, 4, 1), np.uint8)
    with pytest.raises(plume.PlumeError, match=r"requested label 12 is not one of the classes 0\.\.2; ask only"):
        class_accuracy(images, [0, 12], ByFirstPixel())
    with pytest.raises(plume.PlumeError, match="2 samples need 2 requested labels"):
        class_accuracy(images, [0, 1, 2], ByFirstPixel())
    with pytest.raises(plume.PlumeError, match=r"cannot cover 10 classes; draw at least 10 \(--n\)"):
        balanced_labels(10, 4)


def test_guidance_scale_changes_the_samples_and_scale_0_is_the_unconditional_model(conditional_run):
    denoiser = load_denoiser(conditional_run)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # 3 steps leave the zero-initialised output layer near 0: random weights make labels matter
        for p in denoiser.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=generator))
    options, seeds = dict(sampler="euler", steps=3, grid=None), [0, 1, 2, 3]
    unconditional = draw(denoiser, (1, 8, 8), seeds, 4, options)  # (4, 1, 8, 8), the null label throughout
    at = {s: draw(denoiser, (1, 8, 8), seeds, 4, options, labels=[3], guidance=s) for s in (0.0, 1.0, 4.0)}
    assert torch.allclose(at[0.0], unconditional, atol=1e-5)
    assert not torch.allclose(at[4.0], at[1.0], atol=1e-3) and not torch.allclose(at[4.0], at[0.0], atol=1e-3)


def test_eval_of_a_conditional_run_reports_class_accuracy_and_the_sweep(conditional_run, tmp_path):
    out = tmp_path / "eval.json"
    output = run("eval", conditional_run, "--n", "20", "--steps", "2", "--sampler", "euler", "--guidance", "3",
                 "--guidance-sweep", "0,3", "--out", out)
    report = json.loads(out.read_text())
    assert report["sampling"]["guidance"] == 3 and report["sampling"]["guidance_kind"] == "classifier-free"
    accuracy = report["class_accuracy"]
    for key in ("overall", "per_class", "requested", "confusion", "guidance", "plot"):
        assert key in accuracy, key
    assert accuracy["requested"] == {str(k): 2 for k in range(10)}  # balanced: 2 samples per digit
    assert np.array(accuracy["confusion"]).sum() == 20 and 0 <= accuracy["overall"] <= 1
    judge = report["judge"]
    assert judge["n_held_out"] == 90 and 0 <= judge["held_out_accuracy"] <= 1 and "separately" in judge["trained_on"]
    assert (tmp_path / "eval-confusion.png").is_file() and (tmp_path / "eval-guidance.png").stat().st_size > 5000
    points = report["guidance_sweep"]["points"]
    assert [p["guidance"] for p in points] == [0, 3] and points[1]["accuracy"] == accuracy["overall"]  # reused
    assert "class accuracy" in output and "held-out" in output and "guidance sweep: s=0" in output
    # The same figures from class_accuracy on samples drawn here: seeds 0..19, sample k asking for class k mod 10,
    # classifier-free guidance written by hand (Ho & Salimans 2022: D(null) + s (D(c) - D(null)), null = class 10),
    # judged by the same judge (the classifier plume eval trains on the run's training images, seed 0, 20 steps as
    # the fixture sets).
    from plume.images.evaluation.classifier import train_classifier
    loaded = plume.load(conditional_run)
    data = loaded.modality.data_from_info(loaded.info)
    judge = train_classifier(data.train_pixels, data.train_labels, seed=0, steps=20)
    model, asked, null = loaded.denoiser, torch.tensor([k % 10 for k in range(20)]), torch.full((20,), 10)

    def judged(scale):
        guided = lambda x, t: model(x, t, null) + scale * (model(x, t, asked) - model(x, t, null))  # noqa: E731
        return class_accuracy(sampled_by_hand(guided, model, list(range(20))), asked.tolist(), judge)

    at_3, at_0 = judged(3.0), judged(0.0)
    assert accuracy["overall"] == at_3.overall and accuracy["confusion"] == at_3.confusion.tolist()
    assert points[0]["accuracy"] == at_0.overall
    assert points[0]["per_class"] == {str(k): v for k, v in at_0.per_class.items()}


def test_autoguidance_from_the_command_line(conditional_run, weak_run, tmp_path):
    # A run guided by itself is the conditional model: D_weak + s (D - D_weak) = D at any scale.
    common = ["--n", "6", "--labels", "0-9", "--steps", "2", "--sampler", "euler", "--no-evaluate"]
    run("sample", conditional_run, *common, "--out", tmp_path / "plain.npz")
    run("sample", conditional_run, *common, "--autoguidance", conditional_run, "--guidance", "3",
        "--out", tmp_path / "auto.npz")
    plain, auto = np.load(tmp_path / "plain.npz")["arr_0"], np.load(tmp_path / "auto.npz")["arr_0"]
    assert plain.shape == (6, 8, 8, 1) and np.abs(plain.astype(int) - auto).max() <= 1  # uint8 rounding
    # Guided by a different, weaker run (1 training step instead of 3): Karras et al. 2024, eq. 2,
    # D_w(x, t, c) = D_weak(x, t, c) + w (D_main(x, t, c) - D_weak(x, t, c)), written here from the two loaded
    # denoisers (their EMA weights, as plume sample loads) and sampled on the same seeds with plume.sample.
    run("sample", conditional_run, *common, "--autoguidance", weak_run, "--guidance", "3",
        "--out", tmp_path / "weak.npz")
    guided = np.load(tmp_path / "weak.npz")["arr_0"].astype(int)
    main_model, weak_model = load_denoiser(conditional_run), load_denoiser(weak_run)
    labels = torch.tensor([k % 10 for k in range(6)])  # --labels 0-9: sample k asks for class k mod 10

    def by_formula(x, t):
        d_main, d_weak = main_model(x, t, labels), weak_model(x, t, labels)
        return d_weak + 3.0 * (d_main - d_weak)

    expected = sampled_by_hand(by_formula, main_model, list(range(6))).astype(int)
    assert np.abs(guided - expected).max() <= 1  # uint8 rounding
    conditional = sampled_by_hand(lambda x, t: main_model(x, t, labels), main_model, list(range(6))).astype(int)
    assert np.abs(plain - conditional).max() <= 1, "unguided: the conditional model alone"
    assert np.abs(guided - plain).max() > 20, "the weaker run's guidance changes the samples (not ignored)"


def test_class_accuracy_of_an_unconditional_run_or_a_samples_file_is_refused(conditional_run, tmp_path):
    out = tmp_path / "plain"
    run("train", "--data", "digits", "--out", out, *TINY)
    output = run("sample", conditional_run, "--labels", "3", "--autoguidance", out, "--no-evaluate", code=1)
    assert "its class count is None, the run" in output and "same data and conditioning" in output
    for flags in (["--guidance-sweep", "1,2"], ["--guidance", "2"]):
        output = run("eval", out, "--n", "10", *flags, code=1)
        assert "trained without class labels" in output and "--conditional" in output and f"drop {flags[0]}" in output
    np.savez(tmp_path / "s.npz", arr_0=np.zeros((4, 8, 8, 1), np.uint8))
    assert "--guidance needs a run" in run("eval", tmp_path / "s.npz", "--ref", "digits", "--guidance", "2", code=2)
    assert "each >= 0" in run("eval", out, "--guidance-sweep", "-1,2", code=2)
