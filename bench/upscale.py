"""Super-resolution of held-out images (`plume upscale`, plume.images.tasks.upscale) against bicubic and Lanczos upsampling,
on data that ships inside scikit-image: its sample photographs and the lfw_subset faces.

Acceptance: "Super-resolution beats bicubic upsampling in PSNR/SSIM on held-out images".

Steps (one run):
1. training set (gray, 24x24): random crops of the TRAIN_PHOTOS (scikit-image's sample images, gray, each resized
   with Lanczos so its shorter side is one of SCALES) and the 4 corner 24x24 crops of lfw_subset's faces 0-69 and
   its 100 non-face patches; the HELDOUT_PHOTOS (camera, chelsea = skimage's `cat`, motorcycle) and faces 70-99 are
   never cropped for training. Written as an .npz, trained with `plume train --data train.npz --super-resolution 12`
   (a 12 -> 24 residual stage; the inner network is the U-Net preset tiny without attention; conditioning
   augmentation s ~ U[0, --augment-max]: 0.1 by default here, a stage for exact user images; a cascade's stage
   keeps plume train's 0.5, which costs PSNR on exact inputs);
2. held-out test images, each area-downsampled 2x (as in training) to uint8, the low input all methods get:
   - faces: faces 70-99 (the top-left 24x24 of each 25x25 face): 12x12 inputs, the stage's own size (no tiles);
   - crops: CROPS random 24x24 crops of the held-out photos at EVAL_SCALE (shorter side): 12x12 inputs;
   - whole photos: the held-out photos at EVAL_SCALE, upscaled whole by overlapping 12x12 tiles;
3. methods: PIL bicubic, PIL Lanczos, Plume's default (the posterior mean in one denoiser call per tile at level
   POSTERIOR_LEVEL), the same call at other levels (a sweep, reported, not used to choose), Plume one draw
   (dpm++2m), Plume mean of --draws draws;
   PSNR (dB) and SSIM per image (plume.images.evaluation.fidelity, uint8), mean +- standard error.
Writes docs/super-resolution.md (tables, commands) and docs/super-resolution.png (low / bicubic / Plume / truth).

    python bench/upscale.py --threads 1                     # the run behind docs/super-resolution.md
    python bench/upscale.py --train-steps 5 --crops 4 --steps 2 --no-docs   # smoke run
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plume.images.super_resolution import downsample  # noqa: E402
from commands import plume  # noqa: E402  (bench/commands.py)
from plume.images.files import set_channels  # noqa: E402
from plume.images.grid import add_title, image_grid  # noqa: E402
from plume.images.sets import images_to_tensor, tensor_to_images  # noqa: E402
from plume.images.evaluation.fidelity import psnr, ssim  # noqa: E402
from plume.images.cascade import POSTERIOR_LEVEL  # noqa: E402
from plume.images.tasks.upscale import upscale  # noqa: E402
from plume.train import load_denoiser  # noqa: E402

LOW, HIGH = 12, 24
TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "moon", "coins", "brick",
                "grass", "gravel", "clock", "page", "text", "cell", "retina", "colorwheel")
HELDOUT_PHOTOS = ("camera", "chelsea", "motorcycle")  # skimage's cat() is chelsea: neither is in TRAIN_PHOTOS
SCALES = (96, 128, 192, 256)  # shorter sides of the resized photo copies training crops come from
EVAL_SCALE = 128  # shorter side of the held-out photos (the ground truth)
TRAIN_FACES = [*range(0, 70), *range(100, 200)]  # lfw_subset: 0-99 faces, 100-199 non-face patches
HELDOUT_FACES = list(range(70, 100))
NETWORK = ["--preset", "tiny", "--backbone-option", "attention_levels=[]", "--backbone-option", "mid_attention=false",
           "--backbone-option", "head_channels=16"]  # preset tiny without attention; --channels sets its widths


USAGE = """## Use it

A super-resolution stage is an ordinary run: `plume train --data IMAGES --super-resolution LOW_SIZE` learns to make
the images from their area-downsampled LOW_SIZE copies. `plume upscale` then super-resolves any image at least that
large by the stage's factor: an image of exactly LOW_SIZE in one piece, a larger one by overlapping tiles blended
with a smooth window. It writes the result and OUT-compare.png (bicubic and Plume side by side).

