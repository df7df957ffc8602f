"""A small CNN image classifier that Plume trains itself, for feature-space metrics on data sets with no
standard feature network (8x8 digits, small test images).

FID needs features that separate what a person would call different images; Inception-v3 (Heusel et al.
2017) sees 299x299 photographs, and a network trained on the data's own labels is the usual stand-in for
small sets (e.g. the LeNet features of Binkowski et al. 2018 for MNIST). This one is a VGG-style stack
(Simonyan & Zisserman 2015): stages of two 3x3 convolutions with GroupNorm and SiLU, 2x2 max-pooling
between stages down to 4x4 or less, global average pooling, a 64-unit hidden layer (the features), and
a linear read-out. It trains with Adam and random shifts of up to one pixel (edge-padded), so its features
do not hinge on exact pixel positions. Training is a function of the seed (its own generator for weights,
batches and shifts). Weights are a plain state_dict; nothing is pickled.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from ...progress import progress_bar

from ...errors import PlumeError

FEATURES = 64  # width of the penultimate layer, whose activations are the features


def check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    """uint8 images (N, H, W, C), as the .npz sample convention stores them; anything else is rejected."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise PlumeError(f"{name} must be uint8 shaped (N, H, W, C), got {images.dtype} {images.shape}")
    if len(images) == 0:
        raise PlumeError(f"{name} is empty")
    return images


def conv_stage(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with GroupNorm (8 groups) and SiLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU())


class ImageClassifier(nn.Module):
    """CNN on uint8 (N, H, W, C) images; `features` gives the penultimate activations (N, 64)."""

    def __init__(self, image_shape: tuple[int, int, int], classes: np.ndarray, widths: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        h, w, c = (int(d) for d in image_shape)
        self.image_shape = (h, w, c)
        self.register_buffer("classes", torch.as_tensor(np.asarray(classes), dtype=torch.int64))  # (K,) label values
        self.register_buffer("mean", torch.zeros(c))  # per-channel input standardisation, set from training data
        self.register_buffer("std", torch.ones(c))
        stages, c_in, size = [], c, max(h, w)
        for i, width in enumerate(widths):
            if i > 0 and size > 4:
                stages.append(nn.MaxPool2d(2))
                size = math.ceil(size / 2)
            stages += [conv_stage(c_in, width)]
            c_in = width
        self.body = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (N, widths[-1])
        self.hidden = nn.Sequential(nn.Linear(c_in, FEATURES), nn.SiLU())  # (N, FEATURES)
        self.head = nn.Linear(FEATURES, len(self.classes))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, C) -> standardised float (N, C, H, W)."""
        x = images.permute(0, 3, 1, 2).float() / 255.0  # (N, C, H, W) in [0, 1]
        return (x - self.mean[:, None, None]) / self.std[:, None, None]

    def hidden_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.body(x))  # (N, FEATURES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) for standardised input x (N, C, H, W)."""
        return self.head(self.hidden_features(x))

    @torch.no_grad()
    def _batched(self, images: np.ndarray, fn, batch_size: int = 512) -> np.ndarray:
        images = check_images(images)
        if images.shape[1:] != self.image_shape:
            raise PlumeError(f"images are shaped {images.shape[1:]} (H, W, C); this classifier was trained on "
                             f"{self.image_shape}")
        was_training = self.training
        self.eval()
        out = [fn(self.prepare(torch.from_numpy(images[i:i + batch_size]))).double().numpy()
               for i in range(0, len(images), batch_size)]
        self.train(was_training)
        return np.concatenate(out)

    def features(self, images: np.ndarray) -> np.ndarray:
        """Penultimate-layer activations (N, 64) of uint8 images (N, H, W, C), float64."""
        return self._batched(images, self.hidden_features)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, K), columns in the order of `classes`."""
        return self._batched(images, lambda x: torch.softmax(self(x), 1))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The most probable label (N,) (label values as given to train_classifier)."""
        return self.classes.numpy()[self.probabilities(images).argmax(1)]


def random_shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 1) -> torch.Tensor:
    """Shift each image (N, C, H, W) by up to `pixels` in each direction, padding with the edge values."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4, mode="replicate")  # (N, C, H + 2p, W + 2p)
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, x.shape[1], h, w + 2 * pixels)
    cropped = padded.gather(2, rows)  # (N, C, H, W + 2p)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, x.shape[1], h, w)
    return cropped.gather(3, cols)  # (N, C, H, W)


def train_classifier(images: np.ndarray, labels: np.ndarray, seed: int = 0, steps: int = 400, batch_size: int = 128,
                     lr: float = 3e-3, progress: bool = False) -> ImageClassifier:
    """Train an ImageClassifier on uint8 images (N, H, W, C) with integer labels (N,); deterministic given seed.

    Adam with a cosine-decayed learning rate and random one-pixel shifts; returns the model in eval mode.
    """
    images = check_images(images)
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise PlumeError(f"labels must be integers shaped ({len(images)},), got {labels.dtype} {labels.shape}")
    classes, targets = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise PlumeError(f"a classifier needs at least two classes; the labels hold only {classes.tolist()}")
    generator = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = ImageClassifier(images.shape[1:], classes)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0  # (N, C, H, W)
    model.mean.copy_(x.mean((0, 2, 3)))
    model.std.copy_(x.std((0, 2, 3)).clamp_min(1e-3))
    x = model.prepare(torch.from_numpy(images))
    y = torch.from_numpy(targets.astype(np.int64))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    model.train()
    for _ in progress_bar(range(steps), desc="train classifier", enabled=progress):
        index = torch.randint(len(x), (min(batch_size, len(x)),), generator=generator)  # (B,)
        loss = F.cross_entropy(model(random_shift(x[index], generator)), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()
