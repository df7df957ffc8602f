"""Digits, side by side in one run: Plume's default image recipe against diffusers' own unconditional recipe.

Both train on scikit-learn's 1,797 8x8 digits (uint8 scaled to [-1, 1]) for the same wall-clock budget on this
machine, taking turns in 30-second slices (the order swapped every slice) so that drift in the machine's speed
hits both alike; then each draws 1000 samples (seeds 0..999) at 20 model evaluations with every sampler of its
library that suits the budget, and the best one (lowest FID) is each side's figure. Nothing else should run
meanwhile: run this script alone.

- Plume: `plume.images.IMAGE_RECIPE` exactly as `plume train --data digits` uses it (EDM preconditioning,
  log-normal noise levels and loss weighting on the "tiny" ADM-style U-Net, AdamW, EMA), trained by
  `plume.train.train` with a time budget per slice, each slice resuming the run exactly.
- diffusers: `UNet2DModel` of the same widths, blocks, attention levels, heads and norm groups
  (bench/unet_throughput.py's `diffusers_twin`), `DDPMScheduler` with 1000 linear-beta steps and epsilon
  prediction, and the optimizer, learning-rate schedule and EMA of diffusers'
  examples/unconditional_image_generation/train_unconditional.py: AdamW lr 1e-4, betas (0.95, 0.999), weight
  decay 1e-6, eps 1e-8; cosine schedule with 500 warm-up steps (its length set from the steps/s measured in
  the first seconds so that it ends with the budget); EMAModel with warm-up (inv_gamma 1, power 3/4, max decay
  0.9999). Same batch size as Plume (the example's 16 is for 64x64 images; equal batches keep the data seen per
  step equal). No flips (the example's flip would mirror digits).

Measures (plume.evaluation): FID in the penultimate features of a small CNN digit classifier trained here on
the training digits (Inception features mean little at 8x8), with its floor (FID between two halves of the
training set); predicted-class counts; and the memorization ratio: median distance from a sample to its nearest
training digit over the median leave-one-out nearest-neighbour distance among training digits (>= 0.9: not
copying). Writes docs/digits.md, docs/digits.json, docs/digits-plume.png and docs/digits-diffusers.png (the
first 100 samples of each side's best sampler, unsorted).

    python bench/digits.py                 # 5 minutes each, the acceptance run (~13 minutes in all)
    python bench/digits.py --minutes 0.5 --no-docs   # smoke run
"""
from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from plume.images import load_image_data, save_image_grid, tensor_to_images  # noqa: E402
from plume.images.evaluation import evaluate_images, train_classifier  # noqa: E402
from plume.images import IMAGE_RECIPE, IMAGES  # noqa: E402
from plume.recipes import build_recipe  # noqa: E402
from plume.sampling import sample as plume_sample  # noqa: E402
from plume.train import load_denoiser, train, train_config  # noqa: E402
from unet_throughput import diffusers_twin  # noqa: E402

SAMPLES, NFE = 1000, 20
SLICE_SECONDS = 30.0  # training alternates between the two recipes in slices this long
PLUME_SAMPLERS = {"dpm++2m, 20 steps": ("dpm++2m", 20), "dpm++3m, 20 steps": ("dpm++3m", 20),
                  "heun, 10 steps (19 evaluations)": ("heun", 10), "euler, 20 steps": ("euler", 20)}
DIFFUSERS_SAMPLERS = ("DDIMScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler", "DDPMScheduler")


