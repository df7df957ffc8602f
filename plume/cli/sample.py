"""`plume sample RUN`: draw samples from a run (plume.load(RUN).sample), write them in its data type's formats with a
picture (images: .npz arr_0 uint8 NHWC + a PNG grid; points: .npz + a scatter plot), and its default evaluation.

Sample k is a function of (run, sampler settings, seed k), whatever the batch it is drawn in (plume.draw), up to the
last bits of float arithmetic, which a batch's size can change; distributed sampling therefore keeps one process's
batches.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ..modality import modality_of
from ..run import TRAJECTORY_ROWS, load
from ..samplers import GRIDS, SAMPLERS
from ..train import read_config
from .common import PlumeCommand, parse_seeds, seed_list as seeds_of, set_threads

@click.command(cls=PlumeCommand)
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--n", type=click.IntRange(min=1), default=1000, show_default=True, help="Number of samples.")
@click.option("--seeds", help="Seeds, e.g. 0-999 or 3,7,10-12 (sample k uses the k-th); overrides --n and --seed.")
@click.option("--seed", type=int, default=0, show_default=True, help="Without --seeds, sample k uses seed + k.")
@click.option("--sampler", type=click.Choice(list(SAMPLERS)), default="dpm++2m", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="Sampler steps.")
@click.option("--grid", type=click.Choice(list(GRIDS)), help="Time grid (default: the sampler's own).")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True, help="Samples per batch.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Output .npz (default RUN/samples-SAMPLER-STEPS.npz); a .png and an evaluation .json beside it "
              "(--out x.png names the same three files).")
@click.option("--trajectory", is_flag=True, help="Also write OUT-trajectory.png: x_t and x0_hat at each step, first samples.")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="Measure the samples as the data type does by default (images: FID etc. in a classifier's features "
              "where the data are labelled; toy points: energy distance), written to OUT.json.")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: the data type's; points 1, images all cores).")
@click.option("--labels", "label_text", help="Class labels for a conditional run, e.g. 3 or 0-9: sample k gets the "
              "(k mod count)-th. Without it a conditional run draws unconditional samples.")
@click.option("--prompt", "prompts", multiple=True,
              help="A text prompt for a text-conditioned run (repeatable: sample k gets prompt k mod the count).")
@click.option("--negative-prompt", help="With --prompt and --guidance: a prompt to steer away from (replaces the "
              "empty prompt in classifier-free guidance).")
@click.option("--guidance", type=float, default=1.0, show_default=True,
              help="Classifier-free guidance scale with --labels (1: no guidance; 0: unconditional); with "
              "--autoguidance, the autoguidance scale.")
@click.option("--autoguidance", "weak_run", type=click.Path(path_type=Path),
              help="Guide with this weaker run of the same data (an earlier or smaller model) instead of the "
              "unconditional model (Karras et al. 2024); the scale is --guidance.")
@click.option("--compile", "compile_model", is_flag=True,
              help="torch.compile the backbone (on a GPU with CUDA graphs): faster for many samples after compiling.")
@click.option("--then", type=click.Path(path_type=Path), help="A super-resolution run (plume train --super-resolution) "
              "to chain after RUN: its images conditioned on RUN's samples, written as one cascade (plume.images.cascade).")
@click.option("--augment", type=click.FloatRange(min=0),
              help="With --then: the conditioning-augmentation level of the super-resolution stage (default: its "
              "sampling level, 0.1).")
def sample(run: Path, n: int, seeds: Optional[str], seed: int, sampler: str, steps: int, grid: Optional[str],
           weights: str, batch_size: int, out: Optional[Path], trajectory: bool, evaluate: bool, device: str,
           threads: Optional[int], label_text: Optional[str], prompts: tuple[str, ...],
           negative_prompt: Optional[str], guidance: float, weak_run: Optional[Path],
           compile_model: bool, then: Optional[Path], augment: Optional[float]) -> None:
    """Draw samples from the run RUN (under torchrun, spread over the processes; rank 0 writes)."""
    set_threads(threads, modality_of(read_config(run).get("data", {})).threads)
    model = load(run, weights=weights, device=device)
    if then is not None:
        if label_text or trajectory or prompts:
            raise click.UsageError("--then draws an unconditional cascade; drop --labels, --prompt and --trajectory")
        model = model.then(then, **({} if augment is None else {"augment": augment}))
    else:
        model.check_samples()
    if compile_model:
        model.compile()
    seed_list = seeds_of(seeds, n, seed)
    labels = parse_seeds(label_text) if label_text else None
    x = model.sample(seeds=seed_list, sampler=sampler, steps=steps, grid=grid, labels=labels,
                     prompt=list(prompts) or None, negative_prompt=negative_prompt, guidance=guidance,
                     autoguidance=weak_run, batch_size=batch_size)  # (n, ...) on process 0, None elsewhere
    model.close()
    if x is None:
        return
    out = (out or run / f"samples-{sampler}-{steps}.npz").with_suffix(".npz")  # --out x.png names x.npz, x.png, ...
    title = f"{sampler}, {steps} steps" + (f", guidance {guidance:g}" if guidance != 1.0 else "") + \
        (f": {prompts[0]!r}" if len(prompts) == 1 else "")
    files = model.save(x, out, title=title)
    click.echo(f"{model.name}: {len(x)} samples -> {files[0]}; picture -> {files[1]}")
    if trajectory:
        strip = model.trajectory(seed_list[:TRAJECTORY_ROWS], out.with_name(out.stem + "-trajectory.png"), sampler,
                                 steps, grid)
        click.echo(f"trajectory -> {strip}")
    if evaluate:
        asked = [prompts[k % len(prompts)] for k in range(len(x))] if prompts else None
        report_path = out.with_suffix(".json")
        report = model.evaluate(x, out=report_path, optional=True, labels=_asked(labels, len(x)), prompts=asked,
                                guidance=guidance)
        click.echo(model.modality.report_text(report, report_path))


def _asked(labels: Optional[list[int]], n: int) -> Optional[list[int]]:
    """The class each of n samples was drawn for (sample k: labels[k mod count])."""
    return [labels[k % len(labels)] for k in range(n)] if labels else None


__all__ = ["sample"]
