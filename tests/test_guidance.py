"""Classifier-free guidance and autoguidance (plume.guidance) and label dropout in training batches."""
import pytest
import torch

import plume
from plume import Denoiser, backbone
from plume.guidance import autoguidance, classifier_free_guidance
from plume.train import draw_micro_batch
from plume.train.data import TensorData


class Recording(torch.nn.Module):
    """A stand-in denoiser whose x0 prediction is x + label (null label 3 -> +0), recording each call's batch."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.backbone = torch.nn.Module()
        self.backbone.null_condition = lambda b, device: torch.full((b,), 3, dtype=torch.long, device=device)

    def forward(self, x, t, cond=None):
        self.calls.append(len(x))
        shift = torch.where(cond == 3, torch.zeros_like(cond), cond + 1).float()  # (B,) null -> 0, class c -> c + 1
        return x + shift[:, None]


def test_classifier_free_guidance_is_one_batched_forward_of_the_formula():
    model = Recording()
    x, t = torch.zeros(4, 2), torch.full((4,), 0.5)
    labels = torch.tensor([0, 1, 2, 0])
    for scale in (0.0, 1.0, 3.0):
        model.calls.clear()
        out = classifier_free_guidance(model, labels, scale)(x, t)
        assert model.calls == [8]  # conditional and unconditional halves in one call
        assert torch.allclose(out, (scale * (labels + 1).float())[:, None].expand(4, 2))  # null + s (cond - null)
    negative = classifier_free_guidance(model, labels, 2.0, negative=torch.tensor(2))(x, t)  # away from class 2 (+3)
    assert torch.allclose(negative, (3 + 2.0 * ((labels + 1).float() - 3))[:, None].expand(4, 2))


def test_autoguidance_extrapolates_from_the_weaker_model():
    good = lambda x, t, c: x + 1.0  # noqa: E731
    weak = lambda x, t, c: x + 0.25  # noqa: E731
    out = autoguidance(good, weak, None, 2.0)(torch.zeros(3, 2), torch.ones(3))
    assert torch.allclose(out, torch.full((3, 2), 0.25 + 2.0 * 0.75))


def test_guidance_needs_a_conditional_model():
    model = Denoiser(backbone("mlp", dim=2, width=8), "vp", "eps")
    with pytest.raises(plume.PlumeError, match="conditional model"):
        classifier_free_guidance(model, torch.tensor([0]), 2.0)(torch.zeros(1, 2), torch.ones(1))


def test_label_dropout_draws_the_null_label_independently_of_the_split():
    model = Denoiser(backbone("mlp", dim=2, width=8, num_classes=5), "vp", "eps")
    data = TensorData(torch.randn(1000, 2), torch.arange(1000) % 5)
    whole = draw_micro_batch(data, model, 480, 0, 7, 0, labelled=True, label_dropout=0.25)
    dropped = float((whole.labels == 5).float().mean())
    assert 0.18 < dropped < 0.32  # about a quarter, 480 draws
    halves = [draw_micro_batch(data, model, 480, 0, 7, 0, a, b, labelled=True, label_dropout=0.25) for a, b in
              ((0, 240), (240, 480))]
    assert torch.equal(torch.cat([h.labels for h in halves]), whole.labels)
    plain = draw_micro_batch(data, model, 480, 0, 7, 0, labelled=True)
    assert not (plain.labels == 5).any() and torch.equal(plain.x0, whole.x0) and torch.equal(plain.noise, whole.noise)


def test_cli_conditional_training_and_guided_sampling(tmp_path):
    import json

    import numpy as np
    from click.testing import CliRunner

    from plume.cli import main
    from plume.train import load_denoiser

    def run(*args, code=0):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert "Traceback" not in result.output and result.exit_code == code, result.output
        return result.output

    out = tmp_path / "run"
    # lr 0.01 without warm-up: 3 steps are enough for labels to change samples by many uint8 levels.
    run("train", "--data", "digits", "--conditional", "--out", out, "--backbone-option", "channels=[8,16]",
        "--backbone-option", "norm_groups=4", "--backbone-option", "head_channels=8", "--steps", "3",
        "--batch-size", "16", "--sample-count", "4", "--quiet", "--lr", "0.01", "--warmup-steps", "0")
    assert json.loads((out / "checkpoint" / "config.json").read_text())["training"]["label_dropout"] == 0.1
    common = ["--n", "6", "--steps", "3", "--no-evaluate"]  # plume sample's default sampler, dpm++2m

    def sample(*flags):
        path = tmp_path / f"s{len(list(tmp_path.glob('s*.npz')))}.npz"
        run("sample", out, *common, *flags, "--out", path)
        return np.load(path)["arr_0"].astype(int)  # (6, 8, 8, 1)

    guided = sample("--labels", "3,7", "--guidance", "2.5")
    assert guided.shape == (6, 8, 8, 1)
    # The same seeds drawn by plume.sample from model functions written here: classifier-free guidance
    # (Ho & Salimans 2022, eq. 6, for x0 with s = 1 + w): D(x, t, null) + s (D(x, t, c) - D(x, t, null)), two plain
    # calls of the loaded denoiser; the null label is the extra row after the 10 classes.
    model = load_denoiser(out)  # the EMA weights, as plume sample loads

    def by_hand(fn):
        with torch.no_grad():
            x = plume.sample(fn, model.process, (6, 1, 8, 8), sampler="dpm++2m", steps=3, seeds=list(range(6)))
        return np.round((x.clamp(-1, 1).numpy() + 1) * 127.5).astype(int).transpose(0, 2, 3, 1)  # uint8 convention

    asked, null = torch.tensor([3, 7, 3, 7, 3, 7]), torch.full((6,), 10)  # sample k asks for labels[k mod 2]

    def cfg(scale):
        return lambda x, t: model(x, t, null) + scale * (model(x, t, asked) - model(x, t, null))

    assert np.abs(guided - by_hand(cfg(2.5))).max() <= 1  # uint8 rounding
    threes, sevens = sample("--labels", "3"), sample("--labels", "7")  # guidance 1: the conditional model alone
    assert np.abs(threes - by_hand(lambda x, t: model(x, t, torch.full((6,), 3)))).max() <= 1
    assert np.abs(threes - sevens).max() > 5, "labels change the samples of the same seeds"
    unconditional = sample()  # no labels: the null label throughout
    assert np.abs(unconditional - by_hand(lambda x, t: model(x, t, null))).max() <= 1
    assert np.abs(sample("--labels", "3", "--guidance", "0") - unconditional).max() <= 1, "scale 0: unconditional"
    assert np.abs(threes - unconditional).max() > 5
    mixed = sample("--labels", "3,7")
    assert np.abs(mixed[0::2] - threes[0::2]).max() <= 1 and np.abs(mixed[1::2] - sevens[1::2]).max() <= 1
    assert np.abs(guided - mixed).max() > 5, "the guidance scale changes the samples"
    assert "label 12 is not a class" in run("sample", out, "--labels", "12", "--no-evaluate", code=2)
    assert "--label-dropout needs --conditional" in run("train", "--data", "digits", "--label-dropout", "0.2",
                                                         "--out", tmp_path / "x", code=2)
