"""`plume eval RUN_OR_SAMPLES`: FID, KID, precision/recall, Inception Score, the memorization audit and, with
--nll, bits/dim, each printed with the sample count, the feature network and the reference set."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np

from ..data.images import load_images, tensor_to_images
from ..data.sources import data_from_info
from ..errors import PlumeError
from ..evaluation.audit import memorization_audit
from ..evaluation.bits_per_dim import gaussian_bits_per_dim, image_bits_per_dim, image_elbo_bits_per_dim
from ..evaluation.features import FEATURE_NETWORKS, FeatureNetwork, feature_network
from ..evaluation.frechet import frechet_distance
from ..evaluation.report import image_metrics, reference_features
from ..train.plots import line_plot
from ..samplers import SAMPLERS
from ..train import find_checkpoint, load_denoiser, read_config
from .options import parse_seeds
from .sample import draw
from .train import _device, set_threads


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
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds KID subsets, the classifier, dequantization.")
@click.option("--out", type=click.Path(path_type=Path), help="Report JSON (default: RUN/eval.json or SAMPLES-eval.json).")
@click.option("--cache/--no-cache", default=True, show_default=True, help="Cache reference features on disk.")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads.")
def evaluate(target: Path, ref: Optional[str], network_name: Optional[str], weights: Optional[Path], n: int,
             seeds: Optional[str], sampler: str, steps: int, batch_size: int, nll: bool, nll_data: Optional[str],
             nll_limit: int, probes: int, sweep: bool, sweep_samplers: str, sweep_nfe: str, seed: int,
             out: Optional[Path], cache: bool, device: str, threads: Optional[int]) -> None:
    """Evaluate a run (drawing samples from it) or a samples .npz (arr_0 uint8 NHWC) against reference images."""
    set_threads(threads, False)
    is_run = target.is_dir()
    if not is_run and target.suffix != ".npz":
        raise click.BadParameter(f"{target} is neither a run directory nor a .npz of samples", param_hint="RUN_OR_SAMPLES")
    for flag, wanted in (("--nll", nll), ("--sweep", sweep)):
        if wanted and not is_run:
            raise click.UsageError(f"{flag} needs a run (a model to draw from), not a samples file")
    plan = sweep_plan(sweep_samplers, sweep_nfe) if sweep else None
    config = read_config(target) if is_run else None
    reference, labels, description, held_out = _reference(ref, config, target)
    report: dict[str, Any] = {"target": str(target)}
    if is_run:
        denoiser = load_denoiser(target, ema=True, device=_device(device))
        shape = tuple(config["data"]["shape"])
        if len(shape) != 3:
            raise PlumeError(f"plume eval measures images; the run {target} holds data shaped {list(shape)}")
        seed_list = parse_seeds(seeds) if seeds else list(range(n))
        samples = tensor_to_images(draw(denoiser, shape, seed_list, batch_size,
                                        dict(sampler=sampler, steps=steps, grid=None)))  # (n, H, W, C)
        report["sampling"] = {"sampler": sampler, "steps": steps, "seeds": f"{seed_list[0]}..{seed_list[-1]}"}
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
    report["memorization"] = memorization_audit(samples, reference, out.with_name(out.stem + "-audit.png"))
    if nll:
        report["nll"] = _bits_per_dim(denoiser, nll_data or ref, held_out, reference, nll_limit, probes, seed)
    if plan:
        report["sweep"] = sampler_sweep(denoiser, shape, seed_list, batch_size, network, real, *plan,
                                        out.with_name(out.stem + "-sweep.png"))
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
    try:
        budgets = sorted({int(v) for v in nfe.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter(f"{nfe!r} is not a comma-separated list of whole numbers",
                                 param_hint="--sweep-nfe") from None
    if not budgets or budgets[0] < 1:
        raise click.BadParameter(f"{nfe!r}: give at least one budget, each >= 1", param_hint="--sweep-nfe")
    return names, budgets


def sampler_sweep(denoiser: Any, shape: tuple, seeds: list[int], batch_size: int, network: FeatureNetwork,
                  real: np.ndarray, names: list[str], budgets: list[int], path: Path) -> dict[str, Any]:
    """FID of the same seeds drawn with each sampler at each number of model evaluations (NFE); a PNG of FID
    against NFE. Each sampler runs the most steps that fit in the NFE (SamplerSpec.steps_for_evaluations: Heun's
    last step is Euler's, so it spends 2 * steps - 1). `real` holds the reference features (M, F)."""
    rows, series = [], {}
    for name in names:
        xs, ys = [], []
        for budget in budgets:
            steps = SAMPLERS[name].steps_for_evaluations(budget)
            pixels = tensor_to_images(draw(denoiser, shape, seeds, batch_size, dict(sampler=name, steps=steps, grid=None)))
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


def _reference(ref: Optional[str], config: Optional[dict],
               target: Path) -> tuple[np.ndarray, Optional[np.ndarray], dict, Optional[np.ndarray]]:
    """Reference pixels (M, H, W, C) uint8, labels (M,) or None, the description that keys the cache, and the
    run's held-out images (K, H, W, C) when it has any (else None)."""
    if ref is not None:
        images = load_images(ref)
        return images.pixels, images.labels, {"source": ref, **images.loader}, None
    if config is None:
        raise click.UsageError("--ref is required with a samples file (which data are the samples meant to match?)")
    data = data_from_info(config["data"], str(find_checkpoint(target) / "config.json"))
    if getattr(data, "images", None) is None:
        raise PlumeError(f"the run {target} was not trained on images; plume eval measures images")
    return data.train_pixels, data.train_labels, {"source": "the run's training data", **data.images.loader,
                                                   "holdout": data.holdout}, data.held_out


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
    if "sweep" in report:
        best = min(report["sweep"]["points"], key=lambda p: p["fid"])
        lines.append(f"  sweep: best FID {best['fid']:.4g} with {best['sampler']} at {best['nfe']} NFE; plot -> "
                     f"{report['sweep']['plot']}")
    lines.append(f"report -> {path}")
    return "\n".join(lines)
