"""Exact resume after real signals: `plume train` is killed mid-way (SIGKILL, SIGINT), resumed, and ends with
the same weights, EMA and optimizer state as an uninterrupted run. The model is a U-Net with dropout on digits,
so the per-step seeding of batches, noise and dropout is what is under test."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from plume.train import load_checkpoint, read_config

STEPS = 60
ARGS = ["--data", "digits", "--backbone", "unet", "--backbone-option", "channels=[16,32]",
        "--backbone-option", "attention_levels=[1]", "--backbone-option", "dropout=0.1", "--backbone-option",
        "norm_groups=8", "--backbone-option", "head_channels=16", "--batch-size", "16", "--checkpoint-every", "10",
        "--sample-count", "4", "--threads", "1", "--quiet", "--steps", str(STEPS)]


def plume(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "plume", "train", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def finished(process: subprocess.Popen, code: int = 0) -> str:
    output = process.communicate(timeout=300)[0]
    assert process.returncode == code, output
    assert "Traceback" not in output, output
    return output


def saved_step(run: Path) -> int:
    try:
        return int(read_config(run)["step"])
    except Exception:  # not written yet, or being renamed into place
        return -1


def interrupt(run: Path, sig: int, after_step: int) -> subprocess.Popen:
    """Start training into `run` and send `sig` once a checkpoint at >= after_step exists."""
    process = plume(*ARGS, "--out", run)
    deadline = time.monotonic() + 240
    while saved_step(run) < after_step:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    assert process.poll() is None, "training ended before the signal; make the run longer"
    process.send_signal(sig)
    return process


def assert_same_state(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.step == cb.step == STEPS
    for part in ("model", "ema"):
        for key, value in getattr(ca, part).items():
            assert torch.equal(getattr(cb, part)[key], value), f"{part} {key} differs after resume"
    for index, state in ca.optimizer["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(cb.optimizer["state"][index][name]), torch.as_tensor(value)), (index, name)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("signal") / "uninterrupted"
    finished(plume(*ARGS, "--out", run))
    return run


def test_sigkill_then_resume_from_the_last_periodic_checkpoint(uninterrupted, tmp_path):
    run = tmp_path / "killed"
    process = interrupt(run, signal.SIGKILL, after_step=20)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert 20 <= saved_step(run) < STEPS
    finished(plume("--out", run, "--resume", "--quiet"))
    assert_same_state(uninterrupted, run)


def test_ctrl_c_saves_a_checkpoint_where_it_stopped_and_resumes_exactly(uninterrupted, tmp_path):
    run = tmp_path / "interrupted"
    process = interrupt(run, signal.SIGINT, after_step=10)
    output = finished(process, code=130)
    stopped = saved_step(run)
    assert f"SIGINT at step {stopped}: checkpoint saved" in output
    assert 10 <= stopped < STEPS
    finished(plume("--out", run, "--resume", "--quiet"))
    assert_same_state(uninterrupted, run)
