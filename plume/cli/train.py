"""`plume train`: the default recipe for the data (plume.recipes), any value overridden by a config file or a flag."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click
import torch

from ..backbones import BACKBONES, PRESETS
from ..data import TOY_SETS
from ..data.masks import FAMILIES as MASK_FAMILIES
from ..data.sources import data_from_info, load_data
from ..errors import PlumeError
from ..latent.data import encode_images, latent_data_from_info
from ..objective import TIME_SAMPLINGS, WEIGHTINGS
from ..predictions import PREDICTIONS
from ..processes import PROCESSES
from ..recipes import build_recipe, default_recipe
from ..text import text_options
from ..train import LR_SCHEDULES, PARALLEL, PRECISIONS, TrainingInterrupted, build_denoiser, find_checkpoint, read_config, train_config
from ..train import train as run_training
from ..train.distributed import finish, from_environment
from .cascade import super_resolution_stage
from .inpaint import inpainting_stage
from .interpolate import interpolation_data, interpolation_stage, wants_interpolation
from .options import load_config_file, number_list, parse_key_values, resume_flags

# Training options a flag may set (None: the recipe's value); each is also a key of TrainConfig.
TRAINING_FLAGS = ("steps", "minutes", "batch_size", "accumulate", "lr", "lr_schedule", "warmup_steps", "ema_decay",
                  "grad_clip", "precision", "parallel", "compile", "label_dropout", "checkpoint_every", "log_every",
                  "preview_every", "sample_count", "tensorboard", "seed", "ema_profiles", "ema_snapshot_every")
# What a resumed run may take from the command line; every other setting comes from its config.json.
RESUME_FLAGS = {"out", "resume", "steps", "minutes", "parallel", "compile", "checkpoint_every", "log_every",
                "preview_every", "sample_count", "tensorboard", "threads", "device", "quiet", "ema_snapshot_every"}
POSITIVE = click.IntRange(min=1)


@click.command()
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), callback=load_config_file,
              is_eager=True, expose_value=False, help="JSON or TOML file of option values; flags override them.")
@click.option("--data", help="A toy set (" + ", ".join(TOY_SETS) + "), an image set (digits, lfw, photos, shapes, shapes-triples), a folder "
              "of images, an .npz file, or hf:PATH (a saved Hugging Face data set). Required unless --resume.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@click.option("--backbone", type=click.Choice(list(BACKBONES)), help="Network (default: unet for images, mlp for points).")
@click.option("--preset", help="Backbone size preset (unet: tiny, small, base; dit: tiny, S, B, L, XL).")
@click.option("--backbone-option", "backbone_options", multiple=True, metavar="KEY=VALUE",
              help="Any backbone option, e.g. channels=[32,64,64] or dropout=0.1 (repeatable).")
@click.option("--conditional", is_flag=True, default=None,
              help="Condition on the data's captions (text; shapes, captioned folders) or else its class labels.")
@click.option("--text-encoder", type=click.Path(exists=True, file_okay=False),
              help="With --conditional on captioned data: a folder holding a pretrained transformers text encoder "
                   "and its tokenizer (save_pretrained), used frozen; default: a small encoder trained with the model.")
@click.option("--label-dropout", type=click.FloatRange(0, 1, max_open=True),
              help="With --conditional: the fraction of labels dropped in training, for classifier-free guidance "
              "(default 0.1).")
@click.option("--process", type=click.Choice(list(PROCESSES)), help="Noising process (default edm).")
@click.option("--prediction", type=click.Choice(list(PREDICTIONS)), help="What the network predicts (default edm).")
@click.option("--weighting", type=click.Choice(list(WEIGHTINGS)), help="Loss weighting (default edm).")
@click.option("--time-sampling", type=click.Choice(list(TIME_SAMPLINGS)), help="Noise-level sampling (default lognormal).")
@click.option("--sigma-data", type=click.FloatRange(min=0, min_open=True), help="Data standard deviation for EDM.")
@click.option("--image-size", type=POSITIVE, help="Resize and center-crop images to this size.")
@click.option("--super-resolution", type=POSITIVE, metavar="LOW_SIZE", help="Train a cascade's second stage: make "
              "the images from their LOW_SIZE copies (noise-augmented); --backbone and --preset pick its inner network.")
@click.option("--augment-max", type=click.FloatRange(min=0), help="With --super-resolution: conditioning noise levels "
              "are drawn from [0, this] in training (default 0.5).")
@click.option("--interpolation", is_flag=True, default=None, help="Train frame interpolation: --data is a folder of "
              "frames (or of one subfolder of frames per video), or moving-shapes (which implies this flag); the "
              "model makes a frame between two others (plume interpolate; docs/interpolation.md).")
@click.option("--inpainting", type=click.Choice(MASK_FAMILIES), is_flag=False, flag_value="mixed", metavar="[MASKS]",
              help="Train a model for inpainting: it sees the image with random holes and their mask (masks: "
              "mixed by default; plume inpaint; docs/inpainting.md).")
@click.option("--channels", type=click.Choice(["rgb", "gray"]), help="Image channels (default: the data's).")
@click.option("--flip/--no-flip", default=None, help="Random horizontal flips (default off).")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), help="An unreadable image stops the run or is skipped.")
@click.option("--holdout", type=click.FloatRange(0, 1, max_open=True),
              help="Keep this fraction of the images out of training (seeded), for `plume eval --nll`.")
@click.option("--limit", type=POSITIVE, help="Use at most this many examples (toy sets: draw this many points).")
@click.option("--latent", type=click.Path(path_type=Path), help="Latent diffusion: an autoencoder folder (`plume "
              "autoencoder train`); the model trains on the images' scaled latents and samples decode to images.")
@click.option("--steps", type=POSITIVE, help="Train up to this step.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), help="Time budget; stops early, with a checkpoint.")
@click.option("--batch-size", type=POSITIVE)
@click.option("--accumulate", type=POSITIVE, help="Micro-batches per step (gradient accumulation).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True))
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES))
@click.option("--warmup-steps", type=click.IntRange(min=0))
@click.option("--ema-decay", type=click.FloatRange(min=0, max=1, max_open=True))
@click.option("--ema-profiles", metavar="WIDTHS", callback=lambda ctx, param, value: None if value is None else tuple(
    number_list(value, float, "--ema-profiles", 0, "numbers (e.g. 0.05,0.1)", "width")),
              help="Keep snapshots of power-function EMAs of these relative widths sigma_rel (e.g. 0.05,0.1), so that "
              "`plume ema` can make the EMA of any width after training (EDM2's post-hoc EMA; docs/posthoc-ema.md).")
@click.option("--ema-snapshot-every", type=POSITIVE, help="Steps between those snapshots (default 100).")
@click.option("--grad-clip", type=click.FloatRange(min=0), help="Gradient-norm clip (0: none).")
@click.option("--precision", type=click.Choice(PRECISIONS), help="auto: bf16 autocast on CUDA, fp32 elsewhere.")
@click.option("--parallel", type=click.Choice(PARALLEL), help="Under torchrun: ddp (default; a model copy per "
              "process) or fsdp (weights, gradients and optimizer state sharded, for models too big for one device).")
@click.option("--compile", is_flag=True, default=None, help="torch.compile the backbone: faster steps on a GPU after "
              "minutes of compiling; rarely worth it on a CPU.")
@click.option("--checkpoint-every", type=POSITIVE)
@click.option("--log-every", type=POSITIVE, help="Steps between loss.csv rows (and TensorBoard scalars).")
@click.option("--preview-every", type=click.IntRange(min=0), help="Write previews/step-N.png every N steps (0: at the end).")
@click.option("--sample-count", type=POSITIVE, help="Samples in each preview picture.")
@click.option("--tensorboard", is_flag=True, default=None, help="Log scalars and pictures to OUT/tensorboard.")
@click.option("--seed", type=int, help="Seeds the weights, the data and every step (default 0).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... (auto: cuda if present).")
@click.option("--threads", type=POSITIVE, help="CPU threads (default: 1 for points, all cores for images).")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly (to --steps / for --minutes).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def train(ctx: click.Context, **flags: Any) -> None:
    """Train a denoiser; writes OUT/checkpoint, OUT/loss.csv and OUT/samples.png.

    Under torchrun (e.g. `torchrun --nproc_per_node=4 -m plume train ...`) every process trains its share of each
    batch with DDP; --batch-size stays the global batch (docs/distributed.md)."""
    out: Path = flags["out"]
    # Threads first: changing torch's thread count after its first parallel op makes later steps irreproducible,
    # and a resumed run keeps the count it was trained with, since CPU reductions split work by thread.
    saved = read_config(out) if flags["resume"] else {}
    points = (saved["data"].get("name") if flags["resume"] else flags["data"]) in TOY_SETS
    set_threads(flags["threads"] or saved.get("runtime", {}).get("cpu_threads"), points)
    if flags["resume"]:
        denoiser, data, options = _resumed(ctx, flags, saved)
    else:
        denoiser, data, options = _fresh(flags)
    denoiser = denoiser.to(_device(flags["device"]))
    try:
        result = run_training(denoiser, data, out, train_config(options), resume=flags["resume"],
                              progress=not flags["quiet"])
    except (TrainingInterrupted, KeyboardInterrupt) as stop:
        error = click.ClickException(str(stop) if isinstance(stop, TrainingInterrupted) else
                                     f"interrupted; the last checkpoint in {out} is intact (continue with --resume)")
        error.exit_code = 130
        raise error from None
    place = from_environment(next(denoiser.parameters()).device)  # the process group train() joined, if any
    if place.is_main:
        skipped = f"; {result.skipped_steps} steps skipped (non-finite loss)" if result.skipped_steps else ""
        click.echo(f"step {result.step} in {result.seconds:.1f} s (loss {result.last_loss:.4g}{skipped}); "
                   f"checkpoint {out / 'checkpoint'}; samples {result.samples_png}")
    finish(place)


def _fresh(flags: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """A new run: the data, then the recipe for its shape with every given flag applied."""
    if flags["data"] is None:
        raise click.UsageError("--data is required (or --resume to continue a run)")
    seed = flags["seed"] if flags["seed"] is not None else 0
    data = interpolation_data(flags, seed) if wants_interpolation(flags) else \
        load_data(flags["data"], seed=seed, image_size=flags["image_size"], channels=flags["channels"],
                     flip=bool(flags["flip"]), on_error=flags["on_error"] or "stop", limit=flags["limit"],
                     holdout=flags["holdout"] or 0.0,
                     progress=not flags["quiet"])
    if flags["latent"] is not None and flags["super_resolution"] is not None:
        raise click.UsageError("--latent and --super-resolution cannot be combined: a super-resolution stage trains "
                               "on pixels (a cascade's second stage); train the latent model and the stage separately")
    if flags["latent"] is not None:  # diffusion on an autoencoder's latents (plume.latent)
        data = encode_images(data, flags["latent"], progress=not flags["quiet"], device=_device(flags["device"]))
    recipe = default_recipe(data.shape)
    if flags["latent"] is not None:
        recipe["denoiser"]["sigma_data"] = 1.0  # the latents are scaled to unit variance
    spec = recipe["backbone"]
    if flags["backbone"] is not None and flags["backbone"] != spec["name"]:
        # Another backbone starts from its smallest preset: a CPU-sized default (--preset picks a bigger one).
        spec.update(name=flags["backbone"], preset="tiny" if "tiny" in PRESETS.get(flags["backbone"], {}) else None,
                    options={})
    if flags["preset"] is not None:
        spec["preset"] = flags["preset"]
    spec["options"].update(parse_key_values(flags["backbone_options"]))
    for key in ("process", "prediction", "weighting", "time_sampling", "sigma_data"):
        if flags[key] is not None:
            recipe["denoiser"][key] = flags[key]
    if flags["super_resolution"] is not None:
        data = super_resolution_stage(data, recipe, flags["super_resolution"], flags["augment_max"],
                                      bool(flags["conditional"]), flags["sigma_data"] is not None)
    elif flags["augment_max"] is not None:
        raise click.UsageError("--augment-max needs --super-resolution (a stage with a conditioning image)")
    if wants_interpolation(flags):
        interpolation_stage(data, recipe)
    if flags["inpainting"] is not None:
        data = inpainting_stage(data, recipe, flags["inpainting"], flags)
    captions = getattr(data, "train_captions", None) if flags["conditional"] else None
    text = text_options(captions, flags["text_encoder"]) if captions else None
    if flags["text_encoder"] is not None and text is None:
        raise click.UsageError("--text-encoder needs --conditional and captioned data (a folder with a captions "
                               "file, or shapes)")
    if text is not None and flags["time_sampling"] is None:
        # Prompts decide layout, colour and size at high noise, which EDM's lognormal rarely trains: in 30 CPU
        # minutes on shapes the prompt-match rate went from 0.06 to 0.17 with log-SNR-uniform times
        # (docs/text-to-image.md).
        recipe["denoiser"]["time_sampling"] = "logsnr"
    num_classes = getattr(data, "num_classes", None) if flags["conditional"] and text is None else None
    if flags["conditional"] and not num_classes and text is None:
        raise PlumeError(f"--conditional needs class labels or captions, and the data {flags['data']!r} has neither")
    denoiser = build_recipe(recipe, data.shape, num_classes=num_classes, seed=seed, text=text)
    if text is not None:
        data.tokenize(denoiser.backbone.text.encoder.tokenizer)  # labels = token ids (N, T)
    conditional = bool(num_classes) or text is not None
    options = {**recipe["training"], **({"label_dropout": 0.1} if conditional else {}),
               **{k: flags[k] for k in TRAINING_FLAGS if flags[k] is not None}}
    if options.get("label_dropout") and not conditional:
        raise click.UsageError("--label-dropout needs --conditional (class labels or captions to drop)")
    return denoiser, data, options


def _resumed(ctx: click.Context, flags: dict[str, Any], saved: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """The saved run: its denoiser and data from its config.json (`saved`), with the few flags a resume may change."""
    given = resume_flags(ctx, RESUME_FLAGS)
    out = flags["out"]
    denoiser = build_denoiser(saved, find_checkpoint(out) / "config.json")
    source = str(find_checkpoint(out) / "config.json")
    latent = saved["data"].get("kind") == "latent"  # the same images, encoded again by the same autoencoder
    data = latent_data_from_info(saved["data"], source) if latent else data_from_info(saved["data"], source)
    text = getattr(denoiser.backbone, "text", None)
    if text is not None:
        data.tokenize(text.encoder.tokenizer)  # labels = token ids (N, T), as in the first session
    changed = {k: flags[k] for k in RESUME_FLAGS & set(TRAINING_FLAGS) if k in given}
    return denoiser, data, {**saved.get("training", {}), "minutes": None, **changed}


def set_threads(threads: Optional[int], points: bool) -> None:
    """torch's CPU threads: as given, else 1 for 2-D points (tiny ops, where threads cost more than they gain)."""
    if threads or points:
        torch.set_num_threads(threads or 1)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PlumeError(f"--device {name!r} is not a device name (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PlumeError(f"--device {name}: this machine has no CUDA device (torch {torch.__version__})")
    return device


__all__ = ["train"]
