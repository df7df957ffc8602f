"""Bits/dim of held-out digits: the per-pixel Gaussian baseline against its closed form, and a trained model
that beats it."""
import math

import numpy as np
import torch

import plume
from plume.backbones import backbone
from plume.images import ImageData, ImageSet, load_image_data
from plume.images.evaluation.bits_per_dim import gaussian_bits_per_dim, image_bits_per_dim
from plume.train import TrainConfig, load_denoiser, train


def test_gaussian_baseline_closed_form():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20000, 2, 2, 1)).astype(np.uint8)  # uniform on [0, 256) once dequantized
    # A Gaussian fitted to U[0, 256) has variance 256^2 / 12; its cross-entropy with that uniform is
    # 0.5 log(2 pi e var) nats, while the uniform's own entropy is log 256 = 8 bits.
    expected = 0.5 * math.log(2 * math.pi * math.e * 256 ** 2 / 12) / math.log(2)
    assert abs(gaussian_bits_per_dim(pixels[:10000], pixels[10000:]) - expected) < 0.01
    assert expected > 8.0


def test_trained_model_beats_the_per_pixel_gaussian_on_held_out_digits(tmp_path):
    digits = load_image_data("digits").images.pixels  # (1797, 8, 8, 1)
    order = np.random.default_rng(0).permutation(len(digits))
    held_out, train_pixels = digits[order[:64]], digits[order[64:]]
    torch.manual_seed(0)
    net = backbone("unet", in_channels=1, channels=[16, 32], attention_levels=[1], norm_groups=8, head_channels=16)
    model = plume.Denoiser(net, "edm", "edm", "edm", "lognormal", sigma_data=0.5)
    train(model, ImageData(ImageSet(train_pixels, name="digits-train")), tmp_path / "run",
          TrainConfig(steps=300, batch_size=64, lr=2e-3, sample_count=4), progress=False)
    report = image_bits_per_dim(load_denoiser(tmp_path / "run"), held_out, probes=1)
    baseline = gaussian_bits_per_dim(train_pixels, held_out)
    assert report["n_images"] == 64 and report["dimensions"] == 64 and report["probes"] == 1
    assert report["bits_per_dim"] + 3 * report["standard_error"] < baseline, (report["bits_per_dim"], baseline)
