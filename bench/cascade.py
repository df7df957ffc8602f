"""A two-stage cascade on the shapes set: a 16x16 base model, a 16 -> 32 super-resolution model, and the
super-resolution stage alone measured on held-out scenes against bicubic upsampling.

Steps (each through Plume's command line or public functions, in one run):
1. `plume train --data shapes --image-size 16` trains the base (a U-Net, EDM recipe) for --base-steps;
2. `plume train --data shapes --super-resolution 16` trains the second stage on the 32x32 training scenes, each
   conditioned on its own area-downsampled 16x16 copy, noise-augmented at s ~ U[0, 0.5] (Ho et al. 2021, sec. 4.1);
3. held-out evaluation of the second stage alone: scenes of split "heldout" (every one holds an object description
   the training split never shows; another seed than training) rendered at 32x32 (ground truth) and area-downsampled
   to 16x16 uint8 ("exact" input), and that input with Gaussian noise of std 0.1 ("noisy", a stand-in for a base
   model's errors); the same 16x16 input goes to PIL's bicubic resize and to the model (`plume.images.cascade.super_resolve`,
   one draw per scene) at each conditioning-augmentation level of --levels. PSNR in dB on uint8 [0, 255] images
   (mean over scenes of 10 log10(255^2 / MSE)), and the shapes checker's match rate against the true captions; the
   chosen level is the one with the best PSNR averaged over exact and noisy inputs, where the mean of 4 draws is
   also measured (an estimate of the posterior mean, which PSNR rewards);
4. the full cascade: base samples (seeds 0..n-1) super-resolved at each level, scored by the share of "well-formed"
   outputs (the checker finds 1 to 3 objects, each with a recognised color and kind), beside the same base samples
   upsampled bicubically; `plume sample BASE --then SR --augment LEVEL` draws the final cascade samples.
Writes docs/cascade.md (tables and the commands) and docs/cascade.png (rows: 16x16 input, bicubic, super-resolved,
ground truth; the noisy input and its super-resolution; base samples and their cascade outputs).

    python bench/cascade.py                      # the run behind docs/cascade.md (about 9 minutes on 2 cores)
    python bench/cascade.py --base-steps 5 --sr-steps 5 --heldout 8 --cascade 8 --steps 4 --no-docs   # smoke run
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plume.images.super_resolution import AUGMENT_MAX, downsample  # noqa: E402
from plume.images.cascade import super_resolve  # noqa: E402
from commands import plume  # noqa: E402  (bench/commands.py)
from plume.images.grid import add_title, image_grid  # noqa: E402
from plume.images.sets import images_to_tensor, tensor_to_images  # noqa: E402
from plume.images.shapes import shapes_dataset  # noqa: E402
from plume.images.evaluation.fidelity import psnr  # noqa: E402
from plume.images.evaluation.shapes_checker import detect_objects, match_rate  # noqa: E402
from plume.sampling import sample  # noqa: E402
from plume.train import load_denoiser  # noqa: E402

LOW, HIGH = 16, 32
NETWORK = ["--backbone-option", "channels=[16,32,32]", "--backbone-option", "attention_levels=[]",
           "--backbone-option", "mid_attention=false", "--backbone-option", "head_channels=16"]
HELDOUT_SEED = 1  # held-out scenes: split "heldout" of another seed than the training scenes (seed 0)
CORRUPTION = 0.1  # std of the noise added to held-out 16x16 inputs (in [-1, 1]): a stand-in for a base model's errors
MEAN_OF = 4  # draws averaged for the posterior-mean row
SR_LR = 4e-3  # the second stage's learning rate (pilots at 450 steps: 4e-3 beat 2e-3 by 0.7 dB, tied with 8e-3)


def bicubic(low: np.ndarray, size: int) -> np.ndarray:
    """PIL bicubic upsampling of uint8 images (N, h, w, 3) to (N, size, size, 3)."""
    return np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.Resampling.BICUBIC)) for p in low])


def nearest(low: np.ndarray, size: int) -> np.ndarray:
    """Pixel-replicated upsampling, to show 16x16 inputs at 32x32 in the picture."""
    k = size // low.shape[1]
    return low.repeat(k, axis=1).repeat(k, axis=2)


def well_formed(images: np.ndarray) -> float:
    """Share of images where the shapes checker finds 1 to 3 objects, each of a recognised color and kind."""
    ok = [1 <= len(found) <= 3 and all(o.color and o.kind for o in found)
          for found in (detect_objects(np.ascontiguousarray(image)) for image in images)]
    return float(np.mean(ok))


def heldout_set(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Held-out scenes: truth uint8 (n, 32, 32, 3), its area-downsampled 16x16 uint8 copy, that copy with Gaussian
    noise of std CORRUPTION (in [-1, 1] units, seeded, rounded to uint8), and the captions."""
    truth, captions, _ = shapes_dataset(n, HIGH, seed=HELDOUT_SEED, split="heldout")
    low = images_to_tensor(truth)  # (n, 3, 32, 32)
    low = downsample(low, LOW)  # (n, 3, 16, 16)
    noise = torch.randn(low.shape, generator=torch.Generator().manual_seed(HELDOUT_SEED))  # (n, 3, 16, 16)
    return truth, tensor_to_images(low), tensor_to_images(low + CORRUPTION * noise), captions


