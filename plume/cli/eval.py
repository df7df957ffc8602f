"""`plume eval RUN_OR_SAMPLES`: the run's data type measures its samples (run.evaluate): for images FID, KID,
precision/recall, Inception Score, the memorization audit and, with --nll, bits/dim, each printed with the sample
count, the feature network and the reference set; a class-conditional run also gets class accuracy (with
--guidance-sweep, against the guidance scale); points get the energy distance to fresh draws of their toy set.

A samples file is read by the data type of its reference (--ref). The command parses: only the options given on the
command line are passed on, and the data type fills in its own defaults (plume.images.evaluate.OPTIONS).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click
from click.core import ParameterSource

from ..modality import modality_for_source, modality_of
from ..run import load
from ..samplers import SAMPLERS
from ..train import read_config
from .common import PlumeCommand, number_list, parse_seeds, set_threads

PARSED = {"seeds": parse_seeds,  # options parsed here before they are passed on
          "guidance_sweep": lambda text: number_list(text, float, "--guidance-sweep", 0, "numbers (e.g. 0,1,1.5,2,3,4)",
                                                     "scale")}


@click.command("eval", cls=PlumeCommand)
@click.argument("target", type=click.Path(exists=True, path_type=Path), metavar="RUN_OR_SAMPLES")
@click.option("--ref", help="Reference data (images: a data set name, folder, .npz or hf:<dir>; points: a toy set; "
              "default: the run's data).")
@click.option("--features", "network_name", metavar="NETWORK",
              help="Feature network (images: inception, dinov2 or classifier; default: classifier for labelled data, "
              "else inception).")
@click.option("--weights", type=click.Path(path_type=Path),
              help="Weights file of the inception / dinov2 network (else $PLUME_INCEPTION / $PLUME_DINOV2).")
@click.option("--n", type=click.IntRange(min=2), default=1000, show_default=True, help="Samples to draw from a run.")
@click.option("--seeds", help="Seeds of the drawn samples, e.g. 0-999 (default: 0..n-1).")
@click.option("--sampler", type=click.Choice(sorted(SAMPLERS)), default="dpm++3m", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--nll", is_flag=True, help="Also bits/dim of held-out images (--nll-data) through the PF-ODE.")
@click.option("--nll-data", help="Held-out images for --nll (default: the run's --holdout images, else --ref).")
@click.option("--nll-limit", type=click.IntRange(min=1), default=256, show_default=True,
              help="At most this many images for --nll (each takes one ODE solve per probe).")
@click.option("--probes", type=click.IntRange(min=1), default=1, show_default=True, help="Hutchinson probes per image.")
@click.option("--sweep", is_flag=True, help="Also FID at several samplers and NFE, plotted against NFE (a run only).")
@click.option("--sweep-samplers", default="dpm++2m,dpm++3m,heun,euler", show_default=True)
@click.option("--sweep-nfe", default="5,10,20,50", show_default=True, help="Model evaluations per sample.")
@click.option("--guidance", type=click.FloatRange(min=0), help="A conditional run's guidance scale (default: the "
              "data type's; images 1.5, where 99.8% of digits come out as asked; 1: the conditional model alone, 0: "
              "unconditional).")
@click.option("--guidance-sweep", help="Also class accuracy and FID at each of these guidance scales, e.g. "
              "0,1,1.5,2,3,4, plotted against the scale (a conditional run).")
@click.option("--autoguidance", "weak_run", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Guide with this weaker run of the same data (autoguidance) instead of classifier-free guidance.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds KID subsets, the classifier, dequantization.")
@click.option("--out", type=click.Path(path_type=Path), help="Report JSON (default: RUN/eval.json or SAMPLES-eval.json).")
@click.option("--cache/--no-cache", default=True, show_default=True, help="Cache reference features on disk.")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads.")
@click.pass_context
def evaluate(ctx: click.Context, target: Path, out: Optional[Path], device: str, threads: Optional[int],
             sweep_samplers: str, sweep_nfe: str, network_name: Optional[str], weak_run: Optional[Path],
             **flags: Any) -> None:
    """Evaluate a run (drawing samples from it) or a samples .npz against reference data."""
    given = {k: PARSED.get(k, lambda v: v)(v) for k, v in flags.items()
             if ctx.get_parameter_source(k) != ParameterSource.DEFAULT}
    if network_name is not None:
        given["features"] = network_name
    if weak_run is not None:
        given["autoguidance"] = weak_run
    if given.get("sweep"):
        given["sweep"] = sweep_plan(sweep_samplers, sweep_nfe)
    if target.is_dir():
        set_threads(threads, modality_of(read_config(target).get("data", {})).threads)
        run = load(target, device=device)
        out = out or target / "eval.json"
        report, modality = run.evaluate(out=out, **given), run.modality
    elif target.suffix == ".npz":
        if flags.get("ref") is None:
            raise click.UsageError("--ref is required with a samples file (which data are the samples meant to match?)")
        modality = modality_for_source(flags["ref"])[0]
        set_threads(threads, modality.threads)
        out = out or target.with_name(target.stem + "-eval.json")
        report = modality.evaluate(modality.read_samples(target), None, given, out)
    else:
        raise click.BadParameter(f"{target} is neither a run directory nor a .npz of samples", param_hint="RUN_OR_SAMPLES")
    click.echo(modality.report_text(report, out))


def sweep_plan(samplers: str, nfe: str) -> tuple[list[str], list[int]]:
    """The --sweep-samplers names and sorted --sweep-nfe budgets, or a BadParameter naming the bad item."""
    names = [s.strip() for s in samplers.split(",") if s.strip()]
    fixed = sorted(name for name, spec in SAMPLERS.items() if spec.evaluations_per_step > 0)
    unknown = [s for s in names if s not in fixed]
    if unknown or not names:
        raise click.BadParameter(f"{(unknown or [''])[0]!r} is not a fixed-step sampler (an adaptive solver's NFE "
                                 f"follows its tolerance); valid: {', '.join(fixed)}", param_hint="--sweep-samplers")
    return names, number_list(nfe, int, "--sweep-nfe", 1, "whole numbers", "budget")


__all__ = ["evaluate", "sweep_plan"]
