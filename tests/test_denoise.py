"""Denoising (plume.images.tasks.denoise), noise-level estimation (plume.images.tasks.noise_level), tiles (plume.images.tasks.tiles) and
`plume denoise`: against closed forms for Gaussian data, scikit-image's estimator, and untiled results."""
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import plume
from plume.cli.denoise import denoise as denoise_command
from plume.points.gaussian_mixture import GaussianMixture
from plume.errors import PlumeError
from plume.images.tasks.denoise import denoise, posterior_mean, reverse
from plume.images.tasks.noise_level import estimate_level, estimate_noise_std, level_from_pixels, level_to_pixels
from plume.images.tasks.tiles import tile_count, tile_starts, tiled
from plume.train import TrainConfig, train

SHAPE = (1, 4, 4)
MEAN, STD = 0.3, 0.5  # the Gaussian data: every pixel ~ N(MEAN, STD^2), independent


def gaussian_data() -> GaussianMixture:
    dim = math.prod(SHAPE)
    return GaussianMixture(torch.ones(1), torch.full((1, dim), MEAN), torch.tensor([STD]))


def synthetic_image(size: int = 128) -> torch.Tensor:
    """A piecewise-smooth picture in [-1, 1] (1, 1, size, size): a ramp, a disc and a bar."""
    u = torch.linspace(-1, 1, size, dtype=torch.float64)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    img = 0.4 * xx + 0.5 * ((xx - 0.2) ** 2 + (yy + 0.1) ** 2 < 0.25).double() - 0.6 * (yy.abs() < 0.1).double()
    return img.clamp(-1, 1)[None, None]


@pytest.mark.parametrize("sigma_255", [5.0, 15.0, 25.0, 50.0])
def test_noise_estimate_within_ten_percent(sigma_255):
    clean = synthetic_image()
    s = level_from_pixels(sigma_255)
    noisy = clean + s * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    estimate = float(estimate_level(noisy)[0])
    assert abs(estimate / s - 1) < 0.10
    assert level_to_pixels(estimate) == pytest.approx(sigma_255, rel=0.10)


def test_noise_estimate_matches_scikit_image():
    restoration = pytest.importorskip("skimage.restoration")
    pytest.importorskip("pywt")
    from skimage import data

    photo = torch.from_numpy(data.camera()[::2, ::2].astype(np.float64) / 127.5 - 1)  # (256, 256)
    rng = np.random.default_rng(0)
    for s in (0.05, 0.2):
        noisy = photo + s * torch.from_numpy(rng.standard_normal(photo.shape))
        ours = float(estimate_noise_std(noisy[None, None])[0])
        theirs = restoration.estimate_sigma(noisy.numpy())
        assert ours == pytest.approx(theirs, rel=0.02)  # the same statistic; only the image border is handled apart
    rgb = torch.from_numpy(data.astronaut()[::4, ::4].astype(np.float64) / 127.5 - 1).permute(2, 0, 1)[None]
    rgb = rgb + 0.1 * torch.from_numpy(rng.standard_normal(rgb.shape))  # (1, 3, 128, 128)
    per = estimate_noise_std(rgb, per_channel=True)[0].numpy()  # (3,)
    theirs = restoration.estimate_sigma(rgb[0].permute(1, 2, 0).numpy(), channel_axis=-1)
    np.testing.assert_allclose(per, theirs, rtol=0.05)


def test_noise_estimate_rejects_tiny_images():
    with pytest.raises(PlumeError, match="4x4"):
        estimate_noise_std(torch.zeros(1, 1, 3, 3))


@pytest.mark.parametrize("name", ["vp", "edm", "flow"])
def test_posterior_mean_is_the_closed_form(name):
    process = plume.process(name)
    fn = gaussian_data().denoiser(process)
    g = torch.Generator().manual_seed(0)
    x0 = MEAN + STD * torch.randn(6, *SHAPE, generator=g, dtype=torch.float64)
    s = 0.4
    y = x0 + s * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    expected = MEAN + STD**2 / (STD**2 + s**2) * (y - MEAN)  # E[x0 | y] of Gaussian data (Wiener filter)
    torch.testing.assert_close(posterior_mean(fn, process, y, s), expected, atol=1e-6, rtol=1e-6)


