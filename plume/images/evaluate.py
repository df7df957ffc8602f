"""The image report, one for `plume eval`, `plume sample` and `run.evaluate`: FID (with its floor: two halves of the
reference), KID, precision/recall and, where the feature network classifies, the Inception Score, predicted-class
counts and confidence, in the features of a classifier trained on the run's labelled images or of Inception-v3 /
DINOv2; the memorization audit; and on request bits/dim through the PF-ODE, class accuracy of a class-conditional run
(a separately trained classifier judges whether each sample is the class asked for), guidance and sampler sweeps,
and the prompt match rate of the captioned shapes set.

A run's samples are drawn here unless given: a class-conditional run draws equally many samples per class under
classifier-free guidance (DEFAULT_GUIDANCE) or autoguidance. A latent run's samples are decoded by its autoencoder
and measured against its images.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..errors import PlumeError, PlumeUsageError
from ..evaluation.frechet import frechet_distance
from ..samplers import SAMPLERS
from ..train.plots import line_plot
from .evaluation.audit import memorization_audit
from .evaluation.bits_per_dim import gaussian_bits_per_dim, image_bits_per_dim, image_elbo_bits_per_dim
from .evaluation.class_accuracy import balanced_labels, class_accuracy, confusion_plot, guidance_plot
from .evaluation.classifier import ImageClassifier, train_classifier
from .evaluation.features import FeatureNetwork, feature_network
from .evaluation.labelled import CONFIDENT, describe_classifier
from .evaluation.report import image_metrics, reference_features
from .evaluation.shapes_checker import match_rate
from .latent.data import KIND as LATENT
from .sets import SHAPES_HELDOUT, load_images, tensor_to_images

DEFAULT_GUIDANCE = 1.5  # for conditional runs: 99.8% of digits as asked at near-best FID (docs/conditional-digits.md)
OPTIONS: dict[str, Any] = {  # what evaluate_images takes, and the defaults
    "ref": None, "features": None, "weights": None, "n": 1000, "seeds": None, "sampler": "dpm++3m", "steps": 20,
    "batch_size": 500, "nll": False, "nll_data": None, "nll_limit": 256, "probes": 1, "sweep": None,
    "guidance": None, "guidance_sweep": None, "autoguidance": None, "seed": 0, "cache": True, "labels": None,
    "prompts": None, "optional": False, "progress": True}
DrawPixels = Callable[[float], np.ndarray]  # guidance scale -> uint8 samples (n, H, W, C)


def evaluate_images(samples: Optional[torch.Tensor], run: Any, options: dict[str, Any], out: Path) -> dict[str, Any]:
    """The image report of samples (n, C, H, W) in [-1, 1] (None: drawn from `run` as `options` say) against the
    run's training images or options["ref"]; written as JSON to `out`, pictures beside it.

    options (OPTIONS): ref, features, weights (the feature network), n, seeds, sampler, steps, batch_size (drawing),
    guidance, autoguidance (a conditional run's), nll, nll_data, nll_limit, probes (bits/dim), sweep ((samplers,
    NFE budgets)), guidance_sweep (scales), seed, cache, labels (the class each given sample was asked for),
    prompts (the prompt each given sample was asked for), optional (no feature network at hand: a report saying
    so, not an error), progress.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise PlumeError(f"the image evaluation has no option {unknown[0]!r}; its options: {', '.join(OPTIONS)}")
    o = {**OPTIONS, **{k: v for k, v in options.items() if v is not None}}
    _check(run, o)
    reference, labels, description, held_out, held_labels = reference_images(o["ref"], run)
    name = o["features"] or ("classifier" if labels is not None else "inception")
    requested, scale, draw_pixels = _drawing(run, o) if samples is None else (o["labels"], o["guidance"] or 1.0, None)
    pixels = tensor_to_images(samples) if samples is not None else draw_pixels(scale)  # (n, H, W, C)
    report: dict[str, Any] = {"target": str(run.path) if run is not None else None}
    if o["prompts"] is not None and run is not None and run.info.get("name") in SHAPES_HELDOUT:
        report["prompt_match"] = match_rate(pixels, list(o["prompts"]))
    if o["optional"] and name == "inception" and not (o["weights"] or _inception_weights()):
        return _write(out, {**report, "skipped": "no labels to train a classifier on and no Inception-v3 weights "
                                                 "($PLUME_INCEPTION); measure the samples with plume eval --features "
                                                 "... --weights ..."})
    if pixels.shape[1:] != reference.shape[1:]:
        raise PlumeError(f"samples are shaped {pixels.shape[1:]} (H, W, C) and the reference images "
                         f"{reference.shape[1:]}; evaluate against a reference of the samples' size")
    network = feature_network(name, path=o["weights"], train_images=reference, train_labels=labels, seed=o["seed"],
                              progress=o["progress"])
    real, cache_file = reference_features(network, reference, description, o["cache"], progress=o["progress"])
    if samples is None:
        report["sampling"] = _sampling(run, o, scale)
    report.update(image_metrics(pixels, real, network, description, cache_file, seed=o["seed"],
                                progress=o["progress"]))
    if isinstance(network.module, ImageClassifier):  # what a classifier makes of the samples
        report.update(_class_counts(network.module, pixels))
    if requested is not None and run is not None and run.num_classes:  # drawn balanced, or given with their labels
        judge, report["judge"] = class_judge(network, reference, labels, held_out, held_labels, o["seed"])
        accuracy = class_accuracy(pixels, requested, judge)
        report["class_accuracy"] = {"guidance": scale, **accuracy.to_dict(), "plot": str(confusion_plot(
            out.with_name(out.stem + "-confusion.png"), accuracy, title=f"{len(pixels)} samples of {run.path.name}, "
            f"guidance {scale:g}: class accuracy {accuracy.overall:.3f}", names=run.info.get("class_names")))}
        if o["guidance_sweep"]:
            report["guidance_sweep"] = sweep_guidance(draw_pixels, requested, o["guidance_sweep"], judge, network,
                                                      real, {scale: pixels}, out.with_name(out.stem + "-guidance.png"),
                                                      o)
    report["memorization"] = memorization_audit(pixels, reference, out.with_name(out.stem + "-audit.png"))
    if o["nll"]:
        report["nll"] = bits_per_dim(run, o["nll_data"] or o["ref"], held_out, reference, o)
    if o["sweep"]:
        report["sweep"] = sampler_sweep(run, o, network, real, out.with_name(out.stem + "-sweep.png"))
    return _write(out, report)


