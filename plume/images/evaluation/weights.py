"""The weight files of the pretrained feature networks (Inception-v3, DINOv2): where to find them, how to read them
(safetensors, or a plain state dict through torch.load(weights_only=True); never pickled code) and how to load them
with every key matched."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ...errors import PlumeError
from ...train.checkpoint import parse_tensors

PathLike = Union[str, os.PathLike]


def weights_path(path: Optional[PathLike], env_var: str, needed: str, option: str) -> Path:
    """The weights file to use: `path`, else the environment variable `env_var`; PlumeError with `needed` if absent.

    `needed` says which file is wanted and how to obtain it; the message adds how to pass it (`option`, the
    command-line option, e.g. "--features inception --weights").
    """
    source = "the path given"
    if path is None or str(path) == "":
        path, source = os.environ.get(env_var) or None, f"${env_var}"
    how = (f"Pass its path (path=... in Python, {option} PATH on the command line) or set the environment "
           f"variable {env_var}=PATH.")
    if path is None:
        raise PlumeError(f"no weights file given. {needed} {how}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise PlumeError(f"weights file {path} ({source}) does not exist. {needed} {how}")
    return path


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or from a plain state dict saved with torch.save (weights_only load)."""
    if path.suffix == ".safetensors":
        return parse_tensors(path.read_bytes(), path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickled code, a corrupt file, or not a torch file at all
        raise PlumeError(f"{path}: not a plain state dict that torch.load(weights_only=True) can read ({e}); convert "
                         f"it to .safetensors with safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PlumeError(f"{path}: expected a state dict (parameter name -> tensor), got {type(state).__name__}"
                         + (f" with keys {list(state)[:5]}" if isinstance(state, dict) else ""))
    return dict(state)


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> nn.Module:
    """Load `state` into `model` with every key matched; PlumeError listing the first missing/unexpected keys.

    BatchNorm's num_batches_tracked counters are optional (older files lack them; they do not affect eval).
    """
    expected = model.state_dict()
    state = dict(state)
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = expected[key].clone()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        def first(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" ... ({len(keys)} in all)" if len(keys) > 5 else "")
        parts = ([f"missing keys: {first(missing)}"] if missing else []) + \
                ([f"unexpected keys: {first(unexpected)}"] if unexpected else [])
        raise PlumeError(f"{path} does not fit {what}: " + "; ".join(parts))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
             if state[k].shape != v.shape]
    if wrong:
        raise PlumeError(f"{path} does not fit {what}: wrong shapes: {', '.join(wrong[:5])}")
    model.load_state_dict(state, strict=True)
    return model


__all__ = ["weights_path", "read_state_dict", "load_strict"]
