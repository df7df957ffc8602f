"""Backbones by name: networks forward(x, noise_level, cond=None) -> x's shape that know nothing of schedules.

PRESETS holds named sizes as plain data; `backbone(name, preset, **options)` starts from the preset and lets
explicit options override it. Data-dependent options (in_channels, image_size, num_classes) come from the caller.
"""
from __future__ import annotations

from typing import Any, Optional

from torch import nn

from ..errors import PlumeError
from ..registry import Registry, build
from .dit import DiT
from .mlp import MLP
from .unet import UNet

BACKBONES: Registry[type[nn.Module]] = Registry("backbone", {
    "mlp": MLP,
    "unet": UNet,
    "dit": DiT,
})  # data types add their own (plume.images: super_resolution, image_conditioned) with register_backbone

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "unet": {
        # 8x8 to 32x32 images on a CPU (sklearn digits, MNIST): halves twice, attention at 1/2 resolution.
        "tiny": {"channels": [32, 64, 64], "blocks_per_level": 1, "attention_levels": [1], "head_channels": 32,
                 "norm_groups": 8, "embed_features": 64},
        # The widths and depth of the diffusers UNet2DModel we benchmark against (bench/).
        "small": {"channels": [64, 128, 128], "blocks_per_level": 2, "attention_levels": [1], "head_channels": 32,
                  "norm_groups": 32},
        # DDPM's CIFAR-10 network (Ho et al. 2020, appendix B: 35.7M parameters): 128 x (1, 2, 2, 2), two blocks,
        # attention at 16x16 for 32x32 images, dropout 0.1; heads of 64 channels as in ADM.
        "base": {"channels": [128, 256, 256, 256], "blocks_per_level": 2, "attention_levels": [1], "head_channels": 64,
                 "dropout": 0.1, "norm_groups": 32},
    },
    "dit": {  # Peebles & Xie 2023, Table 1 (tiny is ours); patch_size and image_size are the caller's.
        "tiny": {"width": 128, "depth": 4, "heads": 4},
        "S": {"width": 384, "depth": 12, "heads": 6},
        "B": {"width": 768, "depth": 12, "heads": 12},
        "L": {"width": 1024, "depth": 24, "heads": 16},
        "XL": {"width": 1152, "depth": 28, "heads": 16},
    },
}


def register_backbone(name: str, cls: type[nn.Module], presets: Optional[dict[str, dict[str, Any]]] = None) -> None:
    """Make `cls` buildable as backbone(name, ...) (and recorded under `name` in config.json), with named presets."""
    BACKBONES.register(name, cls)
    if presets:
        PRESETS[name] = dict(presets)


def backbone(name: str, preset: Optional[str] = None, **options: Any) -> nn.Module:
    """Build a backbone by name, from a preset's options if named, overridden by explicit options;
    unknown names, presets or options list the valid ones."""
    if preset is not None and name in BACKBONES:  # an unknown name is reported by build
        presets = PRESETS.get(name, {})
        if preset not in presets:
            valid = ", ".join(presets) if presets else f"none (backbone {name!r} has no presets)"
            raise PlumeError(f"unknown {name} preset {preset!r}; valid presets: {valid}")
        options = {**presets[preset], **options}
    return build("backbone", BACKBONES, name, **options)


def is_conditional(module: nn.Module) -> bool:
    """Whether a backbone takes a condition: built with num_classes (labels) or text (token ids)."""
    options = module.options() if hasattr(module, "options") else {}
    return options.get("num_classes") is not None or bool(options.get("text"))


def backbone_name(module: nn.Module) -> str:
    """The registry name of a backbone instance (what config.json records)."""
    for name, cls in BACKBONES.items():
        if type(module) is cls:
            return name
    raise PlumeError(f"{type(module).__name__} is not a registered backbone; registered: {', '.join(BACKBONES)}")


__all__ = ["BACKBONES", "PRESETS", "backbone", "backbone_name", "is_conditional", "register_backbone", "DiT", "MLP", "UNet"]