def _check(run: Any, o: dict[str, Any]) -> None:
    """Refuse, before any work, what needs a model without one, and bits/dim of a latent run."""
    if run is None:
        for flag in ("nll", "sweep", "guidance", "guidance_sweep", "autoguidance"):
            if o[flag] not in (None, False):
                raise PlumeUsageError(f"--{flag.replace('_', '-')} needs a run (a model to draw from), not a samples "
                                      "file")
    elif o["nll"] and run.decoder is not None:
        raise PlumeUsageError(f"--nll: the run {run.path} models an autoencoder's latents, so the PF-ODE gives the "
                              "likelihood of latents, not bits per pixel dimension; drop --nll")


def _inception_weights() -> bool:
    return bool(os.environ.get("PLUME_INCEPTION"))


def _write(out: Path, report: dict[str, Any]) -> dict[str, Any]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return report


def _drawing(run: Any, o: dict[str, Any]) -> tuple[Optional[list[int]], float, DrawPixels]:
    """The labels each drawn sample asks for (balanced over a class-conditional run's classes), the guidance scale,
    and how to draw the samples at a scale."""
    if run.num_classes is None and (o["guidance_sweep"] or (o["guidance"] is not None and o["autoguidance"] is None)):
        flag = "--guidance-sweep" if o["guidance_sweep"] else "--guidance"
        raise PlumeError(f"{flag}: the run {run.path} was trained without class labels, so it has no classifier-free "
                         f"guidance and no class accuracy; train it with --conditional (plume train --data ... "
                         f"--conditional), or drop {flag}")
    seeds = _seed_list(o)
    classes = run.num_classes
    requested = balanced_labels(classes, len(seeds)) if classes else None  # (n,) class k mod K
    scale = (DEFAULT_GUIDANCE if o["guidance"] is None else o["guidance"]) if classes or o["autoguidance"] else 1.0
    weaker = run.weaker(o["autoguidance"]) if o["autoguidance"] is not None else None

    def draw_pixels(guidance: float, sampler: Optional[str] = None, steps: Optional[int] = None) -> np.ndarray:
        x = run.sample(seeds=seeds, sampler=sampler or o["sampler"], steps=steps or o["steps"], labels=requested,
                       guidance=guidance, autoguidance=weaker, batch_size=o["batch_size"], progress=o["progress"])
        return tensor_to_images(x)  # (n, H, W, C)

    return requested, scale, draw_pixels


def _seed_list(o: dict[str, Any]) -> list[int]:
    """The seeds of the samples an evaluation draws: o["seeds"], else 0 .. n - 1."""
    return list(o["seeds"]) if o["seeds"] is not None else list(range(o["n"]))


