"""Cascades: the super-resolution backbone (shapes, conditioning, options), conditioning augmentation as a function of
its generator, the trainer's ConditionedData hook, checkpoints, cascade sampling per seed, the CLI, and the errors."""
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from plume import Denoiser, PlumeError
from plume.backbones import backbone, backbone_name
from plume.images.super_resolution import (SuperResolution, augment_condition, downsample, random_augmentation,
    residual_std)
from plume.images.cascade import check_chain, sample_cascade, stage_seed, super_resolve
from plume.cli import main
from plume.images import load_image_data
from plume.images.super_resolution_data import SuperResolutionData
from plume.train import TrainConfig, load_checkpoint, load_denoiser, read_config, train, train_step
from plume.train.optimizer import adamw

INNER = {"channels": [16, 32], "blocks_per_level": 1, "attention_levels": [], "norm_groups": 8, "head_channels": 16,
         "embed_features": 16}


def sr_net(low=8, high=16, channels=3, inner="unet", **options):
    torch.manual_seed(0)
    inner_options = INNER if inner == "unet" else {"patch_size": 2, "width": 32, "depth": 1, "heads": 2,
                                                   "embed_features": 16}
    return backbone("super_resolution", low_size=low, high_size=high, in_channels=channels, inner=inner,
                    inner_options={**inner_options, **options})


def perturb(net, scale=0.05):
    """Move every parameter off its (partly zero) initialisation so outputs depend on all of them."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return net


def edm(net):
    return Denoiser(net, "edm", "edm", "edm", "lognormal", sigma_data=0.5)


def test_wrapper_shapes_and_conditioning_channels():
    net = perturb(sr_net())
    assert net.inner.options()["in_channels"] == 7 and net.inner.options()["out_channels"] == 3
    x, n, low = torch.randn(2, 3, 16, 16), torch.zeros(2), torch.randn(2, 3, 8, 8)
    out = net(x, n, low)
    assert out.shape == (2, 3, 16, 16)
    torch.testing.assert_close(net(x, n, augment_condition(low, 0.0)), out, msg="a plain image means level 0")
    assert (net(x, n, augment_condition(low, 0.3)) - out).abs().max() > 1e-4, "the level reaches the network"
    assert (net(x, n, low.flip(-1)) - out).abs().max() > 1e-4, "the image reaches the network"
    cl = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last), n, low)
    torch.testing.assert_close(cl, out, rtol=1e-4, atol=1e-5)
    dit = sr_net(inner="dit")
    assert dit.inner.options()["image_size"] == [16, 16] and dit(x, n, low).shape == (2, 3, 16, 16)


class Residualless(torch.nn.Module):
    """The same network as a residual stage, without its offset: what the residual stage must reduce to."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, noise_level, cond=None):
        return self.net(x, noise_level, cond)


@pytest.mark.parametrize("process", ["edm", "vp"])
def test_residual_stage_denoises_the_residual_to_the_upsampled_condition(process):
    net = perturb(sr_net())
    assert net.residual and net.options()["residual"] is True
    sr = Denoiser(net, process, "edm" if process == "edm" else "eps", sigma_data=0.1)
    plain = Denoiser(Residualless(net), process, "edm" if process == "edm" else "eps", sigma_data=0.1)
    high, cond = torch.rand(3, 3, 16, 16) * 2 - 1, augment_condition(torch.randn(3, 3, 8, 8), 0.2)
    up = torch.nn.functional.interpolate(cond[:, :3], size=(16, 16), mode="bicubic", align_corners=False)
    torch.testing.assert_close(net.offset(high, cond), up)
    t = torch.tensor([0.3, 0.6, 0.9]) if process == "vp" else torch.tensor([0.05, 0.5, 5.0])
    x_t = torch.randn(3, 3, 16, 16)
    alpha = sr.process.alpha(t)[:, None, None, None]
    # x_t - alpha up = alpha r + sigma eps: the residual's noisy image; D = up + D_r (plume.denoiser)
    torch.testing.assert_close(sr(x_t, t, cond), up + plain(x_t - alpha * up, t, cond))
    noise = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(sr.loss(high, cond=cond, t=t, noise=noise),
                               plain.loss(high - up, cond=cond, t=t, noise=noise))
    assert not torch.allclose(sr.loss(high, cond=cond, t=t, noise=noise),
                              plain.loss(high, cond=cond, t=t, noise=noise)), "the offset changes the loss"
    off = backbone("super_resolution", low_size=8, high_size=16, in_channels=3, inner_options=INNER, residual=False)
    assert off.offset(high, cond) is None and Denoiser(off, process).offset(high, cond) is None


