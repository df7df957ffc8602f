"""`plume ema`: the EMA of any width, made after training from a run's power-function EMA snapshots (EDM2)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ..train.ema_snapshots import list_snapshots, profile_picture, save_posthoc_run
from ..train.power_ema import MAX_SIGMA_REL


@click.command("ema")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--sigma-rel", type=click.FloatRange(0, MAX_SIGMA_REL, min_open=True, max_open=True),
              help="Relative width of the EMA to make (EDM2 found 0.05-0.15 best for images); without it, list the "
              "run's snapshots.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="New run directory for that EMA.")
@click.option("--step", type=click.IntRange(min=1), help="The EMA after this step (default: the last snapshot's).")
def ema(run: Path, sigma_rel: Optional[float], out: Optional[Path], step: Optional[int]) -> None:
    """Make the EMA of width --sigma-rel post hoc from RUN's snapshots (train with --ema-profiles 0.05,0.1) into
    --out, a run that `plume sample` and `plume eval` take as any other; writes OUT/ema-profile.png, the target
    averaging profile against the snapshots' combination. Without --sigma-rel, list RUN's snapshots."""
    if sigma_rel is None:
        if out is not None or step is not None:
            raise click.UsageError("--out and --step need --sigma-rel")
        snapshots = list_snapshots(run)
        if not snapshots:
            click.echo(f"{run} has no EMA snapshots (train with --ema-profiles 0.05,0.1 to keep them)")
        for width in sorted({s.sigma_rel for s in snapshots}):
            steps = [s.step for s in snapshots if s.sigma_rel == width]
            click.echo(f"sigma_rel {width:g}: {len(steps)} snapshots, steps {steps[0]}-{steps[-1]}")
        return
    if out is None:
        raise click.UsageError("--sigma-rel needs --out, the run directory to write")
    result = save_posthoc_run(run, out, sigma_rel, step)
    png = profile_picture(out / "ema-profile.png", result)
    click.echo(f"EMA of width sigma_rel {sigma_rel:g} after step {result.step}: {len(result.snapshots)} snapshots "
               f"combined, profile fit error {result.fit_error:.1e} -> {out} (profile: {png})")
