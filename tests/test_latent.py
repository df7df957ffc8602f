"""Latent diffusion (plume.images.latent): the KL autoencoder's shapes and KL term, the latent scale, training that
reconstructs, bit-exact save/load, the command line end to end, and the messages for bad input."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.distributions import Normal, kl_divergence

from plume.cli import main
from plume.images import load_image_data
from plume.images.sets import image_data_from_info
from plume.errors import PlumeError
from plume.images.latent import (AutoencoderConfig, DiagonalGaussian, KLAutoencoder, LatentData, encode_images,
    latent_scale, load_autoencoder, reconstruct, reconstruction_error, train_autoencoder)
from plume.train import read_config

SMALL = {"width": 8, "norm_groups": 4}  # a CPU-test-sized autoencoder


@pytest.fixture(scope="module")
def shapes16():
    return load_image_data("shapes", limit=32, image_size=16, progress=False)  # (32, 3, 16, 16)


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_encode_decode_shapes(factor):
    torch.manual_seed(0)
    model = KLAutoencoder(latent_channels=3, factor=factor, **SMALL)
    x = torch.randn(2, 3, 16, 16)
    posterior = model.encode(x)
    assert posterior.mean.shape == posterior.logvar.shape == (2, 3, 16 // factor, 16 // factor)
    assert model.latent_shape((3, 16, 16)) == (3, 16 // factor, 16 // factor)
    assert model.decode(posterior.sample()).shape == (2, 3, 16, 16)
    assert model(x)[0].shape == x.shape


def test_kl_is_the_closed_form_against_a_standard_normal():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(5, 4, 3, 3, generator=g), torch.randn(5, 4, 3, 3, generator=g)
    posterior = DiagonalGaussian(mean, logvar)
    reference = kl_divergence(Normal(mean, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).flatten(1).sum(1)  # (5,)
    torch.testing.assert_close(posterior.kl(), reference)
    assert torch.all(DiagonalGaussian(torch.zeros(2, 4, 3, 3), torch.zeros(2, 4, 3, 3)).kl() == 0)
    draws = DiagonalGaussian(torch.full((20000, 1), 0.5), torch.full((20000, 1), np.log(0.09))).sample(g)
    assert abs(float(draws.mean()) - 0.5) < 0.01 and abs(float(draws.std()) - 0.3) < 0.01  # reparameterization


def test_scale_factor_makes_the_latents_unit_std(shapes16):
    torch.manual_seed(0)
    model = KLAutoencoder(**SMALL).eval()
    stats = latent_scale(model, shapes16.data, batch_size=10)  # batches of 10 give the statistics of all 32
    with torch.no_grad():
        means = model.encode(shapes16.data).mean  # (32, 4, 4, 4)
    assert stats["scale_factor"] == pytest.approx(1 / float(means.double().std(unbiased=False)), rel=1e-6)
    model.scale_factor = stats["scale_factor"]
    with torch.no_grad():
        assert float(model.to_latent(shapes16.data).double().std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)
        torch.testing.assert_close(model.from_latent(model.to_latent(shapes16.data[:2])),
                                   model.decode(means[:2]), rtol=1e-5, atol=1e-5)


def test_trained_autoencoder_reconstructs_what_an_untrained_one_cannot(shapes16, tmp_path):
    torch.manual_seed(0)
    model = KLAutoencoder(**SMALL)
    pixels = shapes16.train_pixels  # (32, 16, 16, 3) uint8
    before = reconstruction_error(pixels, reconstruct(model.eval(), pixels))["mse"]
    black = reconstruction_error(pixels, np.zeros_like(pixels))["mse"]  # ~0.06: the shapes cover little of each image
    result = train_autoencoder(model, shapes16, tmp_path / "ae", AutoencoderConfig(steps=200, batch_size=16, lr=3e-3,
                                                                                   warmup_steps=10), progress=False)
    after = result.reconstruction["mse"]
    assert result.reconstruction["images"] == "training" and result.step == 200
    # Bound: an MSE of 0.012 (PSNR 19 dB) on the [0, 1] scale; 200 steps reach ~0.004. Blank images miss it fivefold.
    assert after < 0.012 < black / 4 and before > 0.1, (before, after, black)
    assert (tmp_path / "ae" / "reconstructions.png").stat().st_size > 1000


def test_save_load_round_trip_is_bit_exact(shapes16, tmp_path):
    torch.manual_seed(1)
    model = KLAutoencoder(factor=2, latent_channels=2, **SMALL)
    train_autoencoder(model, shapes16, tmp_path / "ae", AutoencoderConfig(steps=3, batch_size=4), progress=False)
    loaded = load_autoencoder(tmp_path / "ae")
    assert loaded.options() == model.options() and loaded.scale_factor == model.scale_factor != 1.0
    own, back = model.state_dict(), loaded.state_dict()
    assert own.keys() == back.keys() and all(torch.equal(own[k], back[k]) for k in own)
    with torch.no_grad():
        assert torch.equal(model.eval().to_latent(shapes16.data), loaded.to_latent(shapes16.data))
    config = json.loads((tmp_path / "ae" / "checkpoint" / "config.json").read_text())
    assert config["kind"] == "autoencoder" and config["scale_factor"] == model.scale_factor
    assert sorted(p.name for p in (tmp_path / "ae" / "checkpoint").iterdir()) == \
        ["config.json", "model.safetensors", "optimizer.json", "optimizer.safetensors"]  # the optimizer: to resume


def test_a_resumed_autoencoder_ends_where_one_run_straight_through_does(shapes16, tmp_path):
    """Stopped at step 3 (a step budget here; a time budget or a signal save the same way) and resumed to 6: the
    weights equal those of 6 steps in one go, bit for bit, and loss.csv reads as one run."""
    config = AutoencoderConfig(steps=6, batch_size=4, log_every=1, warmup_steps=4)
    torch.manual_seed(0)
    straight = KLAutoencoder(**SMALL)
    train_autoencoder(straight, shapes16, tmp_path / "straight", config, progress=False)
    torch.manual_seed(0)
    train_autoencoder(KLAutoencoder(**SMALL), shapes16, tmp_path / "split", replace(config, steps=3), progress=False)
    with pytest.raises(PlumeError, match="already holds an autoencoder"):
        train_autoencoder(KLAutoencoder(**SMALL), shapes16, tmp_path / "split", config, progress=False)
    torch.manual_seed(7)  # the resumed model's own initial weights must not matter
    resumed = KLAutoencoder(**SMALL)
    result = train_autoencoder(resumed, shapes16, tmp_path / "split", config, progress=False, resume=True)
    assert result.step == 6
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    steps = [int(line.split(",")[0]) for line in (tmp_path / "split" / "loss.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "split" / "loss.csv").read_text().splitlines()[4].split(",")[:4] == \
        (tmp_path / "straight" / "loss.csv").read_text().splitlines()[4].split(",")[:4]  # step 4's loss, mse, kl
    with pytest.raises(PlumeError, match="at step 6 already"):
        train_autoencoder(KLAutoencoder(**SMALL), shapes16, tmp_path / "split", config, progress=False, resume=True)
    with pytest.raises(PlumeError, match="options .* differ"):
        train_autoencoder(KLAutoencoder(width=8, norm_groups=4, latent_channels=2), shapes16, tmp_path / "split",
                          replace(config, steps=8), progress=False, resume=True)


def test_latent_data_is_unit_variance_and_decodes(shapes16, tmp_path):
    torch.manual_seed(0)
    train_autoencoder(KLAutoencoder(**SMALL), shapes16, tmp_path / "ae", AutoencoderConfig(steps=2, batch_size=4),
                      progress=False)
    data = encode_images(shapes16, tmp_path / "ae")
    assert isinstance(data, LatentData) and data.shape == (4, 4, 4) and len(data) == 32
    assert float(data.data.double().std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)  # the scale's own images
    assert data.decode(data.data[:3]).shape == (3, 3, 16, 16) and data.render(data.data[:4]).ndim == 3
    assert data.train_captions == shapes16.train_captions and data.info()["autoencoder"]["path"] == str(tmp_path / "ae")


def test_command_line_end_to_end(tmp_path):
    images = ["--data", "shapes", "--limit", "48", "--image-size", "16", "--quiet", "--threads", "1"]
    result = run("autoencoder", "train", *images, "--out", tmp_path / "ae", "--steps", "4", "--width", "8",
                 "--holdout", "0.25")
    assert result.exit_code == 0, result.output
    assert "latents (4, 4, 4)" in result.output and "12 held out images" in result.output
    tiny = ["--backbone-option", "channels=[16,16]", "--backbone-option", "norm_groups=4",
            "--backbone-option", "head_channels=16", "--batch-size", "8", "--sample-count", "4"]
    result = run("train", *images, "--latent", tmp_path / "ae", "--out", tmp_path / "run", "--steps", "3", *tiny)
    assert result.exit_code == 0, result.output
    data = read_config(tmp_path / "run")["data"]
    ae = json.loads((tmp_path / "ae" / "checkpoint" / "config.json").read_text())
    assert data["kind"] == "latent" and data["shape"] == [4, 4, 4] and data["size"] == 48
    assert data["autoencoder"]["path"] == str((tmp_path / "ae").resolve())
    assert data["autoencoder"]["scale_factor"] == ae["scale_factor"]
    assert read_config(tmp_path / "run")["denoiser"]["sigma_data"] == 1.0
    assert (tmp_path / "run" / "samples.png").is_file()  # the trainer's preview, decoded

    result = run("sample", tmp_path / "run", "--n", "5", "--steps", "2", "--trajectory", "--threads", "1")
    assert result.exit_code == 0, result.output
    pixels = np.load(tmp_path / "run" / "samples-dpm++2m-2.npz")["arr_0"]
    assert pixels.shape == (5, 16, 16, 3) and pixels.dtype == np.uint8
    assert (tmp_path / "run" / "samples-dpm++2m-2-trajectory.png").is_file()

    result = run("train", "--out", tmp_path / "run", "--resume", "--steps", "4", "--quiet", "--threads", "1")
    assert result.exit_code == 0 and "step 4" in result.output, result.output

    # The autoencoder resumes too, with its saved data and options; its weights change, so the run refuses it.
    result = run("autoencoder", "train", "--out", tmp_path / "ae", "--resume", "--width", "16")
    assert result.exit_code == 2 and "--width cannot be given with --resume" in result.output, result.output
    result = run("autoencoder", "train", "--out", tmp_path / "ae", "--resume", "--steps", "6", "--quiet")
    assert result.exit_code == 0 and "step 6" in result.output and "12 held out images" in result.output, result.output
    result = run("sample", tmp_path / "run", "--n", "2", "--steps", "2")
    assert result.exit_code == 1 and "changed after this run was trained" in result.output, result.output



def test_text_conditioned_latent_run_samples_prompts(tmp_path):
    """--latent with --conditional on captioned data: the latent model reads prompts, samples decode to images."""
    images = ["--data", "shapes", "--limit", "48", "--image-size", "16", "--quiet", "--threads", "1"]
    assert run("autoencoder", "train", *images, "--out", tmp_path / "ae", "--steps", "2", "--width", "8").exit_code == 0
    tiny = ["--backbone-option", "channels=[16,16]", "--backbone-option", "norm_groups=4",
            "--backbone-option", "head_channels=16", "--batch-size", "8", "--sample-count", "4"]
    result = run("train", *images, "--latent", tmp_path / "ae", "--conditional", "--out", tmp_path / "run",
                 "--steps", "2", *tiny)
    assert result.exit_code == 0, result.output
    config = read_config(tmp_path / "run")
    assert config["data"]["kind"] == "latent" and config["backbone"]["options"]["text"]["kind"] == "trained"
    prompt = load_image_data("shapes", limit=48, image_size=16, progress=False).train_captions[0]
    result = run("sample", tmp_path / "run", "--prompt", prompt, "--n", "3", "--steps", "2", "--guidance", "2",
                 "--threads", "1", "--out", tmp_path / "p.npz")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "p.npz")["arr_0"].shape == (3, 16, 16, 3)
    assert "prompt match rate" in result.output


def test_eval_of_a_latent_run_measures_decoded_images(tmp_path):
    """plume eval on a latent run draws latents, decodes them, and measures the images against the run's own
    images (not its latents); --nll, a likelihood of latents, is refused."""
    images = ["--data", "digits", "--limit", "64", "--quiet", "--threads", "1"]
    assert run("autoencoder", "train", *images, "--out", tmp_path / "ae", "--steps", "2", "--width", "8",
               "--factor", "2").exit_code == 0
    tiny = ["--backbone-option", "channels=[16,16]", "--backbone-option", "norm_groups=4",
            "--backbone-option", "head_channels=16", "--batch-size", "8", "--sample-count", "4"]
    result = run("train", *images, "--latent", tmp_path / "ae", "--out", tmp_path / "run", "--steps", "2", *tiny)
    assert result.exit_code == 0, result.output
    result = run("eval", tmp_path / "run", "--n", "12", "--steps", "2", "--threads", "1")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["n_samples"] == 12 and report["reference"]["source"] == "digits"  # the images record's loader
    assert report["n_reference"] == 64 and np.isfinite(report["fid"])  # 64 digits of 8x8 pixels, not latents
    result = run("eval", tmp_path / "run", "--n", "4", "--steps", "2", "--nll")
    assert result.exit_code == 2 and "likelihood of latents" in result.output, result.output


def test_bad_input_messages(tmp_path, shapes16):
    model = KLAutoencoder(**SMALL)
    with pytest.raises(PlumeError, match=r"multiples of its downsampling factor f=4; got 3x30x30"):
        model.encode(torch.zeros(1, 3, 30, 30))
    with pytest.raises(PlumeError, match=r"in_channels=1"):
        model.encode(torch.zeros(1, 1, 16, 16))
    with pytest.raises(PlumeError, match=r"decodes latents \(B, 4, h, w\)"):
        model.decode(torch.zeros(1, 3, 4, 4))
    with pytest.raises(PlumeError, match="power of 2"):
        KLAutoencoder(factor=3)
    with pytest.raises(PlumeError, match="norm_groups"):
        KLAutoencoder(width=12, norm_groups=8)
    with pytest.raises(PlumeError, match="beta must be >= 0"):
        AutoencoderConfig(beta=-1.0)

    missing = tmp_path / "no-autoencoder"
    result = run("train", "--data", "shapes", "--limit", "8", "--latent", missing, "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: autoencoder folder {missing} does not exist; train one with "
                                     f"`plume autoencoder train --data DATA --out {missing}`")
    torch.manual_seed(0)
    train_autoencoder(KLAutoencoder(**SMALL), shapes16, tmp_path / "ae", AutoencoderConfig(steps=1, batch_size=2),
                      progress=False)
    result = run("train", "--data", "digits", "--limit", "8", "--latent", tmp_path / "ae", "--out", tmp_path / "run",
                 "--quiet")
    assert result.exit_code == 1 and "takes images (3, H, W)" in result.output and "got 1x8x8" in result.output
    result = run("train", "--data", "moons", "--latent", tmp_path / "ae", "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 1 and "'moons' is points data; the option 'latent' does not apply" in result.output
    result = run("train", "--data", "shapes", "--limit", "8", "--latent", tmp_path / "ae", "--super-resolution", "8",
                 "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 2 and "--latent and --super-resolution cannot be combined" in result.output
    result = run("autoencoder", "train", "--data", "shapes", "--limit", "8", "--out", tmp_path / "ae", "--quiet")
    assert result.exit_code == 1 and "already holds an autoencoder" in result.output
    result = run("autoencoder", "train", "--data", "shapes", "--limit", "8", "--image-size", "18",
                 "--out", tmp_path / "ae18", "--quiet")
    assert result.exit_code == 1 and "got 3x18x18" in result.output


def test_the_autoencoder_trains_through_the_one_trainer(shapes16, tmp_path, monkeypatch, watch_steps):
    """AutoencoderLoss is a plume.train Trainable and train_autoencoder runs plume.train.train: the trainer's own
    pieces apply to it. A non-finite step is skipped (weights unchanged), counted and logged in loss.csv; loss.csv
    has the trainer's columns with mse and kl beside the loss."""
    from plume.train import Trainable
    from plume.images.latent.training import AutoencoderLoss

    config = AutoencoderConfig(steps=6, batch_size=4, log_every=3, warmup_steps=2)
    assert isinstance(AutoencoderLoss(KLAutoencoder(**SMALL), shapes16, config), Trainable)
    real_loss, calls = KLAutoencoder.loss, {"n": 0}

    def loss_nan_at_steps_1_and_4(self, *args, **kwargs):  # one call per step: batch 4, one micro-batch
        terms, calls["n"] = real_loss(self, *args, **kwargs), calls["n"] + 1
        return {**terms, "loss": terms["loss"] * float("nan")} if calls["n"] - 1 in (1, 4) else terms

    monkeypatch.setattr(KLAutoencoder, "loss", loss_nan_at_steps_1_and_4)
    seen = watch_steps(lambda model: model.network.parameters())
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="2 of 6 steps were skipped"):
        result = train_autoencoder(KLAutoencoder(**SMALL), shapes16, tmp_path / "ae", config, progress=False)
    assert result.step == 6 and result.skipped_steps == 2 and np.isfinite(result.last_mse)
    assert seen == {0: (False, False), 1: (True, True), 2: (False, False), 3: (False, False), 4: (True, True),
                    5: (False, False)}
    rows = (tmp_path / "ae" / "loss.csv").read_text().splitlines()
    assert rows[0] == "step,loss,mse,kl,lr,grad_norm,steps_per_second,skipped_steps,time"
    assert [r.split(",")[0] for r in rows[1:]] == ["3", "6"] and [r.split(",")[7] for r in rows[1:]] == ["1", "2"]