class PlumeRecipe:
    """Plume's default image recipe, trained by plume.train.train in slices of the budget (each slice resumes the
    run exactly, so the slices add up to one uninterrupted run)."""

    def __init__(self, data: Any, out: Path):
        self.recipe = IMAGES.default_recipe(data.shape)
        self.denoiser = build_recipe(self.recipe, data.shape, seed=0)
        self.data, self.out, self.steps, self.seconds = data, out, 0, 0.0

    def train_for(self, seconds: float) -> None:
        config = train_config({**self.recipe["training"], "minutes": seconds / 60.0, "sample_count": 1})
        result = train(self.denoiser, self.data, self.out, config, resume=self.steps > 0, progress=False)
        self.steps, self.seconds, self.last_loss = result.step, self.seconds + result.seconds, result.last_loss

    def finish(self, log: Callable[[str], None]) -> tuple[torch.nn.Module, dict]:
        log(f"plume: {self.steps} steps in {self.seconds:.0f} s, last loss {self.last_loss:.4f}")
        return load_denoiser(self.out, ema=True), {"steps": self.steps, "seconds": self.seconds}


def draw_plume(denoiser: torch.nn.Module, shape: tuple, sampler: str, steps: int) -> np.ndarray:
    with torch.no_grad():
        x = plume_sample(denoiser, denoiser.process, (SAMPLES, *shape), sampler=sampler, steps=steps,
                         prediction="x0", seeds=list(range(SAMPLES)))  # (N, C, H, W)
    return tensor_to_images(x)


class DiffusersRecipe:
    """diffusers' unconditional example recipe on the twin of Plume's U-Net (see the module docstring)."""

    def __init__(self, data: Any, batch_size: int):
        from diffusers import DDPMScheduler
        from diffusers.training_utils import EMAModel

        torch.manual_seed(0)
        recipe = IMAGES.default_recipe(data.shape)
        twin_of = build_recipe(recipe, data.shape, seed=0).backbone.options()
        self.model = diffusers_twin(twin_of, data.shape[-1]).train()
        self.scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon")
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6,
                                           eps=1e-8)
        self.ema = EMAModel(self.model.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=3 / 4,
                            model_cls=type(self.model), model_config=self.model.config)
        self.data, self.batch_size = data.data, batch_size  # (N, C, H, W) in [-1, 1]
        self.generator = torch.Generator().manual_seed(0)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 1.0)
        self.lr_schedule_end = math.inf

    def steps_per_second(self, steps: int = 15) -> float:
        """Training steps per second, timed on this (scratch) instance after 3 warm-up steps."""
        for _ in range(3):
            self.step()
        began = time.monotonic()
        for _ in range(steps):
            self.step()
        return steps / (time.monotonic() - began)

    def step(self) -> float:
        index = torch.randint(len(self.data), (self.batch_size,), generator=self.generator)
        x0 = self.data[index]  # (B, C, H, W)
        noise = torch.randn(x0.shape, generator=self.generator)  # (B, C, H, W)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(x0),), generator=self.generator)
        loss = F.mse_loss(self.model(self.scheduler.add_noise(x0, noise, t), t).sample, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)  # the example's max_grad_norm
        self.optimizer.step()
        if self.lr_schedule.last_epoch < self.lr_schedule_end:  # past its end the cosine would rise again
            self.lr_schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.step(self.model.parameters())
        return float(loss.detach())

    def schedule(self, schedule_steps: int) -> None:
        """The example's cosine schedule with 500 warm-up steps, sized for `schedule_steps` steps."""
        from diffusers.optimization import get_scheduler

        self.lr_schedule = get_scheduler("cosine", optimizer=self.optimizer, num_warmup_steps=500,
                                         num_training_steps=schedule_steps)
        self.lr_schedule_end, self.steps, self.seconds, self.losses = schedule_steps, 0, 0.0, []

    def train_for(self, seconds: float) -> None:
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            self.losses.append(self.step())
            self.steps += 1
        self.seconds += time.monotonic() - began

    def finish(self, log: Callable[[str], None]) -> dict:
        log(f"diffusers: {self.steps} steps in {self.seconds:.0f} s (cosine schedule sized for "
            f"{self.lr_schedule_end}), last-100 loss {np.mean(self.losses[-100:]):.4f}")
        self.ema.copy_to(self.model.parameters())
        self.model.eval()
        return {"steps": self.steps, "seconds": self.seconds, "schedule_steps": self.lr_schedule_end}

    def draw(self, scheduler_name: str) -> np.ndarray:
        import diffusers

        scheduler = getattr(diffusers, scheduler_name).from_config(self.scheduler.config)
        scheduler.set_timesteps(NFE)
        generator = torch.Generator().manual_seed(0)
        stochastic = "generator" in inspect.signature(scheduler.step).parameters
        extra = {"generator": generator} if stochastic else {}
        x = torch.randn((SAMPLES, *self.data.shape[1:]), generator=generator) * scheduler.init_noise_sigma
        with torch.no_grad():
            for t in scheduler.timesteps:
                eps = self.model(scheduler.scale_model_input(x, t), t).sample  # (N, C, H, W)
                x = scheduler.step(eps, t, x, **extra).prev_sample
        return tensor_to_images(x)


