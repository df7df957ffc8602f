"""`plume eval RUN_OR_SAMPLES`: FID, KID, precision/recall, Inception Score, the memorization audit and, with
--nll, bits/dim, each printed with the sample count, the feature network and the reference set.

A class-conditional run is sampled with an equal number of samples per class, under classifier-free guidance
(or autoguidance), and also gets class accuracy: how often a classifier trained on the labelled reference
images, apart from the diffusion model, judges a sample to be the class it was asked for (with
--guidance-sweep, accuracy and FID against the guidance scale). A latent run's samples are decoded by its autoencoder
and measured against its images."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np

from ..data.images import holdout_split, load_images, tensor_to_images
from ..data.sources import data_from_info
from ..errors import PlumeError
from ..evaluation.audit import memorization_audit
from ..evaluation.bits_per_dim import gaussian_bits_per_dim, image_bits_per_dim, image_elbo_bits_per_dim
from ..evaluation.class_accuracy import balanced_labels, class_accuracy, confusion_plot, guidance_plot
from ..evaluation.classifier import ImageClassifier, train_classifier
from ..evaluation.features import FEATURE_NETWORKS, FeatureNetwork, feature_network
from ..evaluation.frechet import frechet_distance
from ..evaluation.images import describe_classifier
from ..evaluation.report import image_metrics, reference_features
from ..latent.autoencoder import KLAutoencoder
from ..latent.data import KIND as LATENT, decode_latents, latent_autoencoder
from ..train.plots import line_plot
from ..samplers import SAMPLERS
from ..train import find_checkpoint, load_denoiser, read_config
from .options import number_list, parse_seeds
from .sample import draw, weaker_model
from .train import _device, set_threads

DEFAULT_GUIDANCE = 1.5  # for conditional runs: 99.8% of digits as asked at near-best FID (docs/conditional-digits.md)


@click.command("eval")
@click.argument("target", type=click.Path(exists=True, path_type=Path), metavar="RUN_OR_SAMPLES")
@click.option("--ref", help="Reference images: a data set name, folder, .npz or hf:<dir> (default: the run's data).")
@click.option("--features", "network_name", type=click.Choice(sorted(FEATURE_NETWORKS)),
              help="Feature network (default: classifier for labelled data, else inception).")
@click.option("--weights", type=click.Path(path_type=Path),
              help="Weights file of the inception / dinov2 network (else $PLUME_INCEPTION / $PLUME_DINOV2).")
@click.option("--n", type=click.IntRange(min=2), default=1000, show_default=True, help="Samples to draw from a run.")
@click.option("--seeds", help="Seeds of the drawn samples, e.g. 0-999 (default: 0..n-1).")
@click.option("--sampler", type=click.Choice(sorted(SAMPLERS)), default="dpm++3m", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--nll", is_flag=True, help="Also bits/dim of held-out images (--nll-data) through the PF-ODE.")
@click.option("--nll-data", help="Held-out images for --nll (default: the run's --holdout images, else --ref).")
@click.option("--nll-limit", type=click.IntRange(min=1), default=256, show_default=True,
              help="At most this many images for --nll (each takes one ODE solve per probe).")
@click.option("--probes", type=click.IntRange(min=1), default=1, show_default=True, help="Hutchinson probes per image.")
@click.option("--sweep", is_flag=True, help="Also FID at several samplers and NFE, plotted against NFE (a run only).")
@click.option("--sweep-samplers", default="dpm++2m,dpm++3m,heun,euler", show_default=True)
@click.option("--sweep-nfe", default="5,10,20,50", show_default=True, help="Model evaluations per sample.")
@click.option("--guidance", type=click.FloatRange(min=0), help="A conditional run's guidance scale (default "
              f"{DEFAULT_GUIDANCE:g}; 1: the conditional model alone, 0: unconditional).")
@click.option("--guidance-sweep", help="Also class accuracy and FID at each of these guidance scales, e.g. "
              "0,1,1.5,2,3,4, plotted against the scale (a conditional run).")
@click.option("--autoguidance", "weak_run", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Guide with this weaker run of the same data (autoguidance) instead of classifier-free guidance.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds KID subsets, the classifier, dequantization.")
@click.option("--out", type=click.Path(path_type=Path), help="Report JSON (default: RUN/eval.json or SAMPLES-eval.json).")
@click.option("--cache/--no-cache", default=True, show_default=True, help="Cache reference features on disk.")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads.")
def evaluate(target: Path, ref: Optional[str], network_name: Optional[str], weights: Optional[Path], n: int,
             seeds: Optional[str], sampler: str, steps: int, batch_size: int, nll: bool, nll_data: Optional[str],
             nll_limit: int, probes: int, sweep: bool, sweep_samplers: str, sweep_nfe: str, guidance: Optional[float],
             guidance_sweep: Optional[str], weak_run: Optional[Path], seed: int, out: Optional[Path], cache: bool,
             device: str, threads: Optional[int]) -> None:
    """Evaluate a run (drawing samples from it) or a samples .npz (arr_0 uint8 NHWC) against reference images."""
    set_threads(threads, False)
    is_run = target.is_dir()
    if not is_run and target.suffix != ".npz":
        raise click.BadParameter(f"{target} is neither a run directory nor a .npz of samples", param_hint="RUN_OR_SAMPLES")
    for flag, wanted in (("--nll", nll), ("--sweep", sweep), ("--guidance", guidance is not None),
                         ("--guidance-sweep", guidance_sweep), ("--autoguidance", weak_run)):
        if wanted and not is_run:
            raise click.UsageError(f"{flag} needs a run (a model to draw from), not a samples file")
    plan = sweep_plan(sweep_samplers, sweep_nfe) if sweep else None
    scales = number_list(guidance_sweep, float, "--guidance-sweep", 0, "numbers (e.g. 0,1,1.5,2,3,4)", "scale") \
        if guidance_sweep else None
    config = read_config(target) if is_run else None
    reference, labels, description, held_out, held_out_labels = _reference(ref, config, target)
    report: dict[str, Any] = {"target": str(target)}
    if is_run:
        denoiser = load_denoiser(target, ema=True, device=_device(device))
        shape = tuple(config["data"]["shape"])  # a latent run's: its latents' (z, h, w)
        autoencoder = latent_autoencoder(config["data"], find_checkpoint(target) / "config.json", _device(device))
        if nll and autoencoder is not None:
            raise click.UsageError(f"--nll: the run {target} models an autoencoder's latents, so the PF-ODE gives the "
                                   "likelihood of latents, not bits per pixel dimension; drop --nll")
        if len(shape) != 3:
            raise PlumeError(f"plume eval measures images; the run {target} holds data shaped {list(shape)}")
        seed_list = parse_seeds(seeds) if seeds else list(range(n))
        classes = run_classes(config, target, guidance, scales, weak_run)
        requested = balanced_labels(classes, len(seed_list)) if classes else None  # (n,) class k mod K
        scale = (DEFAULT_GUIDANCE if guidance is None else guidance) if classes or weak_run else 1.0
        weaker = weaker_model(weak_run, target, config, ema=True, device=_device(device)) if weak_run else None
        options = dict(sampler=sampler, steps=steps, grid=None)
        samples = drawn_images(denoiser, shape, seed_list, batch_size, options, autoencoder, labels=requested,
                               guidance=scale, weaker=weaker)  # (n, H, W, C)
        report["sampling"] = {"sampler": sampler, "steps": steps, "seeds": f"{seed_list[0]}..{seed_list[-1]}"}
        if classes or weak_run:
            report["sampling"].update(guidance=scale, guidance_kind=f"autoguidance by {weak_run}" if weak_run else
                                      "classifier-free", labels="balanced: sample k asks for class k mod "
                                      f"{classes}" if classes else "none (unconditional)")
    else:
        samples = _read_samples(target)
    if samples.shape[1:] != reference.shape[1:]:
        raise PlumeError(f"samples are shaped {samples.shape[1:]} (H, W, C) and the reference images "
                         f"{reference.shape[1:]}; evaluate against a reference of the samples' size")
    name = network_name or ("classifier" if labels is not None else "inception")
    network = feature_network(name, path=weights, train_images=reference, train_labels=labels, seed=seed,
                              progress=True)
    real, cache_file = reference_features(network, reference, description, cache, progress=True)  # (M, F)
    report.update(image_metrics(samples, real, network, description, cache_file, seed=seed, progress=True))
    out = out or (target / "eval.json" if is_run else target.with_name(target.stem + "-eval.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    if is_run and classes:
        judge, report["judge"] = class_judge(network, reference, labels, held_out, held_out_labels, seed)
        accuracy = class_accuracy(samples, requested, judge)
        report["class_accuracy"] = {"guidance": scale, **accuracy.to_dict(), "plot": str(confusion_plot(
            out.with_name(out.stem + "-confusion.png"), accuracy, title=f"{len(samples)} samples of {target.name}, "
            f"guidance {scale:g}: class accuracy {accuracy.overall:.3f}", names=config["data"].get("class_names")))}
        if scales:
            report["guidance_sweep"] = sweep_guidance(
                denoiser, shape, seed_list, batch_size, options, requested, scales, weaker, judge, network, real,
                {scale: samples}, out.with_name(out.stem + "-guidance.png"), autoencoder)
    report["memorization"] = memorization_audit(samples, reference, out.with_name(out.stem + "-audit.png"))
    if nll:
        report["nll"] = _bits_per_dim(denoiser, nll_data or ref, held_out, reference, nll_limit, probes, seed)
    if plan:
        report["sweep"] = sampler_sweep(denoiser, shape, seed_list, batch_size, network, real, *plan,
                                        out.with_name(out.stem + "-sweep.png"), autoencoder)
    out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    click.echo(summary(report, out))


def sweep_plan(samplers: str, nfe: str) -> tuple[list[str], list[int]]:
    """The --sweep-samplers names and sorted --sweep-nfe budgets, or a BadParameter naming the bad item."""
    names = [s.strip() for s in samplers.split(",") if s.strip()]
    fixed = sorted(name for name, spec in SAMPLERS.items() if spec.evaluations_per_step > 0)
    unknown = [s for s in names if s not in fixed]
    if unknown or not names:
        raise click.BadParameter(f"{(unknown or [''])[0]!r} is not a fixed-step sampler (an adaptive solver's NFE "
                                 f"follows its tolerance); valid: {', '.join(fixed)}", param_hint="--sweep-samplers")
    return names, number_list(nfe, int, "--sweep-nfe", 1, "whole numbers", "budget")


def run_classes(config: dict[str, Any], target: Path, guidance: Optional[float], scales: Optional[list[float]],
                weak_run: Optional[Path]) -> Optional[int]:
    """The class count of a class-conditional run (None for an unconditional one, which --guidance needs
    --autoguidance for, and which has no class accuracy to sweep)."""
    classes = config.get("backbone", {}).get("options", {}).get("num_classes")
    if classes is None and (scales or (guidance is not None and weak_run is None)):
        flag = "--guidance-sweep" if scales else "--guidance"
        raise PlumeError(f"{flag}: the run {target} was trained without class labels, so it has no classifier-free "
                         f"guidance and no class accuracy; train it with --conditional (plume train --data ... "
                         f"--conditional), or drop {flag}")
    return classes


def class_judge(network: FeatureNetwork, reference: np.ndarray, labels: Optional[np.ndarray],
                held_out: Optional[np.ndarray], held_out_labels: Optional[np.ndarray],
                seed: int) -> tuple[ImageClassifier, dict[str, Any]]:
    """The classifier that judges class accuracy (trained on the labelled reference images, never on samples) and
    its own accuracy on those images and, where the run held images out of training, on them."""
    if labels is None:
        raise PlumeError("class accuracy needs labelled reference images to train its judge, and these have no labels; "
                         "drop --ref (use the run's own data) or give a folder with one subfolder per class")
    judge = network.module if isinstance(network.module, ImageClassifier) else train_classifier(reference, labels, seed)
    about: dict[str, Any] = {"classifier": describe_classifier(judge), "trained_on": f"{len(reference)} labelled "
                             "reference images, separately from the diffusion model",
                             "reference_accuracy": class_accuracy(reference, labels, judge).overall}
    if held_out is not None and held_out_labels is not None and len(held_out):
        about.update(held_out_accuracy=class_accuracy(held_out, held_out_labels, judge).overall,
                     n_held_out=int(len(held_out)))
    return judge, about


def drawn_images(denoiser: Any, shape: tuple, seeds: list[int], batch_size: int, options: dict[str, Any],
                 autoencoder: Optional[KLAutoencoder] = None, **guidance: Any) -> np.ndarray:
    """Samples of `seeds` (cli.sample.draw; `guidance`: its labels, guidance and weaker) as uint8 images
    (n, H, W, C), a latent run's decoded by its `autoencoder`."""
    x = draw(denoiser, shape, seeds, batch_size, options, **guidance)  # (n, *shape)
    if autoencoder is not None:
        x = decode_latents(autoencoder, x, batch_size)  # latents (n, z, h, w) -> images (n, C, H, W)
    return tensor_to_images(x)


