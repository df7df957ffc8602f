"""Checkpoints: a directory of config.json and safetensors files, written atomically, never pickled.

    <run>/checkpoint/
      config.json            format_version, plume_version, backbone {name, options}, denoiser (Denoiser.options()),
                             training options, data, step, and files {name: {bytes, sha256}} for the files below
      model.safetensors      the backbone's weights
      ema.safetensors        their exponential moving average
      optimizer.safetensors  the optimizer's tensors, keyed "state.<param index>.<name>"
      optimizer.json         the optimizer's other parts: param_groups and non-tensor state
A save writes <run>/.checkpoint.tmp, fsyncs it, moves the previous checkpoint aside to checkpoint.old, renames the
new one into place and deletes checkpoint.old. A crash at any moment leaves a complete checkpoint in checkpoint/
or checkpoint.old/; loading and the next save find either. Every load error is one PlumeError naming the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import safetensors
import safetensors.torch
import torch
from torch import nn

from ..backbones import backbone as build_backbone, backbone_name
from ..denoiser import Denoiser
from ..errors import PlumeError
from ..objective import P_MEAN
from ..processes import process as build_process
from .ema import EMA

FORMAT_VERSION = 1
CHECKPOINT = "checkpoint"
PathLike = Union[str, os.PathLike]


# --- what a denoiser is, as plain data ------------------------------------------------------------
def denoiser_config(denoiser: Denoiser) -> dict[str, Any]:
    """The config.json entries that rebuild `denoiser` (weights aside): backbone name and options, denoiser options."""
    return {"backbone": {"name": backbone_name(denoiser.backbone), "options": denoiser.backbone.options()},
            "denoiser": denoiser.options()}


def build_denoiser(config: dict[str, Any], source: PathLike = "config") -> Denoiser:
    """The inverse of denoiser_config: a freshly initialised denoiser; errors name `source`."""
    name, options = _field(config, "backbone.name", source), _field(config, "backbone.options", source)
    opts = dict(_field(config, "denoiser", source))
    process = dict(_field(config, "denoiser.process", source))
    process_name = _field(config, "denoiser.process.name", source)
    process.pop("name")
    if not isinstance(options, dict):
        raise PlumeError(f"{source}: backbone.options must be a JSON object, found {type(options).__name__}")
    try:
        net = build_backbone(name, **options)
        proc = build_process(process_name, **process)
        return Denoiser(net, proc, opts.get("prediction", "eps"), opts.get("weighting", "simple"),
                        opts.get("time_sampling", "uniform"), opts.get("sigma_data", 1.0),
                        opts.get("lognormal_mean", P_MEAN))
    except PlumeError as e:
        raise PlumeError(f"{source}: {e}") from None


# --- saving ------------------------------------------------------------------------------------------
def save_checkpoint(directory: PathLike, config: dict[str, Any], model: "nn.Module | dict[str, torch.Tensor]",
                    ema: "EMA | dict[str, torch.Tensor] | None" = None,
                    optimizer: "torch.optim.Optimizer | dict[str, Any] | None" = None) -> Path:
    """Write config + weights (+ EMA, + optimizer) atomically to `directory`, replacing what was there.

    Each of model, ema and optimizer may also be given as its state dict (e.g. gathered from FSDP shards)."""
    from ..version import __version__

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    _recover(directory)
    tmp = directory.with_name(f".{directory.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a save that crashed; the checkpoint itself is intact
    tmp.mkdir()
    try:
        files: dict[str, Any] = {}
        state = lambda part: part if isinstance(part, dict) or part is None else part.state_dict()  # noqa: E731
        parts = {"model": state(model), "ema": state(ema)}
        scalars = None
        if optimizer is not None:
            parts["optimizer"], scalars = flatten_optimizer(state(optimizer))
        for name, tensors in parts.items():
            if tensors is not None:
                files[f"{name}.safetensors"] = write_file(tmp / f"{name}.safetensors", tensor_bytes(tensors))
        if scalars is not None:
            files["optimizer.json"] = write_file(tmp / "optimizer.json", _json_bytes(scalars))
        full = {"format_version": FORMAT_VERSION, "plume_version": __version__, **config, "files": files}
        write_file(tmp / "config.json", _json_bytes(full))  # written last: its presence marks a complete directory
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = directory.with_name(f"{directory.name}.old")
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    _fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _recover(directory: Path) -> None:
    """Finish a swap a crash interrupted: restore checkpoint.old if checkpoint/ is missing, else drop it."""
    old = directory.with_name(f"{directory.name}.old")
    if old.exists() and not directory.exists():
        os.replace(old, directory)
    elif old.exists():
        shutil.rmtree(old)


def tensor_bytes(tensors: dict[str, torch.Tensor], metadata: Optional[dict[str, str]] = None) -> bytes:
    """A safetensors file's bytes for `tensors` (copied to the CPU, contiguous), with optional string metadata."""
    return safetensors.torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)


