"""The training options (TrainConfig, saved in a run's config.json as "training"), the ones a resume may change, and
the learning-rate schedule they define: linear warm-up (Goyal et al. 2017), then constant, cosine (Loshchilov &
Hutter 2017) or linear decay.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Optional

from ..errors import PlumeError
from .power_ema import MAX_SIGMA_REL

LR_SCHEDULES = ("constant", "cosine", "linear")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: bf16 autocast on a CUDA device that supports it, else fp32
PARALLEL = ("ddp", "fsdp")


@dataclass
class TrainConfig:
    """Training options, saved in config.json. batch_size is per micro-batch; each step sums `accumulate` of them."""

    steps: int = 2000
    minutes: Optional[float] = None
    batch_size: int = 512
    accumulate: int = 1
    lr: float = 5e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 25
    sample_count: int = 2000
    sampler: str = "dpm++2m"
    sample_steps: int = 20
    lr_schedule: str = "constant"
    precision: str = "auto"
    preview_every: int = 0
    tensorboard: bool = False
    channels_last: bool = True  # images (B, C, H, W) and 4-D weights in NHWC: faster convolutions (bench/unet_throughput.py)
    parallel: str = "ddp"  # under torchrun: "ddp" (a full copy per rank) or "fsdp" (weights and state sharded)
    compile: bool = False  # torch.compile the backbone (worth it on a GPU for long runs; compiling takes minutes)
    label_dropout: float = 0.0  # with class labels: the fraction trained as "no label", for classifier-free guidance
    fused_adamw: bool = True  # AdamW's fused kernel (CPU and CUDA): 2-4x faster updates than foreach on the CPU
    ema_profiles: tuple[float, ...] = ()  # sigma_rel of power-function EMAs snapshotted for post-hoc EMA (EDM2)
    ema_snapshot_every: int = 100  # steps between those snapshots (plume.train.ema_snapshots)

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "accumulate", "checkpoint_every", "log_every", "sample_count", "sample_steps",
                    "ema_snapshot_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise PlumeError(f"training option {name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "warmup_steps", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise PlumeError(f"training option {name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise PlumeError(f"training option label_dropout must lie in [0, 1), got {self.label_dropout}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise PlumeError(f"training option ema_decay must lie in [0, 1), got {self.ema_decay}")
        self.ema_profiles = tuple(float(v) for v in self.ema_profiles)
        widths = self.ema_profiles
        if any(not 0 < v < MAX_SIGMA_REL for v in widths) or len(set(widths)) < len(widths):
            raise PlumeError(f"training option ema_profiles must be distinct widths sigma_rel in (0, {MAX_SIGMA_REL}) "
                             f"(e.g. 0.05, 0.1), got {list(self.ema_profiles)}")
        if self.minutes is not None and not self.minutes > 0:
            raise PlumeError(f"training option minutes must be > 0, got {self.minutes}")
        if self.preview_every < 0:
            raise PlumeError(f"training option preview_every must be >= 0 (0: only at the end), got {self.preview_every}")
        for name, valid in (("lr_schedule", LR_SCHEDULES), ("precision", PRECISIONS), ("parallel", PARALLEL)):
            if getattr(self, name) not in valid:
                raise PlumeError(f"training option {name} must be one of {', '.join(valid)}, got {getattr(self, name)!r}")


def train_config(options: dict[str, Any], source: str = "training options") -> TrainConfig:
    """A TrainConfig from a dict (e.g. config.json's "training"); unknown names list the valid ones."""
    valid = [f.name for f in fields(TrainConfig)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise PlumeError(f"{source}: unknown training option {unknown[0]!r}; valid options: {', '.join(valid)}")
    return TrainConfig(**options)


# Options a resumed run may change; every other one must match the checkpoint's for the resume to be exact.
RESUMABLE_CHANGES = ("steps", "minutes", "checkpoint_every", "log_every", "sample_count", "sampler", "sample_steps",
                     "preview_every", "tensorboard", "parallel", "compile", "ema_snapshot_every")


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up over warmup_steps (Goyal et al. 2017), then constant, cosine (Loshchilov & Hutter 2017)
    or linear decay to 0 at config.steps."""
    warmup = min(1.0, (step + 1) / max(1, config.warmup_steps))
    done = min(1.0, max(0.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)))
    decay = {"constant": 1.0, "cosine": 0.5 * (1.0 + math.cos(math.pi * done)), "linear": 1.0 - done}
    return config.lr * warmup * decay[config.lr_schedule]


__all__ = ["LR_SCHEDULES", "PRECISIONS", "PARALLEL", "RESUMABLE_CHANGES", "TrainConfig", "train_config",
           "learning_rate"]
