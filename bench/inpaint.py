"""Inpainting held-out digits: replacement, RePaint and a mask-conditioned model against non-diffusion inpainting.

Steps (in one run, through Plume's command line and public functions):
1. `plume train --data digits --holdout 0.2` trains an unconditional model on 80% of scikit-learn's 8x8 digits, and
   `plume train ... --inpainting` a mask-conditioned one (cond = [image * keep, keep], masks "mixed": centre squares,
   halves, random rectangles and strokes drawn per example) on the same 80%, both the same small U-Net (widths 32, 64,
   no attention) for --train-steps steps of batch 64 (a run already at that step is reused; one below it is resumed);
2. a digit classifier (plume.images.evaluation.classifier) trained separately on the same training digits;
3. every held-out digit (20%, never trained on) is masked with the centre 4x4 square and, separately, with each of
   its four halves (left, right, top, bottom); each method fills the holes:
   - replace: the unconditional model, the known pixels re-imposed after every step (plume.images.tasks.inpaint);
   - RePaint: the same plus resampling (jump --jump, --resample passes; Lugmayr et al. 2022);
   - conditioned: the --inpainting model;
   - scikit-image's inpaint_biharmonic, OpenCV's cv2.inpaint with INPAINT_TELEA and INPAINT_NS (radius 3), and the
     training digits' mean image (filling the hole with it);
4. scores per mask family: classifier accuracy (the completed digit classified as the original's label), PSNR of the
   filled region alone (dB on uint8, 10 log10(255^2 / MSE over the hole's pixels), mean over images), and the number
   of known pixels any method changed (must be 0 for the diffusion methods).
Writes docs/inpainting.md (command, date, table) and docs/inpainting.png (rows: original, masked, then each method).

    python bench/inpaint.py                                   # the run behind docs/inpainting.md
    python bench/inpaint.py --train-steps 20 --heldout 16 --steps 6 --no-docs   # smoke run
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from commands import command_line, plume  # noqa: E402  (bench/commands.py)
from plume.images.grid import add_title, image_grid  # noqa: E402
from plume.images.sets import holdout_split, images_to_tensor, load_image_data, tensor_to_images  # noqa: E402
from plume.images.masks import HALVES, centre_mask, half_mask  # noqa: E402
from plume.images.evaluation.classifier import train_classifier  # noqa: E402
from plume.images.evaluation.fidelity import psnr  # noqa: E402
from plume.samplers import sampler_spec  # noqa: E402
from plume.images.tasks.inpaint import inpaint, repaint_schedule  # noqa: E402
from plume.train import load_denoiser  # noqa: E402

HOLDOUT = 0.2
NETWORK = ["--backbone-option", "channels=[32,64]", "--backbone-option", "attention_levels=[]",
           "--backbone-option", "mid_attention=false", "--backbone-option", "head_channels=16"]
TRAINING = ["--batch-size", 64, "--sample-count", 16, "--preview-every", 0, "--warmup-steps", 100,
            "--checkpoint-every", 250]
FAMILIES = {"centre 4x4": ["centre"], "half (each of 4)": list(HALVES)}
CV_RADIUS = 3
DIFFUSION = ("replace (unconditional model)", "RePaint (unconditional model)", "mask-conditioned model (--inpainting)")
USAGE = """## Usage

Masks are `keep`: 1 (white in a PNG) where the pixel is known, 0 (black) where it is to be filled; `plume inpaint
--mask-white fill` reads masks drawn the other way (white holes, as OpenCV and most editors draw them). Every method
returns the known pixels bit for bit. Default samplers (`DEFAULT_SAMPLERS`): euler-maruyama for replace and
repaint (a stochastic sampler blended the filled region better than ddpm in pilots on these digits), ddpm for the
mask-conditioned model. A runnable example with an exact denoiser, E[x0 | x_t] for data that are the
training digits themselves (no training; seconds on a CPU):