def write_file(path: Path, data: bytes) -> dict[str, Any]:
    """Write bytes and fsync them; returns the {bytes, sha256} entry config.json records."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _fsync_dir(path: Path) -> None:
    if hasattr(os, "O_DIRECTORY"):  # POSIX; directory entries are durable after this
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, allow_nan=False) + "\n").encode("utf-8")


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a torch optimizer state_dict into tensors ("state.<index>.<name>") and JSON-able scalars."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars["state"].setdefault(str(index), {})[name] = value
    return tensors, scalars


def unflatten_optimizer(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, Any]:
    """The inverse of flatten_optimizer: a state_dict for optimizer.load_state_dict."""
    state: dict[int, dict[str, Any]] = {int(i): dict(entry) for i, entry in scalars.get("state", {}).items()}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": scalars["param_groups"]}


# --- loading -----------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A loaded checkpoint: its config and tensors (optimizer as a torch state_dict)."""

    path: Path
    config: dict[str, Any]
    model: dict[str, torch.Tensor]
    ema: Optional[dict[str, torch.Tensor]]
    optimizer: Optional[dict[str, Any]]

    @property
    def step(self) -> int:
        return int(self.config["step"])


def find_checkpoint(path: PathLike) -> Path:
    """The checkpoint directory for a run directory or a checkpoint directory (or its interrupted-swap copy)."""
    path = Path(path)
    for candidate in (path, path / CHECKPOINT, path.with_name(f"{path.name}.old"), path / f"{CHECKPOINT}.old"):
        if (candidate / "config.json").is_file():
            return candidate
    if not path.exists():
        raise PlumeError(f"checkpoint directory {path} does not exist")
    if not path.is_dir():
        raise PlumeError(f"{path} is a file; a checkpoint is a directory holding config.json")
    raise PlumeError(f"{path} holds no Plume checkpoint (no config.json in it or in {path / CHECKPOINT})")


def refuse_existing_run(out: PathLike) -> None:
    """A PlumeError if `out` already holds a checkpoint: a command that writes a new run never overwrites one."""
    try:
        find_checkpoint(out)
    except PlumeError:
        pass  # nothing there yet: good
    else:
        raise PlumeError(f"{out} already holds a run; choose another directory or remove it first")


def read_config(path: PathLike) -> dict[str, Any]:
    """config.json of a checkpoint, checked for its format version and required fields."""
    directory = find_checkpoint(path)
    config_path = directory / "config.json"
    config = read_json(config_path)
    from ..version import __version__

    version = config.get("format_version")
    if version is None:
        raise PlumeError(f"{config_path} has no 'format_version': it is not a Plume checkpoint config")
    if version != FORMAT_VERSION:
        raise PlumeError(f"{config_path} is checkpoint format version {version} (written by Plume "
                         f"{config.get('plume_version', '?')}); this Plume ({__version__}) reads format version {FORMAT_VERSION}")
    for field in ("backbone.name", "backbone.options", "denoiser.process", "step", "files"):
        _field(config, field, config_path)
    return config


