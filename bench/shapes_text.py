"""Text-to-image on the shapes data: prompt-match rate (plume.images.evaluation.shapes_checker) on held-out and seen
prompts, and FID, against the classifier-free guidance scale, for a run trained with
`plume train --data shapes --conditional ...`.

Prompt sets (every prompt gets --per-prompt samples, seeds 0..):
  held-out, 1 object   plume.images.shapes.heldout_prompts(rule): object descriptions no training scene holds (rule
                       "pairs" for a run on --data shapes, "triples" for --data shapes-triples)
  seen, 1 object       the single-object prompts of the training split (every (size, color, kind) not held out)
  held-out scenes      captions of --scenes scenes of the "heldout" split (1-3 objects, at least one held out)
  seen scenes          captions of --scenes new scenes of the training split (1-3 objects)
For each guidance scale s (0: the unconditional model, i.e. the empty prompt; 1: the conditional model alone;
s > 1: classifier-free guidance, Ho & Salimans 2022) it samples every set and scores each image against its prompt.
FID: the "seen scenes" samples against --reference renders of new training-split scenes, in the penultimate features
of a small classifier (plume.images.evaluation.classifier) trained on training-split renders to name the first object's
color and kind (18 classes): Inception features are not available offline here and mean little at 32 x 32.
Writes docs/text-to-image.md (the table), docs/text-to-image.json, docs/shapes-guidance.png (match rate and FID
against s) and docs/shapes-prompts.png (held-out prompts, one row each, at the best scale); for a "triples" run the
names end in -triples (docs/text-to-image-triples.md, ...).

Run alone (other processes skew nothing here but take longer):
  python bench/shapes_text.py runs/shapes-text [--scales 0,1,2,3,5] [--per-prompt 8] [--scenes 48]
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plume.draw import draw  # noqa: E402
from plume.images.grid import add_title, image_grid  # noqa: E402
from plume.images.sets import SHAPES_HELDOUT, tensor_to_images  # noqa: E402
from plume.images.shapes import (COLORS, KINDS, SIZES, heldout_combinations, heldout_prompts,  # noqa: E402
                                 shapes_dataset)
from plume.images.evaluation.classifier import train_classifier  # noqa: E402
from plume.evaluation.frechet import frechet_distance  # noqa: E402
from plume.images.evaluation.shapes_checker import match_rate  # noqa: E402
from plume.images.latent.checkpoint import read_autoencoder_config  # noqa: E402
from plume.images.latent.data import decode_latents, latent_autoencoder  # noqa: E402
from plume.train import load_denoiser, read_config  # noqa: E402
from plume.train.plots import line_plot  # noqa: E402
from commands import shown  # noqa: E402  (bench/commands.py)

TRIPLES = ("each such color + kind is held out at one size only, seen at the other, so every word pair is seen "
           "in training but not these descriptions")
SETS = ("held-out, 1 object", "seen, 1 object", "held-out scenes", "seen scenes")


def prompt_sets(scenes: int, seed: int, rule: str) -> dict[str, list[str]]:
    """The four prompt lists (see the module docstring) under held-out rule `rule`."""
    held = set(heldout_combinations(rule))
    seen = [f"a {s} {c} {k}" for s in SIZES for c in COLORS for k in KINDS if (s, c, k) not in held]
    _, held_captions, _ = shapes_dataset(scenes, 32, seed=seed, split="heldout", heldout=rule)
    _, seen_captions, _ = shapes_dataset(scenes, 32, seed=seed, split="train", heldout=rule)
    return {SETS[0]: heldout_prompts(rule), SETS[1]: seen, SETS[2]: held_captions, SETS[3]: seen_captions}


def feature_network(seed: int, count: int = 4000):
    """A classifier of the first object's (color, kind) trained on training-split renders: FID's features."""
    images, _, scenes = shapes_dataset(count, 32, seed=seed, split="train")
    names = [f"{c} {k}" for c in COLORS for k in KINDS]
    labels = np.array([names.index(f"{s.shapes[0].color} {s.shapes[0].kind}") for s in scenes])
    return train_classifier(images, labels, seed=seed, steps=600)


def sample_prompts(denoiser: Any, prompts: list[str], per_prompt: int, scale: float, args: argparse.Namespace) -> np.ndarray:
    """uint8 images (P * per_prompt, 32, 32, 3): prompt p's samples at rows p * per_prompt ..., seeds 0, 1, ...
    (a latent run's samples decoded by its autoencoder, args.autoencoder)."""
    tokens = denoiser.backbone.text.encoder.tokenizer.encode(prompts)  # (P, T)
    conditions = tokens.repeat_interleave(per_prompt, dim=0)  # (P * per_prompt, T)
    seeds = list(range(len(conditions)))
    x = draw(denoiser, tuple(args.shape), seeds, args.batch_size, dict(sampler=args.sampler, steps=args.steps),
             labels=conditions, guidance=scale)  # (N, C, H, W), or latents (N, z, h, w)
    if args.autoencoder is not None:
        x = decode_latents(args.autoencoder, x)  # (N, C, H, W)
    return tensor_to_images(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--scales", default="0,1,2,3,5", help="guidance scales s (0: unconditional)")
    parser.add_argument("--per-prompt", type=int, default=8, help="samples per single-object prompt")
    parser.add_argument("--scenes", type=int, default=48, help="prompts (one sample each) per scene set")
    parser.add_argument("--reference", type=int, default=1000, help="real renders FID compares against")
    parser.add_argument("--sampler", default="dpm++2m")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=2026, help="scenes of the prompt sets and FID's reference")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = read_config(args.run)
    args.shape = config["data"]["shape"]
    args.autoencoder = latent_autoencoder(config["data"], args.run)  # a latent run's decoder, or None
    denoiser = load_denoiser(args.run, ema=True)
    if getattr(denoiser.backbone, "text", None) is None:
        raise SystemExit(f"{args.run} is not a text-conditioned run (train with --data shapes --conditional)")
    scales = [float(s) for s in args.scales.split(",")]
    name = config["data"].get("images", config["data"])["name"]  # a latent run's images
    if name not in SHAPES_HELDOUT:
        raise SystemExit(f"{args.run} was trained on {name!r}, not on the shapes data ({', '.join(SHAPES_HELDOUT)})")
    args.rule = SHAPES_HELDOUT[name]
    args.suffix = "" if args.rule == "pairs" else f"-{args.rule}"
    sets = prompt_sets(args.scenes, args.seed, args.rule)
    print(f"run {args.run}: {config['training'].get('steps')} steps budgeted; prompt sets "
          + ", ".join(f"{k}: {len(v)}" for k, v in sets.items()), flush=True)
    classifier = feature_network(args.seed + 1)
    reference, _, _ = shapes_dataset(args.reference, 32, seed=args.seed + 2, split="train", heldout=args.rule)
    reference_features = classifier.features(reference)  # (M, F)
    rows, pictures = [], {}
    for scale in scales:
        began = time.perf_counter()
        row: dict[str, Any] = {"scale": scale}
        for name, prompts in sets.items():
            per = args.per_prompt if "1 object" in name else 1
            images = sample_prompts(denoiser, prompts, per, scale, args)
            asked = [p for p in prompts for _ in range(per)]
            row[name] = match_rate(images, asked)["match"]
            if name == SETS[0]:
                pictures[scale] = images
            if name == SETS[3]:
                row["fid"] = frechet_distance(classifier.features(images), reference_features)
        row["seconds"] = time.perf_counter() - began
        rows.append(row)
        print(f"s={scale:g}: " + ", ".join(f"{k} {row[k]:.3f}" for k in SETS) + f", FID {row['fid']:.3f} "
              f"({row['seconds']:.0f} s)", flush=True)
    write_docs(args, config, sets, rows, pictures)


def write_docs(args: argparse.Namespace, config: dict, sets: dict[str, list[str]], rows: list[dict],
               pictures: dict[float, np.ndarray]) -> None:
    """docs/text-to-image.{md,json}, docs/shapes-guidance.png and docs/shapes-prompts.png."""
    args.docs.mkdir(parents=True, exist_ok=True)
    scales = [r["scale"] for r in rows]
    series = {name: (scales, [r[name] for r in rows]) for name in SETS}
    line_plot(args.docs / f"shapes-guidance{args.suffix}.png", series, "guidance scale s", "prompt-match rate",
              title="shapes: prompt match against guidance", log_x=False)
    line_plot(args.docs / f"shapes-guidance-fid{args.suffix}.png", {"seen scenes": (scales, [r["fid"] for r in rows])},
              "guidance scale s", "FID (classifier features)", title="shapes: FID against guidance", log_x=False)
    best = max(rows, key=lambda r: r[SETS[0]])["scale"]
    held = sets[SETS[0]]
    grid_rows = [add_title(image_grid(pictures[best][i * args.per_prompt:(i + 1) * args.per_prompt], columns=args.per_prompt), p)
                 for i, p in enumerate(held)]
    width = max(g.shape[1] for g in grid_rows)
    stacked = np.concatenate([np.pad(g, ((0, 0), (0, width - g.shape[1]), (0, 0))) for g in grid_rows])
    from PIL import Image
    Image.fromarray(stacked).save(args.docs / f"shapes-prompts{args.suffix}.png")
    command = "python bench/shapes_text.py " + " ".join(sys.argv[1:])
    training = config.get("training", {})
    autoencoder = config["data"].get("autoencoder")
    latent = ""
    if autoencoder:  # its own training time counts too
        _, trained = read_autoencoder_config(autoencoder["path"])
        latent = (f" on the latents of the autoencoder {shown(autoencoder['path'])} (itself trained {trained['step']} steps in "
                  f"{trained['seconds'] / 60:.1f} minutes)")
    lines = [
        "# Text-to-image on the shapes data", "",
        f"`{command}` on {datetime.date.today().isoformat()}; run `{args.run}` ({config['backbone']['name']} "
        f"backbone{latent}, text encoder {config['backbone']['options']['text']['kind']}, {config.get('step')} steps "
        f"of batch {training.get('batch_size')} (budget {training.get('minutes')} minutes), lr {training.get('lr')}, "
        f"label dropout {training.get('label_dropout')}, training times {config['denoiser'].get('time_sampling')}); "
        f"sampler {args.sampler}, {args.steps} steps.", "",
        "Prompt-match rate by the deterministic checker (plume.images.evaluation.shapes_checker: object count, colors, "
        "kinds, sizes where named, relations); s = 0 is the unconditional model (the empty prompt), s = 1 the "
        "conditional model alone. FID: the 'seen scenes' samples against "
        f"{args.reference} renders of new training-split scenes, in classifier features (see the script).", "",
        "| guidance s | " + " | ".join(f"{k} ({len(sets[k])} prompts)" for k in SETS) + " | FID | seconds |",
        "|---" * (len(SETS) + 3) + "|",
        *[f"| {r['scale']:g} | " + " | ".join(f"{r[k]:.3f}" for k in SETS) + f" | {r['fid']:.3f} | "
          f"{r['seconds']:.0f} |" for r in rows], "",
        f"Single-object prompts take {args.per_prompt} samples each, scene prompts one. Held-out prompts name "
        "object descriptions that no training image holds (plume.images.shapes, rule "
        f"\"{args.rule}\"{': ' + TRIPLES if args.rule == 'triples' else ''}).", "",
        f"![match rate against guidance](shapes-guidance{args.suffix}.png) "
        f"![FID against guidance](shapes-guidance-fid{args.suffix}.png)", "",
        f"Held-out prompts at s = {best:g}, one row each:", "", f"![held-out prompts](shapes-prompts{args.suffix}.png)", ""]
    (args.docs / f"text-to-image{args.suffix}.md").write_text("\n".join(lines))
    record = {"command": command, "date": datetime.date.today().isoformat(), "run": str(args.run),
              "sampler": args.sampler, "steps": args.steps, "per_prompt": args.per_prompt, "sets": sets, "rows": rows}
    (args.docs / f"text-to-image{args.suffix}.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {args.docs / f'text-to-image{args.suffix}.md'}")


if __name__ == "__main__":
    main()
