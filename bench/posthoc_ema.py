"""Post-hoc EMA (EDM2) on digits: the EMA width chosen after training, against the one fixed before it.

Plume's default image recipe (EDM, tiny U-Net, AdamW; `plume train --data digits`) trains on scikit-learn's 1,797
8x8 digits for --steps steps, keeping snapshots of two power-function EMAs (sigma_rel 0.05 and 0.10, every
--every steps; plume.train.ema_snapshots) beside the recipe's usual EMA (decay 0.999). Then every width of
WIDTHS is made post hoc from the snapshots (plume.train.ema_snapshots.posthoc_ema), and each of those models, the
usual EMA and the raw weights draws the same 1000 seeds (dpm++2m, 20 steps) for each of two seed sets; FID in the
features of a small digit classifier trained here (plume.evaluation, as bench/digits.py) is averaged over the
two sets. Same seeds for every model (common random numbers); the two sets show how far FID still moves with them.

Beside lucidrains' ema-pytorch (PostHocEMA), the reconstruction itself is checked against the truth on a
noisy-SGD trajectory (reconstruction_side_by_side); diffusers and k-diffusion keep one EMA fixed before training.
Also measured: what the two power EMAs add to a training step (their updates and the snapshot writes, timed on
the recipe's model, against the run's own time per step), and the snapshots' disk size. Writes
docs/posthoc-ema.md, docs/posthoc-ema.png (FID against the width) and docs/posthoc-ema-profile.png (the best
width's profile fit).

    python bench/posthoc_ema.py                        # the docs run (~15 minutes on 2 cores)
    python bench/posthoc_ema.py --steps 200 --no-docs  # smoke run
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plume.images import load_image_data, tensor_to_images  # noqa: E402
from plume.images.evaluation import evaluate_images, train_classifier  # noqa: E402
from plume.images import IMAGES  # noqa: E402
from plume.recipes import build_recipe  # noqa: E402
from plume.sampling import sample  # noqa: E402
from plume.errors import PlumeError  # noqa: E402
from plume.train import load_denoiser, read_config, train, train_config  # noqa: E402
from plume.train.ema_snapshots import SNAPSHOTS, posthoc_ema, profile_picture, write_snapshot  # noqa: E402
from plume.train.power_ema import PowerEMA  # noqa: E402
from plume.train.plots import line_plot  # noqa: E402

PROFILES = (0.05, 0.10)
WIDTHS = (0.01, 0.02, 0.03, 0.05, 0.07, 0.10, 0.13, 0.17, 0.22)
SEED_SETS = (range(0, 1000), range(1000, 2000))
SAMPLER, NFE = "dpm++2m", 20


def fid_of(denoiser: torch.nn.Module, shape: tuple, measure) -> list[float]:
    """FID of each seed set's samples."""
    out = []
    for seeds in SEED_SETS:
        with torch.no_grad():
            x = sample(denoiser, denoiser.process, (len(seeds), *shape), sampler=SAMPLER, steps=NFE,
                       prediction="x0", seeds=list(seeds))  # (N, C, H, W)
        out.append(float(measure(tensor_to_images(x))["fid"]))
    return out


class Weights(torch.nn.Module):
    """The parameters of the reconstruction test: one vector, moved by noisy SGD."""

    def __init__(self, dim: int):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(dim))


def reconstruction_side_by_side(steps: int, every: int, dim: int = 4096) -> list[dict[str, Any]]:
    """Post-hoc EMA against the truth, Plume beside lucidrains' ema-pytorch (PostHocEMA), on one trajectory: noisy
    SGD on a random least-squares problem of `dim` parameters for `steps` steps. Both keep the same two widths
    (PROFILES) and snapshot every `every` steps; for each width of WIDTHS the truth is a power EMA of that width run
    alongside. Error: ||reconstruction - truth|| / ||truth - final weights|| (the average's own displacement)."""
    from ema_pytorch import PostHocEMA

    g = torch.Generator().manual_seed(0)
    a = torch.randn(dim, generator=g).abs() + 0.1  # (D,) curvatures of a diagonal quadratic
    target = torch.randn(dim, generator=g)  # (D,)
    model = Weights(dim)
    truths = {w: PowerEMA(model, w) for w in WIDTHS}
    plume = [PowerEMA(model, w) for w in PROFILES]
    with tempfile.TemporaryDirectory() as folder:
        theirs = PostHocEMA(model, sigma_rels=PROFILES, checkpoint_every_num_steps=every, update_every=1,
                            checkpoint_folder=str(Path(folder) / "ema-pytorch"))
        for step in range(steps):
            with torch.no_grad():
                grad = a * (model.theta - target) + torch.randn(dim, generator=g)  # (D,) noisy gradient
                model.theta -= 0.05 * grad
            for ema in [*truths.values(), *plume]:
                ema.update(model, step)
            theirs.update()
            if (step + 1) % every == 0:
                for ema in plume:
                    write_snapshot(folder, ema.state_dict(), ema.sigma_rel, step + 1)
        final = model.theta.detach().clone()  # (D,)
        rows = []
        for width, truth in truths.items():
            exact = truth.state_dict()["theta"]  # (D,)
            scale = float((exact - final).norm())
            began = time.perf_counter()
            ours = posthoc_ema(folder, width).state["theta"]
            ours_s = time.perf_counter() - began
            began = time.perf_counter()
            other = theirs.synthesize_ema_model(sigma_rel=width).ema_model.theta.detach()
            other_s = time.perf_counter() - began
            rows.append({"width": width, "plume": float((ours - exact).norm()) / scale,
                         "ema_pytorch": float((other - exact).norm()) / scale, "plume_s": ours_s,
                         "ema_pytorch_s": other_s})
    return rows