def score(images: np.ndarray, truth: np.ndarray, captions: list[str]) -> dict[str, float]:
    """Mean per-image PSNR (dB) against the truth, its standard error, and the checker's match rate."""
    values = psnr(images, truth)
    return {"psnr": float(values.mean()), "psnr_se": float(values.std(ddof=1) / math.sqrt(len(values))),
            "match": match_rate(images, captions)["match"]}


def super_resolved(sr: Any, low: np.ndarray, level: float, steps: int, first_seed: int = 0) -> torch.Tensor:
    """The second stage's draws (n, 3, 32, 32) in [-1, 1] for uint8 inputs low (n, 16, 16, 3), seeds from first_seed."""
    seeds = list(range(first_seed, first_seed + len(low)))
    return super_resolve(sr, images_to_tensor(low), seeds, augment=level, steps=steps)


def evaluate(base_run: Path, sr_run: Path, levels: list[float], n_heldout: int, n_cascade: int,
             steps: int) -> dict[str, Any]:
    """Held-out PSNR and match rate per level on exact and on noisy inputs (the second stage alone), the mean of
    several draws, and the well-formed share of cascade samples; the chosen level (best mean held-out PSNR)."""
    sr, base = load_denoiser(sr_run), load_denoiser(base_run)
    truth, low, noisy, captions = heldout_set(n_heldout)
    pictures: dict[str, np.ndarray] = {"truth": truth, "low": low, "noisy": noisy, "bicubic": bicubic(low, HIGH)}
    held: dict[str, Any] = {"n": n_heldout, "truth_match": match_rate(truth, captions)["match"], "levels": {},
                            "bicubic": {name: score(bicubic(x, HIGH), truth, captions)
                                        for name, x in (("exact", low), ("noisy", noisy))}}
    for level in levels:
        started, held["levels"][str(level)] = time.monotonic(), {}
        for name, x in (("exact", low), ("noisy", noisy)):
            pictures[f"{name}-{level}"] = tensor_to_images(super_resolved(sr, x, level, steps))
            held["levels"][str(level)][name] = score(pictures[f"{name}-{level}"], truth, captions)
        print(f"  held-out, level {level}: PSNR {held['levels'][str(level)]['exact']['psnr']:.2f} dB exact, "
              f"{held['levels'][str(level)]['noisy']['psnr']:.2f} dB noisy (bicubic "
              f"{held['bicubic']['exact']['psnr']:.2f}, {held['bicubic']['noisy']['psnr']:.2f}); "
              f"{time.monotonic() - started:.0f} s", flush=True)
    best = max(levels, key=lambda s: sum(row["psnr"] for row in held["levels"][str(s)].values()))
    draws = torch.stack([super_resolved(sr, low, best, steps, k * n_heldout) for k in range(MEAN_OF)])  # (K, n, ...)
    held["mean_of_draws"] = score(tensor_to_images(draws.mean(0)), truth, captions)
    with torch.no_grad():
        base_low = sample(base, base.process, (n_cascade, 3, LOW, LOW), steps=steps, seed=0).clamp(-1, 1)
    pictures["base"] = tensor_to_images(base_low)  # (n, 16, 16, 3)
    cascade: dict[str, Any] = {"n": n_cascade, "bicubic_well_formed": well_formed(bicubic(pictures["base"], HIGH)),
                               "levels": {}}
    for level in levels:
        pictures[f"cascade-{level}"] = tensor_to_images(super_resolved(sr, pictures["base"], level, steps))
        cascade["levels"][str(level)] = {"well_formed": well_formed(pictures[f"cascade-{level}"])}
        print(f"  cascade, level {level}: well-formed {cascade['levels'][str(level)]['well_formed']:.3f}", flush=True)
    return {"result": {"heldout": held, "cascade": cascade, "chosen_level": best}, "pictures": pictures}