```bash
plume upscale runs/upscale/sr --image low.png --out high.png                        # posterior mean (default)
plume upscale runs/upscale/sr --image low.png --out sharp.png --estimate sample     # one draw: sharper, lower PSNR
plume upscale runs/upscale/sr --image low.png --out high.png --estimate sample --draws 8 --steps 40 --seed 3
```

Errors say what to change: a run that is not a super-resolution stage (and how to train one), a gray image for an
RGB stage or the reverse, an image smaller than the stage's low size, an unreadable file (named).

In Python (about 15 s on one CPU thread: a 12 -> 24 gray stage trained for 40 steps, enough to run the code, far
too little for quality; see the tables above for what longer training gives):

```python
import math

import skimage.data
import torch
from plume import Denoiser
from plume.backbones import backbone
from plume.images.super_resolution import residual_std
from plume.images import load_image_data
from plume.images.super_resolution_data import SuperResolutionData
from plume.images.tasks.upscale import upscale_pixels
from plume.train import TrainConfig, train

faces = SuperResolutionData(load_image_data("lfw", image_size=24), 12)  # 24x24 faces and their 12x12 copies
sigma = residual_std(faces.batch(torch.arange(200), torch.Generator()), 12)  # what bicubic misses: about 0.1
net = backbone("super_resolution", low_size=12, high_size=24, in_channels=1, inner="unet", inner_preset="tiny")
sr = Denoiser(net, "edm", "edm", "edm", "lognormal", sigma_data=sigma,  # residual by default
              lognormal_mean=-1.2 + math.log(sigma / 0.5))  # training levels scaled to the residual's spread
train(sr, faces, "runs/sr-demo", TrainConfig(steps=40, batch_size=16, sample_count=4))
low = skimage.data.camera()[::16, ::16, None]  # (32, 32, 1) uint8
high = upscale_pixels(sr, low, seed=0)  # (64, 64, 1) uint8, posterior mean by 4 x 4 overlapping 12x12 tiles
sharp = upscale_pixels(sr, low, seed=0, estimate="sample", steps=10)  # one draw of p(high | low)
```

"""


def photo(name: str) -> np.ndarray:
    """scikit-image's sample image `name` as gray uint8 (H, W, 1)."""
    import skimage.data

    pixels = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    pixels = pixels[..., :3] if pixels.ndim == 3 else pixels[..., None]  # (H, W, 3) or (H, W, 1)
    return set_channels(np.asarray(pixels, dtype=np.uint8), "gray")  # (H, W, 1)


def shrink(pixels: np.ndarray, short: int) -> np.ndarray:
    """uint8 (H, W, 1) resized with Lanczos so its shorter side is `short` (unchanged if already that small)."""
    h, w, _ = pixels.shape
    if min(h, w) <= short:
        return pixels
    size = (round(w * short / min(h, w)), round(h * short / min(h, w)))  # (W', H')
    out = Image.fromarray(pixels[..., 0]).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(out)[..., None]  # (H', W', 1)


def faces(which: list[int]) -> np.ndarray:
    """lfw_subset images `which` as uint8 (n, 25, 25, 1)."""
    import skimage.data

    return np.rint(np.clip(skimage.data.lfw_subset()[which], 0, 1) * 255).astype(np.uint8)[..., None]


