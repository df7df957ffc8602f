"""Latent diffusion on the shapes data: the autoencoder's reconstruction error, and the latent model's speed-up per
sample over a pixel-space model of the same size.

One run, everything on this machine:
1. data: `load_image_data("shapes", limit=LIMIT, holdout=HOLDOUT)`: 32 x 32 RGB scenes; the held-out images are
   never trained on (neither by the autoencoder nor by the diffusion model).
2. autoencoder: plume.images.latent.KLAutoencoder with its defaults (f = 4, z = 4: 32x32x3 -> 8x8x4; width 16), trained
   by plume.images.latent.train_autoencoder for --ae-steps (squared error + 1e-6 KL), its scale_factor from the training
   latents, exactly as `plume autoencoder train --data shapes` does.
3. reconstruction of the held-out images through the posterior mean: MSE on the [0, 1] pixel scale, PSNR =
   10 log10(1 / MSE) over the set, and the shapes checker's match rate (plume.images.evaluation.shapes_checker: the
   scene parsed back into shapes and scored against its true caption) of the reconstructions beside the real
   images' own rate (the checker's ceiling on this data).
4. latent diffusion: Plume's default image recipe (EDM on the "tiny" U-Net, plume.recipes) on the scaled latents
   (4, 8, 8) with sigma_data 1 (unit-variance latents), trained by plume.train.train for --ldm-steps, exactly as
   `plume train --data shapes --latent AE` does; SAMPLES samples decoded to images. Their quality without captions:
   the share of "well-formed" scenes, in which the checker finds one to three objects, each with a palette colour and
   a kind (real held-out images: the reference).
5. speed: per-sample CPU time (and wall time), on one thread, of drawing --n samples with --sampler at --steps
   steps from the pixel-space model (the same recipe and preset on (3, 32, 32): the U-Net sees the images
   themselves) and from the latent model (on (4, 8, 8), decoding included, and without the decode), in --rounds
   rounds whose order alternates so that drift in the machine's speed hits both alike; the median round. CPU time
   on one thread is the headline: on a machine shared with other jobs, wall time measures them too. The pixel
   model is untrained: its cost per sample does not depend on its weights. Speed-up = pixel time / latent time.

Writes docs/latent.md (the table, the commands), docs/latent.json, docs/latent-reconstructions.png (held-out images
above their reconstructions) and docs/latent-samples.png (decoded latent samples).

    python bench/latent.py                                     # the acceptance run (~4 minutes on 2 free cores)
    python bench/latent.py --ae-steps 20 --ldm-steps 20 --no-docs     # smoke run

Training budgets are steps, so the figures are a function of the options, whatever else runs on the machine;
--max-minutes caps each training stage all the same (the steps reached are reported).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plume.images import load_image_data, save_image_grid, tensor_to_images  # noqa: E402
from plume.images.sets import holdout_split  # noqa: E402
from plume.images.evaluation.shapes_checker import detect_objects, match_rate  # noqa: E402
from plume.images.latent import (AutoencoderConfig, KLAutoencoder, decode_latents, encode_images, reconstruct,  # noqa: E402
                                 reconstruction_error, reconstruction_picture, train_autoencoder)
from plume.images import IMAGES  # noqa: E402
from plume.recipes import build_recipe  # noqa: E402
from plume.sampling import sample  # noqa: E402
from plume.train import load_denoiser, train, train_config  # noqa: E402

LIMIT, HOLDOUT = 4096, 0.0625  # 256 held-out scenes
SAMPLES = 64  # decoded latent samples for the picture and the well-formed-scene rate


def well_formed(pixels: np.ndarray) -> float:
    """The share of images (N, H, W, 3) in which the shapes checker finds 1 to 3 objects, each with colour and kind."""
    found = [detect_objects(image) for image in pixels]
    return float(np.mean([1 <= len(f) <= 3 and all(o.color and o.kind for o in f) for f in found]))


def seconds_per_sample(draw: Callable[[], Any], n: int) -> dict[str, float]:
    """CPU time (this process) and wall time of one call of `draw` (n samples), each divided by n."""
    cpu, wall = time.process_time(), time.perf_counter()
    draw()
    return {"cpu": (time.process_time() - cpu) / n, "wall": (time.perf_counter() - wall) / n}


def time_models(pixel: torch.nn.Module, latent: torch.nn.Module, autoencoder: KLAutoencoder, latent_shape: tuple,
                args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """Median per-sample CPU and wall times of the pixel model and the latent model with and without decoding, on
    one thread (module docstring)."""
    seeds = list(range(args.n))
    options = dict(sampler=args.sampler, steps=args.steps, prediction="x0", seeds=seeds)

    def pixel_draw() -> torch.Tensor:
        return sample(pixel, pixel.process, (args.n, 3, 32, 32), **options)

    def latent_draw() -> torch.Tensor:
        return sample(latent, latent.process, (args.n, *latent_shape), **options)

    def latent_decoded() -> torch.Tensor:
        return decode_latents(autoencoder, latent_draw())

    runs: dict[str, list[dict[str, float]]] = {"pixel": [], "latent": [], "latent_no_decode": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: CPU time is then the work itself, whatever else runs on the machine
    with torch.no_grad():
        pixel_draw(), latent_decoded()  # warm-up
        for k in range(args.rounds):
            order = [("pixel", pixel_draw), ("latent", latent_decoded), ("latent_no_decode", latent_draw)]
            for name, draw in (order if k % 2 == 0 else order[::-1]):
                runs[name].append(seconds_per_sample(draw, args.n))
            log(f"round {k + 1}/{args.rounds}: " + ", ".join(
                f"{m} {v[-1]['cpu'] * 1e3:.2f} ms CPU ({v[-1]['wall'] * 1e3:.2f} wall)" for m, v in runs.items()))
    torch.set_num_threads(threads)
    median = {clock: {name: statistics.median(r[clock] for r in values) for name, values in runs.items()}
              for clock in ("cpu", "wall")}
    return {"seconds_per_sample": median, "rounds": runs,
            "speedup": {clock: m["pixel"] / m["latent"] for clock, m in median.items()},
            "speedup_no_decode": {clock: m["pixel"] / m["latent_no_decode"] for clock, m in median.items()}}


def budget(stage: dict[str, Any]) -> str:
    """"N steps", or "N of M steps (time cap reached)" when the --max-minutes cap stopped the stage early."""
    if stage["steps"] >= stage["requested_steps"]:
        return f"{stage['steps']} steps"
    return f"{stage['steps']} of {stage['requested_steps']} steps (the time cap stopped it)"


def markdown(r: dict[str, Any]) -> str:
    ae, rec, ldm, sp = r["autoencoder"], r["reconstruction"], r["latent_diffusion"], r["speed"]
    cpu, wall = ({k: 1e3 * v for k, v in sp["seconds_per_sample"][clock].items()} for clock in ("cpu", "wall"))
    table = [
        "| measure | value |", "|---|---|",
        f"| autoencoder | f = {ae['options']['factor']}, z = {ae['options']['latent_channels']}: 32x32x3 -> "
        f"{'x'.join(map(str, r['latent_shape'][1:]))}x{r['latent_shape'][0]}; {ae['params']:,} parameters "
        f"(decoder {ae['decoder_params']:,}) |",
        f"| autoencoder training | {budget(ae)} (batch {ae['batch_size']}) in {ae['seconds']:.0f} s |",
        f"| latent scale_factor (1 / std of the training posterior means) | {ae['scale_factor']:.4f} (posterior std "
        f"{ae['posterior_std']:.4f} beside the means' std {ae['latent_std']:.4f}) |",
        f"| held-out reconstruction MSE ([0, 1] scale, {rec['n']} images) | **{rec['mse']:.5f}** |",
        f"| held-out reconstruction PSNR | **{rec['psnr_db']:.2f} dB** |",
        f"| shapes checker match rate vs true captions: reconstructions / real images | {rec['match_recon']:.3f} / "
        f"{rec['match_real']:.3f} |",
        f"| latent diffusion training | {budget(ldm)} (batch {ldm['batch_size']}) in {ldm['seconds']:.0f} s, "
        f"last loss {ldm['loss']:.4f}; {ldm['params']:,} parameters |",
        f"| well-formed scenes: {SAMPLES} latent samples / real held-out images | {ldm['well_formed']:.3f} / "
        f"{rec['well_formed_real']:.3f} |",
        f"| pixel-space model, same recipe and preset on (3, 32, 32) | {r['pixel_params']:,} parameters |",
        f"| time per sample, {sp['sampler']} {sp['steps']} steps, batches of {sp['n']}, one thread: pixel space "
        f"| {cpu['pixel']:.2f} ms CPU ({wall['pixel']:.2f} ms wall) |",
        f"| time per sample: latent, decode included / without the decode | {cpu['latent']:.2f} / "
        f"{cpu['latent_no_decode']:.2f} ms CPU ({wall['latent']:.2f} / {wall['latent_no_decode']:.2f} ms wall) |",
        f"| **speed-up per sample, latent over pixel space (decode included)** | **{sp['speedup']['cpu']:.2f}x** in "
        f"CPU time ({sp['speedup']['wall']:.2f}x wall); without the decode {sp['speedup_no_decode']['cpu']:.2f}x |",
    ]
    return "\n".join([
        "# Latent diffusion on the shapes data", "",
        "An autoencoder (KL-regularized, convolutional; Rombach et al. 2022) trained by Plume, a diffusion model "
        "trained on its scaled latents, and samples decoded to images (plume.images.latent).", "",
        "## Commands", "",
        "```bash",
        "plume autoencoder train --data shapes --out runs/ae --minutes 5          # writes runs/ae/checkpoint, "
        "reconstructions.png",
        "plume train --data shapes --latent runs/ae --out runs/latent --minutes 5  # diffusion on (4, 8, 8) latents",
        "plume sample runs/latent --n 100                                          # samples decoded to 32x32 images",
        "plume eval runs/latent --features inception --weights pt_inception.pth   # FID etc. of decoded samples vs "
        "the run's images",
        "```", "",
        "`plume eval` on a latent run draws latents, decodes them and measures the images against the run's own "
        "images (labelled image sets such as digits need no weights file: their default feature network is a "
        "classifier trained on them). `--nll` is refused there: the probability-flow ODE of a latent run gives the "
        "likelihood of latents, not bits per pixel dimension.", "",
        "The autoencoder trains through the same loop as every diffusion model (`plume.train.train`, given the "
        "autoencoder's `Trainable`, `plume.images.latent.training.AutoencoderLoss`): warm-up, clipping, the step and "
        "time budgets, skipping a non-finite step, Ctrl-C and SIGTERM (it saves, then exits with code 130), the "
        "progress bar and `loss.csv` (the trainer's columns, with `mse` and `kl` beside the loss) are the trainer's. "
        "It keeps no EMA (as LDM's autoencoder): its weights are what it saves and uses. "
        "The autoencoder's folder holds `checkpoint/config.json` (options, `scale_factor`, the latent statistics, "
        "training options, the held-out reconstruction error, all measured when it was saved), `model.safetensors` "
        "and the optimizer's state: "
        "`plume autoencoder train --out runs/ae --resume --steps N` continues it exactly (after a time budget, "
        "Ctrl-C or SIGTERM, or for more steps). The latent run's "
        "`config.json` records under `data.autoencoder` the folder, the scale_factor and the SHA-256 of the "
        "autoencoder's weights: `plume sample` decodes with it and refuses an autoencoder changed since, and "
        "`plume train --resume` encodes the same images again. Details: the docstrings of plume/images/latent/.", "",
        "## Measured", "",
        f"`{r['command']}` on {r['date']} ({r['machine']}; torch {r['torch']}; machine load average "
        f"{r['load_average']} at the start, shared with other jobs). {r['limit']} shapes scenes, {rec['n']} held out. "
        "Everything is measured by the script; its docstring says how.", "",
        *table, "",
        "Held-out images (rows `real`) above their reconstructions (rows `recon`):", "",
        "![reconstructions](latent-reconstructions.png)", "",
        f"Latent samples (seeds 0..{SAMPLES - 1}, {sp['sampler']}, {sp['steps']} steps), decoded:", "",
        "![latent samples](latent-samples.png)", "",
        "Well-formed: the shapes checker finds one to three objects, each with a palette colour and a kind. "
        "Times: the median of the rounds, on one thread, the two models' turns alternating; CPU time is this "
        "process's, which other jobs on the machine do not inflate as they do wall time (see the load above). "
        "The speed-up comes from the U-Net's 16x fewer positions (8 x 8 instead of 32 x 32) at the same widths; "
        "the decoder runs once per sample, not once per step.", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ae-steps", type=int, default=400, help="autoencoder training steps")
    parser.add_argument("--ldm-steps", type=int, default=700, help="latent diffusion training steps")
    parser.add_argument("--max-minutes", type=float, default=5.0, help="time cap of each training stage")
    parser.add_argument("--n", type=int, default=32, help="samples per timed batch")
    parser.add_argument("--sampler", default="dpm++2m")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=True,
                        help="write docs/latent.{md,json} and the two pictures (default on)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    result: dict[str, Any] = {"command": "python bench/latent.py " + " ".join(sys.argv[1:]), "limit": LIMIT,
                              "date": datetime.date.today().isoformat(), "torch": torch.__version__,
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} threads",
                              "load_average": " ".join(f"{v:.1f}" for v in os.getloadavg())}
    data = load_image_data("shapes", limit=LIMIT, holdout=HOLDOUT, progress=False)
    _, held = holdout_split(len(data.images.pixels), HOLDOUT, 0)
    held_captions = [data.images.captions[i] for i in held]
    log(f"shapes: {len(data)} training scenes, {len(data.held_out)} held out; training the autoencoder for "
        f"{args.ae_steps} steps")
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        autoencoder = KLAutoencoder()
        budget = AutoencoderConfig(steps=args.ae_steps, minutes=args.max_minutes)
        trained = train_autoencoder(autoencoder, data, Path(tmp) / "ae", budget, progress=False)
        stats = json.loads((Path(tmp) / "ae" / "checkpoint" / "config.json").read_text())["latent"]
        result["autoencoder"] = {"options": autoencoder.options(), "steps": trained.step, "seconds": trained.seconds,
                                 "requested_steps": args.ae_steps,
                                 "batch_size": AutoencoderConfig.batch_size, "scale_factor": trained.scale_factor,
                                 "params": sum(p.numel() for p in autoencoder.parameters()),
                                 "decoder_params": sum(p.numel() for p in autoencoder.decoder.parameters()), **stats}
        recon = reconstruct(autoencoder, data.held_out)
        result["reconstruction"] = {**reconstruction_error(data.held_out, recon),
                                    "match_recon": match_rate(recon, held_captions)["match"],
                                    "match_real": match_rate(data.held_out, held_captions)["match"],
                                    "well_formed_real": well_formed(data.held_out)}
        log(f"autoencoder: {trained.step} steps; held-out {result['reconstruction']}")

        latents = encode_images(data, Path(tmp) / "ae")
        recipe = IMAGES.default_recipe(latents.shape)
        recipe["denoiser"]["sigma_data"] = 1.0  # as `plume train --latent`: the latents have unit variance
        denoiser = build_recipe(recipe, latents.shape, seed=0)
        log(f"latent diffusion on {tuple(latents.shape)} latents for {args.ldm_steps} steps")
        options = {**recipe["training"], "sample_count": 16, "steps": args.ldm_steps, "minutes": args.max_minutes}
        run = train(denoiser, latents, Path(tmp) / "ldm", train_config(options), progress=False)
        latent_model = load_denoiser(Path(tmp) / "ldm")
        with torch.no_grad():
            z = sample(latent_model, latent_model.process, (SAMPLES, *latents.shape), sampler=args.sampler,
                       steps=args.steps, seeds=list(range(SAMPLES)))
        samples = tensor_to_images(decode_latents(autoencoder, z))  # (SAMPLES, 32, 32, 3)
        result["latent_shape"] = list(latents.shape)
        result["latent_diffusion"] = {"steps": run.step, "requested_steps": args.ldm_steps, "seconds": run.seconds,
                                      "loss": run.last_loss,
                                      "batch_size": recipe["training"]["batch_size"],
                                      "params": sum(p.numel() for p in latent_model.parameters()),
                                      "well_formed": well_formed(samples)}
        log(f"latent diffusion: {result['latent_diffusion']}")

    pixel = build_recipe(IMAGES.default_recipe((3, 32, 32)), (3, 32, 32), seed=0).eval()
    result["pixel_params"] = sum(p.numel() for p in pixel.parameters())
    log(f"timing {args.rounds} rounds of {args.n} samples, {args.sampler} {args.steps} steps")
    result["speed"] = {"sampler": args.sampler, "steps": args.steps, "n": args.n,
                       **time_models(pixel, latent_model, autoencoder, tuple(latents.shape), args, log)}
    text = markdown(result)
    print(text)
    if args.docs:
        docs = ROOT / "docs"
        reconstruction_picture(data.held_out[:16], recon[:16], docs / "latent-reconstructions.png")
        save_image_grid(samples, docs / "latent-samples.png", columns=8, title="latent samples, decoded")
        (docs / "latent.json").write_text(json.dumps(result, indent=2) + "\n")
        (docs / "latent.md").write_text(text)
        log(f"wrote {docs / 'latent.md'}, latent.json, latent-reconstructions.png, latent-samples.png")


if __name__ == "__main__":
    main()