def test_residual_std_is_the_rms_of_what_bicubic_misses():
    smooth = torch.ones(2, 1, 16, 16) * 0.3
    assert residual_std(smooth, 8) == pytest.approx(0.0, abs=1e-6)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1  # (16, 16) +-1
    assert residual_std(checker.expand(2, 1, 16, 16), 8) == pytest.approx(1.0, abs=1e-6)  # area-downsampled to 0


def test_augmentation_is_a_function_of_the_generator_and_level_zero_is_exact():
    low = torch.rand(4, 3, 8, 8) * 2 - 1
    a = random_augmentation(low, 0.5, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, random_augmentation(low, 0.5, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, random_augmentation(low, 0.5, torch.Generator().manual_seed(4)))
    assert a.shape == (4, 4, 8, 8) and bool((a[:, 3] == a[:, 3, :1, :1]).all()), "one constant level per row"
    assert 0 <= float(a[:, 3].min()) and float(a[:, 3].max()) <= 0.5
    g = torch.Generator().manual_seed(3)
    levels, noise = torch.rand(4, generator=g) * 0.5, torch.randn(4, 3, 8, 8, generator=g)  # the documented order
    torch.testing.assert_close(a, augment_condition(low, levels, noise))
    assert torch.equal(augment_condition(low, 0.0, noise)[:, :3], low)
    torch.testing.assert_close(augment_condition(low, torch.full((4,), 0.2), noise)[:, :3], low + 0.2 * noise)
    assert torch.equal(random_augmentation(low, 0.0, torch.Generator().manual_seed(3))[:, :3], low)


@pytest.fixture(scope="module")
def shapes16():
    return load_image_data("shapes", image_size=16, limit=24, progress=False)


def test_training_conditioning_is_split_independent_and_reaches_the_backbone(shapes16):
    data = SuperResolutionData(shapes16, 8, augment_max=0.5)
    x0 = data.batch(torch.arange(8), torch.Generator())  # (8, 3, 16, 16)
    whole = data.condition(x0, torch.Generator().manual_seed(5), 0, 8)
    halves = torch.cat([data.condition(x0[:3], torch.Generator().manual_seed(5), 0, 8),
                        data.condition(x0[3:], torch.Generator().manual_seed(5), 3, 8)])
    torch.testing.assert_close(halves, whole, msg="a rank's rows do not depend on how the batch is split")
    torch.testing.assert_close(random_augmentation(downsample(x0, 8), 0.5, torch.Generator().manual_seed(5)), whole)
    model, seen = edm(sr_net()), []
    model.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[2].clone()))
    config = TrainConfig(steps=1, batch_size=8, channels_last=False, fused_adamw=False)
    optimizer = adamw(model.backbone.parameters(), 1e-3, 0.0, False, torch.device("cpu"), False)
    for _ in range(2):
        train_step(model, optimizer, data, config, step=3)
    assert seen[0].shape == (8, 4, 8, 8) and torch.equal(seen[0], seen[1]), "cond is a function of (seed, step)"
    assert data.labels is None and data.shape == (3, 16, 16) and data.train_pixels.shape == (24, 16, 16, 3)


def test_checkpoint_round_trip(shapes16, tmp_path):
    net = sr_net()
    options = json.loads(json.dumps(net.options()))
    twin = backbone(backbone_name(net), **options)
    assert backbone_name(net) == "super_resolution" and twin.options() == net.options()
    model = edm(net)
    train(model, SuperResolutionData(shapes16, 8), tmp_path, TrainConfig(steps=2, batch_size=4, sample_count=2,
                                                                          sample_steps=2), progress=False)
    loaded = load_denoiser(tmp_path, ema=False)
    assert isinstance(loaded.backbone, SuperResolution) and loaded.backbone.options() == net.options()
    x, low = torch.randn(2, 3, 16, 16), torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, torch.tensor(0.7), low), model.eval()(x, torch.tensor(0.7), low))
    assert read_config(tmp_path)["data"]["kind"] == "super_resolution"