def _sampling(run: Any, o: dict[str, Any], scale: float) -> dict[str, Any]:
    """How the run's samples were drawn, for the report."""
    seeds = _seed_list(o)
    about: dict[str, Any] = {"sampler": o["sampler"], "steps": o["steps"], "seeds": f"{seeds[0]}..{seeds[-1]}"}
    if run.num_classes or o["autoguidance"]:
        weak = o["autoguidance"]
        about.update(guidance=scale, guidance_kind=f"autoguidance by {getattr(weak, 'path', weak)}" if weak else
                     "classifier-free", labels="balanced: sample k asks for class k mod "
                     f"{run.num_classes}" if run.num_classes else "none (unconditional)")
    return about


def _class_counts(classifier: ImageClassifier, pixels: np.ndarray) -> dict[str, Any]:
    """Samples per predicted class and the fraction the classifier is confident about (probability > CONFIDENT)."""
    probabilities = classifier.probabilities(pixels)  # (N, K)
    predicted = classifier.classes.numpy()[probabilities.argmax(1)]
    return {"class_counts": {int(k): int((predicted == k).sum()) for k in classifier.classes.tolist()},
            "confident_fraction": float((probabilities.max(1) > CONFIDENT).mean())}


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


def sweep_guidance(draw_pixels: DrawPixels, requested: list[int], scales: list[float], judge: ImageClassifier,
                   network: FeatureNetwork, real: np.ndarray, drawn: dict[float, np.ndarray], path: Path,
                   o: dict[str, Any]) -> dict[str, Any]:
    """Class accuracy and FID of the same seeds and labels at each guidance scale (samples already `drawn` at a
    scale are reused); a PNG of both against the scale. `real` holds the reference features (M, F)."""
    points = []
    for scale in scales:
        pixels = drawn[scale] if scale in drawn else draw_pixels(scale)  # (n, H, W, C)
        accuracy = class_accuracy(pixels, requested, judge)
        points.append({"guidance": scale, "accuracy": accuracy.overall,
                       "per_class": {str(k): v for k, v in accuracy.per_class.items()},
                       "fid": frechet_distance(network.features(pixels), real)})
        _say(o, f"  guidance {scale:g}: class accuracy {accuracy.overall:.3f}, FID {points[-1]['fid']:.4g}")
    guidance_plot(path, scales, [p["accuracy"] for p in points], [p["fid"] for p in points],
                  title=f"{len(requested)} samples ({o['sampler']}, {o['steps']} steps), balanced classes",
                  fid_label=f"FID ({network.name.split(' (')[0]})")
    return {"points": points, "plot": str(path)}


def sampler_sweep(run: Any, o: dict[str, Any], network: FeatureNetwork, real: np.ndarray, path: Path) -> dict[str, Any]:
    """FID of the same seeds drawn with each sampler at each number of model evaluations (NFE), o["sweep"] =
    (samplers, budgets), unguided; a PNG of FID against NFE. Each sampler runs the most steps that fit in the NFE
    (SamplerSpec.steps_for_evaluations: Heun's last step is Euler's, so it spends 2 * steps - 1)."""
    names, budgets = o["sweep"]
    seeds = _seed_list(o)
    rows, series = [], {}
    for name in names:
        xs, ys = [], []
        for budget in budgets:
            steps = SAMPLERS[name].steps_for_evaluations(budget)
            pixels = tensor_to_images(run.sample(seeds=seeds, sampler=name, steps=steps, batch_size=o["batch_size"],
                                                 progress=o["progress"]))  # (n, H, W, C)
            fid = frechet_distance(network.features(pixels), real)
            rows.append({"sampler": name, "steps": steps, "nfe": budget,
                         "evaluations": SAMPLERS[name].evaluations(steps), "fid": fid})
            xs.append(rows[-1]["evaluations"])
            ys.append(fid)
            _say(o, f"  sweep {name:10s} {steps:3d} steps ({xs[-1]} NFE of {budget}): FID {fid:.4g}")
        series[name] = (xs, ys)
    line_plot(path, series, "model evaluations per sample (NFE)", f"FID ({network.name.split(' (')[0]})",
              title=f"FID of {len(seeds)} samples against NFE", log_y=True, x_ticks=budgets)
    return {"points": rows, "plot": str(path)}


def _say(o: dict[str, Any], line: str) -> None:
    if o["progress"]:
        print(line, flush=True)