def ema_cost(data: Any, run: Path, every: int, repeats: int = 200) -> dict[str, float]:
    """What the power EMAs add to a step, in ms: both updates (median of `repeats` timed pairs on the recipe's
    model), one snapshot pair written (median of 5), and the run's own median time per step (loss.csv)."""
    model = build_recipe(IMAGES.default_recipe(data.shape), data.shape, seed=0).backbone
    profiles = [PowerEMA(model, width) for width in PROFILES]
    updates, writes = [], []
    for step in range(repeats):
        began = time.perf_counter()
        for profile in profiles:
            profile.update(model, step)
        updates.append(time.perf_counter() - began)
    with tempfile.TemporaryDirectory() as folder:
        for step in range(1, 6):
            began = time.perf_counter()
            for profile in profiles:
                write_snapshot(folder, profile.state_dict(), profile.sigma_rel, step)
            writes.append(time.perf_counter() - began)
    with open(run / "loss.csv", newline="") as f:
        rates = [float(r["steps_per_second"]) for r in csv.DictReader(f) if r["steps_per_second"] not in ("", "nan")]
    return {"update_ms": 1e3 * float(np.median(updates)), "write_ms": 1e3 * float(np.median(writes)),
            "step_ms": 1e3 / float(np.median(rates)), "every": every}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps")
    parser.add_argument("--every", type=int, default=50, help="steps between EMA snapshots")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "posthoc-ema", help="the run (reused if done)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - began:6.0f} s] {text}", flush=True)

    log(f"reconstruction against the truth, Plume beside ema-pytorch ({args.steps} steps, snapshots every "
        f"{args.every})")
    side = reconstruction_side_by_side(args.steps, args.every)
    for r in side:
        log(f"sigma_rel {r['width']:g}: relative error Plume {r['plume']:.2e}, ema-pytorch {r['ema_pytorch']:.2e}")
    data = load_image_data("digits")
    pixels, labels = data.images.pixels, data.images.labels
    recipe = IMAGES.default_recipe(data.shape)
    training = {**recipe["training"], "steps": args.steps, "sample_count": 100, "checkpoint_every": 1000,
                "ema_profiles": PROFILES, "ema_snapshot_every": args.every}
    try:
        done = read_config(args.out)["step"] == args.steps and (args.out / SNAPSHOTS).is_dir()
    except PlumeError:  # no usable run yet
        done = False
    if done:
        log(f"reusing {args.out} ({args.steps} steps)")
        train_seconds = None
    else:
        shutil.rmtree(args.out, ignore_errors=True)
        t0 = time.monotonic()
        train(build_recipe(recipe, data.shape, seed=0), data, args.out, train_config(training), progress=True)
        train_seconds = time.monotonic() - t0
        log(f"trained {args.steps} steps in {train_seconds:.0f} s")
    snapshot_bytes = sum(p.stat().st_size for p in (args.out / SNAPSHOTS).glob("*.safetensors"))
    snapshot_count = len(list((args.out / SNAPSHOTS).glob("*.safetensors")))

    log("training the feature classifier")
    classifier = train_classifier(pixels, labels, seed=0)
    measure = lambda images: evaluate_images(images, pixels, labels, classifier=classifier)  # noqa: E731
    rows: list[dict[str, Any]] = []
    for name, ema in (("raw weights (no average)", False), ("the recipe's EMA, decay 0.999", True)):
        fids = fid_of(load_denoiser(args.out, ema=ema), data.shape, measure)
        rows.append({"name": name, "fids": fids})
        log(f"{name}: FID {np.mean(fids):.3f} ({', '.join(f'{f:.3f}' for f in fids)})")
    model = load_denoiser(args.out)
    for width in WIDTHS:
        result = posthoc_ema(args.out, width)
        model.backbone.load_state_dict(result.state)
        fids = fid_of(model, data.shape, measure)
        rows.append({"name": f"post-hoc EMA, sigma_rel {width:g}", "width": width, "fids": fids,
                     "fit_error": result.fit_error, "result": result})
        log(f"sigma_rel {width:g} (fit error {result.fit_error:.1e}): FID {np.mean(fids):.3f} "
            f"({', '.join(f'{f:.3f}' for f in fids)})")
    cost = ema_cost(data, args.out, args.every)
    log(f"two power-EMA updates {cost['update_ms']:.2f} ms, a snapshot pair {cost['write_ms']:.1f} ms every "
        f"{args.every} steps; a training step {cost['step_ms']:.1f} ms")
    if not args.no_docs:
        write_doc(args, rows, side, cost, snapshot_bytes, snapshot_count, train_seconds, time.monotonic() - began)


