"""Command-line helpers: config files whose values the flags override, seed ranges, key=value options."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Optional

import click


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
