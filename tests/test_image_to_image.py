"""SDEdit (plume.images.tasks.image_to_image) and `plume img2img`: against ordinary sampling, the guide itself, and the
closed-form probability-flow ODE of Gaussian data."""
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import plume
from plume.cli.img2img import img2img as img2img_command
from plume.points.gaussian_mixture import GaussianMixture
from plume.errors import PlumeError
from plume.samplers.noise import SeedNoise
from plume.images.tasks.image_to_image import conditioned, image_to_image
from plume.tasks.start import partial_sigmas
from test_denoise import tiny_run  # noqa: F401  (a module fixture: a pixel-space run on 8x8 gray images)

SHAPE = (1, 4, 4)
MEAN, STD = -0.2, 0.5


def gaussian_model(process):
    data = GaussianMixture(torch.ones(1), torch.full((1, math.prod(SHAPE)), MEAN), torch.tensor([STD]))
    return data.denoiser(process)


def guides(n: int = 3) -> torch.Tensor:
    return 0.8 * torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_strength_one_is_ordinary_sampling():
    process = plume.process("edm")
    fn = gaussian_model(process)
    out = image_to_image(fn, process, guides(), 1.0, seeds=[4, 5, 6], steps=12)
    drawn = plume.sample(fn, process, (3, *SHAPE), sampler="dpm++2m", steps=12, grid="karras", seeds=[4, 5, 6],
                         dtype=torch.float64)
    # the starts differ by the guide's share: x_g + s_max eps against sqrt(1 + s_max^2) eps, s_max = 80
    torch.testing.assert_close(out, drawn, atol=0.02, rtol=0)
    assert (out - guides()).abs().max() > 0.3  # the guide is forgotten


def test_small_strength_returns_nearly_the_guide():
    process = plume.process("vp")
    fn = gaussian_model(process)
    out = image_to_image(fn, process, guides(), 0.02, seeds=[0, 1, 2], steps=5)
    assert (out - guides()).abs().max() < 0.05
    far = image_to_image(fn, process, guides(), 0.5, seeds=[0, 1, 2], steps=5)
    assert (far - guides()).abs().max() > 0.1


@pytest.mark.parametrize("name", ["vp", "edm"])
def test_sdedit_follows_the_closed_form_ode(name):
    """From x_g + s0 eps at level s0, the ODE of Gaussian data ends at MEAN + (x_g + s0 eps - MEAN) STD / sqrt(STD^2 + s0^2)."""
    process = plume.process(name)
    strength, steps, seeds = 0.4, 30, [7, 8, 9]
    out = image_to_image(gaussian_model(process), process, guides(), strength, seeds, steps=steps, sampler="heun")
    s0 = float(partial_sigmas(process, steps, strength)[0])
    eps = SeedNoise(seeds, "cpu").randn(SHAPE, torch.float64)  # (3, 1, 4, 4): the same draws noise_to makes
    expected = MEAN + (guides() + s0 * eps - MEAN) * STD / math.sqrt(STD**2 + s0**2)
    torch.testing.assert_close(out, expected, atol=6e-3, rtol=0)  # Heun's discretisation error
    assert (out - expected).abs().max() < 0.02 * (guides() - expected).abs().max()


def test_each_output_depends_on_its_seed_alone():
    process = plume.process("edm")
    fn = gaussian_model(process)
    batch = image_to_image(fn, process, guides(), 0.6, seeds=[10, 11, 12], steps=6, sampler="euler")
    alone = image_to_image(fn, process, guides()[1:2], 0.6, seeds=[11], steps=6, sampler="euler")
    torch.testing.assert_close(batch[1:2], alone)
    assert not torch.allclose(batch[0], image_to_image(fn, process, guides()[:1], 0.6, seeds=[99], steps=6)[0])


def test_bad_arguments():
    process = plume.process("edm")
    fn = gaussian_model(process)
    for strength in (0.0, 1.5, -0.1):
        with pytest.raises(PlumeError, match="strength"):
            image_to_image(fn, process, guides(), strength, seeds=[0, 1, 2])
    with pytest.raises(PlumeError, match="seeds"):
        image_to_image(fn, process, guides(), 0.5, seeds=[0])


def test_conditioned_passes_labels_and_guides():
    calls = []

    class Conditional(torch.nn.Module):
        backbone = type("B", (), {"null_condition": staticmethod(lambda b, d: torch.full((b,), 9))})()

        def forward(self, x, t, cond=None):
            calls.append(None if cond is None else cond.tolist())
            return x * 0 + (0.0 if cond is None else cond.float().view(-1, 1, 1, 1))

    model = Conditional()
    assert conditioned(model, None) is model
    x, t = torch.zeros(2, *SHAPE), torch.ones(2)
    assert conditioned(model, torch.tensor([3, 4]))(x, t)[:, 0, 0, 0].tolist() == [3.0, 4.0]
    guided = conditioned(model, torch.tensor([3, 4]), guidance=2.0)(x, t)  # null 9: 9 + 2 (c - 9)
    assert guided[:, 0, 0, 0].tolist() == [-3.0, -1.0]


def test_cli_edits_an_image_of_another_size_and_mode(tiny_run, tmp_path):  # noqa: F811
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, (20, 13, 3), dtype=np.uint8)
    Image.fromarray(picture).save(tmp_path / "guide.png")
    out = tmp_path / "out.png"
    result = CliRunner().invoke(img2img_command, [str(tiny_run), "--image", str(tmp_path / "guide.png"), "--strength",
                                                  "0.02", "--steps", "3", "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "converted" in result.output and "resized" in result.output
    from plume.images.files import fit_square, set_channels

    guide = fit_square(set_channels(picture, "gray"), 8)[..., 0].astype(int)  # (8, 8)
    edited = np.asarray(Image.open(out)).astype(int)  # (8, 8): gray, the run's size
    assert edited.shape == (8, 8) and np.abs(edited - guide).mean() < 6
    result = CliRunner().invoke(img2img_command, [str(tiny_run), "--image", str(tmp_path / "guide.png"), "--strength",
                                                  "1", "--n", "3", "--steps", "2", "--out", str(tmp_path / "grid.png")])
    assert result.exit_code == 0 and "3 outputs" in result.output


def test_cli_bad_input(tiny_run, tmp_path):  # noqa: F811
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "g.png")
    base = [str(tiny_run), "--image", str(tmp_path / "g.png"), "--out", str(tmp_path / "o.png")]
    result = CliRunner().invoke(img2img_command, base + ["--strength", "0"])
    assert result.exit_code == 2 and "--strength" in result.output
    result = CliRunner().invoke(img2img_command, base + ["--labels", "3"])
    assert result.exit_code != 0 and "class labels" in str(result.exception or "") + result.output
    result = CliRunner().invoke(img2img_command, [str(tiny_run), "--image", str(tmp_path / "missing.png"),
                                                  "--out", str(tmp_path / "o.png")])
    assert result.exit_code != 0 and "missing.png" in str(result.exception or "") + result.output