def sweep_guidance(denoiser: Any, shape: tuple, seeds: list[int], batch_size: int, options: dict[str, Any],
                   requested: list[int], scales: list[float], weaker: Any, judge: ImageClassifier,
                   network: FeatureNetwork, real: np.ndarray, drawn: dict[float, np.ndarray],
                   path: Path, autoencoder: Optional[KLAutoencoder] = None) -> dict[str, Any]:
    """Class accuracy and FID of the same seeds and labels at each guidance scale (samples already `drawn` at a
    scale are reused); a PNG of both against the scale. `real` holds the reference features (M, F)."""
    points = []
    for scale in scales:
        pixels = drawn.get(scale)
        if pixels is None:
            pixels = drawn_images(denoiser, shape, seeds, batch_size, options, autoencoder, labels=requested,
                                  guidance=scale, weaker=weaker)  # (n, H, W, C)
        accuracy = class_accuracy(pixels, requested, judge)
        points.append({"guidance": scale, "accuracy": accuracy.overall,
                       "per_class": {str(k): v for k, v in accuracy.per_class.items()},
                       "fid": frechet_distance(network.features(pixels), real)})
        click.echo(f"  guidance {scale:g}: class accuracy {accuracy.overall:.3f}, FID {points[-1]['fid']:.4g}")
    guidance_plot(path, scales, [p["accuracy"] for p in points], [p["fid"] for p in points],
                  title=f"{len(seeds)} samples ({options['sampler']}, {options['steps']} steps), balanced classes",
                  fid_label=f"FID ({network.name.split(' (')[0]})")
    return {"points": points, "plot": str(path)}


