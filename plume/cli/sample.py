"""`plume sample RUN`: draw samples from a run's EMA weights; write them (.npz), a picture, and an evaluation.

Images go to `arr_0` as uint8 (n, H, W, C) (the guided-diffusion evaluation convention) beside a PNG grid;
points go to `arr_0` as float32 (n, D) beside a scatter plot. Sample k is a function of (run, sampler settings,
seed k), whatever the batch it is drawn in (plume.sample's per-seed generators), up to the last bits of float
arithmetic, which a batch's size can change; distributed sampling therefore keeps one process's batches.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import TOY_SETS, toy_data
from ..data.image_grid import save_image_grid, save_trajectory_strip
from ..data.images import tensor_to_images
from ..data.sources import data_from_info
from ..data.toy import MIXTURES as MIXTURE_SETS, toy_mixture
from ..denoiser import Denoiser
from ..guidance import classifier_free_guidance
from ..metrics import vector_report
from ..samplers import GRIDS, SAMPLERS
from ..sampling import sample as draw_samples
from ..train import load_denoiser, read_config, scatter_plot
from ..train.distributed import SINGLE, Distributed, finish, from_environment, gather_rows, rank_device
from .options import parse_seeds
from .train import _device, set_threads

TRAJECTORY_ROWS, TRAJECTORY_COLUMNS = 8, 12


@click.command()
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
              help="Output .npz (default RUN/samples-SAMPLER-STEPS.npz); a .png and an evaluation .json beside it.")
@click.option("--trajectory", is_flag=True, help="Also write OUT-trajectory.png: x_t and x0_hat at each step, first samples.")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="Compare with the training data (toy sets; labelled image sets with a trained digit classifier).")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: 1 for points, all cores for images).")
@click.option("--labels", "label_text", help="Class labels for a conditional run, e.g. 3 or 0-9: sample k gets the "
              "(k mod count)-th. Without it a conditional run draws unconditional samples.")
@click.option("--guidance", type=float, default=1.0, show_default=True,
              help="Classifier-free guidance scale with --labels (1: no guidance; 0: unconditional).")
@click.option("--compile", "compile_model", is_flag=True,
              help="torch.compile the backbone (on a GPU with CUDA graphs): faster for many samples after compiling.")
def sample(run: Path, n: int, seeds: Optional[str], seed: int, sampler: str, steps: int, grid: Optional[str],
           weights: str, batch_size: int, out: Optional[Path], trajectory: bool, evaluate: bool, device: str,
           threads: Optional[int], label_text: Optional[str], guidance: float, compile_model: bool) -> None:
    """Draw samples from the run RUN (under torchrun, spread over the processes; rank 0 writes)."""
    config = read_config(run)
    info = config.get("data", {})
    shape = tuple(info.get("shape", [2]))
    set_threads(threads, len(shape) == 1)
    place = from_environment(_device(device))  # torchrun: every rank draws its share of the batches
    denoiser = load_denoiser(run, ema=weights == "ema", device=rank_device(_device(device), place))
    if compile_model:
        cuda = next(denoiser.parameters()).is_cuda
        denoiser.backbone.compile(mode="reduce-overhead" if cuda else None)  # reduce-overhead: CUDA graphs
    seed_list = parse_seeds(seeds) if seeds else [seed + k for k in range(n)]
    options = dict(sampler=sampler, steps=steps, grid=grid)
    labels = _class_labels(label_text, info, run) if label_text else None
    x = draw(denoiser, shape, seed_list, batch_size, options, place, labels, guidance)  # (n, *shape) on rank 0
    finish(place)
    if not place.is_main:
        return
    out = out or run / f"samples-{sampler}-{steps}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{sampler}, {steps} steps"
    if len(shape) == 3:
        pixels = tensor_to_images(x)  # (n, H, W, C) uint8
        np.savez(out, arr_0=pixels)
        png = save_image_grid(pixels[:100], out.with_suffix(".png"), title=title)
    else:
        pixels = None
        np.savez(out, arr_0=x.numpy().astype(np.float32))
        reference = toy_data(info["name"], min(int(info.get("n", 5000)), 5000), info.get("seed", 0)) \
            if info.get("name") in TOY_SETS else None
        png = scatter_plot(out.with_suffix(".png"), x, reference, title=f"samples ({title})")
    click.echo(f"{len(x)} samples -> {out}; picture -> {png}")
    if trajectory:
        strip = record_trajectory(denoiser, shape, seed_list[:TRAJECTORY_ROWS], options,
                                  out.with_name(out.stem + "-trajectory.png"))
        click.echo(f"trajectory -> {strip}")
    if evaluate and info.get("name") in TOY_SETS:
        evaluate_toy(x, info, out.with_suffix(".json"))
    elif evaluate and pixels is not None and info.get("num_classes"):
        evaluate_labelled_images(pixels, info, run, out.with_suffix(".json"))


def draw(denoiser: Denoiser, shape: tuple[int, ...], seeds: list[int], batch_size: int, options: dict[str, Any],
         place: Distributed = SINGLE, labels: Optional[list[int]] = None, guidance: float = 1.0) -> Optional[torch.Tensor]:
    """Samples for `seeds` in batches (each sample depends on its seed alone); on the CPU, (n, *shape).

    With `labels`, sample k is drawn for class labels[k % len(labels)], guided with classifier-free guidance
    of scale `guidance` (1: the conditional model alone; plume.guidance).

    Under torchrun, batch k goes to rank k mod world_size, drawn exactly as one process draws it, and rank 0
    gathers every batch in order (the other ranks get None): the same samples, bit for bit, as one process.
    """
    device = next(denoiser.parameters()).device
    starts = list(range(0, len(seeds), batch_size))
    parts = []
    with torch.no_grad():
        for first in tqdm(range(0, len(starts), place.world_size), desc="sample", unit="round" if place.active else "batch",
                          disable=len(seeds) <= batch_size or not place.is_main):
            mine = first + place.rank
            chunk = seeds[starts[mine]:starts[mine] + batch_size] if mine < len(starts) else []
            model: Any = denoiser
            if labels and chunk:
                cond = torch.tensor([labels[k % len(labels)] for k in range(starts[mine], starts[mine] + len(chunk))],
                                    device=device)  # (b,)
                model = classifier_free_guidance(denoiser, cond, guidance) if guidance != 1.0 else \
                    (lambda x, t, c=cond: denoiser(x, t, c))
            x = draw_samples(model, denoiser.process, (len(chunk), *shape), prediction="x0", seeds=chunk,
                             device=device, **options).cpu() if chunk else torch.zeros((0, *shape))  # (b, *shape)
            if not place.active:
                parts.append(x)
                continue
            gathered = gather_rows(place, x, batch_size)  # (world, batch_size, *shape) on rank 0
            for rank in range(place.world_size if gathered is not None else 0):
                if first + rank < len(starts):
                    parts.append(gathered[rank, :len(seeds[starts[first + rank]:starts[first + rank] + batch_size])])
    return torch.cat(parts) if place.is_main else None


def _class_labels(text: str, info: dict[str, Any], run: Path) -> list[int]:
    """--labels parsed like seeds, checked against the run's classes."""
    classes = info.get("num_classes")
    if not classes:
        raise click.BadParameter(f"the run {run} was not trained with class labels (train with --conditional)",
                                 param_hint="--labels")
    labels = parse_seeds(text)
    bad = [c for c in labels if c >= classes]
    if bad:
        names = info.get("class_names")
        raise click.BadParameter(f"label {bad[0]} is not a class of {run}: it has {classes} classes (0..{classes - 1}"
                                 + (f": {', '.join(map(str, names))}" if names else "") + ")", param_hint="--labels")
    return labels