def picture(pictures: dict[str, np.ndarray], level: float, path: Path, columns: int = 8) -> Path:
    """Titled rows: held-out input, bicubic, super-resolved, truth; noisy input and its super-resolution; base
    samples and their cascade outputs."""
    rows = [("held-out 16x16 input (shown pixel-replicated)", nearest(pictures["low"], HIGH)),
            ("bicubic upsampling (PIL)", pictures["bicubic"]),
            (f"super-resolution stage, one draw, augmentation level {level:g}", pictures[f"exact-{level}"]),
            ("ground truth 32x32", pictures["truth"]),
            (f"the input with noise of std {CORRUPTION:g} (pixel-replicated)", nearest(pictures["noisy"], HIGH)),
            *[(f"its super-resolution at level {s:g}", pictures[f"noisy-{s}"]) for s in sorted({level, CORRUPTION})
              if f"noisy-{s}" in pictures],
            ("cascade: the base model's 16x16 samples (pixel-replicated)", nearest(pictures["base"], HIGH)),
            (f"cascade: their super-resolution (level {level:g})", pictures[f"cascade-{level}"])]
    bands = [add_title(image_grid(images[:columns], columns=columns, scale=3), title) for title, images in rows]
    width = max(b.shape[1] for b in bands)
    bands = [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in bands]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(bands)).save(path)
    return path


def level_rows(levels: dict[str, Any], best: float, cells: Callable[[Any], str]) -> list[str]:
    """One table row per sampling augmentation level, the chosen one marked."""
    return [f"| super-resolution, augmentation level {level}{' **(chosen)**' if float(level) == best else ''} | "
            f"{cells(row)} |" for level, row in levels.items()]


def cells(row: dict[str, dict[str, float]]) -> str:
    """PSNR +- SE and match rate on exact and on noisy inputs."""
    return " | ".join(f"{row[k]['psnr']:.2f} +- {row[k]['psnr_se']:.2f} | {row[k]['match']:.3f}" for k in ("exact", "noisy"))


