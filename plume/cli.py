"""The `plume` command: `plume train` and `plume sample`.

Valid names come from the registries (plume.PROCESSES, plume.PREDICTIONS, plume.SAMPLERS, plume.GRIDS,
plume.objective.WEIGHTINGS / TIME_SAMPLINGS, plume.data.TOY_SETS). Bad input ends in one line, "Error: ...",
with exit code 2 for a bad command line and 1 for anything else Plume rejects; never a traceback.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
import torch

from . import __version__
from .backbones import backbone
from .data import TOY_SETS, toy_data
from .data.toy import MIXTURES as MIXTURE_SETS, toy_mixture
from .denoiser import Denoiser
from .errors import PlumeError
from .metrics import vector_report
from .objective import TIME_SAMPLINGS, WEIGHTINGS
from .predictions import PREDICTIONS
from .processes import PROCESSES
from .samplers import GRIDS, SAMPLERS
from .sampling import sample as draw_samples
from .train import (TrainConfig, build_denoiser, find_checkpoint, load_denoiser, read_config, scatter_plot,
                    train as run_training, train_config)

DATA_POINTS = 50_000  # toy-set size for training
DEFAULTS = TrainConfig()  # the command line's training defaults are the library's


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


# Options a resumed run takes from the command line; every other setting comes from its config.json.
RESUME_OPTIONS = {"out", "resume", "steps", "minutes", "checkpoint_every", "threads", "quiet"}


@main.command()
@click.option("--data", type=click.Choice(list(TOY_SETS)), help="Toy data set (required unless --resume).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@click.option("--steps", type=click.IntRange(min=1), default=DEFAULTS.steps, show_default=True, help="Train up to this step.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), help="Time budget; stops early, with a checkpoint.")
@click.option("--process", type=click.Choice(list(PROCESSES)), default="edm", show_default=True)
@click.option("--prediction", type=click.Choice(list(PREDICTIONS)), default="edm", show_default=True)
@click.option("--weighting", type=click.Choice(list(WEIGHTINGS)), default="edm", show_default=True)
@click.option("--time-sampling", type=click.Choice(list(TIME_SAMPLINGS)), default="lognormal", show_default=True)
@click.option("--width", type=click.IntRange(min=1), default=64, show_default=True, help="MLP width.")
@click.option("--depth", type=click.IntRange(min=0), default=3, show_default=True, help="MLP residual blocks.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS.lr, show_default=True)
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True, help="Seeds the weights, the data and every step.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=DEFAULTS.checkpoint_every, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU threads; small vector models run fastest on one.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out exactly, to --steps.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def train(ctx: click.Context, data: Optional[str], out: Path, steps: int, minutes: Optional[float], process: str,
          prediction: str, weighting: str, time_sampling: str, width: int, depth: int, batch_size: int, lr: float,
          seed: int, checkpoint_every: int, threads: int, resume: bool, quiet: bool) -> None:
    """Train a denoiser on a toy data set; writes OUT/checkpoint, OUT/loss.csv and OUT/samples.png."""
    torch.set_num_threads(threads)
    if resume:
        given = [p for p in ctx.params if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]
        fixed = sorted(set(given) - RESUME_OPTIONS)
        if fixed:
            raise click.UsageError(f"--{fixed[0].replace('_', '-')} cannot be given with --resume: a resumed run keeps "
                                   "its saved settings (only --steps, --minutes, --checkpoint-every may change)")
        saved = read_config(out)
        denoiser = build_denoiser(saved, find_checkpoint(out) / "config.json")
        changed = {"steps": steps, "minutes": minutes, "checkpoint_every": checkpoint_every}
        options = {**saved.get("training", {}), "minutes": None, **{k: v for k, v in changed.items() if k in given}}
        data_info = saved["data"]
        if data_info.get("name") not in TOY_SETS or "n" not in data_info or "seed" not in data_info:
            raise PlumeError(f"the run in {out} was trained on data {data_info.get('name')!r}, which the command line "
                             "cannot load; resume it from Python with plume.train.train(..., resume=True)")
    else:
        if data is None:
            raise click.UsageError("--data is required (or --resume to continue a run)")
        torch.manual_seed(seed)
        denoiser = Denoiser(backbone("mlp", dim=2, width=width, depth=depth), process, prediction, weighting, time_sampling)
        options = {"steps": steps, "minutes": minutes, "batch_size": batch_size, "lr": lr, "seed": seed,
                   "checkpoint_every": checkpoint_every}
        data_info = {"name": data, "n": DATA_POINTS, "seed": seed}
    points = toy_data(data_info["name"], data_info["n"], data_info["seed"])
    try:
        result = run_training(denoiser, points, out, train_config(options), data_info=data_info, resume=resume,
                              progress=not quiet)
    except KeyboardInterrupt:
        error = click.ClickException(f"interrupted; the last checkpoint in {out} is intact (continue with --resume)")
        error.exit_code = 130
        raise error from None
    click.echo(f"step {result.step} in {result.seconds:.1f} s (loss {result.last_loss:.4g}); "
               f"checkpoint {out / 'checkpoint'}; samples {result.samples_png}")


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--n", type=click.IntRange(min=1), default=1000, show_default=True, help="Number of samples.")
@click.option("--sampler", type=click.Choice(list(SAMPLERS)), default="dpm++2m", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="Sampler steps.")
@click.option("--grid", type=click.Choice(list(GRIDS)), help="Time grid (default: the sampler's own).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sample k uses seed + k.")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Output .npz (default RUN/samples-SAMPLER-STEPS.npz); a .png is written beside it.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
def sample(run: Path, n: int, sampler: str, steps: int, grid: Optional[str], seed: int, weights: str,
           out: Optional[Path], threads: int) -> None:
    """Draw samples from the run RUN; writes arr_0 float32 (n, D) to an .npz and a scatter PNG beside the data."""
    torch.set_num_threads(threads)
    denoiser = load_denoiser(run, ema=weights == "ema")
    config = read_config(run)
    shape = (n, *config.get("data", {}).get("shape", [denoiser.backbone.options().get("dim", 2)]))
    with torch.no_grad():
        x = draw_samples(denoiser, denoiser.process, shape, sampler=sampler, steps=steps, grid=grid,
                         prediction="x0", seed=seed)
    out = out or run / f"samples-{sampler}-{steps}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, arr_0=x.numpy().astype(np.float32))
    info = config.get("data", {})
    reference = toy_data(info["name"], min(int(info.get("n", 5000)), 5000), info.get("seed", 0)) \
        if info.get("name") in TOY_SETS else None
    png = scatter_plot(out.with_suffix(".png"), x, reference, title=f"samples ({sampler}, {steps} steps)")
    click.echo(f"{n} samples -> {out}; plot -> {png}")
    if info.get("name") in TOY_SETS:
        evaluate_toy(x, info, out.with_suffix(".json"))


def evaluate_toy(x: torch.Tensor, info: dict, path: Path) -> None:
    """Compare samples with two fresh draws of the toy set (seeds the training data did not use); write JSON."""
    name, seed = info["name"], int(info.get("seed", 0))
    held_out, floor_set = toy_data(name, len(x), seed + 1_000_001), toy_data(name, len(x), seed + 2_000_003)
    mixture = toy_mixture(name) if name in MIXTURE_SETS else None
    report = vector_report(x, held_out, floor_set, mixture)
    path.write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"  {k}: {report[k]:.4f} (two exact sets: {report[k + '_floor']:.4f})" for k in report if not k.endswith("_floor")]
    click.echo("evaluation against held-out data -> " + str(path) + "\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
