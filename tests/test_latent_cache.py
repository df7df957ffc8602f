"""Latent caches (plume.images.latent.cache) and latents of streamed sets: the cache, the images encoded on the fly
and the in-memory latents give the same batches (flips included) and the same training; a cache-based run resumes
bit for bit; a changed autoencoder, an occupied --out and a failure midway are handled."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from plume import Denoiser, TrainConfig, backbone
from plume.cli import main
from plume.errors import PlumeError
from plume.images import load_image_data
from plume.images.codec import images_to_tensor, random_flips
from plume.images.latent import (AutoencoderConfig, CachedLatents, EncodedLatents, KLAutoencoder, encode_images,
    latents_from_info, load_autoencoder, prepare_latents, train_autoencoder)
from plume.images.latent import cache as cache_module
from plume.images.codec import mirrored
from plume.images.latent.training import AutoencoderLoss
from plume.images.prepare import prepare_images
from plume.train import read_config, train

SMALL = {"width": 8, "norm_groups": 4}  # a CPU-test-sized autoencoder, as in tests/test_latent.py
TINY_UNET = {"in_channels": 4, "channels": [16, 16], "norm_groups": 4, "head_channels": 16, "attention_levels": []}
LOOSE = {"rtol": 1e-5, "atol": 1e-5}  # the encoder's float rounding over different batch sizes


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A prepared set of 32 labelled 16 x 16 photo crops and a tiny autoencoder trained 2 steps on them."""
    root = tmp_path_factory.mktemp("latent-cache")
    prepare_images("photos", root / "set", image_size=16, limit=32, progress=False)
    torch.manual_seed(0)
    train_autoencoder(KLAutoencoder(**SMALL), load_image_data(root / "set", workers=0), root / "ae",
                      AutoencoderConfig(steps=2, batch_size=4), progress=False)
    return root


def streamed(folders, flip=True):
    """The prepared set as a streamed set (read in this process), with flips and a hold-out."""
    return load_image_data(folders / "set", flip=flip, holdout=0.25, workers=0)


@pytest.fixture(scope="module")
def cache(folders):
    prepare_latents(streamed(folders), folders / "ae", folders / "cache", batch_size=8, progress=False)
    return folders / "cache"


def denoiser():
    torch.manual_seed(0)
    return Denoiser(backbone("unet", **TINY_UNET), process="edm", prediction="edm", weighting="edm",
                    time_sampling="lognormal")


def losses(run):
    rows = (run / "loss.csv").read_text().splitlines()
    column = rows[0].split(",").index("loss")
    return [float(row.split(",")[column]) for row in rows[1:]]


def weights(run):
    return {name: (run / "checkpoint" / name).read_bytes() for name in ("model.safetensors", "ema.safetensors")}


CONFIG = TrainConfig(steps=4, batch_size=8, log_every=1, sample_count=2, sample_steps=2, warmup_steps=2)


def test_cache_on_the_fly_and_in_memory_latents_give_the_same_batches_with_flips(folders, cache):
    """For the same (index, generator), the cache's batch equals the images encoded on the fly (their flips drawn by
    random_flips), and the in-memory latents' too, up to the encoder's rounding; each draws as many random numbers
    as the images do, so the times and noise drawn after the batch are the same as well."""
    images = streamed(folders)
    views = {"cache": CachedLatents(cache, workers=0), "on the fly": EncodedLatents(images, folders / "ae"),
             "in memory": encode_images(load_image_data("photos", image_size=16, limit=32, flip=True, holdout=0.25,
                                                        progress=False), folders / "ae")}
    worst = 0.0
    for seed in range(4):
        index = torch.randint(len(images), (12,), generator=torch.Generator().manual_seed(100 + seed))
        assert mirrored(12, torch.Generator().manual_seed(seed)).any()  # some of these rows are mirrored
        batches, after = {}, {}
        for name, data in views.items():
            generator = torch.Generator().manual_seed(seed)
            batches[name] = data.batch(index, generator)  # (12, 4, 4, 4)
            after[name] = torch.rand(3, generator=generator)
        for name in ("on the fly", "in memory"):
            torch.testing.assert_close(batches["cache"], batches[name], **LOOSE)
            worst = max(worst, float((batches["cache"] - batches[name]).abs().max()))
            assert torch.equal(after["cache"], after[name]), name
    print(f"max |cache - others| = {worst:.3g}")