def test_time_budget_and_ctrl_c_stop_the_autoencoder_with_a_complete_folder(shapes16, tmp_path, monkeypatch):
    """The trainer's time budget and its Ctrl-C handling stop the autoencoder with a complete folder (weights,
    scale_factor, reconstruction error, picture), and resuming after Ctrl-C ends bit for bit where a run straight
    through does."""
    import os
    import signal

    from plume.train import TrainingInterrupted, trainer as trainer_module

    torch.manual_seed(0)
    result = train_autoencoder(KLAutoencoder(**SMALL), shapes16, tmp_path / "budget",
                               AutoencoderConfig(steps=10**6, batch_size=2, minutes=0.002), progress=False)
    assert 0 < result.step < 10**6 and read_config_of(tmp_path / "budget")["step"] == result.step
    assert load_autoencoder(tmp_path / "budget").scale_factor == result.scale_factor != 1.0

    config = AutoencoderConfig(steps=6, batch_size=4, log_every=1, warmup_steps=4)
    torch.manual_seed(0)
    straight = KLAutoencoder(**SMALL)
    train_autoencoder(straight, shapes16, tmp_path / "straight", config, progress=False)
    real_step = trainer_module.train_step

    def ctrl_c_in_step_2(model, optimizer, data, options, step, *rest):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # StopOnSignal records it; the step finishes, then the run stops
        return real_step(model, optimizer, data, options, step, *rest)

    monkeypatch.setattr(trainer_module, "train_step", ctrl_c_in_step_2)
    torch.manual_seed(0)
    with pytest.raises(TrainingInterrupted, match="SIGINT at step 3: checkpoint saved"):
        train_autoencoder(KLAutoencoder(**SMALL), shapes16, tmp_path / "stopped", config, progress=False)
    monkeypatch.undo()
    saved = read_config_of(tmp_path / "stopped")
    assert saved["step"] == 3 and saved["reconstruction"]["images"] == "training" and saved["scale_factor"] != 1.0
    resumed = KLAutoencoder(**SMALL)
    assert train_autoencoder(resumed, shapes16, tmp_path / "stopped", config, progress=False, resume=True).step == 6
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert (tmp_path / "stopped" / "reconstructions.png").is_file()


