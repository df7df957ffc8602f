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

    def run(*args, code=0):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert "Traceback" not in result.output and result.exit_code == code, result.output
        return result.output

    out = tmp_path / "run"
    run("train", "--data", "digits", "--conditional", "--out", out, "--backbone-option", "channels=[8,16]",
        "--backbone-option", "norm_groups=4", "--backbone-option", "head_channels=8", "--steps", "3",
        "--batch-size", "16", "--sample-count", "4", "--quiet")
    assert json.loads((out / "checkpoint" / "config.json").read_text())["training"]["label_dropout"] == 0.1
    run("sample", out, "--n", "6", "--labels", "3,7", "--guidance", "2.5", "--steps", "3", "--no-evaluate",
        "--out", tmp_path / "s.npz")
    assert np.load(tmp_path / "s.npz")["arr_0"].shape == (6, 8, 8, 1)
    assert "label 12 is not a class" in run("sample", out, "--labels", "12", "--no-evaluate", code=2)
    assert "--label-dropout needs --conditional" in run("train", "--data", "digits", "--label-dropout", "0.2",
                                                         "--out", tmp_path / "x", code=2)