def test_reverse_ode_is_the_closed_form():
    """The probability-flow ODE of Gaussian data maps y at level s to MEAN + (y - MEAN) STD / sqrt(STD^2 + s^2)."""
    process = plume.process("vp")
    fn = gaussian_data().denoiser(process)
    y = MEAN + 0.8 * torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    s = 0.5
    out = reverse(fn, process, y, s, seeds=[0, 1, 2], steps=40, sampler="heun")
    expected = MEAN + (y - MEAN) * STD / math.sqrt(STD**2 + s**2)
    torch.testing.assert_close(out, expected, atol=2e-3, rtol=0)
    assert (out - expected).abs().max() < 0.05 * (y - expected).abs().max()


def test_denoise_methods_and_errors():
    process = plume.process("edm")
    fn = gaussian_data().denoiser(process)
    y = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    both = denoise(fn, process, y, [0.2, 0.6])
    torch.testing.assert_close(both[1:], posterior_mean(fn, process, y[1:], 0.6))
    with pytest.raises(PlumeError, match="denoising method"):
        denoise(fn, process, y, 0.2, method="median")
    with pytest.raises(PlumeError, match="> 0"):
        denoise(fn, process, y, 0.0)
    with pytest.raises(PlumeError, match="seeds"):
        denoise(fn, process, y, 0.2, seeds=[1])
    with pytest.raises(PlumeError, match="noise levels"):
        denoise(fn, process, y, [0.1, 0.2, 0.3])


def test_tile_positions_cover_the_image():
    assert tile_starts(64, 32, 0) == [0, 32]
    assert tile_starts(70, 32, 16) == [0, 13, 25, 38]  # evenly spread, neighbours sharing >= 16 pixels
    with pytest.raises(PlumeError, match="smaller than a tile"):
        tile_starts(20, 32, 16)  # tiled() pads such an image to the tile first
    assert tile_count(70, 64, 32, 16) == 4 * 3


def test_tiles_covering_once_reproduce_per_tile_results():
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(4))

    def nonlocal_fn(tiles):  # depends on the whole tile: tiles must be cut where expected
        return tiles - tiles.mean(dim=(1, 2, 3), keepdim=True) + tiles.std(dim=(2, 3), keepdim=True)

    out = tiled(nonlocal_fn, x, 32, 0)
    for r in range(0, 64, 32):
        for c in range(0, 96, 32):
            torch.testing.assert_close(out[..., r:r + 32, c:c + 32], nonlocal_fn(x[..., r:r + 32, c:c + 32]))