def sampler_sweep(denoiser: Any, shape: tuple, seeds: list[int], batch_size: int, network: FeatureNetwork,
                  real: np.ndarray, names: list[str], budgets: list[int], path: Path,
                  autoencoder: Optional[KLAutoencoder] = None) -> dict[str, Any]:
    """FID of the same seeds drawn with each sampler at each number of model evaluations (NFE); a PNG of FID
    against NFE. Each sampler runs the most steps that fit in the NFE (SamplerSpec.steps_for_evaluations: Heun's
    last step is Euler's, so it spends 2 * steps - 1). `real` holds the reference features (M, F)."""
    rows, series = [], {}
    for name in names:
        xs, ys = [], []
        for budget in budgets:
            steps = SAMPLERS[name].steps_for_evaluations(budget)
            pixels = drawn_images(denoiser, shape, seeds, batch_size, dict(sampler=name, steps=steps, grid=None),
                                  autoencoder)  # (n, H, W, C)
            fid = frechet_distance(network.features(pixels), real)
            rows.append({"sampler": name, "steps": steps, "nfe": budget,
                         "evaluations": SAMPLERS[name].evaluations(steps), "fid": fid})
            xs.append(rows[-1]["evaluations"])
            ys.append(fid)
            click.echo(f"  sweep {name:10s} {steps:3d} steps ({xs[-1]} NFE of {budget}): FID {fid:.4g}")
        series[name] = (xs, ys)
    line_plot(path, series, "model evaluations per sample (NFE)", f"FID ({network.name.split(' (')[0]})",
              title=f"FID of {len(seeds)} samples against NFE", log_y=True, x_ticks=budgets)
    return {"points": rows, "plot": str(path)}