```python
import torch
from plume.images import images_to_tensor, load_image_data
from plume.images.masks import half_mask
from plume.images.tasks.inpaint import inpaint

digits = load_image_data("digits", holdout=0.2)
train = digits.data                                          # (N, 1, 8, 8) training digits in [-1, 1]

def exact(x_t, t):
    \"\"\"E[x0 | x_t] when the data are exactly the training digits (EDM: x_t = x0 + t eps): a softmax over them.\"\"\"
    d2 = ((x_t[:, None] - train[None]) ** 2).flatten(2).sum(2)           # (B, N)
    w = torch.softmax(-d2 / (2 * t[:, None].double() ** 2), 1).float()  # (B, N)
    return torch.einsum("bn,nchw->bchw", w, train)                       # (B, 1, 8, 8)

image = images_to_tensor(digits.held_out[:8])                # (8, 1, 8, 8), never trained on
keep = half_mask(8, 8, "bottom")                             # 1 = known, 0 = to fill
filled = inpaint(exact, "edm", image, keep, method="repaint", steps=20, jump=5, resample=3, seed=0)
known = keep.bool().expand_as(image)
assert torch.equal(filled[known], image[known])              # the known pixels, bit for bit
```

With a trained run: `model = plume.train.load_denoiser(run)`, then `inpaint(model, model.process, image, keep,
method="replace" | "repaint")` for an unconditional run, or `method="conditioned"` for a run trained with
`plume train --inpainting`.

```bash
plume train --data digits --inpainting --out runs/inpaint        # mask-conditioned model (mixed random masks)
plume inpaint runs/inpaint --image digit.png --mask mask.png --out filled.png             # conditioned (auto)
plume inpaint runs/digits --image digit.png --mask mask.png --method repaint \\
    --jump {jump} --resample {resample} --steps {steps} --n 4 --out filled.png             # any unconditional run
```

`plume inpaint` writes the completion(s) (`filled.png`, or `filled-0.png` ... with `--n`) and `filled-side.png`
(the input with gray holes, the mask, each completion). The image must be exactly the run's size and the mask
the image's size, black and white only; each error names the file.
"""


def trained(run: Path, steps: int, threads: int, extra: list[Any]) -> str:
    """Train `run` to `steps` (fresh, resumed, or reused if it is already there); returns the training command."""
    fresh = ["train", "--data", "digits", "--holdout", HOLDOUT, *extra, "--out", run, "--steps", steps,
             "--threads", threads, "--quiet", *TRAINING, *NETWORK]
    config = run / "checkpoint" / "config.json"
    done = json.loads(config.read_text())["step"] if config.exists() else 0
    if done >= steps:
        print(f"  reusing {run} (step {done})", flush=True)
    elif done:
        plume("train", "--out", run, "--resume", "--steps", steps, "--threads", threads, "--quiet")
    else:
        plume(*fresh)
    return command_line(*fresh)


def mask_of(name: str) -> np.ndarray:
    """keep (8, 8) bool for a mask name (centre or a half)."""
    keep = centre_mask(8, 8) if name == "centre" else half_mask(8, 8, name)
    return keep[0, 0].numpy().astype(bool)


def opencv(flag: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def fill(pixels: np.ndarray, keep: np.ndarray) -> np.ndarray:
        holes = (~keep).astype(np.uint8) * 255  # (8, 8): OpenCV fills its nonzero pixels
        return np.stack([cv2.inpaint(p[..., 0], holes, CV_RADIUS, flag)[..., None] for p in pixels])
    return fill


def biharmonic(pixels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = [inpaint_biharmonic(p[..., 0].astype(np.float64) / 255.0, ~keep) for p in pixels]
    return np.clip(np.round(np.stack(out)[..., None] * 255.0), 0, 255).astype(np.uint8)


def diffusion(model: Any, method: str, args: argparse.Namespace) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def fill(pixels: np.ndarray, keep: np.ndarray) -> np.ndarray:
        x = images_to_tensor(pixels)  # (N, 1, 8, 8)
        out = inpaint(model, model.process, x, torch.from_numpy(keep).float(), method=method,
                      sampler=args.conditioned_sampler if method == "conditioned" else args.sampler,
                      steps=args.steps, jump=args.jump, resample=args.resample, seed=0)
        return tensor_to_images(out)
    return fill


def mean_fill(train: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    mean = np.round(train.astype(np.float64).mean(0)).astype(np.uint8)  # (8, 8, 1)
    return lambda pixels, keep: np.where(keep[None, :, :, None], pixels, mean[None])


def evaluate(methods: dict[str, Callable], pixels: np.ndarray, labels: np.ndarray, classifier: Any) -> dict[str, Any]:
    """Per method and mask family: accuracy, hole PSNR, known pixels changed, seconds; and pictures of a few digits."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    shown: dict[str, list[np.ndarray]] = {"original": [], "masked": []}
    for family, names in FAMILIES.items():
        for name in names:
            keep = mask_of(name)
            shown["original"].append(pixels[:3])
            shown["masked"].append(np.where(keep[None, :, :, None], pixels[:3], 128).astype(np.uint8))
        for method, fill in tqdm(methods.items(), desc=family):
            correct, psnrs, changed, seconds = [], [], 0, 0.0
            for name in names:
                keep = mask_of(name)
                started = time.monotonic()
                out = fill(pixels, keep)  # (N, 8, 8, 1) uint8
                seconds += time.monotonic() - started
                correct.append(classifier.predict(out) == labels)
                hole = ~keep
                psnrs.append(psnr(out[:, hole][:, :, None], pixels[:, hole][:, :, None]))  # (N,) over the hole
                changed += int((out[:, keep] != pixels[:, keep]).sum())
                shown.setdefault(method, []).append(out[:3])
            results.setdefault(method, {})[family] = {
                "accuracy": float(np.concatenate(correct).mean()), "psnr": float(np.concatenate(psnrs).mean()),
                "known_changed": changed, "seconds": seconds}
    return {"results": results, "pictures": {k: np.concatenate(v) for k, v in shown.items()}}