def markdown(result: dict[str, Any], commands: list[str], settings: dict[str, Any]) -> str:
    held, cascade, best = result["heldout"], result["cascade"], result["chosen_level"]
    mean = held["mean_of_draws"]
    lines = [
        "# Cascade: 16x16 base, 16 -> 32 super-resolution (shapes)", "",
        f"Written by `python bench/cascade.py` on {settings['date']} ({settings['seconds'] / 60:.1f} minutes, "
        f"{settings['threads']} CPU thread, the machine shared with other jobs). Base: {settings['base_steps']} steps "
        f"(batch 64); super-resolution stage: {settings['sr_steps']} steps (batch 32, lr {settings['sr_lr']:g}); both "
        f"a U-Net of widths 16, 32, 32 without attention; sampler dpm++2m, {settings['steps']} steps per stage. "
        f"Training conditioning augmentation: s ~ U[0, {AUGMENT_MAX:g}] (Gaussian noise of std s added to the 16x16 "
        "image in [-1, 1], s given to the network as a constant channel); the network upsamples its conditioning "
        "bicubically, and the stage is residual (it models the high-resolution image minus that upsampling, with "
        "sigma_data measured on those residuals and training's lognormal noise levels shifted by ln(sigma_data / "
        "0.5)).", "",
        "## The super-resolution stage alone, held-out scenes", "",
        f"{held['n']} scenes of split \"heldout\" (seed {HELDOUT_SEED}; each holds a color-kind pair never seen in "
        "training), rendered at 32x32 and area-downsampled to 16x16 uint8 (\"exact\" input); \"noisy\": the same "
        f"input plus Gaussian noise of std {CORRUPTION:g} (in [-1, 1] units, rounded to uint8), a stand-in for a base "
        "model's errors. Bicubic and the model get the same 16x16 input. PSNR in dB on uint8 images, mean over scenes "
        "+- standard error, one draw per scene; match: the shapes checker against the true caption.", "",
        "| 32x32 from the 16x16 input | PSNR, exact input | match, exact | PSNR, noisy input | match, noisy |",
        "|---|---|---|---|---|",
        f"| bicubic (PIL) | {cells(held['bicubic'])} |"]
    lines += level_rows(held["levels"], best, cells)
    lines += [f"| mean of {MEAN_OF} draws, level {best:g} (exact input) | {mean['psnr']:.2f} +- {mean['psnr_se']:.2f} | "
              f"{mean['match']:.3f} | | |",
              f"| ground truth | inf | {held['truth_match']:.3f} | | |", "",
              f"Chosen sampling level: **{best:g}**, the best held-out PSNR averaged over exact and noisy inputs. A draw "
              "is a sample of the posterior, not its mean, so PSNR (which rewards the mean) undersells it; the mean of "
              f"{MEAN_OF} draws estimates the posterior mean.", "",
              "## The whole cascade", "",
              f"{cascade['n']} base samples (seeds 0..{cascade['n'] - 1}), each super-resolved at every level. "
              "Well-formed: the shapes checker finds 1 to 3 objects, each of a recognised color and kind (the base is "
              "unconditional, so there is no caption to match).", "",
              "| 32x32 from the base's 16x16 samples | well-formed share |", "|---|---|",
              f"| bicubic (PIL) | {cascade['bicubic_well_formed']:.3f} |"]
    lines += level_rows(cascade["levels"], best, lambda row: f"{row['well_formed']:.3f}")
    lines += ["", "![cascade](cascade.png)", "", "## Commands", "", "```bash", *commands,
              "python bench/cascade.py   # all of the above, the evaluation, and this page", "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "cascade", help="run directories (replaced)")
    parser.add_argument("--base-steps", type=int, default=300, help="training steps of the base (batch 64)")
    parser.add_argument("--sr-steps", type=int, default=600, help="training steps of the second stage (batch 32)")
    parser.add_argument("--heldout", type=int, default=48, help="held-out scenes")
    parser.add_argument("--cascade", type=int, default=48, help="cascade samples")
    parser.add_argument("--steps", type=int, default=20, help="sampler steps per stage")
    parser.add_argument("--levels", default="0,0.05,0.1,0.2", help="sampling augmentation levels to compare")
    parser.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared 2-core machine")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--docs-dir", type=Path, default=ROOT / "docs", help="where cascade.md and cascade.png go")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.monotonic()
    levels = [float(v) for v in args.levels.split(",")]
    shutil.rmtree(args.out, ignore_errors=True)
    base_run, sr_run = args.out / "base16", args.out / "sr"
    common = ["--threads", args.threads, "--quiet", "--sample-count", 16, "--warmup-steps", 50, *NETWORK]
    commands = [
        plume("train", "--data", "shapes", "--image-size", LOW, "--out", base_run, "--steps", args.base_steps,
              "--batch-size", 64, *common),
        plume("train", "--data", "shapes", "--super-resolution", LOW, "--out", sr_run, "--steps", args.sr_steps,
              "--batch-size", 32, "--lr", SR_LR, *common)]
    evaluation = evaluate(base_run, sr_run, levels, args.heldout, args.cascade, args.steps)
    result, best = evaluation["result"], evaluation["result"]["chosen_level"]
    commands.append(plume("sample", base_run, "--then", sr_run, "--n", args.cascade, "--augment", best,
                          "--steps", args.steps, "--threads", args.threads))
    steps = {name: json.loads((run / "checkpoint" / "config.json").read_text())["step"]
             for name, run in (("base", base_run), ("sr", sr_run))}
    settings = {"date": datetime.date.today().isoformat(), "seconds": time.monotonic() - began, "threads": args.threads,
                "base_steps": steps["base"], "sr_steps": steps["sr"], "sr_lr": SR_LR, "steps": args.steps}
    commands = [c.replace(str(ROOT) + "/", "") for c in commands]
    print(json.dumps({**result, **settings}, indent=2))
    if args.docs:
        docs = args.docs_dir
        picture(evaluation["pictures"], best, docs / "cascade.png")
        (docs / "cascade.md").write_text(markdown(result, commands, settings))
        print(f"wrote {docs / 'cascade.md'} and {docs / 'cascade.png'}")


if __name__ == "__main__":
    main()