def best_of(drawn: dict[str, np.ndarray], measure: Callable[[np.ndarray], dict], log: Callable[[str], None],
            side: str) -> tuple[str, dict[str, dict]]:
    """Evaluate each sampler's samples; the name of the lowest FID and every report."""
    reports = {}
    for name, pixels in drawn.items():
        reports[name] = measure(pixels)
        r = reports[name]
        log(f"  {side:9s} {name:34s} FID {r['fid']:8.3f}  NN ratio {r['memorization']['ratio']:.3f}  "
            f"classes {sum(1 for v in r['class_counts'].values() if v > 0)}/10")
    return min(reports, key=lambda k: reports[k]["fid"]), reports


def markdown(result: dict[str, Any]) -> str:
    p, d = result["plume"], result["diffusers"]
    bp, bd = p["reports"][p["best"]], d["reports"][d["best"]]
    rows = []
    for side, name in (("Plume", "plume"), ("diffusers", "diffusers")):
        for sampler, r in result[name]["reports"].items():
            mark = " **(best)**" if sampler == result[name]["best"] else ""
            rows.append(f"| {side} | {sampler}{mark} | {r['fid']:.3f} | {r['memorization']['ratio']:.3f} | "
                        f"{r['memorization']['copies']:.3f} | {r['confident_fraction']:.3f} | "
                        f"{min(r['class_counts'].values())}..{max(r['class_counts'].values())} |")
    return "\n".join([
        "# Digits: Plume's default recipe vs diffusers' unconditional recipe", "",
        f"`{result['command']}` on {result['date']} ({result['machine']}; torch {result['torch']}, diffusers "
        f"{result['diffusers_version']}). Each side trained for {result['minutes']} minutes of wall clock, in "
        f"alternating 30-second slices, then drew {SAMPLES} samples (seeds 0..{SAMPLES - 1}) at {NFE} model evaluations.", "",
        "| | Plume | diffusers |", "|---|---|---|",
        f"| training steps (batch {result['batch_size']}) | {p['training']['steps']} | {d['training']['steps']} |",
        f"| parameters | {p['params']:,} | {d['params']:,} |",
        f"| best sampler at {NFE} NFE | {p['best']} | {d['best']} |",
        f"| FID (digit-classifier features) | **{bp['fid']:.3f}** | {bd['fid']:.3f} |",
        f"| FID ratio Plume / diffusers | **{bp['fid'] / bd['fid']:.3f}** (target <= 0.333) | |",
        f"| memorization ratio (median NN distance to training / within training) | **{bp['memorization']['ratio']:.3f}**"
        f" (target >= 0.9) | {bd['memorization']['ratio']:.3f} |",
        f"| samples per predicted class (min..max) | {min(bp['class_counts'].values())}.."
        f"{max(bp['class_counts'].values())} | {min(bd['class_counts'].values())}..{max(bd['class_counts'].values())} |",
        "", f"FID floor (two halves of the training digits): {bp['fid_floor']:.3f}. Feature network: "
        f"{bp['feature_network']}; reference: the {bp['n_reference']} training digits.", "",
        "Every sampler tried:", "",
        "| library | sampler | FID | NN ratio | copies | confident | per class |", "|---|---|---|---|---|---|---|",
        *rows, "",
        "First 100 samples of each side's best sampler (seeds 0..99, unsorted):", "",
        "| Plume | diffusers |", "|---|---|", "| ![Plume](digits-plume.png) | ![diffusers](digits-diffusers.png) |", "",
        "Copies: samples closer to a training digit than a third of the typical within-training NN distance. "
        "Confident: the classifier gives the predicted class probability > 0.9. Details of both recipes: the "
        "docstring of bench/digits.py.", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget of each side")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=True,
                        help="write docs/digits.{md,json} and the two grids (default on)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import diffusers

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    data = load_image_data("digits")
    pixels, labels = data.images.pixels, data.images.labels
    shape, batch = data.shape, IMAGE_RECIPE["training"]["batch_size"]
    log(f"digits: {pixels.shape} uint8; training a feature classifier")
    classifier = train_classifier(pixels, labels, seed=0)

    def measure(samples: np.ndarray) -> dict:
        return evaluate_images(samples, pixels, labels, classifier=classifier)

    result: dict[str, Any] = {"minutes": args.minutes, "batch_size": batch, "date": datetime.date.today().isoformat(),
                              "command": "python bench/digits.py " + " ".join(sys.argv[1:]),
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} threads",
                              "torch": torch.__version__, "diffusers_version": diffusers.__version__}
    # The example's cosine schedule needs its length: time a scratch copy first (outside the budget).
    schedule_steps = int(DiffusersRecipe(data, batch).steps_per_second() * 60.0 * args.minutes)
    rival = DiffusersRecipe(data, batch)
    rival.schedule(schedule_steps)
    slices = max(1, round(args.minutes * 60.0 / SLICE_SECONDS))
    log(f"training both for {args.minutes} minutes each, alternating in {slices} slices (Plume first in even "
        "slices, diffusers in odd ones), so that the machine's speed drifts alike for both")
    with tempfile.TemporaryDirectory() as tmp:
        plume = PlumeRecipe(data, Path(tmp) / "plume")
        for k in range(slices):
            for side in ((plume, rival) if k % 2 == 0 else (rival, plume)):
                side.train_for(60.0 * args.minutes / slices)
        denoiser, trained = plume.finish(log)
    drawn = {name: draw_plume(denoiser, shape, *spec) for name, spec in PLUME_SAMPLERS.items()}
    best, reports = best_of(drawn, measure, log, "plume")
    result["plume"] = {"training": trained, "best": best, "reports": reports,
                       "params": sum(p.numel() for p in denoiser.parameters())}
    plume_best = drawn[best]

    trained = rival.finish(log)
    drawn = {name: rival.draw(name) for name in DIFFUSERS_SAMPLERS}
    best, reports = best_of(drawn, measure, log, "diffusers")
    result["diffusers"] = {"training": trained, "best": best, "reports": reports,
                           "params": sum(p.numel() for p in rival.model.parameters())}
    fid = (result["plume"]["reports"][result["plume"]["best"]]["fid"], reports[best]["fid"])
    ratio = result["plume"]["reports"][result["plume"]["best"]]["memorization"]["ratio"]
    result["fid_ratio"] = fid[0] / fid[1] if fid[1] > 0 else math.inf
    log(f"FID plume {fid[0]:.3f} / diffusers {fid[1]:.3f} = {result['fid_ratio']:.3f} (target <= 1/3); "
        f"plume memorization ratio {ratio:.3f} (target >= 0.9)")
    if args.docs:
        docs = ROOT / "docs"
        save_image_grid(plume_best[:100], docs / "digits-plume.png", columns=10,
                        title=f"Plume, {result['plume']['best']}")
        save_image_grid(drawn[best][:100], docs / "digits-diffusers.png", columns=10, title=f"diffusers, {best}")
        (docs / "digits.json").write_text(json.dumps(result, indent=2) + "\n")
        (docs / "digits.md").write_text(markdown(result))
        log(f"wrote {docs / 'digits.md'}, digits.json, digits-plume.png, digits-diffusers.png")


if __name__ == "__main__":
    main()