@pytest.fixture(scope="module")
def cascade_models():
    torch.manual_seed(1)
    base = edm(perturb(backbone("unet", in_channels=3, **INNER))).eval()
    return base, edm(perturb(sr_net())).eval()


def test_cascade_is_reproducible_per_seed_and_batch_independent(cascade_models):
    base, sr = cascade_models
    a = sample_cascade(base, sr, n=3, seed=5, steps=3)
    assert a.low.shape == (3, 3, 8, 8) and a.high.shape == (3, 3, 16, 16)
    torch.testing.assert_close(sample_cascade(base, sr, n=3, seed=5, steps=3).high, a.high, rtol=0, atol=0)
    alone = sample_cascade(base, sr, n=1, seeds=[6], steps=3)
    torch.testing.assert_close(alone.high[0], a.high[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sample_cascade(base, sr, n=3, seed=5, steps=3, batch_size=2).high, a.high,
                               atol=1e-5, rtol=1e-5)
    again = super_resolve(sr, a.low, [5, 6, 7], steps=3)
    torch.testing.assert_close(again, a.high, atol=1e-5, rtol=1e-5)
    assert (super_resolve(sr, a.low, [5, 6, 7], augment=0.3, steps=3) - a.high).abs().max() > 1e-4
    assert len({stage_seed(5, 1), stage_seed(5, 2), stage_seed(6, 1), 5}) == 4


@pytest.mark.parametrize("call,match", [
    (lambda net: net(torch.randn(2, 3, 16, 16), torch.zeros(2), torch.randn(2, 3, 4, 4)),
     r"\(2, 3, 8, 8\).*\(2, 4, 8, 8\).*got torch.float32 \(2, 3, 4, 4\).*upsamples 8x8"),
    (lambda net: net(torch.randn(2, 3, 16, 16), torch.zeros(2), torch.randn(2, 1, 8, 8)), r"got torch.float32 \(2, 1, 8, 8\)"),
    (lambda net: net(torch.randn(2, 3, 16, 16), torch.zeros(2)), r"needs the low-resolution image as cond.*\(B, 3, 8, 8\)"),
    (lambda net: net(torch.randn(2, 3, 32, 32), torch.zeros(2), torch.randn(2, 3, 8, 8)),
     r"makes 16x16 images from 8x8.*\(B, 3, 16, 16\), got \(2, 3, 32, 32\)"),
    (lambda net: backbone("super_resolution", low_size=8, high_size=16, inner_options={"in_channels": 7}),
     "may not set in_channels"),
    (lambda net: backbone("super_resolution", low_size=16, high_size=16), r"low_size smaller than high_size"),
    (lambda net: check_chain((3, 16, 16), edm(net), "the base run b", "the super-resolution run s"),
     r"the super-resolution run s upsamples 8x8 images of 3 channel\(s\), but the base run b draws 16x16.*"
     r"--image-size 8.*--super-resolution 16"),
    (lambda net: check_chain((3, 8, 8), edm(backbone("unet", in_channels=3, **INNER))), "must be a super-resolution model"),
])
def test_bad_input_says_what_to_change(call, match):
    net = sr_net()
    with pytest.raises(PlumeError, match=match):
        call(net)


def test_data_refuses_a_low_size_not_below_the_images(shapes16):
    with pytest.raises(PlumeError, match=r"16x16 must be smaller than the training images \(16x16\)"):
        SuperResolutionData(shapes16, 16)


def run(*args, code=0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, result.output
    return result.output


FAST = ["--steps", 2, "--batch-size", 4, "--limit", 16, "--sample-count", 2, "--quiet", "--threads", 1,
        *[a for k, v in INNER.items() for a in ("--backbone-option", f"{k}={json.dumps(v)}")]]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """A base trained at 8x8 and a super-resolution stage 8 -> 16, through the command line."""
    root = tmp_path_factory.mktemp("cascade")
    before = torch.get_num_threads()
    run("train", "--data", "shapes", "--image-size", 8, "--out", root / "base8", *FAST)
    run("train", "--data", "shapes", "--image-size", 16, "--super-resolution", 8, "--augment-max", 0.3,
        "--out", root / "sr", *FAST)
    torch.set_num_threads(before)
    return root


def test_cli_chains_a_base_and_a_super_resolution_run(cli_runs, tmp_path):
    config = read_config(cli_runs / "sr")
    assert config["backbone"]["name"] == "super_resolution" and config["data"]["augment_max"] == 0.3
    assert config["backbone"]["options"]["residual"] is True
    high = load_image_data("shapes", image_size=16, limit=16, seed=0).batch(torch.arange(16), torch.Generator())
    assert config["denoiser"]["sigma_data"] == pytest.approx(residual_std(high, 8), abs=1e-4), \
        "a new stage's sigma_data is its residual's"
    assert config["denoiser"]["lognormal_mean"] == pytest.approx(-1.2 + np.log(config["denoiser"]["sigma_data"] / 0.5),
                                                                  abs=1e-3), "training levels keep EDM's ratio"
    out = run("sample", cli_runs / "base8", "--then", cli_runs / "sr", "--n", 3, "--steps", 2, "--out", tmp_path / "c.npz")
    assert "cascade" in out and (tmp_path / "c.png").exists()
    arrays = np.load(tmp_path / "c.npz")
    assert arrays["arr_0"].shape == (3, 16, 16, 3) and arrays["arr_0"].dtype == np.uint8
    assert arrays["low"].shape == (3, 8, 8, 3)


def test_cli_stage_with_a_given_sigma_data_scales_its_levels_to_it(tmp_path):
    before = torch.get_num_threads()
    run("train", "--data", "shapes", "--image-size", 16, "--super-resolution", 8, "--sigma-data", 0.25,
        "--out", tmp_path / "sr", *FAST)
    torch.set_num_threads(before)
    denoiser = read_config(tmp_path / "sr")["denoiser"]
    assert denoiser["sigma_data"] == 0.25 and denoiser["lognormal_mean"] == pytest.approx(-1.2 + np.log(0.5), abs=1e-3)


def test_cli_resumes_a_super_resolution_run(cli_runs, tmp_path):
    """2 steps, then --resume to 4, ends bit for bit where 4 steps straight end: model, EMA and optimizer state, and
    the loss log (each step's batch, levels, noise and conditioning augmentation are functions of (seed, step))."""
    shutil.copytree(cli_runs / "sr", tmp_path / "sr")  # FAST: --steps 2 --threads 1
    before = torch.get_num_threads()
    run("train", "--out", tmp_path / "sr", "--resume", "--steps", 4, "--threads", 1, "--quiet", "--log-every", 2)
    run("train", "--data", "shapes", "--image-size", 16, "--super-resolution", 8, "--augment-max", 0.3,
        "--out", tmp_path / "straight", *FAST, "--steps", 4, "--log-every", 2)
    torch.set_num_threads(before)
    assert read_config(tmp_path / "sr")["step"] == 4
    resumed, straight = load_checkpoint(tmp_path / "sr"), load_checkpoint(tmp_path / "straight")
    assert resumed.step == straight.step == 4
    for part in ("model", "ema"):
        a, b = getattr(straight, part), getattr(resumed, part)
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a), f"{part} differs after resume"
    assert straight.optimizer["state"].keys() == resumed.optimizer["state"].keys()
    for index, state in straight.optimizer["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(resumed.optimizer["state"][index][name]), torch.as_tensor(value)), \
                (index, name)
    logged = [[row.split(",")[:4] for row in (tmp_path / name / "loss.csv").read_text().splitlines()]
              for name in ("sr", "straight")]  # step, loss, lr, grad_norm (not the wall-clock columns)
    assert logged[0] == logged[1] and [row[0] for row in logged[0][1:]] == ["2", "4"]


def test_cli_errors_name_the_sizes_and_the_fix(cli_runs, tmp_path):
    sr = cli_runs / "sr"
    assert "is a super-resolution stage" in run("sample", sr, "--n", 2, code=1)
    run("train", "--data", "shapes", "--image-size", 16, "--out", tmp_path / "base16", *FAST)
    message = run("sample", tmp_path / "base16", "--then", sr, "--n", 2, code=1)
    assert "upsamples 8x8 images" in message and "draws 16x16 images" in message
    assert "not a super-resolution stage" in run("sample", cli_runs / "base8", "--then", tmp_path / "base16", "--n", 2,
                                                 code=1)
    assert "drop --conditional" in run("train", "--data", "digits", "--super-resolution", 4, "--conditional",
                                       "--out", tmp_path / "x", code=2)
    assert "needs --super-resolution" in run("train", "--data", "digits", "--augment-max", 0.2, "--out",
                                             tmp_path / "y", code=2)
