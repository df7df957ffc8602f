"""`plume train`: the data type's default recipe for the data (plume.modality), any value overridden by a config file or
a flag. The command parses; plume.fit does the work (the data type makes the data and the recipe, plume.recipes the
model, plume.train.train trains it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..backbones import BACKBONES
from ..fit import fit
from ..images.masks import FAMILIES as MASK_FAMILIES
from ..modality import modality_for_source, modality_of
from ..objective import TIME_SAMPLINGS, WEIGHTINGS
from ..predictions import PREDICTIONS
from ..processes import PROCESSES
from ..train import LR_SCHEDULES, PARALLEL, PRECISIONS, TrainingInterrupted, find_checkpoint, read_config
from .common import PlumeCommand, load_config_file, number_list, parse_key_values, resume_flags, set_threads

# Training options a flag may set (None: the recipe's value); each is also a key of TrainConfig.
TRAINING_FLAGS = ("steps", "minutes", "batch_size", "accumulate", "lr", "lr_schedule", "warmup_steps", "ema_decay",
                  "grad_clip", "precision", "parallel", "compile", "label_dropout", "checkpoint_every", "log_every",
                  "preview_every", "sample_count", "tensorboard", "seed", "ema_profiles", "ema_snapshot_every")
# What a resumed run may take from the command line; every other setting comes from its config.json.
RESUME_FLAGS = {"out", "resume", "steps", "minutes", "parallel", "compile", "checkpoint_every", "log_every",
                "preview_every", "sample_count", "tensorboard", "threads", "device", "quiet", "ema_snapshot_every"}
# The data type's options a flag may give (plume.modality.DataRequest.options); a data type refuses those it lacks.
DATA_FLAGS = ("image_size", "channels", "flip", "on_error", "holdout", "limit", "latent", "super_resolution",
              "augment_max", "inpainting", "interpolation", "stream", "workers")
DENOISER_FLAGS = ("process", "prediction", "weighting", "time_sampling", "sigma_data")
POSITIVE = click.IntRange(min=1)


@click.command(cls=PlumeCommand)
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), callback=load_config_file,
              is_eager=True, expose_value=False, help="JSON or TOML file of option values; flags override them.")
@click.option("--data", help="The data: a name one data type recognizes (points: the toy sets moons, swissroll, "
              "8gaussians, checkerboard, gmm; images: digits, lfw, photos, shapes, shapes-triples, moving-shapes, a "
              "folder of images, an .npz file, hf:PATH), or TYPE:SOURCE to say which data type reads it. Required "
              "unless --resume.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@click.option("--backbone", type=click.Choice(list(BACKBONES)), help="Network (default: the data type's; images: unet, points: mlp).")
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
@click.option("--stream", type=click.Choice(["auto", "on", "off"]), help="Read a folder of images from disk while "
              "training (on), decode it into memory first (off), or stream folders too big for memory (auto, the "
              "default). A set written by `plume prepare` always streams (docs/streaming.md).")
@click.option("--workers", type=click.IntRange(min=0), help="Processes that decode a streamed set while the model "
              "trains (default: one less than the cores, at most 4; 0: decode in the training process).")
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
@click.option("--threads", type=POSITIVE, help="CPU threads (default: the data type's; points 1, images all cores).")
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
    if flags["resume"]:
        given = resume_flags(ctx, RESUME_FLAGS)
        saved = read_config(out)
        modality = modality_of(saved.get("data", {}), str(find_checkpoint(out) / "config.json"))
        set_threads(flags["threads"] or saved.get("runtime", {}).get("cpu_threads"), modality.threads)
        training = {k: flags[k] for k in RESUME_FLAGS & set(TRAINING_FLAGS) if k in given}
        options: dict[str, Any] = {}
    elif flags["data"] is None:
        raise click.UsageError("--data is required (or --resume to continue a run)")
    else:
        set_threads(flags["threads"], modality_for_source(flags["data"])[0].threads)
        training = {k: flags[k] for k in TRAINING_FLAGS if k != "seed"}
        options = dict(data_options={k: flags[k] for k in DATA_FLAGS}, conditional=bool(flags["conditional"]),
                       text_encoder=flags["text_encoder"], backbone=flags["backbone"], preset=flags["preset"],
                       backbone_options=parse_key_values(flags["backbone_options"]),
                       denoiser={k: flags[k] for k in DENOISER_FLAGS}, seed=flags["seed"])
    try:
        run = fit(flags["data"], out, resume=flags["resume"], device=flags["device"], progress=not flags["quiet"],
                  **options, **training)
    except (TrainingInterrupted, KeyboardInterrupt) as stop:
        error = click.ClickException(str(stop) if isinstance(stop, TrainingInterrupted) else
                                     f"interrupted; the last checkpoint in {out} is intact (continue with --resume)")
        error.exit_code = 130
        raise error from None
    result = run.training
    if run.place.is_main:
        skipped = f"; {result.skipped_steps} steps skipped (non-finite loss)" if result.skipped_steps else ""
        click.echo(f"step {result.step} in {result.seconds:.1f} s (loss {result.last_loss:.4g}{skipped}); "
                   f"checkpoint {out / 'checkpoint'}; samples {result.samples_png}")
    run.close()


__all__ = ["train"]
