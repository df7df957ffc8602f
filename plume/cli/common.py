"""What several commands share: CPU threads, config files whose values the flags override, seed ranges,
number lists, key=value options, the flags a resumed run may take, and the common sampling options."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Optional

import click
import torch

from ..errors import PlumeError, PlumeUsageError


class PlumeCommand(click.Command):
    """A click command that turns Plume's errors into one-line click errors, also when it runs outside the `plume`
    group: PlumeUsageError a usage error (exit code 2), any other PlumeError or OS error exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        return translate_errors(super().invoke, ctx)


def translate_errors(call: Any, *args: Any) -> Any:
    """call(*args), with PlumeError and OSError raised as click's one-line errors."""
    try:
        return call(*args)
    except PlumeUsageError as e:  # options that cannot go together, a bad value: a usage error, exit code 2
        raise click.UsageError(str(e)) from None
    except PlumeError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"{e.strerror or e}: {e.filename}" if e.filename else str(e)) from None


def load_config_file(ctx: click.Context, param: click.Parameter, path: Optional[Path]) -> Optional[Path]:
    """An eager --config callback: the file's values become the command's defaults, so given flags override them.

    The file is JSON or TOML with flat keys named like the options (``batch_size`` or ``batch-size``).
    """
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except OSError as e:
        raise click.BadParameter(f"cannot read {path}: {e.strerror}", ctx, param) from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise click.BadParameter(f"{path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}",
                                 ctx, param) from None
    if not isinstance(values, dict):
        raise click.BadParameter(f"{path} must hold an object of option names and values", ctx, param)
    valid = {p.name for p in ctx.command.params if p.name not in ("config", "help")}
    defaults = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in valid:
            raise click.BadParameter(f"{path}: unknown option {key!r}; valid: {', '.join(sorted(valid))}", ctx, param)
        defaults[name] = value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return path


def resume_flags(ctx: click.Context, allowed: set[str]) -> list[str]:
    """The flags given on the command line of a --resume, all of them in `allowed` (what a resumed run may change;
    it keeps every other setting it was saved with), or a UsageError naming the first that is not."""
    given = [p for p in ctx.params if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]
    fixed = sorted(set(given) - allowed)
    if fixed:
        raise click.UsageError(f"--{fixed[0].replace('_', '-')} cannot be given with --resume: a resumed run keeps its "
                               f"saved settings (only {', '.join('--' + f.replace('_', '-') for f in sorted(allowed))})")
    return given


def number_list(text: str, kind: type, option: str, least: float, what: str, item: str) -> list:
    """The sorted distinct numbers of a comma-separated option value, each >= least, or a BadParameter naming it."""
    try:
        values = sorted({kind(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of {what}", param_hint=option) from None
    if not values or values[0] < least:
        raise click.BadParameter(f"{text!r}: give at least one {item}, each >= {least:g}", param_hint=option)
    return values


def parse_seeds(text: str) -> list[int]:
    """"0-999" -> [0, ..., 999]; "3,7,10-12" -> [3, 7, 10, 11, 12]."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None or (match[2] is not None and int(match[2]) < int(match[1])):
            raise click.BadParameter(f"{part.strip()!r} in {text!r} is not a seed or an increasing range like 0-999")
        seeds.extend(range(int(match[1]), int(match[2] or match[1]) + 1))
    return seeds


def parse_key_values(pairs: tuple[str, ...]) -> dict[str, Any]:
    """("width=64", "channels=[32,64]") -> {"width": 64, "channels": [32, 64]}: values are JSON, else strings."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE (e.g. channels=[32,64])")
        try:
            options[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip().replace("-", "_")] = value
    return options


def set_threads(threads: Optional[int], default: Optional[int] = None) -> None:
    """torch's CPU threads: as given, else the data type's default (points: 1, where threads cost more than they
    gain), else torch's own. Set before the first parallel op: changing it later makes steps irreproducible."""
    if threads or default:
        torch.set_num_threads(threads or default)


def seed_list(seeds: Optional[str], n: int, seed: int) -> list[int]:
    """--seeds parsed, else --n seeds from --seed."""
    return parse_seeds(seeds) if seeds else [seed + k for k in range(n)]