def record_trajectory(denoiser: Denoiser, shape: tuple[int, ...], seeds: list[int], options: dict[str, Any],
                      path: Path) -> Path:
    """Draw `seeds` again, recording x_t (scaled to unit variance) and x0_hat at every model evaluation; save a strip."""
    process, frames = denoiser.process, []

    def recorded(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0 = denoiser(x_t, t)  # (B, *shape)
        t = torch.as_tensor(t).reshape(-1)[:1]
        scale = torch.rsqrt(process.alpha(t) ** 2 + process.sigma(t) ** 2).item()
        frames.append((float(process.sigma(t) / process.alpha(t)), x_t.cpu() * scale, x0.cpu()))
        return x0

    device = next(denoiser.parameters()).device
    with torch.no_grad():
        draw_samples(recorded, process, (len(seeds), *shape), prediction="x0", seeds=seeds, device=device, **options)
    keep = np.unique(np.linspace(0, len(frames) - 1, min(TRAJECTORY_COLUMNS, len(frames))).round().astype(int))
    if len(shape) != 3:
        raise click.ClickException("--trajectory draws images; this run's data are points")
    return save_trajectory_strip([tensor_to_images(frames[i][1]) for i in keep],
                                 [tensor_to_images(frames[i][2]) for i in keep], path,
                                 labels=[f"s={frames[i][0]:.3g}" for i in keep])


def evaluate_toy(x: torch.Tensor, info: dict, path: Path) -> None:
    """Compare samples with two fresh draws of the toy set (seeds the training data did not use); write JSON."""
    name, seed = info["name"], int(info.get("seed", 0))
    held_out, floor_set = toy_data(name, len(x), seed + 1_000_001), toy_data(name, len(x), seed + 2_000_003)
    mixture = toy_mixture(name) if name in MIXTURE_SETS else None
    report = vector_report(x, held_out, floor_set, mixture)
    path.write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"  {k}: {report[k]:.4f} (two exact sets: {report[k + '_floor']:.4f})" for k in report if not k.endswith("_floor")]
    click.echo("evaluation against held-out data -> " + str(path) + "\n" + "\n".join(lines))


def evaluate_labelled_images(pixels: np.ndarray, info: dict, run: Path, path: Path) -> None:
    """Classifier-feature FID, class coverage and a memorization check against the training images; write JSON."""
    from ..evaluation import evaluate_images

    data = data_from_info(info, str(run / "checkpoint" / "config.json"))
    report = evaluate_images(pixels, data.train_pixels, data.train_labels)  # the images training saw, unflipped
    path.write_text(json.dumps(report, indent=2, default=float) + "\n")
    memo = report["memorization"]
    click.echo(f"evaluation against the {report['n_reference']} training images ({report['feature_network']}) -> {path}\n"
               f"  FID {report['fid']:.3f} (two halves of the training set: {report['fid_floor']:.3f})\n"
               f"  classes {report['class_counts']}, confident {report['confident_fraction']:.3f}\n"
               f"  nearest-training-image distance / training NN distance: {memo['ratio']:.3f}")