def picture(pictures: dict[str, np.ndarray], path: Path) -> Path:
    """Rows: original, masked, each method; columns: 3 digits with the centre mask, then 3 with each half."""
    rows = [add_title(image_grid(images, columns=len(images), scale=4), name) for name, images in pictures.items()]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image
    Image.fromarray(np.concatenate(rows)).save(path)
    return path


def markdown(result: dict[str, Any], commands: list[str], settings: dict[str, Any]) -> str:
    families = list(FAMILIES)
    head = "| method | " + " | ".join(f"accuracy, {f} | hole PSNR (dB), {f}" for f in families) + \
           " | known pixels changed | seconds (all masks) |"
    lines = [head, "|" + "---|" * (2 * len(families) + 3)]
    for method, by_family in result["results"].items():
        cells = " | ".join(f"{by_family[f]['accuracy']:.3f} | {by_family[f]['psnr']:.2f}" for f in families)
        changed = sum(by_family[f]["known_changed"] for f in families)
        seconds = sum(by_family[f]["seconds"] for f in families)
        lines.append(f"| {method} | {cells} | {changed} | {seconds:.0f} |")
    s = settings
    return "\n".join([
        "# Inpainting held-out digits", "",
        f"`{s['command']}` on {s['date']} ({s['machine']}, {s['threads']} CPU thread, the machine shared with other "
        f"jobs; torch {torch.__version__}, OpenCV {cv2.__version__}). Models: a U-Net of widths 32, 64 without "
        f"attention, EDM recipe, batch 64; unconditional {s['steps']['unconditional']} steps, mask-conditioned "
        f"(`--inpainting`, mixed masks) {s['steps']['inpainting']} steps, both on the 80% training split. Held-out "
        f"digits: {s['heldout']} (the 20% split, never trained on); each masked with the centre 4x4 square, and "
        f"with each of its four halves (4 x {s['heldout']} completions). Diffusion: sampler {s['sampler']} "
        f"(the mask-conditioned model: {s['conditioned_sampler']}), "
        f"{s['sampler_steps']} steps, seeds 0..N-1; RePaint jump {s['jump']}, {s['resample']} passes "
        f"({s['repaint_evaluations']} model evaluations against {sampler_spec(s['sampler']).evaluations(s['sampler_steps'])}). Classifier: "
        f"plume.images.evaluation.classifier trained on the training split only ({s['classifier_steps']} steps); it "
        f"labels {s['original_accuracy']:.3f} of the unmasked held-out digits correctly.", "",
        *lines, "",
        "Accuracy: the completed digit classified as the original's label. Hole PSNR: over the filled pixels only "
        "(mean over images). Known pixels changed: pixels outside the hole that differ from the input (uint8). "
        "OpenCV radius 3; \"training mean\" fills the hole with the mean training digit. ", "",
        "![inpainting](inpainting.png)", "",
        "Rows: original, masked (gray holes), then each method in the table's order; columns: three held-out digits "
        "with the centre mask, then the same three with the left, right, top and bottom halves missing.", "",
        *acceptance(result["results"]), "",
        "The two models were trained by:", "", "```bash", *commands, "```", "",
        USAGE.format(jump=s["jump"], resample=s["resample"], steps=s["sampler_steps"])])