def random_crops(images: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """n random HIGH x HIGH crops (n, HIGH, HIGH, 1), each from a uniformly chosen image."""
    out = np.empty((n, HIGH, HIGH, 1), dtype=np.uint8)
    for i, k in enumerate(rng.integers(0, len(images), n)):
        h, w, _ = images[k].shape
        top, left = int(rng.integers(0, h - HIGH + 1)), int(rng.integers(0, w - HIGH + 1))
        out[i] = images[k][top:top + HIGH, left:left + HIGH]
    return out


def training_set(n_crops: int, path: Path) -> Path:
    """Training crops (photo crops at every scale, corner crops of the training faces) as an .npz (arr_0)."""
    copies = [shrink(photo(name), s) for name in TRAIN_PHOTOS for s in SCALES]
    crops = random_crops(copies, n_crops, np.random.default_rng(0))  # (n, 24, 24, 1)
    lfw = faces(TRAIN_FACES)  # (170, 25, 25, 1)
    corners = [lfw[:, t:t + HIGH, l:l + HIGH] for t in (0, 1) for l in (0, 1)]  # 4 x (170, 24, 24, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, arr_0=np.concatenate([crops, *corners]))
    return path


def area_low(truth: np.ndarray) -> np.ndarray:
    """uint8 (n, H, W, C) area-downsampled 2x (as training's conditioning), rounded to uint8 (n, H/2, W/2, C)."""
    x = images_to_tensor(truth)  # (n, C, H, W)
    return tensor_to_images(downsample(x, (x.shape[2] // 2, x.shape[3] // 2)))


def pil_resize(low: np.ndarray, method: Image.Resampling) -> np.ndarray:
    """PIL upsampling 2x of uint8 (n, h, w, 1) -> (n, 2h, 2w, 1)."""
    return np.stack([np.asarray(Image.fromarray(p[..., 0]).resize((2 * p.shape[1], 2 * p.shape[0]), method))
                     for p in low])[..., None]


def heldout_sets(n_crops: int) -> dict[str, list[np.ndarray]]:
    """Ground truth per test set, as lists of uint8 arrays (n, H, W, 1) of one size each."""
    whole = [shrink(photo(name), EVAL_SCALE) for name in HELDOUT_PHOTOS]
    whole = [p[:p.shape[0] // 2 * 2, :p.shape[1] // 2 * 2] for p in whole]  # even sides
    crops = random_crops(whole, n_crops, np.random.default_rng(1))
    return {"faces": [faces(HELDOUT_FACES)[:, :HIGH, :HIGH]], "crops": [crops], "whole photos": [p[None] for p in whole]}


DEFAULT = "Plume default: posterior mean"
LEVEL_SWEEP = (0.5, 1.0, 4.0)  # other levels of the posterior-mean call: reported, not used to choose


def methods(sr: Any, draws: int, steps: int) -> dict[str, Any]:
    """name -> function of uint8 low images (n, h, w, 1) giving (n, 2h, 2w, 1)."""
    def plume_with(**options: Any):
        return lambda low: tensor_to_images(upscale(sr, images_to_tensor(low), seed=0, steps=steps, progress=True,
                                                    **options))
    return {"bicubic (PIL)": lambda low: pil_resize(low, Image.Resampling.BICUBIC),
            "Lanczos (PIL)": lambda low: pil_resize(low, Image.Resampling.LANCZOS),
            f"{DEFAULT} (level {POSTERIOR_LEVEL:g})": plume_with(),
            **{f"Plume: posterior mean at level {v:g}": plume_with(level=v) for v in LEVEL_SWEEP},
            "Plume, one draw": plume_with(estimate="sample"),
            f"Plume, mean of {draws} draws": plume_with(estimate="sample", draws=draws)}


def summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "se": float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1
            else 0.0}


def evaluate(sr: Any, n_crops: int, draws: int, steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per test set and method: PSNR and SSIM (mean, SE); and the pictures (first images of each set)."""
    results: dict[str, Any] = {}
    pictures: dict[str, Any] = {}
    for set_name, truths in heldout_sets(n_crops).items():
        results[set_name], pictures[set_name] = {"n": sum(len(t) for t in truths)}, {"truth": truths, "low": []}
        lows = [area_low(t) for t in truths]
        pictures[set_name]["low"] = lows
        for name, method in methods(sr, draws, steps).items():
            started = time.monotonic()
            outs = [method(low) for low in lows]
            p = np.concatenate([psnr(o, t) for o, t in zip(outs, truths)])
            s = np.concatenate([ssim(o, t) for o, t in zip(outs, truths)])
            results[set_name][name] = {"psnr": summary(p), "ssim": summary(s)}
            pictures[set_name][name] = outs
            print(f"  {set_name}, {name}: PSNR {p.mean():.2f} dB, SSIM {s.mean():.4f} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
    return results, pictures


def nearest(low: np.ndarray) -> np.ndarray:
    return low.repeat(2, axis=-3).repeat(2, axis=-2)


def picture(pictures: dict[str, Any], draws: int, path: Path, columns: int = 6) -> Path:
    """Rows low / bicubic / Plume (default, one draw) / truth for faces and crops; then one whole photo."""
    names = ["low", "bicubic (PIL)", f"{DEFAULT} (level {POSTERIOR_LEVEL:g})", "Plume, one draw", "truth"]
    bands = []
    for name in names:
        row = np.concatenate([pictures[s][name][0][:columns] for s in ("faces", "crops")])  # (2 columns, 24, 24, 1)
        title = "held-out 12x12 input (pixel-replicated)" if name == "low" else name
        bands.append(add_title(image_grid(nearest(row) if name == "low" else row, columns=2 * columns, scale=3), title))
    whole = [nearest(pictures["whole photos"]["low"][1][0])] + \
        [pictures["whole photos"][n][1][0] for n in names[1:] if n != "Plume, one draw"]  # chelsea, (H, W, 1) each
    bands.append(add_title(image_grid(np.stack(whole), columns=len(whole), scale=1),
                           "whole held-out photo: input, bicubic, Plume (posterior mean, by tiles), truth"))
    width = max(b.shape[1] for b in bands)
    bands = [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in bands]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(bands)).save(path)
    return path


def markdown(results: dict[str, Any], commands: list[str], settings: dict[str, Any], draws: int) -> str:
    lines = [
        "# Super-resolution of held-out images (12 -> 24, gray)", "",
        f"Written by `{settings['command']}` on {settings['date']} ({settings['seconds'] / 60:.1f} minutes"
        f"{' of evaluation of the run the first command below trained' if settings['reuse'] else ''}, "
        f"{settings['threads']} CPU thread, the machine shared with other jobs). A residual super-resolution stage "
        f"(`plume train --super-resolution 12`: it models what bicubic upsampling misses; U-Net preset tiny without "
        f"attention, widths {settings['channels']}, conditioning augmentation s ~ U[0, {settings['augment_max']:g}], "
        f"{settings['train_steps']} steps "
        f"of batch {settings['batch_size']}) trained on {settings['train_examples']} gray 24x24 crops of scikit-image's "
        f"sample photographs {', '.join(TRAIN_PHOTOS)} (each resized so its shorter side is one of "
        f"{', '.join(map(str, SCALES))} pixels) and of lfw_subset's faces 0-69 and non-face patches. Held out, never "
        f"trained on: the photographs {', '.join(HELDOUT_PHOTOS)} (chelsea is also skimage's `cat`) and faces 70-99.", "",
        "Test: each held-out image area-downsampled 2x to uint8 (as training's conditioning); every method gets that "
        "input. Plume: `plume.images.tasks.upscale` (what `plume upscale` runs), conditioning-augmentation level 0; its "
        f"default is the posterior mean, one denoiser call per tile at level {POSTERIOR_LEVEL:g} (`--estimate mean`); "
        f"the draws use sampler dpm++2m, {settings['steps']} steps (`--estimate sample`); the rows at other levels "
        "are a sweep, reported as measured, not used to choose. Whole photos go by overlapping 12x12 tiles (overlap 3 low pixels, sin^2 "
        "blending). PSNR in dB and SSIM (plume.images.evaluation.fidelity, equal to scikit-image's) on uint8 images, mean over "
        "images +- standard error.", ""]
    for set_name, rows in results.items():
        what = {"faces": "lfw_subset faces 70-99 (top-left 24x24), 12x12 inputs: one tile each",
                "crops": f"random 24x24 crops of the held-out photos at shorter side {EVAL_SCALE}, 12x12 inputs",
                "whole photos": f"the held-out photos whole, shorter side {EVAL_SCALE}, upscaled by tiles"}[set_name]
        lines += [f"## {set_name.capitalize()}: {rows['n']} images", "", what, "", "| method | PSNR (dB) | SSIM |",
                  "|---|---|---|"]
        lines += [f"| {name} | {r['psnr']['mean']:.2f} +- {r['psnr']['se']:.2f} | {r['ssim']['mean']:.4f} +- "
                  f"{r['ssim']['se']:.4f} |" for name, r in rows.items() if name != "n"]
        lines.append("")
    verdicts = []
    for set_name, rows in results.items():
        for name in (f"{DEFAULT} (level {POSTERIOR_LEVEL:g})", "Plume, one draw", f"Plume, mean of {draws} draws"):
            beats = all(rows[name][m]["mean"] > rows["bicubic (PIL)"][m]["mean"] for m in ("psnr", "ssim"))
            verdicts.append(f"- {set_name}, {name}: {'beats' if beats else 'does NOT beat'} bicubic on both PSNR and SSIM")
    holds = all("NOT" not in v for v in verdicts if DEFAULT in v)
    lines += ["## Acceptance: beats bicubic upsampling in PSNR and SSIM on held-out images", "",
              "**On this run the acceptance holds** for the default (the posterior mean) on every held-out set:"
              if holds else "**On this run the acceptance does NOT hold** for the default:",
              "", *verdicts, "",
              "PSNR and SSIM reward the posterior mean E[high | low], the best estimate under squared error; a draw "
              "is a sample of p(high | low), sharp, with invented detail that both metrics count as error, and the "
              "mean of K draws tends to the posterior mean as K grows (at K times the sampler's cost). The default, "
              "`--estimate mean`, gets the posterior mean in one call: the denoiser is E[x0 | x_t, low], and at a "
              f"level (here {POSTERIOR_LEVEL:g}) far above the residual's spread x_t tells it next to nothing, so it "
              "returns E[high | low]. `--estimate sample` gives a sharper picture.", "",
              "![low, bicubic, Plume, truth](super-resolution.png)", "", USAGE, "## Commands", "", "```bash", *commands,
              settings["command"] + ("   # the evaluation and this page, of the run trained above (--reuse)"
                                     if settings["reuse"] else "   # the data, the training above, the evaluation "
                                     "and this page"), "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "upscale", help="data and run (replaced)")
    parser.add_argument("--train-steps", type=int, default=1000, help="training steps of the stage")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--channels", default="[16,32,32]", help="U-Net widths per level (tiny's are [32,64,64])")
    parser.add_argument("--augment-max", type=float, default=0.1,
                        help="conditioning-augmentation levels s ~ U[0, this] in training (plume train's default: 0.5)")
    parser.add_argument("--train-crops", type=int, default=12000, help="random photo crops in the training set")
    parser.add_argument("--crops", type=int, default=32, help="held-out crops")
    parser.add_argument("--draws", type=int, default=4, help="draws averaged for the posterior-mean row")
    parser.add_argument("--steps", type=int, default=20, help="sampler steps")
    parser.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared 2-core machine")
    parser.add_argument("--reuse", action="store_true", help="evaluate the run already in --out (no training)")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--docs-dir", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.monotonic()
    run = args.out / "sr"
    command = ["plume", "train", "--data", args.out / "train.npz", "--super-resolution", LOW, "--out", run,
               "--steps", args.train_steps, "--batch-size", args.batch_size, "--lr", args.lr, "--flip",
               "--warmup-steps", 100, "--threads", args.threads, "--quiet", "--sample-count", 16, *NETWORK,
               "--backbone-option", f"channels={args.channels}"]
    command += ["--augment-max", args.augment_max]
    if not args.reuse:
        shutil.rmtree(args.out, ignore_errors=True)
        training_set(args.train_crops, args.out / "train.npz")
        command = plume(*command[1:]).split()
    else:  # a run trained earlier (e.g. stopped early by SIGTERM): show the steps it has; the lr is constant
        command[command.index("--steps") + 1] = json.loads((run / "checkpoint" / "config.json").read_text())["step"]
        command = ["plume", *[shlex.quote(str(c)) for c in command[1:]]]
    sr = load_denoiser(run)
    results, pictures = evaluate(sr, args.crops, args.draws, args.steps)
    config = json.loads((run / "checkpoint" / "config.json").read_text())
    argv = " ".join(shlex.quote(a) for a in sys.argv[1:])
    settings = {"date": datetime.date.today().isoformat(), "seconds": time.monotonic() - began,
                "threads": args.threads, "train_steps": config["step"], "channels": args.channels,
                "batch_size": args.batch_size, "reuse": args.reuse, "augment_max": config["data"]["augment_max"],
                "steps": args.steps, "train_examples": len(np.load(args.out / "train.npz")["arr_0"]),
                "command": f"python bench/upscale.py {argv}".strip()}
    print(json.dumps({"results": results, **settings}, indent=2))
    if args.docs:
        picture(pictures, args.draws, args.docs_dir / "super-resolution.png")
        commands = [" ".join(command).replace(str(ROOT) + "/", "")]
        (args.docs_dir / "super-resolution.md").write_text(markdown(results, commands, settings, args.draws))
        print(f"wrote {args.docs_dir / 'super-resolution.md'} and {args.docs_dir / 'super-resolution.png'}")


if __name__ == "__main__":
    main()
