"""The `plume` command: `plume train`, `plume sample`, `plume eval` and `plume autoencoder train` (latent diffusion).

Valid names come from the registries (plume.PROCESSES, plume.PREDICTIONS, plume.SAMPLERS, plume.GRIDS,
plume.BACKBONES and their presets, plume.objective.WEIGHTINGS / TIME_SAMPLINGS, plume.data.TOY_SETS and
IMAGE_SETS). Bad input ends in one line, "Error: ...", with exit code 2 for a bad command line and 1 for anything
else Plume rejects; never a traceback. Ctrl-C during training saves a checkpoint and exits with code 130.
"""
from __future__ import annotations

from typing import Any

import click

from .. import __version__
from ..errors import PlumeError


class PlumeGroup(click.Group):
    """A click group that turns PlumeError and OS errors into one-line click errors (exit code 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PlumeError as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            raise click.ClickException(f"{e.strerror or e}: {e.filename}" if e.filename else str(e)) from None


@click.group(cls=PlumeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plume")
def main() -> None:
    """Plume: train and sample diffusion models."""


from .anomaly import anomaly  # noqa: E402
from .autoencoder import autoencoder  # noqa: E402
from .denoise import denoise  # noqa: E402
from .ema import ema  # noqa: E402
from .eval import evaluate  # noqa: E402
from .fit_detector import fit_detector  # noqa: E402
from .img2img import img2img  # noqa: E402
from .inpaint import inpaint  # noqa: E402
from .interpolate import interpolate  # noqa: E402
from .sample import sample  # noqa: E402  (the commands register themselves on `main`)
from .train import train  # noqa: E402
from .upscale import upscale  # noqa: E402

main.add_command(train)
main.add_command(sample)
main.add_command(evaluate)
main.add_command(autoencoder)
main.add_command(anomaly)
main.add_command(fit_detector)
main.add_command(interpolate)
main.add_command(img2img)
main.add_command(inpaint)
main.add_command(upscale)
main.add_command(denoise)
main.add_command(ema)

__all__ = ["main", "train", "sample"]
