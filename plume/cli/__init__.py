"""The `plume` command: `plume train`, `plume sample` and `plume eval` for every data type (they parse, then call
plume.fit and plume.load, which ask the run's data type, plume.modality), and the task commands: the images' (img2img,
inpaint, denoise, upscale, interpolate, anomaly, autoencoder), the points' table detector (fit-detector) and
post-hoc EMA (ema).

Valid names come from the registries (plume.PROCESSES, plume.PREDICTIONS, plume.SAMPLERS, plume.GRIDS,
plume.BACKBONES and their presets, plume.objective.WEIGHTINGS / TIME_SAMPLINGS, plume.MODALITIES and each data
type's embedded sets). Bad input ends in one line, "Error: ...", with exit code 2 for a bad command line and 1 for anything
else Plume rejects; never a traceback. Ctrl-C during training saves a checkpoint and exits with code 130.
"""
from __future__ import annotations

from typing import Any

import click

from ..version import __version__
from .common import translate_errors


class PlumeGroup(click.Group):
    """A click group whose errors are one line (plume.cli.common.translate_errors)."""

    def invoke(self, ctx: click.Context) -> Any:
        return translate_errors(super().invoke, ctx)


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
from .prepare import prepare  # noqa: E402
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
main.add_command(prepare)

__all__ = ["main", "train", "sample"]