def test_a_mirrored_row_is_the_latent_of_the_mirrored_image(folders, cache):
    images, ae = streamed(folders), load_autoencoder(folders / "ae")
    latents = np.load(cache / "latents.npy", mmap_mode="r")  # (24, 2, 4, 4, 4)
    about = json.loads((cache / "plume-latents.json").read_text())
    assert latents.shape == (24, 2, 4, 4, 4) and about["count"] == 24 and about["flip"] is True
    pixels = images_to_tensor(images.read_rows(images.train_rows, "training images"))  # (24, 3, 16, 16) unflipped
    with torch.no_grad():
        plain, mirror = ae.to_latent(pixels), ae.to_latent(pixels.flip(-1))  # (24, 4, 4, 4)
    torch.testing.assert_close(torch.from_numpy(latents[:, 0].copy()), plain, **LOOSE)
    torch.testing.assert_close(torch.from_numpy(latents[:, 1].copy()), mirror, **LOOSE)
    assert float((mirror - plain).abs().max()) > 0.1  # mirroring changes the latents
    assert np.array_equal(np.load(cache / "labels.npy"), images.labels.numpy())


def test_training_from_the_cache_matches_training_on_the_fly(folders, cache, tmp_path):
    """Four steps from the cache and four with the images encoded on the fly (a streamed set, read ahead): the same
    loss curve and weights to float tolerance."""
    train(denoiser(), CachedLatents(cache, workers=0), tmp_path / "cache", CONFIG, progress=False)
    train(denoiser(), EncodedLatents(streamed(folders), folders / "ae"), tmp_path / "fly", CONFIG, progress=False)
    a, b = losses(tmp_path / "cache"), losses(tmp_path / "fly")
    assert "consumed_per_second" in (tmp_path / "fly" / "loss.csv").read_text()  # the pixels were read ahead
    assert len(a) == 4 and a == pytest.approx(b, rel=1e-4, abs=1e-6), (a, b)
    print(f"max |loss difference| = {max(abs(x - y) for x, y in zip(a, b)):.3g}")
    from plume.train import load_denoiser

    one, two = load_denoiser(tmp_path / "cache"), load_denoiser(tmp_path / "fly")
    for (name, p), q in zip(one.state_dict().items(), two.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    saved = read_config(tmp_path / "cache")["data"]
    assert saved["kind"] == "latent" and saved["cache"]["path"] == str(cache.resolve()) and saved["size"] == 24
    assert saved["images"]["loader"]["source"] == str((folders / "set").resolve())  # what plume eval reads


def test_a_cache_run_stopped_and_resumed_ends_as_one_run_straight_through(cache, tmp_path):
    """Two steps, then a resume from the run's own data info (the cache rebuilt from config.json) to four: the weights
    equal those of four steps in one go, bit for bit."""
    train(denoiser(), CachedLatents(cache, workers=0), tmp_path / "straight", CONFIG, progress=False)
    train(denoiser(), CachedLatents(cache, workers=0), tmp_path / "split", replace(CONFIG, steps=2), progress=False)
    data = latents_from_info(read_config(tmp_path / "split")["data"])
    assert isinstance(data, CachedLatents) and data.cache == cache.resolve()
    torch.manual_seed(7)  # the resumed model's own initial weights must not matter
    model = Denoiser(backbone("unet", **TINY_UNET), process="edm", prediction="edm", weighting="edm",
                     time_sampling="lognormal")
    assert train(model, data, tmp_path / "split", CONFIG, progress=False, resume=True).step == 4
    assert weights(tmp_path / "split") == weights(tmp_path / "straight")
    assert losses(tmp_path / "split") == losses(tmp_path / "straight")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_a_changed_autoencoder_is_refused_and_a_cache_takes_no_image_options(folders, tmp_path):
    """`plume train --data CACHE` trains on the cache and refuses image options; after the autoencoder's weights
    change, resuming the run and reading the cache are both refused, naming the autoencoder's folder."""
    ae = tmp_path / "ae"
    torch.manual_seed(0)
    train_autoencoder(KLAutoencoder(**SMALL), streamed(folders, flip=False), ae,
                      AutoencoderConfig(steps=2, batch_size=4), progress=False)
    prepare_latents(streamed(folders, flip=False), ae, tmp_path / "cache", progress=False)
    tiny = ["--backbone-option", "channels=[16,16]", "--backbone-option", "norm_groups=4", "--backbone-option",
            "head_channels=16", "--batch-size", "8", "--sample-count", "2", "--quiet", "--threads", "1",
            "--workers", "0"]
    result = run("train", "--data", tmp_path / "cache", "--flip", "--out", tmp_path / "run", *tiny)
    assert result.exit_code == 2 and "--flip does not apply to the latent cache" in result.output, result.output
    result = run("train", "--data", tmp_path / "cache", "--out", tmp_path / "run", "--steps", "1", *tiny)
    assert result.exit_code == 0, result.output
    assert read_config(tmp_path / "run")["data"]["cache"]["count"] == 24

    train_autoencoder(KLAutoencoder(**SMALL), streamed(folders, flip=False), ae,
                      AutoencoderConfig(steps=3, batch_size=4), progress=False, resume=True)  # new weights
    result = run("train", "--out", tmp_path / "run", "--resume", "--steps", "2", "--quiet", "--threads", "1")
    assert result.exit_code == 1 and f"the autoencoder in {ae.resolve()} changed after this run was trained" in \
        result.output, result.output
    with pytest.raises(PlumeError, match="changed after this latent cache was written"):
        CachedLatents(tmp_path / "cache")


def test_a_non_empty_out_is_refused_and_a_failure_midway_leaves_no_folder(folders, tmp_path, monkeypatch):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "note.txt").write_text("mine")
    with pytest.raises(PlumeError, match=f"{tmp_path / 'taken'} already exists and is not an empty folder"):
        prepare_latents(streamed(folders), folders / "ae", tmp_path / "taken", progress=False)
    assert (tmp_path / "taken" / "note.txt").read_text() == "mine"

    real = cache_module.encoded_views

    def fails_after_one_chunk(*args, **kwargs):
        chunks = real(*args, **kwargs)
        yield next(chunks)
        raise PlumeError("disk full")

    monkeypatch.setattr(cache_module, "encoded_views", fails_after_one_chunk)
    with pytest.raises(PlumeError, match="disk full"):
        prepare_latents(streamed(folders), folders / "ae", tmp_path / "out", batch_size=8, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # neither out nor its hidden partial folder


def test_in_memory_latents_with_flip_apply_flips(folders):
    """`--latent AE --flip` on images in memory: a batch holds the latents of the images random_flips mirrors (it
    used to hold the unmirrored latents whatever the flips)."""
    images = load_image_data("photos", image_size=16, limit=32, flip=True, progress=False)
    data = encode_images(images, folders / "ae")
    ae = load_autoencoder(folders / "ae")
    index = torch.arange(len(images))
    with torch.no_grad():
        expected = ae.to_latent(random_flips(images.data[index], torch.Generator().manual_seed(3)))
    got = data.batch(index, torch.Generator().manual_seed(3))  # (32, 4, 4, 4)
    torch.testing.assert_close(got, expected, **LOOSE)
    assert float((got - data.data[index]).abs().amax((1, 2, 3)).max()) > 0.1  # some rows are mirrored
    assert data.info()["images"]["flip"] is True


def test_the_autoencoder_trains_on_a_streamed_set_as_in_memory(folders, tmp_path, monkeypatch):
    """The autoencoder's reads() are the rows its draw() asks for (nothing read outside the plan), and trained on the
    streamed set it ends with the weights and latent scale of training on the same images in memory."""
    from plume.train.streaming import Prefetcher

    asked, real_take = [], Prefetcher.take

    def take(self, rows):
        got = real_take(self, rows)
        asked.append(got is not None)
        return got

    monkeypatch.setattr(Prefetcher, "take", take)
    config = AutoencoderConfig(steps=3, batch_size=4)
    outs = {}
    for name, images in (("streamed", streamed(folders, flip=True)),
                         ("memory", load_image_data("photos", image_size=16, limit=32, flip=True, holdout=0.25,
                                                    progress=False))):
        torch.manual_seed(0)
        train_autoencoder(KLAutoencoder(**SMALL), images, tmp_path / name, config, progress=False)
        outs[name] = json.loads((tmp_path / name / "checkpoint" / "config.json").read_text())
    assert asked and all(asked)  # every batch came from the plan
    assert outs["streamed"]["files"]["model.safetensors"] == outs["memory"]["files"]["model.safetensors"]
    assert outs["streamed"]["scale_factor"] == outs["memory"]["scale_factor"]
    assert outs["streamed"]["reconstruction"] == outs["memory"]["reconstruction"]
    index = AutoencoderLoss(KLAutoencoder(**SMALL), streamed(folders), config).reads(24, config, 5, 0, 0, 4)
    assert len(index) == 1 and index[0].shape == (4,)