def load_checkpoint(path: PathLike, optimizer: bool = True) -> Checkpoint:
    """Read and verify a checkpoint's config and tensors (sizes and SHA-256 against config.json)."""
    directory = find_checkpoint(path)
    config = read_config(directory)
    files = config["files"]
    model = read_tensors(directory, "model.safetensors", files)
    ema = read_tensors(directory, "ema.safetensors", files) if "ema.safetensors" in files else None
    return Checkpoint(directory, config, model, ema, read_optimizer(directory, files) if optimizer else None)


def read_optimizer(directory: Path, files: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The optimizer state_dict saved in checkpoint `directory` (verified against config.json's `files`), or None
    if it was saved without one."""
    if "optimizer.safetensors" not in files:
        return None
    scalars = json.loads(read_verified(directory, "optimizer.json", files))
    return unflatten_optimizer(read_tensors(directory, "optimizer.safetensors", files), scalars)


def load_denoiser(run_dir: PathLike, ema: bool = True, device: "str | torch.device" = "cpu") -> Denoiser:
    """Rebuild backbone + Denoiser from config.json and load the EMA (or raw) weights; in eval mode."""
    directory = find_checkpoint(run_dir)
    config = read_config(directory)
    name = "ema.safetensors" if ema else "model.safetensors"
    if name not in config["files"]:
        raise PlumeError(f"{directory} has no {name}; load it with ema=False for the raw weights")
    denoiser = build_denoiser(config, directory / "config.json")
    load_weights(denoiser.backbone, read_tensors(directory, name, config["files"]), directory / name)
    return denoiser.to(device).eval()


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], source: PathLike) -> None:
    """module.load_state_dict(state), with missing, unexpected or misshapen tensors named in one message."""
    check_state(module.state_dict(), state, source)
    module.load_state_dict(state)


def check_state(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: PathLike) -> None:
    """Raise one PlumeError naming the tensors of `state` that are missing, unexpected or misshapen against `own`."""
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    misshapen = [f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
                 for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    problems = [f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)) if keys]
    if problems:
        raise PlumeError(f"{source} does not fit the backbone in config.json; " + "; ".join(problems))


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in a checkpoint's file `path`, or a PlumeError that names the file and what is wrong."""
    if not path.is_file():
        raise PlumeError(f"{path} is missing; the checkpoint is incomplete")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise PlumeError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except UnicodeDecodeError:
        raise PlumeError(f"{path} is not valid JSON (not UTF-8 text)") from None
    if not isinstance(value, dict):
        raise PlumeError(f"{path} must hold a JSON object, found {type(value).__name__}")
    return value


def read_verified(directory: Path, name: str, files: dict[str, Any]) -> bytes:
    """A file's bytes, checked against the size and SHA-256 that config.json records."""
    path = directory / name
    if not path.is_file():
        raise PlumeError(f"{path} is missing; the checkpoint is incomplete")
    data = path.read_bytes()
    expected = files.get(name, {})
    if "bytes" in expected and len(data) != expected["bytes"]:
        raise PlumeError(f"{path} is truncated or corrupt: {len(data)} bytes, config.json records {expected['bytes']}")
    if "sha256" in expected and hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise PlumeError(f"{path} is corrupt: its SHA-256 differs from the one config.json records")
    return data


def read_tensors(directory: Path, name: str, files: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of safetensors file `name` in checkpoint `directory`, verified against config.json's `files`."""
    return parse_tensors(read_verified(directory, name, files), directory / name)


def parse_tensors(data: bytes, path: PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file's bytes, or a PlumeError naming `path` (their source)."""
    try:
        return safetensors.torch.load(data)
    except Exception as e:  # safetensors raises its own SafetensorError for bad headers and short buffers
        raise PlumeError(f"{path} is not a readable safetensors file (truncated or corrupt): {e}") from None


def _field(config: dict[str, Any], dotted: str, source: PathLike) -> Any:
    """config["a"]["b"] for "a.b", or a PlumeError naming the missing field and the file."""
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise PlumeError(f"{source} has no field {dotted!r}")
        value = value[part]
    return value