def test_overlapping_tiles_of_a_pixelwise_function_equal_the_whole_image():
    x = torch.randn(1, 1, 70, 45, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(tiled(torch.tanh, x, 32, 16), torch.tanh(x))
    small = x[..., :25, :25]  # smaller than a tile: mirror-padded, then cropped back
    torch.testing.assert_close(tiled(torch.tanh, small, 32, 16), torch.tanh(small))
    with pytest.raises(PlumeError, match="overlap"):
        tiled(torch.tanh, x, 32, 32)


def test_tiled_denoising_of_pixelwise_gaussian_data_matches_untiled():
    process = plume.process("vp")
    data = GaussianMixture(torch.ones(1), torch.full((1, 16 * 16), MEAN), torch.tensor([STD]))
    fn = data.denoiser(process)
    y = torch.randn(1, 1, 40, 40, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    whole = MEAN + STD**2 / (STD**2 + 0.3**2) * (y - MEAN)
    torch.testing.assert_close(denoise(fn, process, y, 0.3, tile=16, overlap=4), whole)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A pixel-space run on 8x8 gray images, trained 2 steps (enough for the CLI's plumbing)."""
    from plume.backbones import backbone

    torch.manual_seed(0)
    net = backbone("unet", preset="tiny", in_channels=1, channels=[8, 16], norm_groups=4, head_channels=8,
                   attention_levels=[], mid_attention=False)
    model = plume.Denoiser(net, process="edm", prediction="edm", weighting="edm", time_sampling="lognormal",
                           sigma_data=0.5)
    run = tmp_path_factory.mktemp("run")
    data = torch.rand(32, 1, 8, 8) * 2 - 1
    train(model, data, run, TrainConfig(steps=2, batch_size=8, sample_count=4, sample_steps=2, warmup_steps=0),
          data_info={"name": "noise"}, progress=False)
    return run


def test_cli_denoises_a_larger_rgb_image_in_tiles(tiny_run, tmp_path):
    rng = np.random.default_rng(7)
    clean = np.full((20, 13, 3), 128, dtype=np.uint8)
    noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    out = tmp_path / "clean.png"
    result = CliRunner().invoke(denoise_command, [str(tiny_run), "--image", str(tmp_path / "noisy.png"),
                                                  "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "estimated noise std" in result.output and "converted" in result.output and "tiles" in result.output
    estimated = float(result.output.split("estimated noise std: ")[1].split()[0])
    assert 15 < estimated < 35  # 25 of 255, gray-converted (luma averages R, G, B noise down by ~0.66)
    assert np.asarray(Image.open(out)).shape == (20, 13)  # the run's channels (gray), the image's size
    result = CliRunner().invoke(denoise_command, [str(tiny_run), "--image", str(tmp_path / "noisy.png"), "--sigma",
                                                  "20", "--method", "reverse", "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "estimated" not in result.output and "reverse" in result.output


def test_cli_writes_what_the_python_function_gives(tiny_run, tmp_path):
    """`plume denoise` on a gray 20x13 image (tiles of the run's 8x8) against plume.images.tasks.denoise.denoise on the
    same pixels, level (sigma 20 of 255 is 20 / 127.5 in the [-1, 1] scale), method, sampler, steps, seed and tiles."""
    noisy = np.clip(128 + np.random.default_rng(8).normal(0, 25, (20, 13)), 0, 255).astype(np.uint8)  # (H, W)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    y = torch.from_numpy(noisy.astype(np.float32) / 127.5 - 1)[None, None]  # (1, 1, 20, 13) in [-1, 1]
    model = plume.load(tiny_run).denoiser  # the EMA weights, as plume denoise loads

    def cli(*flags):
        out = tmp_path / f"out{len(list(tmp_path.glob('out*.png')))}.png"
        result = CliRunner().invoke(denoise_command, [str(tiny_run), "--image", str(tmp_path / "noisy.png"), "--out",
                                                      str(out), "--sigma", "20", *map(str, flags)])
        assert result.exit_code == 0, result.output
        return np.asarray(Image.open(out)).astype(int)  # (20, 13)

    def python(level=20 / 127.5, method="posterior-mean", seed=0, overlap=None, **options):
        with torch.no_grad():
            x = denoise(model, model.process, y, level, method, seeds=[seed], tile=8, overlap=overlap, **options)
        return np.round((x.clamp(-1, 1)[0, 0].numpy() + 1) * 127.5).astype(int)  # (20, 13), the PNG's pixels

    mean = cli()
    assert mean.shape == (20, 13) and np.abs(mean - python()).max() <= 1  # uint8 rounding
    assert np.abs(mean - python(level=40 / 127.5)).max() > 5, "the level decides the result"
    drawn = cli("--method", "reverse", "--sampler", "euler-maruyama", "--steps", 2, "--seed", 5)
    reverse_options = dict(method="reverse", sampler="euler-maruyama", steps=2)
    assert np.abs(drawn - python(seed=5, **reverse_options)).max() <= 1
    assert np.abs(drawn - python(seed=6, **reverse_options)).max() > 20, "the seed decides the draw"
    assert np.abs(drawn - python(seed=5, overlap=2, **reverse_options)).max() > 20, "so do the tiles (seed + k each)"


def test_cli_names_an_unreadable_file(tiny_run, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    result = CliRunner().invoke(denoise_command, [str(tiny_run), "--image", str(bad), "--out", str(tmp_path / "o.png")])
    assert result.exit_code != 0 and "broken.png" in str(result.exception or result.output)
    result = CliRunner().invoke(denoise_command, [str(tiny_run), "--image", str(tmp_path / "none.png"),
                                                  "--out", str(tmp_path / "o.png")])
    assert result.exit_code != 0 and "none.png" in str(result.exception or result.output)
    result = CliRunner().invoke(denoise_command, [str(tiny_run), "--image", str(bad), "--sigma", "300",
                                                  "--out", str(tmp_path / "o.png")])
    assert result.exit_code == 2 and "--sigma" in result.output
