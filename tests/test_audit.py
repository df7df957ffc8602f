"""The memorization audit: training images fed back as samples are flagged as copies and pictured beside their
twins; held-out digits and fresh samples of a trained model are mostly not."""
import numpy as np
import torch
from PIL import Image

import plume
from plume.backbones import backbone
from plume.images import load_image_data, tensor_to_images
from plume.images.evaluation.audit import memorization_audit
from plume.evaluation.memorization import nearest_neighbors
from plume.train import TrainConfig, load_denoiser, train


def split():
    digits = load_image_data("digits").images.pixels  # (1797, 8, 8, 1)
    order = np.random.default_rng(0).permutation(len(digits))
    return digits[order[:300]], digits[order[300:]]


def test_nearest_neighbors_match_brute_force():
    held_out, train_images = split()
    distance, index = nearest_neighbors(held_out[:50], train_images)
    flat = lambda x: x.reshape(len(x), -1).astype(np.float64) / 255  # noqa: E731
    brute = np.linalg.norm(flat(held_out[:50])[:, None] - flat(train_images)[None], axis=-1)  # (50, M)
    assert np.allclose(distance, brute.min(1)) and np.array_equal(index, brute.argmin(1))


def test_training_images_fed_back_are_flagged_and_pictured(tmp_path):
    _, train_images = split()
    fed_back = train_images[100:140]
    report = memorization_audit(fed_back, train_images, tmp_path / "audit.png", count=6)
    assert report["copies"] == 40 and report["copy_fraction"] == 1.0
    assert [c["training"] for c in report["closest"]] == [100 + c["sample"] for c in report["closest"]]
    picture = np.asarray(Image.open(tmp_path / "audit.png"))
    assert picture.shape[1] > 6 * 8 and picture.shape[0] > 2 * 8  # six pairs side by side, two rows


def test_held_out_digits_and_fresh_samples_are_not_copies(tmp_path):
    held_out, train_images = split()
    assert memorization_audit(held_out, train_images, tmp_path / "held_out.png")["copy_fraction"] < 0.02
    torch.manual_seed(0)
    data = plume.images.ImageData(plume.images.ImageSet(train_images, name="digits-train"))
    net = backbone("unet", in_channels=1, channels=[16, 32], attention_levels=[1], norm_groups=8, head_channels=16)
    model = plume.Denoiser(net, "edm", "edm", "edm", "lognormal", sigma_data=0.5)
    train(model, data, tmp_path / "run", TrainConfig(steps=150, batch_size=64, lr=2e-3, sample_count=4), progress=False)
    denoiser = load_denoiser(tmp_path / "run")
    with torch.no_grad():
        x = plume.sample(denoiser, denoiser.process, (200, 1, 8, 8), sampler="dpm++2m", steps=10, seed=0)
    report = memorization_audit(tensor_to_images(x), train_images, tmp_path / "fresh.png")
    assert report["copy_fraction"] < 0.05