def reference_images(ref: Optional[str], run: Any) -> tuple[
        np.ndarray, Optional[np.ndarray], dict, Optional[np.ndarray], Optional[np.ndarray]]:
    """Reference pixels (M, H, W, C) uint8, labels (M,) or None, the description that keys the cache, and the
    run's held-out images (K, H, W, C) and their labels (K,) when it has any (else None)."""
    if ref is not None:
        images = load_images(ref)
        return images.pixels, images.labels, {"source": ref, **images.loader}, None, None
    if run is None:
        raise PlumeUsageError("--ref is required with a samples file (which data are the samples meant to match?)")
    data = run.modality.data_from_info(plain_images_info(run.info), run.source)
    if not hasattr(data, "held_labels"):
        raise PlumeError(f"the run {run.path} was not trained on images; plume eval measures images")
    return data.train_pixels, data.train_labels, {"source": "the run's training data", **data.info()["loader"],
                                                   "holdout": data.holdout}, data.held_out, data.held_labels


def plain_images_info(info: dict[str, Any]) -> dict[str, Any]:
    """The info of the images under a run's data: a latent run's images before encoding, a super-resolution stage's
    high-resolution images, an inpainting model's images; the info itself for plain images."""
    nested = {LATENT: "images", "super_resolution": "high", "inpainting": "images"}.get(info.get("kind"))
    return info.get(nested, {}) if nested else info


def bits_per_dim(run: Any, source: Optional[str], run_held_out: Optional[np.ndarray], train_pixels: np.ndarray,
                 o: dict[str, Any]) -> dict[str, Any]:
    """Bits/dim of up to o["nll_limit"] held-out images (`source`, else the run's), beside a per-pixel Gaussian
    fitted to the run's training data."""
    limit, seed = o["nll_limit"], o["seed"]
    if source is None:
        if run_held_out is None or not len(run_held_out):
            raise PlumeUsageError("--nll needs held-out images: train with --holdout FRACTION, or give "
                                  "--nll-data SOURCE (or --ref)")
        source, held_out = "the run's held-out images", run_held_out[:limit]  # (K, H, W, C)
    else:
        held_out = load_images(source, limit=limit, seed=seed).pixels  # (K, H, W, C)
    denoiser = run.denoiser
    result = image_bits_per_dim(denoiser, held_out, probes=o["probes"], seed=seed)
    result.pop("per_image")
    if denoiser.process.name == "ddpm":  # the discrete chain also has its variational bound
        result["elbo"] = image_elbo_bits_per_dim(denoiser, held_out, seed=seed)
    overlap = float(np.isin(held_out.reshape(len(held_out), -1).view(f"V{held_out[0].size}"),
                            train_pixels.reshape(len(train_pixels), -1).view(f"V{train_pixels[0].size}")).mean())
    return {**result, "data": source, "gaussian_baseline_bits_per_dim": gaussian_bits_per_dim(train_pixels, held_out, seed),
            "fraction_also_in_training_data": overlap}


def summary(report: dict[str, Any], path: Path) -> str:
    """The few lines a person reads; the JSON holds everything."""
    match = (f"prompt match rate (plume.images.evaluation.shapes_checker): {report['prompt_match']['match']:.3f}\n"
             if "prompt_match" in report else "")
    if "skipped" in report:
        return f"{match}no image metrics: {report['skipped']}"
    kid, memo = report["kid"], report["memorization"]
    lines = [f"{report['n_samples']} samples vs {report['n_reference']} reference images ({report['reference']['source']}),"
             f" features: {report['feature_network']}",
             f"  FID {report['fid']:.4g} (floor {report['fid_floor']:.3g}: two halves of the reference)   KID {kid['mean']:.4g} +- {kid['standard_error']:.2g} "
             f"({kid['subsets']} subsets of {kid['subset_size']})",
             f"  precision {report['precision']:.3f}   recall {report['recall']:.3f} (k={report['k']})"]
    if "inception_score" in report:
        lines.append(f"  Inception Score {report['inception_score']['mean']:.3f} +- {report['inception_score']['std']:.3f}")
    if "class_counts" in report:
        lines.append(f"  predicted classes {report['class_counts']}, confident {report['confident_fraction']:.3f}")
    lines.append(f"  memorization: ratio {memo['ratio']:.3f} (a sample's nearest training image / the training "
                 f"images' own nearest-neighbour distance), {memo['copies']} copies of {report['n_samples']} "
                 f"(threshold {memo['copy_threshold']:.2f} x that distance); closest pairs -> {memo['path']}")
    if match:
        lines.append("  " + match.strip())
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


__all__ = ["DEFAULT_GUIDANCE", "OPTIONS", "evaluate_images", "class_judge", "sweep_guidance", "sampler_sweep",
           "reference_images", "bits_per_dim", "summary"]
