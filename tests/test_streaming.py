"""Streamed image sets (plume.train.streaming, plume.images.streaming, plume prepare): a folder read from disk while
training and a prepared set give the batches of the same images in memory, bit for bit; a run killed and resumed
ends where one never stopped; each rank reads only its rows; bad files are named and nothing half-written stays."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from plume.cli import main as plume_cli
from plume.images.sets import ImageData, load_image_data
from plume.images.streaming import StreamedImages
from plume.train import load_checkpoint, read_config
from plume.train.batches import draw_micro_batch, micro_batch_reads
from plume.train.streaming import Prefetcher

TINY = ["--backbone", "unet", "--backbone-option", "channels=[8,16]", "--backbone-option", "attention_levels=[1]", "--backbone-option", "head_channels=8",
        "--backbone-option", "norm_groups=4", "--backbone-option", "dropout=0.1", "--batch-size", "20",
        "--sample-count", "4", "--threads", "1", "--quiet", "--flip", "--holdout", "0.1", "--log-every", "2"]


def write_folder(folder: Path, per_class: int = 30, size: int = 12, seed: int = 0) -> Path:
    """Two class subfolders of random PNG pictures (one of them gray), `per_class` each."""
    rng = np.random.default_rng(seed)
    for name in ("cats", "dogs"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            image = Image.fromarray(pixels[..., 0] if i == 3 else pixels)
            image.save(folder / name / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("streaming") / "pictures")


@pytest.fixture(scope="module")
def prepared(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "set"
    result = CliRunner().invoke(plume_cli, ["prepare", "--data", str(folder), "--out", str(out), "--workers", "1",
                                            "--quiet"])
    assert result.exit_code == 0, result.output
    assert "prepared 60 images (12 x 12 rgb)" in result.output
    return out


def cli(*args) -> str:
    result = CliRunner().invoke(plume_cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def same_weights(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.step == cb.step
    for part in ("model", "ema"):
        for key, value in getattr(ca, part).items():
            assert torch.equal(getattr(cb, part)[key], value), f"{part} {key} differs"
    for index, state in ca.optimizer["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(cb.optimizer["state"][index][name]), torch.as_tensor(value))


def test_streamed_views_hold_the_in_memory_images(folder, prepared):
    memory = load_image_data(str(folder), flip=True, holdout=0.1)
    streamed = load_image_data(str(folder), flip=True, holdout=0.1, stream=True, workers=0)
    from_set = load_image_data(str(prepared), flip=True, holdout=0.1, workers=0)
    assert isinstance(memory, ImageData) and isinstance(streamed, StreamedImages) and isinstance(from_set, StreamedImages)
    index = torch.randint(len(memory), (25,), generator=torch.Generator().manual_seed(3))
    expected = memory.batch(index, torch.Generator().manual_seed(5))
    for data in (streamed, from_set):
        assert data.shape == memory.shape == (3, 12, 12) and len(data) == len(memory) == 54
        assert torch.equal(data.batch(index, torch.Generator().manual_seed(5)), expected)
        assert torch.equal(data.labels, memory.labels) and data.class_names == ["cats", "dogs"]
        assert np.array_equal(data.held_out, memory.held_out) and np.array_equal(data.held_labels, memory.held_labels)
    assert not torch.equal(memory.batch(index, torch.Generator().manual_seed(6)), expected)  # the flips are drawn


def test_streamed_folder_and_prepared_set_train_bit_for_bit_as_in_memory(folder, prepared, tmp_path):
    runs = {}
    for name, data in (("memory", [folder, "--stream", "off"]), ("folder", [folder, "--stream", "on"]),
                       ("prepared", [prepared])):
        runs[name] = tmp_path / name
        cli("train", "--data", *data, "--out", runs[name], *TINY, "--steps", "6", "--workers", "1")
    same_weights(runs["memory"], runs["folder"])
    same_weights(runs["memory"], runs["prepared"])
    rows = (runs["folder"] / "loss.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "decoded_per_second" in header and "consumed_per_second" in header
    consumed = [float(r.split(",")[header.index("consumed_per_second")]) for r in rows[1:]]
    assert all(c > 0 for c in consumed), "the prefetched requests were never used"
    assert "decoded_per_second" not in (runs["memory"] / "loss.csv").read_text()
    assert read_config(runs["prepared"])["data"]["loader"]["stream"] is True


@pytest.mark.parametrize("batch_size, start, stop", [(20, 0, 20), (64, 0, 32), (64, 32, 64), (40, 8, 24)])
def test_the_plan_is_what_a_rank_reads_in_order(folder, batch_size, start, stop):
    """micro_batch_reads lists exactly the data.batch calls draw_micro_batch makes for rows [start, stop): a rank
    reads only the RNG blocks of its own rows, and no request misses the prefetcher."""
    data = load_image_data(str(folder), flip=True, stream=True, workers=0)
    denoiser = torch.nn.Module()
    denoiser.draw_times = lambda n, g: torch.rand(n, generator=g)  # what draw_micro_batch asks of a denoiser
    asked = []
    original = data.batch
    data.batch = lambda index, g: asked.append(index.clone()) or original(index, g)
    plan = [index for step in range(3) for index in micro_batch_reads(len(data), batch_size, 7, step, 0, start, stop)]
    with data.stream(iter(plan)) as prefetcher:
        for step in range(3):
            draw_micro_batch(data, denoiser, batch_size, 7, step, 0, start, stop)
    assert prefetcher.misses == 0 and prefetcher.consumed == sum(len(i) for i in plan)
    assert len(asked) == len(plan) and all(torch.equal(a, p) for a, p in zip(asked, plan))
    full = micro_batch_reads(len(data), batch_size, 7, 0, 0)
    mine = micro_batch_reads(len(data), batch_size, 7, 0, 0, start, stop)
    touched = range(start // 16, -(-stop // 16))  # the RNG blocks of 16 rows that [start, stop) touches
    assert sum(len(i) for i in mine) == sum(min(batch_size, 16 * (b + 1)) - 16 * b for b in touched)
    if start % 16 == 0 and stop % 16 == 0:  # a batch split in whole blocks: a rank reads exactly its rows
        assert torch.equal(torch.cat(mine), torch.cat(full)[start:stop])


def test_prefetcher_serves_only_the_planned_request(folder):
    data = load_image_data(str(folder), stream=True, workers=1)
    planned = [torch.tensor([0, 1, 2]), torch.tensor([5, 4])]
    with data.stream(iter(planned)) as prefetcher:
        assert prefetcher.take(np.array([9])) is None  # not the head: the caller reads it itself
        assert np.array_equal(prefetcher.take(data.source_rows(np.array([0, 1, 2]))), data.reader.read(
            data.source_rows(np.array([0, 1, 2]))))
        assert torch.equal(data.batch(torch.tensor([5, 4]), torch.Generator()),
                           load_image_data(str(folder)).batch(torch.tensor([5, 4]), torch.Generator()))
    assert prefetcher.misses == 1 and prefetcher.consumed == 5
    rates = prefetcher.rates()
    assert rates["decoded_per_second"] > 0 and rates["consumed_per_second"] > 0


def train_process(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "plume", "train", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def saved_step(run: Path) -> int:
    try:
        return int(read_config(run)["step"])
    except Exception:  # not written yet, or being renamed into place
        return -1


@pytest.mark.parametrize("source", ["folder", "prepared"])
def test_a_streamed_run_killed_and_resumed_ends_as_one_never_stopped(source, folder, prepared, tmp_path):
    data = [folder, "--stream", "on"] if source == "folder" else [prepared]
    args = ["--data", *data, *TINY, "--steps", "40", "--checkpoint-every", "5", "--workers", "1"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = train_process(*args, "--out", straight)
    assert done.wait(timeout=300) == 0, done.communicate()[0]
    process = train_process(*args, "--out", killed)
    deadline = time.monotonic() + 240
    while saved_step(killed) < 10:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert 10 <= saved_step(killed) < 40
    resumed = train_process("--out", killed, "--resume", "--quiet")
    assert resumed.wait(timeout=300) == 0, resumed.communicate()[0]
    same_weights(straight, killed)


def test_a_folder_that_changed_is_refused_on_resume(tmp_path):
    pictures = write_folder(tmp_path / "pictures", per_class=10)
    run = tmp_path / "run"
    cli("train", "--data", pictures, "--stream", "on", "--out", run, *TINY, "--steps", "2")
    (pictures / "cats" / "000.png").rename(pictures / "cats" / "zzz.png")
    result = CliRunner().invoke(plume_cli, ["train", "--out", str(run), "--resume", "--steps", "4", "--quiet"])
    assert result.exit_code == 1 and "the files changed since the run was trained" in result.output
    assert str(pictures) in result.output


def broken_folder(tmp_path: Path) -> tuple[Path, Path, Path]:
    pictures = write_folder(tmp_path / "pictures", per_class=8)
    truncated = pictures / "cats" / "002.png"
    truncated.write_bytes(truncated.read_bytes()[:60])  # a valid header, the pixels cut off
    not_an_image = pictures / "dogs" / "005.png"
    not_an_image.write_text("not a picture")
    return pictures, truncated, not_an_image


def test_prepare_stops_at_a_bad_file_by_name_and_leaves_nothing(tmp_path):
    pictures, truncated, not_an_image = broken_folder(tmp_path)
    out = tmp_path / "set"
    result = CliRunner().invoke(plume_cli, ["prepare", "--data", str(pictures), "--out", str(out), "--image-size",
                                            "12", "--channels", "rgb", "--workers", "1", "--quiet"])
    assert result.exit_code == 1 and str(truncated) in result.output and "--on-error skip" in result.output
    assert not out.exists() and not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_prepare_skips_bad_files_and_lists_them(tmp_path):
    pictures, truncated, not_an_image = broken_folder(tmp_path)
    out = tmp_path / "set"
    output = cli("prepare", "--data", pictures, "--out", out, "--image-size", "12", "--channels", "rgb",
                 "--on-error", "skip", "--workers", "2", "--quiet")
    about = json.loads((out / "plume-images.json").read_text())
    assert about["count"] == 14 and "2 unreadable files left out" in output
    assert {s["file"] for s in about["skipped"]} == {str(truncated), str(not_an_image)}
    pixels, labels = np.load(out / "images.npy"), np.load(out / "labels.npy")
    assert pixels.shape == (14, 12, 12, 3) and labels.tolist() == [0] * 7 + [1] * 7
    expected = np.asarray(Image.open(pictures / "dogs" / "007.png").convert("RGB"))
    assert np.array_equal(pixels[-1], expected)


def test_prepare_refuses_a_folder_that_holds_files(tmp_path, folder):
    out = tmp_path / "set"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(plume_cli, ["prepare", "--data", str(folder), "--out", str(out), "--quiet"])
    assert result.exit_code == 1 and "already exists and is not an empty folder" in result.output
    assert (out / "notes.txt").read_text() == "mine"


def test_a_file_that_breaks_while_streaming_is_named(tmp_path):
    pictures, truncated, _ = broken_folder(tmp_path)
    result = CliRunner().invoke(plume_cli, ["train", "--data", str(pictures), "--stream", "on", "--image-size", "12",
                                            "--channels", "rgb", "--out", str(tmp_path / "run"), *TINY, "--steps",
                                            "30", "--workers", "1"])
    assert result.exit_code == 1 and "cannot read image" in result.output and "plume prepare" in result.output
    assert str(truncated) in result.output or "005.png" in result.output


def test_a_prepared_set_refuses_another_size(prepared, tmp_path):
    result = CliRunner().invoke(plume_cli, ["train", "--data", str(prepared), "--image-size", "8",
                                            "--out", str(tmp_path / "run"), *TINY, "--steps", "1"])
    assert result.exit_code == 1 and "was prepared as 12 x 12 rgb images" in result.output