def acceptance(results: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Per mask family: the best diffusion method's accuracy against the best non-diffusion method's."""
    lines = []
    for family in FAMILIES:
        best = {kind: max(((results[m][family]["accuracy"], m) for m in results if (m in DIFFUSION) == (kind == "d")))
                for kind in ("d", "b")}
        verdict = "beats" if best["d"][0] > best["b"][0] else "does NOT beat"
        lines.append(f"- {family}: the best diffusion method ({best['d'][1]}, {best['d'][0]:.3f}) {verdict} the best "
                     f"non-diffusion one ({best['b'][1]}, {best['b'][0]:.3f}) on classifier accuracy.")
        behind = [m for m in DIFFUSION if results[m][family]["accuracy"] <= best["b"][0]]
        if behind:
            lines.append(f"  Not above that baseline on {family}: {', '.join(behind)}.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=820, help="training steps of each model (batch 64)")
    parser.add_argument("--heldout", type=int, default=100, help="held-out digits to use (0: all)")
    parser.add_argument("--sampler", default="euler-maruyama")
    parser.add_argument("--conditioned-sampler", default="ddpm", help="the mask-conditioned model's sampler")
    parser.add_argument("--steps", type=int, default=30, help="sampler steps (one pass)")
    parser.add_argument("--jump", type=int, default=3, help="RePaint's jump length j")
    parser.add_argument("--resample", type=int, default=4, help="RePaint's passes r")
    parser.add_argument("--classifier-steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench-inpaint")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    commands = [trained(args.runs / "unconditional", args.train_steps, args.threads, []),
                trained(args.runs / "inpainting", args.train_steps, args.threads, ["--inpainting"])]
    data = load_image_data("digits", holdout=HOLDOUT)
    _, held = holdout_split(len(data.images.pixels), HOLDOUT, int(data.images.loader.get("seed", 0)))
    pixels, labels = data.held_out, data.images.labels[held]
    if args.heldout:
        pixels, labels = pixels[:args.heldout], labels[:args.heldout]
    classifier = train_classifier(data.train_pixels, data.train_labels, seed=0, steps=args.classifier_steps)
    plain = load_denoiser(args.runs / "unconditional")
    masked = load_denoiser(args.runs / "inpainting")
    methods = {DIFFUSION[0]: diffusion(plain, "replace", args), DIFFUSION[1]: diffusion(plain, "repaint", args),
               DIFFUSION[2]: diffusion(masked, "conditioned", args),
               "biharmonic (scikit-image)": biharmonic,
               "OpenCV TELEA": opencv(cv2.INPAINT_TELEA), "OpenCV NS": opencv(cv2.INPAINT_NS),
               "training mean": mean_fill(data.train_pixels)}
    with torch.no_grad():
        result = evaluate(methods, pixels, labels, classifier)
    for method, by_family in result["results"].items():
        print(f"{method:45s} " + "  ".join(f"{f}: acc {v['accuracy']:.3f} psnr {v['psnr']:.2f} changed "
                                          f"{v['known_changed']}" for f, v in by_family.items()), flush=True)
    if args.no_docs:
        return
    steps = {name: json.loads((args.runs / name / "checkpoint" / "config.json").read_text())["step"]
             for name in ("unconditional", "inpainting")}
    schedule = repaint_schedule(args.steps, args.jump, args.resample)
    settings = {"command": "python bench/inpaint.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, 2 cores",
                "threads": args.threads, "steps": steps, "heldout": len(pixels), "sampler": args.sampler,
                "conditioned_sampler": args.conditioned_sampler,
                "sampler_steps": args.steps, "jump": args.jump, "resample": args.resample,
                "repaint_evaluations": sampler_spec(args.sampler).evaluations(
                    sum(b > a for a, b in zip(schedule, schedule[1:]))),
                "classifier_steps": args.classifier_steps,
                "original_accuracy": float((classifier.predict(pixels) == labels).mean())}
    picture(result["pictures"], ROOT / "docs" / "inpainting.png")
    (ROOT / "docs" / "inpainting.md").write_text(markdown(result, commands, settings))
    print(f"wrote {ROOT / 'docs' / 'inpainting.md'} and {ROOT / 'docs' / 'inpainting.png'}")


if __name__ == "__main__":
    main()
