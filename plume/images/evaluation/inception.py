"""Inception-v3 of the standard FID protocol (Szegedy et al. 2016; Heusel et al. 2017), in plain torch.nn.

This is the network of TensorFlow's 2015-12-05 Inception graph that the original FID and Inception Score code
used, as pytorch-fid ports it (weights file pt_inception-2015-12-05-6726825d.pth). Module and parameter names
follow torchvision's inception_v3 (Conv2d_1a_3x3.conv.weight, Conv2d_1a_3x3.bn.running_mean, Mixed_5b.branch1x1...,
fc.weight) without the auxiliary classifier, so that file loads with strict key matching. The graph differs
from torchvision's Inception-v3 in three ways, all kept here:

- the average pool of the pool branch in the A, C and first E blocks (Mixed_5b-d, Mixed_6b-e, Mixed_7b) leaves
  the zero padding out of the mean (count_include_pad=False), as TensorFlow does;
- the pool branch of the last E block (Mixed_7c) is a 3x3 max pool, not an average pool;
- the classifier has 1008 outputs (the TF graph's class list), fc (2048 -> 1008).

Every convolution is bias-free and followed by BatchNorm (eps 0.001) and ReLU.

Input, as pytorch-fid: images in [0, 1] (uint8 / 255) are resized to 299x299 with F.interpolate(mode="bilinear",
align_corners=False, no antialiasing), scaled to [-1, 1] (2x - 1), and run to the 2048-d output of the final
global average pool ("pool3"), the FID features. Logits are fc(pool3); the Inception Score uses the softmax of
the logits without the fc bias (the original TF code multiplies pool3 by the weight matrix only; torch-fidelity
calls these "logits_unbiased"), which is what `probabilities` returns.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from .weights import load_strict, read_state_dict, weights_path

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
ENV_VAR = "PLUME_INCEPTION"
NUM_CLASSES = 1008
INPUT_SIZE = 299
FEATURES = 2048


class ConvBN(nn.Module):
    """Bias-free convolution, BatchNorm (eps 0.001), ReLU: torchvision's BasicConv2d (keys conv.*, bn.*)."""

    def __init__(self, c_in: int, c_out: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool whose mean leaves the zero padding out (TensorFlow's SAME average pool)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35x35 block (Mixed_5b-d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1; out 224 + pool_features channels."""

    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 64, 1)
        self.branch5x5_1 = ConvBN(c_in, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(tf_avg_pool(x)),
        ], 1)


class BlockB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2; out 384 + 96 + c_in channels."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], 1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b-e); out 4 x 192 = 768 channels."""

    def __init__(self, c_in: int, c7: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 192, 1)
        self.branch7x7_1 = ConvBN(c_in, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d7 = layer(d7)
        return torch.cat([self.branch1x1(x), b7, d7, self.branch_pool(tf_avg_pool(x))], 1)


class BlockD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2; out 320 + 192 + c_in channels."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(c_in, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class BlockE(nn.Module):
    """8x8 block with split 1x3/3x1 outputs (Mixed_7b, 7c); out 320 + 768 + 768 + 192 = 2048 channels.

    pool="avg": TF average pool without padding in the mean (Mixed_7b); pool="max": 3x3 max pool (Mixed_7c).
    """

    def __init__(self, c_in: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = ConvBN(c_in, 320, 1)
        self.branch3x3_1 = ConvBN(c_in, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = tf_avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(d3), self.branch3x3dbl_3b(d3),
            self.branch_pool(pooled),
        ], 1)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3. `pool3` (N, 2048), `logits` (N, 1008), `probabilities` of images (N, 3, H, W) in [0, 1]."""

    def __init__(self, num_classes: int = NUM_CLASSES, description: Optional[str] = None):
        super().__init__()
        self.description = description or f"Inception-v3 (FID protocol, {WEIGHTS_FILE}), pool3 {FEATURES}-d"
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)  # 299 -> 149
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)  # -> 147
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)  # -> 147, then max pool -> 73
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)  # -> 71, then max pool -> 35
        self.Mixed_5b = BlockA(192, pool_features=32)  # -> 256
        self.Mixed_5c = BlockA(256, pool_features=64)  # -> 288
        self.Mixed_5d = BlockA(288, pool_features=64)  # -> 288
        self.Mixed_6a = BlockB(288)  # -> 768 x 17 x 17
        self.Mixed_6b = BlockC(768, c7=128)
        self.Mixed_6c = BlockC(768, c7=160)
        self.Mixed_6d = BlockC(768, c7=160)
        self.Mixed_6e = BlockC(768, c7=192)
        self.Mixed_7a = BlockD(768)  # -> 1280 x 8 x 8
        self.Mixed_7b = BlockE(1280, pool="avg")  # -> 2048
        self.Mixed_7c = BlockE(2048, pool="max")  # -> 2048
        self.fc = nn.Linear(FEATURES, num_classes)
        self.eval()

    @staticmethod
    def preprocess(x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, 299, 299) in [-1, 1], bilinear as pytorch-fid."""
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """The 2048-d FID features of images (N, 3, H, W) in [0, 1]."""
        x = self.preprocess(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean((2, 3))  # (N, 2048): global average pool

    forward = pool3

    def logits(self, x: torch.Tensor, bias: bool = True) -> torch.Tensor:
        """Class logits (N, 1008); bias=False gives the Inception Score's "unbiased" logits (pool3 @ W^T)."""
        return F.linear(self.pool3(x), self.fc.weight, self.fc.bias if bias else None)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax of the unbiased logits (N, 1008), as the Inception Score's reference code computes them."""
        return torch.softmax(self.logits(x, bias=False), dim=1)


NEEDED = (f"The FID Inception-v3 needs the weights file {WEIGHTS_FILE} (TensorFlow's 2015-12-05 Inception "
          f"ported by pytorch-fid, about 95 MB: 23.9 M float32 parameters); on a machine with internet, download "
          f"it from {WEIGHTS_URL} (or take it from the torch hub cache ~/.cache/torch/hub/checkpoints/ where "
          f"pytorch-fid has run) and copy it here; .pth as published or converted to .safetensors.")


def load_inception(path: Union[str, "os.PathLike[str]", None] = None) -> FIDInceptionV3:
    """The FID Inception-v3 with weights from `path` (else $PLUME_INCEPTION), in eval mode on the CPU.

    .safetensors, or a plain state dict read with torch.load(weights_only=True); keys must match exactly.
    """
    path = weights_path(path, ENV_VAR, NEEDED, "--features inception --weights")
    state = read_state_dict(path)
    classes = state["fc.weight"].shape[0] if "fc.weight" in state else NUM_CLASSES
    model = FIDInceptionV3(num_classes=classes,
                           description=f"Inception-v3 (FID protocol, {Path(path).name}), pool3 {FEATURES}-d")
    load_strict(model, state, path, "the FID Inception-v3")
    return model.eval().requires_grad_(False)
