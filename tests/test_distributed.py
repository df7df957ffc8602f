"""torchrun on the CPU (gloo): two processes sharing each batch (DDP or FSDP2) train exactly as one process with the
whole batch, only rank 0 writes, a two-process run resumes as one, and distributed sampling writes the single
process's bytes."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")

# A tiny U-Net on digits with random flips, a global batch of 24 in two micro-batches: each rank's 12 examples
# straddle a 16-example randomness block, and gradient accumulation goes through DDP's no_sync.
OPTIONS = ["--data", "digits", "--flip", "--backbone-option", "channels=[8,16]", "--backbone-option", "norm_groups=4",
           "--backbone-option", "head_channels=8", "--batch-size", "24", "--accumulate", "2", "--log-every", "1",
           "--checkpoint-every", "3", "--sample-count", "4", "--quiet", "--ema-profiles", "0.05,0.1",
           "--ema-snapshot-every", "2"]


def plume(*args, processes: int = 1) -> str:
    """Run the CLI in fresh processes (1 thread each, as torchrun gives every worker)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] \
        if processes > 1 else [sys.executable]
    result = subprocess.run([*launcher, "-m", "plume", *map(str, args)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def losses(run: Path) -> np.ndarray:
    with open(run / "loss.csv", newline="") as f:
        return np.array([[float(r["loss"]), float(r["grad_norm"])] for r in csv.DictReader(f)])  # (steps, 2)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint" / "model.safetensors"))


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """The same keys, and every tensor equal to float32 reduction-order tolerance."""
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    plume("train", *OPTIONS, "--steps", "6", "--out", out, "--threads", "1")
    return out


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_follow_the_one_process_loss_curve(one_process, tmp_path, parallel):
    out = tmp_path / "two"
    printed = plume("train", *OPTIONS, "--steps", "6", "--out", out, "--parallel", parallel, processes=2)
    assert printed.count("step 6 in") == 1  # rank 0 reports; rank 1 stays quiet
    np.testing.assert_allclose(losses(out), losses(one_process), rtol=1e-5)
    assert same_tensors(weights(out), weights(one_process))
    for snapshot in sorted((one_process / "ema-snapshots").iterdir()):  # power EMAs gathered from the shards
        assert same_tensors(load_file(str(out / "ema-snapshots" / snapshot.name)), load_file(str(snapshot))), \
            snapshot.name
    assert sorted(p.name for p in (out / "ema-snapshots").iterdir()) == \
        sorted(p.name for p in (one_process / "ema-snapshots").iterdir())
    # One checkpoint, written by rank 0 alone: the same files as the single process's, no strays.
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == \
        sorted(p.name for p in (one_process / "checkpoint").iterdir())
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one_process.iterdir())
    import json
    assert json.loads((out / "checkpoint" / "config.json").read_text())["runtime"]["world_size"] == 2


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_a_two_process_run_resumes_as_one(one_process, tmp_path, parallel):
    # Under FSDP the checkpoint holds the gathered full tensors, so a sharded run resumes unsharded.
    out = tmp_path / "resumed"
    plume("train", *OPTIONS, "--steps", "3", "--out", out, "--parallel", parallel, processes=2)
    plume("train", "--resume", "--out", out, "--steps", "6", "--quiet")
    np.testing.assert_allclose(losses(out), losses(one_process), rtol=1e-5)
    assert same_tensors(weights(out), weights(one_process))


def test_two_processes_streaming_a_prepared_set_train_as_one_in_memory(one_process, tmp_path):
    """Each rank prefetches only the RNG blocks of its own rows (plume.train.streaming) from a set written by
    `plume prepare`; together they train as one process on the same images in memory."""
    prepared = tmp_path / "digits-set"
    plume("prepare", "--data", "digits", "--out", prepared, "--quiet")
    out = tmp_path / "streamed"
    options = [prepared if value == "digits" else value for value in OPTIONS]
    plume("train", *options, "--steps", "6", "--out", out, "--workers", "1", processes=2)
    np.testing.assert_allclose(losses(out), losses(one_process), rtol=1e-5)
    assert same_tensors(weights(out), weights(one_process))
    with open(out / "loss.csv", newline="") as f:
        assert all(float(row["consumed_per_second"]) > 0 for row in csv.DictReader(f))  # the prefetched rows served


def test_a_batch_that_does_not_split_is_refused(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "plume", "train", "--data", "moons", "--batch-size", "25", "--steps", "2",
                             "--out", str(tmp_path / "odd"), "--quiet"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode != 0
    assert "batch size 25 does not split evenly over 2 processes" in result.stdout + result.stderr


def test_distributed_sampling_writes_the_single_process_bytes(one_process, tmp_path):
    # 11 seeds in batches of 3 over 2 ranks: 4 batches, the last one short, rank 1 idle in the last round.
    common = ["sample", one_process, "--seeds", "5-15", "--batch-size", "3", "--steps", "4", "--no-evaluate"]
    plume(*common, "--out", tmp_path / "two.npz", processes=2)
    plume(*common, "--out", tmp_path / "one.npz", "--threads", "1")
    two, one = np.load(tmp_path / "two.npz")["arr_0"], np.load(tmp_path / "one.npz")["arr_0"]
    assert two.shape == one.shape == (11, 8, 8, 1) and two.dtype == np.uint8
    assert two.tobytes() == one.tobytes()