def write_doc(args, rows, side, cost, snapshot_bytes, snapshot_count, train_seconds, seconds) -> None:
    docs = ROOT / "docs"
    sweep = [r for r in rows if "width" in r]
    best = min(sweep, key=lambda r: np.mean(r["fids"]))
    fixed = rows[1]
    line_plot(docs / "posthoc-ema.png",
              {"post-hoc EMA": ([r["width"] for r in sweep], [float(np.mean(r["fids"])) for r in sweep]),
               fixed["name"]: ([sweep[0]["width"], sweep[-1]["width"]], [float(np.mean(fixed["fids"]))] * 2),
               rows[0]["name"]: ([sweep[0]["width"], sweep[-1]["width"]], [float(np.mean(rows[0]["fids"]))] * 2)},
              "EMA width sigma_rel (made after training)", "FID (digit-classifier features)",
              title=f"digits, {args.steps} steps: one training run, every EMA width", log_x=True)
    profile_picture(docs / "posthoc-ema-profile.png", best["result"])
    table = ["| weights | FID, seeds 0-999 | FID, seeds 1000-1999 | mean | profile fit error |",
             "|---|---|---|---|---|"]
    for r in rows:
        mark = " **(lowest)**" if r is best else ""
        fit = f"{r['fit_error']:.1e}" if "fit_error" in r else ""
        table.append(f"| {r['name']}{mark} | {r['fids'][0]:.3f} | {r['fids'][1]:.3f} | {np.mean(r['fids']):.3f} | "
                     f"{fit} |")
    spread = [abs(r["fids"][0] - r["fids"][1]) for r in rows]  # one model, two seed sets
    near = lambda r: np.mean(r["fids"]) <= np.mean(best["fids"]) + min(spread)  # noqa: E731
    ties = ", ".join(r["name"].replace("post-hoc EMA, ", "") for r in rows if near(r))
    worse = ", ".join(r["name"].replace("post-hoc EMA, ", "") for r in rows if not near(r)) or "none"
    from importlib.metadata import version

    versus = ["| sigma_rel | Plume: relative error | ema-pytorch: relative error | ema-pytorch / Plume | "
              "Plume: seconds | ema-pytorch: seconds |", "|---|---|---|---|---|---|"]
    for r in side:
        ratio = f"{r['ema_pytorch'] / r['plume']:.3g}" if r["plume"] > 0 else "(Plume exact: a stored width)"
        versus.append(f"| {r['width']:g} | {r['plume']:.2e} | {r['ema_pytorch']:.2e} | {ratio} | "
                      f"{r['plume_s']:.2f} | {r['ema_pytorch_s']:.2f} |")
    if train_seconds is None:  # reused: loss.csv's clock (rows from step log_every on) gives the training time
        with open(args.out / "loss.csv", newline="") as f:
            logged = [(int(r["step"]), float(r["time"])) for r in csv.DictReader(f)]
        (s0, t0), (s1, t1) = logged[0], logged[-1]
        trained = f"about {(t1 - t0) * s1 / (s1 - s0) / 60:.1f} minutes, by an earlier invocation; the run is reused"
    else:
        trained = f"{train_seconds / 60:.1f} minutes"
    text = f"""# Post-hoc EMA

Which EMA length samples best is only known after training, and it matters (EDM2: Karras et al. 2024, sec. 3).
`plume train --ema-profiles 0.05,0.1` keeps snapshots of two power-function EMAs; `plume ema RUN --sigma-rel S --out
NEW` then makes the EMA of any relative width S from them, as a run that `plume sample` and `plume eval` take like
any other (plume.train.power_ema, plume.train.ema_snapshots).

## Benchmark

Produced by `{' '.join(['python bench/posthoc_ema.py', *sys.argv[1:]])}` on {datetime.date.today().isoformat()}
({platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; this
invocation {seconds / 60:.0f} minutes). Plume's default digits recipe trained {args.steps} steps ({trained}),
snapshots every {args.every} steps; each model draws seeds 0-999 and 1000-1999 ({SAMPLER}, {NFE} steps), FID in
the features of a digit classifier trained here (bench/digits.py's measure).

{chr(10).join(table)}

![FID against the EMA width, beside the fixed EMA and the raw weights](posthoc-ema.png)

The lowest mean FID is {np.mean(best['fids']):.3f} at sigma_rel {best['width']:g}, against
{np.mean(fixed['fids']):.3f} for the recipe's EMA fixed before training. But one model's FID moves by
{min(spread):.3f}-{max(spread):.3f} between the two seed sets, and the means of these lie within
{min(spread):.3f} of the lowest: {ties}. Read those as ties. Worse than that: {worse}. One training run gave
every row: the sweep shows where
the good widths lie, and a user takes one without training again.

Cost: {snapshot_count} snapshot files, {snapshot_bytes / 2**20:.1f} MiB on disk (one copy of the weights per width
per snapshot, in float32: --ema-snapshot-every sets how many). Time: the two power EMAs' updates take
{cost['update_ms']:.2f} ms per step and writing a snapshot pair {cost['write_ms']:.1f} ms every {cost['every']} steps,
against {cost['step_ms']:.1f} ms for a training step of this run (median of loss.csv's steps/s):
{100 * (cost['update_ms'] + cost['write_ms'] / cost['every']) / cost['step_ms']:.1f} % more.

### Reconstruction beside ema-pytorch

The same snapshots made two ways, on one trajectory where the truth is known: {args.steps} steps of noisy SGD on a
4096-parameter quadratic, snapshots of widths {', '.join(f'{w:g}' for w in PROFILES)} every {args.every} steps,
Plume (float32 safetensors, least squares over snapshots up to the target step) beside lucidrains' ema-pytorch
{version('ema-pytorch')} `PostHocEMA` (float16 checkpoints by `torch.save`, its default; a direct solve of
the normal equations; `update_every=1` so that, as Plume's, its averages take every step: its default of 100 folds
in one step in a hundred with a decay meant for one step). The truth is a power-function EMA of each width run
alongside; the error is
||made - truth|| / ||truth - final weights||.

{chr(10).join(versus)}

![the best width's averaging profile against the combination of snapshots that makes it](posthoc-ema-profile.png)

The profile fit error is the relative L2 distance between the target's averaging profile and the snapshots'
combination (plume.train.power_ema.profile_weights); widths far outside the stored 0.05-0.10 fit worse.

## Command line

```bash
plume train --data digits --out runs/digits-ema --minutes 4 --ema-profiles 0.05,0.1 --ema-snapshot-every 50
plume ema runs/digits-ema                                   # list the snapshots
plume ema runs/digits-ema --sigma-rel 0.13 --out runs/digits-ema-013   # writes ema-profile.png too
plume sample runs/digits-ema-013 --seeds 0-99 --out runs/digits-ema-013/samples.png
```

## Python

```python
import torch
from plume.train import TrainConfig, train
from plume.train.ema_snapshots import posthoc_ema
from plume.train.power_ema import gamma_of, sigma_rel_of
from plume import Denoiser, backbone
from plume.points import toy_data

torch.manual_seed(0)
model = Denoiser(backbone("mlp", dim=2, width=32), process="edm", prediction="edm")
config = TrainConfig(steps=200, batch_size=128, sample_count=10, ema_profiles=(0.05, 0.1), ema_snapshot_every=20)
train(model, toy_data("moons", 2000, seed=0), "runs/moons-ema", config, progress=False)
result = posthoc_ema("runs/moons-ema", 0.08)     # the EMA of width 0.08 after the last snapshot's step
model.backbone.load_state_dict(result.state)
print(f"gamma {{gamma_of(0.08):.2f}}, {{len(result.snapshots)}} snapshots, fit error {{result.fit_error:.1e}}")
assert abs(sigma_rel_of(gamma_of(0.08)) - 0.08) < 1e-9
```
"""
    (docs / "posthoc-ema.md").write_text(text)
    print(f"wrote {docs / 'posthoc-ema.md'}, posthoc-ema.png, posthoc-ema-profile.png")


if __name__ == "__main__":
    main()
