"""The `plume` command: train and sample end to end; bad input gives one line and an exit code, no traceback."""
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from plume import SAMPLERS
from plume.cli import main
from plume.train import read_config

FAST = ["--steps", "30", "--backbone-option", "width=16", "--backbone-option", "depth=1", "--batch-size", "64",
        "--checkpoint-every", "20", "--quiet"]


def run(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_train_then_sample(tmp_path):
    out = tmp_path / "moons"
    result = run("train", "--data", "moons", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    assert "step 30" in result.output
    for name in ("checkpoint/config.json", "checkpoint/model.safetensors", "checkpoint/ema.safetensors", "loss.csv",
                 "samples.png"):
        assert (out / name).is_file(), name
    assert read_config(out)["data"] == {"modality": "points", "kind": "toy", "name": "moons", "n": 50000, "seed": 0,
                                        "shape": [2], "size": 50000}

    result = run("sample", out, "--n", "100", "--sampler", "heun", "--steps", "5", "--grid", "karras",
                 "--out", tmp_path / "s.npz")
    assert result.exit_code == 0, result.output
    x = np.load(tmp_path / "s.npz")["arr_0"]
    assert x.shape == (100, 2) and x.dtype == np.float32 and np.isfinite(x).all()
    assert (tmp_path / "s.png").stat().st_size > 5000
    assert run("sample", out, "--n", "100", "--sampler", "heun", "--steps", "5", "--grid", "karras").exit_code == 0
    assert np.array_equal(np.load(out / "samples-heun-5.npz")["arr_0"], x)  # a function of (run, settings, seed)
    assert run("sample", out, "--n", "100", "--sampler", "heun", "--steps", "5", "--grid", "karras",
               "--out", tmp_path / "p.png").exit_code == 0  # the picture's name names the three files
    assert np.array_equal(np.load(tmp_path / "p.npz")["arr_0"], x) and (tmp_path / "p.png").is_file()

    result = run("train", "--out", out, "--resume", "--quiet")  # keeps the run's own target, 30
    assert result.exit_code == 0 and "step 30" in result.output, result.output
    result = run("train", "--out", out, "--resume", "--steps", "40", "--quiet")
    assert result.exit_code == 0, result.output
    assert read_config(out)["step"] == 40


def test_unknown_names_list_the_valid_ones(tmp_path):
    result = run("sample", tmp_path, "--sampler", "nope")
    assert result.exit_code == 2
    assert "'nope' is not one of" in result.output and all(name in result.output for name in SAMPLERS)
    result = run("train", "--data", "spiral", "--out", tmp_path / "x")
    assert result.exit_code == 1 and "no data named 'spiral'" in result.output
    assert "moons" in result.output and "8gaussians" in result.output and "digits" in result.output
    result = run("train", "--data", "moons", "--out", tmp_path / "x", "--process", "vpp")
    assert result.exit_code == 2 and "'vpp' is not one of" in result.output


def test_plume_errors_are_one_line(tmp_path):
    result = run("sample", tmp_path / "missing")
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: checkpoint directory {tmp_path / 'missing'} does not exist"
    result = run("train", "--out", tmp_path / "x", "--steps", "0")
    assert result.exit_code == 2 and "--steps" in result.output
    result = run("train", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "--data is required" in result.output

    out = tmp_path / "run"
    assert run("train", "--data", "gmm", "--out", out, *FAST).exit_code == 0
    result = run("train", "--data", "gmm", "--out", out, *FAST)
    assert result.exit_code == 1 and "already holds a checkpoint" in result.output
    result = run("train", "--out", out, "--resume", "--lr", "0.1")
    assert result.exit_code == 2 and "--lr cannot be given with --resume" in result.output


def test_python_dash_m_plume():
    root = Path(__file__).parents[1]
    result = subprocess.run([sys.executable, "-m", "plume", "sample", "--help"], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0 and "dpm++2m" in result.stdout