def _reference(ref: Optional[str], config: Optional[dict], target: Path) -> tuple[
        np.ndarray, Optional[np.ndarray], dict, Optional[np.ndarray], Optional[np.ndarray]]:
    """Reference pixels (M, H, W, C) uint8, labels (M,) or None, the description that keys the cache, and the
    run's held-out images (K, H, W, C) and their labels (K,) when it has any (else None)."""
    if ref is not None:
        images = load_images(ref)
        return images.pixels, images.labels, {"source": ref, **images.loader}, None, None
    if config is None:
        raise click.UsageError("--ref is required with a samples file (which data are the samples meant to match?)")
    info = config["data"]
    info = info.get("images", {}) if info.get("kind") == LATENT else info  # a latent run's images, before encoding
    data = data_from_info(info, str(find_checkpoint(target) / "config.json"))
    if getattr(data, "images", None) is None:
        raise PlumeError(f"the run {target} was not trained on images; plume eval measures images")
    held = holdout_split(len(data.images.pixels), data.holdout, int(data.images.loader.get("seed", 0)))[1]  # (K,)
    held_labels = None if data.images.labels is None else data.images.labels[held]  # (K,), as data.held_out
    return data.train_pixels, data.train_labels, {"source": "the run's training data", **data.images.loader,
                                                   "holdout": data.holdout}, data.held_out, held_labels


