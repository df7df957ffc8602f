"""`plume sample RUN`: draw samples from a run's EMA weights; write them (.npz), a picture, and an evaluation.

Images go to `arr_0` as uint8 (n, H, W, C) (the guided-diffusion evaluation convention) beside a PNG grid;
points go to `arr_0` as float32 (n, D) beside a scatter plot. Sample k is a function of (run, sampler settings,
seed k), whatever the batch it is drawn in (plume.sample's per-seed generators), up to the last bits of float
arithmetic, which a batch's size can change; distributed sampling therefore keeps one process's batches.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import click
import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import TOY_SETS, toy_data
from ..data.image_grid import save_image_grid, save_trajectory_strip
from ..data.images import SHAPES_HELDOUT, tensor_to_images
from ..data.sources import data_from_info
from ..data.toy import MIXTURES as MIXTURE_SETS, toy_mixture
from ..denoiser import Denoiser
from ..errors import PlumeError
from ..evaluation.shapes_checker import match_rate
from ..guidance import autoguidance, classifier_free_guidance
from ..latent.data import decode_latents, latent_autoencoder
from ..metrics import vector_report
from ..samplers import GRIDS, SAMPLERS
from ..sampling import sample as draw_samples
from ..train import load_denoiser, read_config, scatter_plot
from ..train.distributed import SINGLE, Distributed, finish, from_environment, gather_rows, rank_device
from ..backbones.super_resolution import SAMPLE_AUGMENT
from .cascade import refuse_stage_alone, sample_then
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
              help="Output .npz (default RUN/samples-SAMPLER-STEPS.npz); a .png and an evaluation .json beside it "
              "(--out x.png names the same three files).")
@click.option("--trajectory", is_flag=True, help="Also write OUT-trajectory.png: x_t and x0_hat at each step, first samples.")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="Compare with the training data (toy sets; labelled image sets with a trained digit classifier).")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: 1 for points, all cores for images).")
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
              "to chain after RUN: its images conditioned on RUN's samples, written as one cascade (plume.cascade).")
@click.option("--augment", type=click.FloatRange(min=0), default=SAMPLE_AUGMENT, show_default=True,
              help="With --then: the conditioning-augmentation level of the super-resolution stage.")
def sample(run: Path, n: int, seeds: Optional[str], seed: int, sampler: str, steps: int, grid: Optional[str],
           weights: str, batch_size: int, out: Optional[Path], trajectory: bool, evaluate: bool, device: str,
           threads: Optional[int], label_text: Optional[str], prompts: tuple[str, ...],
           negative_prompt: Optional[str], guidance: float, weak_run: Optional[Path],
           compile_model: bool, then: Optional[Path], augment: float) -> None:
    """Draw samples from the run RUN (under torchrun, spread over the processes; rank 0 writes)."""
    config = read_config(run)
    info = config.get("data", {})
    shape = tuple(info.get("shape", [2]))
    set_threads(threads, len(shape) == 1)
    if then is not None:
        if label_text or trajectory:
            raise click.UsageError("--then draws an unconditional cascade; drop --labels and --trajectory")
        npz, png = sample_then(run, then, parse_seeds(seeds) if seeds else [seed + k for k in range(n)],
                               dict(sampler=sampler, steps=steps, grid=grid), augment, batch_size, out, weights,
                               _device(device))
        click.echo(f"cascade {run} -> {then}: samples -> {npz}; picture -> {png}")
        return
    refuse_stage_alone(config, run)
    place = from_environment(_device(device))  # torchrun: every rank draws its share of the batches
    denoiser = load_denoiser(run, ema=weights == "ema", device=rank_device(_device(device), place))
    if compile_model:
        cuda = next(denoiser.parameters()).is_cuda
        denoiser.backbone.compile(mode="reduce-overhead" if cuda else None)  # reduce-overhead: CUDA graphs
    seed_list = parse_seeds(seeds) if seeds else [seed + k for k in range(n)]
    options = dict(sampler=sampler, steps=steps, grid=grid)
    if label_text and prompts:
        raise click.UsageError("give --labels (a class-conditional run) or --prompt (a text-conditioned run), not both")
    labels = _class_labels(label_text, info, run) if label_text else None
    negative = None
    if prompts or negative_prompt:
        labels, negative = prompt_tokens(denoiser, prompts, negative_prompt, run)  # (P, T), (T,) or None
    weaker = weaker_model(weak_run, run, config, ema=weights == "ema", device=rank_device(_device(device), place)) \
        if weak_run else None
    autoencoder = latent_autoencoder(info, run, rank_device(_device(device), place))  # a latent run's decoder, or None
    x = draw(denoiser, shape, seed_list, batch_size, options, place, labels, guidance, weaker,
             negative)  # (n, *shape) on rank 0
    finish(place)
    if not place.is_main:
        return
    if autoencoder is not None:
        x = decode_latents(autoencoder, x, batch_size)  # latents (n, z, h, w) -> images (n, C, H, W)
    out = out or run / f"samples-{sampler}-{steps}.npz"
    out = out.with_suffix(".npz")  # --out x.png (or x) names the files: x.npz, x.png, x.json
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{sampler}, {steps} steps" + (f", guidance {guidance:g}" if guidance != 1.0 else "") + \
        (f": {prompts[0]!r}" if len(prompts) == 1 else "")
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
                                  out.with_name(out.stem + "-trajectory.png"),
                                  (lambda z: decode_latents(autoencoder, z)) if autoencoder is not None else None)
        click.echo(f"trajectory -> {strip}")
    if evaluate and prompts and pixels is not None and info.get("name") in SHAPES_HELDOUT:
        asked = [prompts[k % len(prompts)] for k in range(len(pixels))]
        click.echo(f"prompt match rate (plume.evaluation.shapes_checker): {match_rate(pixels, asked)['match']:.3f}")
    if evaluate and info.get("name") in TOY_SETS:
        evaluate_toy(x, info, out.with_suffix(".json"))
    elif evaluate and pixels is not None and info.get("num_classes"):
        evaluate_labelled_images(pixels, info.get("images", info), run, out.with_suffix(".json"))  # a latent run's images


def draw(denoiser: Denoiser, shape: tuple[int, ...], seeds: list[int], batch_size: int, options: dict[str, Any],
         place: Distributed = SINGLE, labels: Optional[Union[list[int], torch.Tensor]] = None, guidance: float = 1.0,
         weaker: Optional[Denoiser] = None, negative: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
    """Samples for `seeds` in batches (each sample depends on its seed alone); on the CPU, (n, *shape).

    With `labels` (class labels (L,), or prompts' token ids (L, T)), sample k is drawn for labels[k % L], guided
    with classifier-free guidance of scale `guidance` (1: the conditional model alone; plume.guidance), away from
    `negative` (one condition row) instead of the null condition if given. With `weaker`, a weaker model of the
    same data, autoguidance of scale `guidance` replaces classifier-free guidance (labels optional).

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
            rows = torch.arange(starts[mine], starts[mine] + len(chunk)) % len(labels) if labels is not None and \
                len(labels) and chunk else None  # (b,) which condition each sample of the batch takes
            cond = torch.as_tensor(labels)[rows].to(device) if rows is not None else None  # (b,) or (b, T)
            if weaker is not None:
                model = autoguidance(denoiser, weaker, cond, guidance)
            elif cond is not None:
                model = classifier_free_guidance(denoiser, cond, guidance, negative) if guidance != 1.0 else \
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


def prompt_tokens(denoiser: Denoiser, prompts: Sequence[str], negative_prompt: Optional[str],
                  run: Path) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Token ids (P, T) of the prompts (None if none) and (T,) of the negative prompt, by the run's tokenizer."""
    text = getattr(denoiser.backbone, "text", None)
    if text is None:
        raise click.BadParameter(f"the run {run} is not text-conditioned (train on captioned data with "
                                 "--conditional)", param_hint="--prompt")
    tokenizer = text.encoder.tokenizer
    if negative_prompt is not None and not prompts:
        raise click.UsageError("--negative-prompt needs --prompt")
    negative = tokenizer.encode([negative_prompt])[0] if negative_prompt is not None else None  # (T,)
    return (tokenizer.encode(list(prompts)) if prompts else None), negative


def weaker_model(weak_run: Path, run: Path, config: dict[str, Any], ema: bool, device: torch.device) -> Denoiser:
    """The weaker denoiser for autoguidance, refused unless it was trained on data of the run's shape and classes."""
    weak_config = read_config(weak_run)
    for what, get in (("data shape", lambda c: c.get("data", {}).get("shape")),
                      ("class count", lambda c: c.get("backbone", {}).get("options", {}).get("num_classes"))):
        if get(config) != get(weak_config):
            raise PlumeError(f"--autoguidance {weak_run}: its {what} is {get(weak_config)}, the run {run}'s is "
                             f"{get(config)}; guide with a weaker run of the same data and conditioning (e.g. "
                             "trained for fewer minutes, or with a smaller --preset)")
    return load_denoiser(weak_run, ema=ema, device=device)


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
                      path: Path, decode: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> Path:
    """Draw `seeds` again, recording x_t (scaled to unit variance) and x0_hat at every model evaluation; save a strip
    (of their images under `decode`, for latent runs)."""
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
    decode = decode or (lambda x: x)
    return save_trajectory_strip([tensor_to_images(decode(frames[i][1])) for i in keep],
                                 [tensor_to_images(decode(frames[i][2])) for i in keep], path,
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
