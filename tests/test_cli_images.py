"""Images through the one CLI: U-Net and DiT train on the embedded digits and on a folder of PNG/JPEG files this
test writes (two class subfolders, mixed sizes and modes), then sample to uint8 NHWC with a grid and a trajectory."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from plume.cli import main
from plume.train import load_checkpoint, read_config

SMALL = {  # CPU-second sizes of each backbone
    "unet": ["--backbone-option", "channels=[16,32]", "--backbone-option", "norm_groups=8",
             "--backbone-option", "head_channels=16"],
    "dit": ["--backbone-option", "width=32", "--backbone-option", "depth=2", "--backbone-option", "heads=2",
            "--backbone-option", "patch_size=2"],
}
FAST = ["--steps", "12", "--batch-size", "16", "--checkpoint-every", "6", "--sample-count", "4", "--quiet"]


def run(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes of 12 pictures each: RGB PNGs of varied sizes and grayscale JPEGs (a user's own folder)."""
    root = tmp_path_factory.mktemp("pictures") / "shapes"
    rng = np.random.default_rng(0)
    for label, (name, colour) in enumerate((("red", (220, 40, 30)), ("blue", (30, 60, 220)))):
        (root / name).mkdir(parents=True)
        for k in range(12):
            h, w = int(rng.integers(12, 30)), int(rng.integers(12, 30))
            picture = np.full((h, w, 3), 250, np.uint8)
            picture[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = colour
            image = Image.fromarray(picture)
            if k % 3 == 0:
                image.convert("L").save(root / name / f"{k}.jpg", quality=95)
            else:
                image.save(root / name / f"{k}.png")
    return root


@pytest.mark.parametrize("backbone", ["unet", "dit"])
def test_backbone_trains_and_samples_on_digits(backbone, tmp_path):
    out = tmp_path / "run"
    run("train", "--data", "digits", "--out", out, "--backbone", backbone, *SMALL[backbone], *FAST)
    config = read_config(out)
    assert config["backbone"]["name"] == backbone and config["data"]["shape"] == [1, 8, 8]
    assert config["step"] == 12 and (out / "samples.png").stat().st_size > 1000
    ckpt = load_checkpoint(out)
    assert all(torch.isfinite(v).all() for v in ckpt.model.values())

    output = run("sample", out, "--seeds", "0-9", "--steps", "4", "--out", tmp_path / "s.npz", "--trajectory",
                 "--no-evaluate")
    x = np.load(tmp_path / "s.npz")["arr_0"]
    assert x.shape == (10, 8, 8, 1) and x.dtype == np.uint8  # guided-diffusion's arr_0 convention: uint8 NHWC
    grid = np.asarray(Image.open(tmp_path / "s.png"))
    assert grid.ndim == 3 and grid.shape[0] > 8 and grid.shape[1] > 8
    strip = tmp_path / "s-trajectory.png"
    assert strip.is_file() and str(strip) in output
    again = tmp_path / "again.npz"
    run("sample", out, "--seeds", "5-9", "--steps", "4", "--out", again, "--no-evaluate")
    assert np.array_equal(np.load(again)["arr_0"], x[5:])  # each sample is a function of its seed alone


@pytest.mark.parametrize("backbone", ["unet", "dit"])
def test_backbone_trains_on_a_folder_of_images(backbone, folder, tmp_path):
    out = tmp_path / "run"
    run("train", "--data", folder, "--image-size", "8", "--channels", "rgb", "--flip", "--out", out,
        "--backbone", backbone, *SMALL[backbone], *FAST)
    config = read_config(out)
    assert config["data"]["shape"] == [3, 8, 8] and config["data"]["size"] == 24
    assert config["data"]["class_names"] == ["blue", "red"]
    run("sample", out, "--n", "6", "--steps", "3", "--out", tmp_path / "s.npz")
    x = np.load(tmp_path / "s.npz")["arr_0"]
    assert x.shape == (6, 8, 8, 3) and x.dtype == np.uint8
    run("train", "--out", out, "--resume", "--steps", "14", "--quiet")  # the folder is read again on resume
    assert read_config(out)["step"] == 14


def test_config_file_values_and_flags_that_override_them(tmp_path):
    config = tmp_path / "digits.toml"
    config.write_text('data = "digits"\nbackbone = "dit"\nsteps = 5\nbatch-size = 8\nlr = 0.001\n'
                      f'backbone_options = {json.dumps(SMALL["dit"][1::2])}\nquiet = true\n')
    out = tmp_path / "run"
    run("train", "--config", config, "--out", out, "--steps", "7")
    saved = read_config(out)
    assert saved["step"] == 7  # the flag wins over the file
    assert saved["training"]["batch_size"] == 8 and saved["training"]["lr"] == 0.001
    assert saved["backbone"]["name"] == "dit" and saved["backbone"]["options"]["width"] == 32


def test_bad_config_file_names_the_key(tmp_path):
    config = tmp_path / "bad.json"
    config.write_text('{"data": "digits", "stepz": 5}')
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "unknown option 'stepz'" in result.output and "steps" in result.output