def _read_samples(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        if "arr_0" not in archive:
            raise PlumeError(f"{path} has no arr_0; plume eval reads samples as arr_0, uint8 (N, H, W, C)")
        samples = archive["arr_0"]
    if samples.dtype != np.uint8 or samples.ndim != 4:
        raise PlumeError(f"{path}: arr_0 is {samples.dtype} {samples.shape}; expected uint8 (N, H, W, C) images")
    return samples


def _bits_per_dim(denoiser: Any, source: Optional[str], run_held_out: Optional[np.ndarray], train_pixels: np.ndarray,
                  limit: int, probes: int, seed: int) -> dict[str, Any]:
    """Bits/dim of up to `limit` held-out images (`source`, else the run's), beside a per-pixel Gaussian fitted to
    the run's training data."""
    if source is None:
        if run_held_out is None or not len(run_held_out):
            raise click.UsageError("--nll needs held-out images: train with --holdout FRACTION, or give "
                                   "--nll-data SOURCE (or --ref)")
        source, held_out = "the run's held-out images", run_held_out[:limit]  # (K, H, W, C)
    else:
        held_out = load_images(source, limit=limit, seed=seed).pixels  # (K, H, W, C)
    result = image_bits_per_dim(denoiser, held_out, probes=probes, seed=seed)
    result.pop("per_image")
    if denoiser.process.name == "ddpm":  # the discrete chain also has its variational bound
        result["elbo"] = image_elbo_bits_per_dim(denoiser, held_out, seed=seed)
    overlap = float(np.isin(held_out.reshape(len(held_out), -1).view(f"V{held_out[0].size}"),
                            train_pixels.reshape(len(train_pixels), -1).view(f"V{train_pixels[0].size}")).mean())
    return {**result, "data": source, "gaussian_baseline_bits_per_dim": gaussian_bits_per_dim(train_pixels, held_out, seed),
            "fraction_also_in_training_data": overlap}


def summary(report: dict[str, Any], path: Path) -> str:
    """The few lines a person reads; the JSON holds everything."""
    kid, memo = report["kid"], report["memorization"]
    lines = [f"{report['n_samples']} samples vs {report['n_reference']} reference images ({report['reference']['source']}),"
             f" features: {report['feature_network']}",
             f"  FID {report['fid']:.4g} (floor {report['fid_floor']:.3g}: two halves of the reference)   KID {kid['mean']:.4g} +- {kid['standard_error']:.2g} "
             f"({kid['subsets']} subsets of {kid['subset_size']})",
             f"  precision {report['precision']:.3f}   recall {report['recall']:.3f} (k={report['k']})"]
    if "inception_score" in report:
        lines.append(f"  Inception Score {report['inception_score']['mean']:.3f} +- {report['inception_score']['std']:.3f}")
    lines.append(f"  memorization: {memo['copies']} copies of {report['n_samples']} (threshold "
                 f"{memo['copy_threshold']:.2f} x the training NN distance); closest pairs -> {memo['path']}")
    if "nll" in report:
        r = report["nll"]
        lines.append(f"  bits/dim {r['bits_per_dim']:.3f} +- {r['standard_error']:.3f} on {r['n_images']} images of "
                     f"{r['data']} (per-pixel Gaussian: {r['gaussian_baseline_bits_per_dim']:.3f}; {r['probes']} "
                     f"Hutchinson probe(s); {r['dequantization']})")
        if "elbo" in r:
            lines.append(f"  DDPM ELBO bound {r['elbo']['bits_per_dim']:.3f} +- {r['elbo']['standard_error']:.3f} "
                         f"bits/dim ({r['elbo']['decoder']})")
        if r["fraction_also_in_training_data"] > 0:
            lines.append(f"  note: {100 * r['fraction_also_in_training_data']:.0f}% of these images are in the training "
                         "data, so bits/dim on them flatters the model; pass held-out images with --nll-data")
    if "class_accuracy" in report:
        acc, judge = report["class_accuracy"], report["judge"]
        judged = (f"{judge['held_out_accuracy']:.3f} on {judge['n_held_out']} held-out images" if "held_out_accuracy"
                  in judge else f"{judge['reference_accuracy']:.3f} on its own training images; train the run with "
                  "--holdout to measure it on unseen ones")
        lines.append(f"  class accuracy {acc['overall']:.3f} at guidance {acc['guidance']:g} ({acc['n']} samples, "
                     f"balanced; judge: {judged})")
        lines.append("    per class " + "  ".join(f"{k}: {v:.2f}" for k, v in acc["per_class"].items() if v is not None)
                     + f"; confusion matrix -> {acc['plot']}")
    if "guidance_sweep" in report:
        lines.append("  guidance sweep: " + ", ".join(f"s={p['guidance']:g} accuracy {p['accuracy']:.3f} FID "
                                                      f"{p['fid']:.3g}" for p in report["guidance_sweep"]["points"])
                     + f"; plot -> {report['guidance_sweep']['plot']}")
    if "sweep" in report:
        best = min(report["sweep"]["points"], key=lambda p: p["fid"])
        lines.append(f"  sweep: best FID {best['fid']:.4g} with {best['sampler']} at {best['nfe']} NFE; plot -> "
                     f"{report['sweep']['plot']}")
    lines.append(f"report -> {path}")
    return "\n".join(lines)