def read_config_of(folder):
    return json.loads((folder / "checkpoint" / "config.json").read_text())


def test_the_command_line_seeds_the_weights_without_touching_the_global_generator(shapes16, tmp_path):
    """`plume autoencoder train --seed 3` draws the initial weights from a generator seeded by 3 in fork_rng: the
    result equals train_autoencoder's on a model built after torch.manual_seed(3), and the caller's global random
    state is what it was."""
    torch.manual_seed(123)
    state = torch.get_rng_state()
    result = run("autoencoder", "train", "--data", "shapes", "--limit", "32", "--image-size", "16", "--width", "8",
                 "--norm-groups", "4", "--steps", "2", "--batch-size", "4", "--seed", "3", "--quiet", "--threads", "1",
                 "--out", tmp_path / "cli")
    assert result.exit_code == 0, result.output
    assert torch.equal(torch.get_rng_state(), state)
    data = image_data_from_info(read_config_of(tmp_path / "cli")["data"])  # the command's images again
    torch.manual_seed(3)
    train_autoencoder(KLAutoencoder(**SMALL), data, tmp_path / "api", AutoencoderConfig(steps=2, batch_size=4, seed=3),
                      progress=False)
    files = [read_config_of(tmp_path / name)["files"]["model.safetensors"]["sha256"] for name in ("cli", "api")]
    assert files[0] == files[1]
