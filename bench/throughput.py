"""Training and sampling throughput of Plume's U-Net and DiT beside diffusers' models of the same size, in one run.

Pairs. U-Net: Plume's `UNet` and diffusers' `UNet2DModel` built by bench/unet_throughput.py's `diffusers_twin`
(same widths, blocks per level, attention levels, heads, norm groups, scale-shift conditioning). DiT: Plume's
`DiT` and diffusers' `DiTTransformer2DModel` built by `dit_twin` with the same width, depth, heads, patch size,
MLP ratio (4), classes, 256 sinusoidal noise features and adaLN-Zero blocks. diffusers gives every block its own
timestep + label embedder (a CombinedTimestepLabelEmbeddings inside each AdaLayerNormZero; its DiT checkpoint
converter copies DiT's single embedder into each), so as shipped it holds 11-21 % more parameters here;
`dit_twin` ties them all to block 0's module, which leaves the same parameters on both sides (both counts are
printed) while diffusers still computes the embedding once per block, as it does in use. Each library runs in its
trainer's memory format: Plume's U-Net in channels_last (TrainConfig.channels_last), all else contiguous
(bench/unet_throughput.py compares the formats).

Training: one step is forward, MSE loss against a fixed random target, backward and AdamW; images/s =
batch / seconds per step. AdamW runs as each library trains: Plume's trainer in the fused kernel
(plume.train.optimizer.adamw), diffusers' training examples with torch.optim.AdamW's defaults (on the CPU a
per-tensor loop); `--same-optimizer` gives both the foreach kernel, which times the networks alone. Memory: bench/unet_throughput.py's `training_memory_mib` (CPU: weights, gradients,
AdamW moments and every tensor saved for backward, counted exactly; CUDA: the model's state plus the peak growth
of allocated memory over a step). Sampling: one model evaluation is a forward pass under torch.inference_mode in
eval mode at the sampling batch; a 20-step sampler (Euler or DDIM, one evaluation per step) then makes
batch / (20 x seconds per evaluation) images/s, the sampler's own arithmetic being negligible beside the network.

Method, as bench/unet_throughput.py: after warm-up, each round times `--steps` consecutive training steps and
`--steps` sampling evaluations of both models, in reversed order every other round, so that drift in the
machine's speed hits both libraries alike; the median round gives each rate. Ratios are Plume / diffusers
(speed > 1: Plume faster; memory > 1: Plume holds more).

FLOPs (DiT): matmul, convolution and attention FLOPs of one training step (forward and backward) counted by
torch.utils.flop_counter.FlopCounterMode, with SDPA's math backend so that attention is counted on every device;
achieved FLOP/s = that / median step time. MFU (on CUDA; `--mfu` elsewhere) divides it by the measured peak of
a large dense matmul in the training precision on the same device (Chowdhery et al. 2022, appendix B).

CUDA: bf16 autocast (default `--precision` there), attention through F.scaled_dot_product_attention on both sides
(Plume's SelfAttention; diffusers' AttnProcessor2_0), channels_last for Plume's U-Net, TF32 for fp32 matmuls,
cuDNN autotuning, and `--compile` wraps both models in torch.compile.

Run from the repository root (needs diffusers):
  python bench/throughput.py                          # CPU; writes docs/throughput.md and docs/throughput.json
  python bench/throughput.py --device cuda [--compile]   # writes docs/throughput-cuda.md and .json
  python bench/throughput.py --quick                  # smoke run (1 warm-up, 2 rounds of 2 steps), no docs
  python bench/throughput.py --quick --backbones dit --mfu
References: Peebles & Xie 2023 (DiT); Dhariwal & Nichol 2021 (ADM U-Net); Chowdhery et al. 2022 (MFU).
"""
from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [BENCH, ROOT]

from unet_throughput import (Trainee, describe_machine, diffusers_twin, parameter_count,  # noqa: E402
                             random_batch, synchronize, timed, training_memory_mib)

from plume.backbones import PRESETS, backbone  # noqa: E402

SAMPLER_STEPS = 20  # evaluations of a 20-step Euler / DDIM sampler


@dataclass(frozen=True)
class Case:
    """A Plume backbone (preset + options) on images (channels, size, size), with training and sampling batches."""

    backbone: str  # "unet" or "dit"
    name: str
    preset: str
    channels: int
    size: int
    batch: int
    sample_batch: int
    options: tuple = ()  # extra backbone options as (key, value) pairs
    num_classes: Optional[int] = None  # class-conditional; diffusers' DiT needs labels


PATCH2 = (("patch_size", 2),)
CPU_CASES = (
    Case("unet", "U-Net tiny, digits 8x8x1", "tiny", 1, 8, 128, 256),
    Case("unet", "U-Net small, 32x32x3", "small", 3, 32, 32, 64),
    Case("dit", "DiT-tiny/2, digits 8x8x1 (16 tokens)", "tiny", 1, 8, 128, 256, PATCH2, 10),
    Case("dit", "DiT-S/2, 32x32x4 latents (256 tokens)", "S", 4, 32, 8, 16, PATCH2, 1000),
)
CUDA_CASES = (
    Case("unet", "U-Net tiny, digits 8x8x1", "tiny", 1, 8, 128, 512),
    Case("unet", "U-Net small, 32x32x3", "small", 3, 32, 128, 256),
    Case("unet", "U-Net base (DDPM's CIFAR-10 size), 32x32x3", "base", 3, 32, 128, 256),
    Case("dit", "DiT-S/2, 32x32x4 latents (256 tokens)", "S", 4, 32, 256, 256, PATCH2, 1000),
    Case("dit", "DiT-B/2, 32x32x4 latents (256 tokens)", "B", 4, 32, 256, 256, PATCH2, 1000),
    Case("dit", "DiT-XL/2, 32x32x4 latents (256 tokens)", "XL", 4, 32, 64, 128, PATCH2, 1000),
)
KINDS = ("plume", "diffusers")


def dit_twin(options: dict[str, Any]) -> nn.Module:
    """diffusers' DiTTransformer2DModel with the width, depth, heads, patch size and classes of a Plume DiT whose
    options() are `options`; its per-block timestep + label embedders tied to block 0's (see the module docstring)."""
    from diffusers import DiTTransformer2DModel

    size, width, heads = options["image_size"], options["width"], options["heads"]
    if (size[0] != size[1] or options["num_classes"] is None or options["mlp_ratio"] != 4
            or options["embed_features"] != 256):
        raise ValueError("diffusers' DiT takes square images, class labels, an MLP ratio of 4 and 256 noise features; "
                         f"got {options}")
    net = DiTTransformer2DModel(num_attention_heads=heads, attention_head_dim=width // heads,
                                in_channels=options["in_channels"], out_channels=options["out_channels"],
                                num_layers=options["depth"], dropout=options["dropout"], sample_size=size[0],
                                patch_size=options["patch_size"], num_embeds_ada_norm=options["num_classes"],
                                norm_eps=1e-6)  # DiT's LayerNorm eps, as Plume's
    shared = net.transformer_blocks[0].norm1.emb
    for block in net.transformer_blocks[1:]:
        block.norm1.emb = shared
    return net


def untied_parameter_count(net: nn.Module) -> int:
    """Parameters of a `dit_twin` as diffusers builds it, with one timestep + label embedder per block."""
    blocks = net.transformer_blocks
    return parameter_count(net) + (len(blocks) - 1) * parameter_count(blocks[0].norm1.emb)


def build_pair(case: Case) -> tuple[nn.Module, nn.Module]:
    """Plume's backbone for `case` and its diffusers twin, each initialised from seed 0."""
    options = dict(case.options)
    if case.backbone == "dit":
        options.update(image_size=case.size, num_classes=case.num_classes)
    elif case.num_classes is not None:
        raise ValueError("the U-Net twin is unconditional: give U-Net cases no num_classes")
    torch.manual_seed(0)
    plume_net = backbone(case.backbone, preset=case.preset, in_channels=case.channels, **options)
    torch.manual_seed(0)
    options = plume_net.options()
    twin = diffusers_twin(options, case.size) if case.backbone == "unet" else dit_twin(options)
    return plume_net, twin


class Evaluator:
    """Sampling evaluations of a Trainee's model: forward passes under inference_mode, in eval mode, on its own batch
    (x, _, level, labels) from `random_batch`."""

    def __init__(self, trainee: Trainee, batch: tuple):
        self.trainee, self.device = trainee, trainee.device
        self.x, _, self.level, self.labels = batch

    def step(self) -> None:
        t = self.trainee
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                    enabled=t.precision == "bf16"):
            t.call(t.model, self.x, self.level, self.labels)

    def timed(self, steps: int) -> float:
        """Seconds per evaluation over `steps` consecutive evaluations, the model in eval mode meanwhile."""
        self.trainee.net.eval()
        try:
            return timed(self, steps)  # type: ignore[arg-type]
        finally:
            self.trainee.net.train()


def interleaved(runs: dict[Any, Callable[[int], float]], warmup: int, rounds: int,
                steps: int) -> dict[Any, list[float]]:
    """Seconds per step of every run in each of `rounds` rounds of `steps` steps, after `warmup` steps each; the
    order is reversed every other round, so that drift in the machine's speed hits every run alike."""
    for run in runs.values():
        run(warmup)
    times: dict[Any, list[float]] = {key: [] for key in runs}
    for r in range(rounds):
        for key in list(runs) if r % 2 == 0 else list(reversed(runs)):
            times[key].append(runs[key](steps))
    return times


def training_flops(trainee: Trainee) -> int:
    """Matmul, convolution and attention FLOPs of one training step (forward + backward) of the eager model, counted
    by FlopCounterMode; SDPA runs its math backend, whose matmuls the counter sees on every device."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        with torch.autocast(trainee.device.type, dtype=torch.bfloat16, enabled=trainee.precision == "bf16"):
            out = trainee.call(trainee.net, trainee.x, trainee.level, trainee.labels)
            loss = F.mse_loss(out.float(), trainee.target)
        loss.backward()
    trainee.optimizer.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, repeats: int, rounds: int = 5) -> float:
    """Measured peak FLOP/s of dense (n, n) @ (n, n) products in `dtype`: the best of `rounds` timings of `repeats`
    back-to-back products, after one untimed warm-up round."""
    a, b, c = (torch.randn(n, n, device=device).to(dtype) for _ in range(3))
    best = 0.0
    for r in range(rounds + 1):
        synchronize(device)
        began = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b, out=c)
        synchronize(device)
        if r:
            best = max(best, 2 * n**3 * repeats / (time.perf_counter() - began))
    return best


def measure(case: Case, args: argparse.Namespace, peak: Optional[float],
            log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Training and sampling rates of both models of `case` over interleaved rounds, their training memory and,
    for the DiT, training FLOPs (and MFU where `peak` is given)."""
    device = torch.device(args.device)
    if args.compile:
        torch._dynamo.reset()  # each case compiles afresh, within the recompilation limit
    nets = dict(zip(KINDS, build_pair(case)))
    counts = f"  params: Plume {parameter_count(nets['plume']):,}, diffusers {parameter_count(nets['diffusers']):,}"
    if case.backbone == "dit":
        counts += f" (as diffusers builds it, embedders untied: {untied_parameter_count(nets['diffusers']):,})"
    ratio = parameter_count(nets["plume"]) / parameter_count(nets["diffusers"])
    log(counts + f"; Plume / diffusers {ratio:.4f}" + (" (differs by more than 2 %)" if abs(ratio - 1) > 0.02 else ""))
    trainees, evaluators, runs = {}, {}, {}
    for kind, net in nets.items():
        fmt = torch.channels_last if memory_format(case, kind) == "channels_last" else torch.contiguous_format
        shape = (case.channels, case.size, case.size)
        batch = random_batch(kind, (case.batch, *shape), device, fmt, 1, case.num_classes)
        trainees[kind] = Trainee(kind, net.to(device, memory_format=fmt), batch, device, args.precision, args.compile,
                                 optimizer_for(kind, args))
        batch = random_batch(kind, (case.sample_batch, *shape), device, fmt, 2, case.num_classes)
        evaluators[kind] = Evaluator(trainees[kind], batch)
        runs[kind, "train"] = functools.partial(timed, trainees[kind])
        runs[kind, "sample"] = evaluators[kind].timed
    times = interleaved(runs, args.warmup, args.rounds, args.steps)
    result = {kind: summarize(case, trainee, times[kind, "train"], times[kind, "sample"], peak)
              for kind, trainee in trainees.items()}
    for kind, r in result.items():
        log(f"  {kind:9s} train {1000 * r['train_seconds_per_step']:8.1f} ms/step ({r['train_images_per_s']:8.4g} "
            f"images/s; rounds {1000 * min(r['train_rounds']):.1f}..{1000 * max(r['train_rounds']):.1f})  "
            f"{r['training_memory_mib']:6.0f} MiB   sample {1000 * r['sample_seconds_per_evaluation']:8.1f} ms/eval "
            f"({r['sample_images_per_s_per_evaluation']:8.4g} images/s)"
            + (f"   {r['achieved_flops_per_s'] / 1e12:.3g} TFLOP/s" if "achieved_flops_per_s" in r else "")
            + (f", MFU {100 * r['mfu']:.1f} %" if r.get("mfu") else ""))
    return result


def optimizer_for(kind: str, args: argparse.Namespace) -> str:
    """Each library's training default (`make_optimizer`): Plume's trainer fused AdamW, diffusers' examples
    torch.optim.AdamW's defaults; with --same-optimizer both foreach, which times the networks alone."""
    if args.same_optimizer:
        return "foreach"
    return "plume" if kind == "plume" else "torch-default"


def memory_format(case: Case, kind: str) -> str:
    """Each library's trainer default: Plume's U-Net trains channels_last (TrainConfig.channels_last), all else
    contiguous."""
    return "channels_last" if kind == "plume" and case.backbone == "unet" else "contiguous"


def summarize(case: Case, trainee: Trainee, train_rounds: list[float], sample_rounds: list[float],
              peak: Optional[float]) -> dict[str, Any]:
    """One model's row: rates from the median rounds, training memory, and for a DiT its training FLOPs and MFU."""
    train, sample = statistics.median(train_rounds), statistics.median(sample_rounds)
    r: dict[str, Any] = {
        "params": parameter_count(trainee.net), "memory_format": memory_format(case, trainee.kind),
        "train_seconds_per_step": train, "train_rounds": train_rounds, "train_images_per_s": case.batch / train,
        "training_memory_mib": training_memory_mib(trainee),
        "sample_seconds_per_evaluation": sample, "sample_rounds": sample_rounds,
        "sample_images_per_s_per_evaluation": case.sample_batch / sample,
        "sampler_images_per_s": case.sample_batch / (SAMPLER_STEPS * sample)}
    if case.backbone == "dit":
        r["training_flops_per_step"] = training_flops(trainee)
        r["achieved_flops_per_s"] = r["training_flops_per_step"] / train
        r["mfu"] = r["achieved_flops_per_s"] / peak if peak else None
        if trainee.kind == "diffusers":
            r["params_untied"] = untied_parameter_count(trainee.net)
    return r


def ratios(result: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Plume / diffusers for parameters, training speed and memory, sampling speed."""
    p, d = result["plume"], result["diffusers"]
    keys = ("params", "train_images_per_s", "training_memory_mib", "sample_images_per_s_per_evaluation")
    return {key: p[key] / d[key] for key in keys}


def model_label(case: Case, kind: str, r: dict[str, Any]) -> str:
    if case.backbone == "unet":
        return f"Plume UNet ({r['memory_format']})" if kind == "plume" else "diffusers UNet2DModel (contiguous)"
    return "Plume DiT" if kind == "plume" else "diffusers DiTTransformer2DModel"


def report(rows: list[tuple[Case, dict[str, Any]]], args: argparse.Namespace, machine: str,
           peak: Optional[float]) -> str:
    """docs/throughput.md: the command, the machine, the throughput table, the DiT FLOPs table and the method."""
    import diffusers

    memory = "training memory (MiB)" if args.device == "cpu" else "training memory, CUDA (MiB)"
    lines = [f"| configuration | model | params | training batch | training images/s | {memory} | sampling batch | "
             f"sampling images/s per evaluation | images/s, {SAMPLER_STEPS}-step sampler |", "|---" * 9 + "|"]
    flops = ["| configuration | model | GFLOP per training step | GFLOP per training image | achieved TFLOP/s | MFU |",
             "|---" * 6 + "|"]
    for case, result in rows:
        for kind, r in result.items():
            lines.append(f"| {case.name} | {model_label(case, kind, r)} | {r['params']:,} | {case.batch} | "
                         f"{r['train_images_per_s']:.4g} | {r['training_memory_mib']:.0f} | {case.sample_batch} | "
                         f"{r['sample_images_per_s_per_evaluation']:.4g} | {r['sampler_images_per_s']:.4g} |")
            if "training_flops_per_step" in r:
                mfu = f"{100 * r['mfu']:.1f} %" if r.get("mfu") else "-"
                flops.append(f"| {case.name} | {model_label(case, kind, r)} | {r['training_flops_per_step'] / 1e9:.4g} "
                             f"| {r['training_flops_per_step'] / case.batch / 1e9:.4g} | "
                             f"{r['achieved_flops_per_s'] / 1e12:.3g} | {mfu} |")
        q = ratios(result)
        lines.append(f"| {case.name} | **Plume / diffusers** | {q['params']:.4f} | | "
                     f"**{q['train_images_per_s']:.2f}** | "
                     f"{q['training_memory_mib']:.2f} | | **{q['sample_images_per_s_per_evaluation']:.2f}** | |")
    untied = [f"{case.name}: {result['diffusers']['params_untied']:,}" for case, result in rows
              if "params_untied" in result["diffusers"]]
    smoke = (["**Smoke run (`--quick`): tiny round counts, for checking that the script works; these are not "
              "measurements.**", ""] if args.quick else [])
    peak_line = (f"Measured dense matmul peak on this device ({'bf16' if args.precision == 'bf16' else 'fp32'}): "
                 f"{peak / 1e12:.4g} TFLOP/s; MFU = achieved / that." if peak else "MFU: not measured here "
                 "(CUDA, or `--mfu`).")
    command = " ".join(["python bench/throughput.py", *sys.argv[1:]])
    return "\n".join([
        "# Training and sampling throughput: Plume vs diffusers", "", *smoke,
        f"`{command}` on {datetime.date.today().isoformat()}: {machine}, diffusers {diffusers.__version__}, "
        f"precision {args.precision}{', torch.compile' if args.compile else ''}.", "",
        *lines, "",
        "DiT training FLOPs (matmul, convolution and attention, forward + backward, counted by "
        f"`torch.utils.flop_counter.FlopCounterMode`). {peak_line}", "",
        *flops, "",
        f"One training step = forward, MSE loss, backward, AdamW ({optimizer_words(args)}); one sampling evaluation = a forward pass "
        f"under `torch.inference_mode` in eval mode; a {SAMPLER_STEPS}-step sampler (Euler / DDIM) costs "
        f"{SAMPLER_STEPS} evaluations. {args.warmup} warm-up steps, then {args.rounds} rounds of {args.steps} "
        "training steps and as many evaluations per model, the order reversed every other round; rates from the "
        "median round. The U-Net twin is `diffusers_twin` (bench/unet_throughput.py) of Plume's options; Plume's "
        "U-Net runs channels_last as its trainer does, diffusers contiguous as its example trains. The DiT twin is "
        "`dit_twin`: same width, depth, heads, patch size, MLP ratio and classes, with diffusers' per-block "
        "timestep + label embedders tied into one so both hold the same parameters (as diffusers builds it: "
        f"{'; '.join(untied) or 'n/a'}). Memory: on CPU weights, gradients and AdamW moments plus the tensors "
        "autograd saves for backward, counted exactly; on CUDA the model's weights and AdamW state plus the peak "
        "growth of allocated memory over a step (`training_memory_mib`). Ratios are Plume / diffusers.", ""])


def optimizer_words(args: argparse.Namespace) -> str:
    if args.same_optimizer:
        return "foreach for both (`--same-optimizer`)"
    return ("each library's training default: Plume's trainer the fused kernel (plume.train.optimizer.adamw), "
            "diffusers' training examples `torch.optim.AdamW` with its defaults (on CPU parameters a per-tensor "
            "loop); `--same-optimizer` gives both foreach")


def record(rows: list[tuple[Case, dict[str, Any]]], args: argparse.Namespace, machine: str,
           peak: Optional[float]) -> dict[str, Any]:
    """docs/throughput.json: everything in the table, with every round's time."""
    import diffusers

    return {"command": " ".join(["python bench/throughput.py", *sys.argv[1:]]),
            "date": datetime.date.today().isoformat(),
            "machine": machine, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "settings": {k: getattr(args, k) for k in ("device", "precision", "compile", "threads", "warmup", "rounds",
                                                        "steps", "quick", "same_optimizer")},
            "optimizers": {kind: optimizer_for(kind, args) for kind in KINDS},
            "sampler_steps": SAMPLER_STEPS, "matmul_peak_flops_per_s": peak,
            "cases": [{"name": case.name, "backbone": case.backbone, "preset": case.preset,
                       "options": {**PRESETS[case.backbone][case.preset], **dict(case.options)},
                       "image_shape": [case.channels, case.size, case.size], "num_classes": case.num_classes,
                       "batch": case.batch, "sample_batch": case.sample_batch, "results": result,
                       "plume_over_diffusers": ratios(result)} for case, result in rows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="bf16: autocast (default on CUDA), fp32 on CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, help="training steps and sampling evaluations per round (default: 5 on "
                        "CPU, 20 on CUDA)")
    parser.add_argument("--same-optimizer", action="store_true",
                        help="both models take foreach AdamW (default: each library's training default, Plume's "
                             "fused AdamW and diffusers' torch.optim.AdamW defaults)")
    parser.add_argument("--backbones", nargs="+", choices=("unet", "dit"), default=["unet", "dit"])
    parser.add_argument("--mfu", action=argparse.BooleanOptionalAction, default=None,
                        help="measure the matmul peak and report DiT MFU (default: on CUDA only)")
    parser.add_argument("--quick", action="store_true", help="smoke run: one warm-up step, 2 rounds of 2 steps")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=None,
                        help="write docs/throughput.md and .json (throughput-cuda.* on CUDA; default: on unless --quick)")
    args = parser.parse_args()
    device = torch.device(args.device)
    args.steps = args.steps or (20 if device.type == "cuda" else 5)
    if args.quick:
        args.warmup, args.rounds, args.steps = 1, 2, 2
    args.precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    args.docs = not args.quick if args.docs is None else args.docs
    torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    machine = describe_machine(device, args.threads)
    print(f"{machine}; precision {args.precision}{'; torch.compile' if args.compile else ''}")
    peak = None
    if args.mfu if args.mfu is not None else device.type == "cuda":
        dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
        peak = matmul_peak(device, dtype, *((8192, 20) if device.type == "cuda" else (1024, 4)))
        print(f"measured {dtype} matmul peak: {peak / 1e12:.4g} TFLOP/s")
    rows = []
    for case in CUDA_CASES if device.type == "cuda" else CPU_CASES:
        if case.backbone not in args.backbones:
            continue
        print(f"{case.name}, batch {case.batch}, sampling batch {case.sample_batch}: "
              f"{PRESETS[case.backbone][case.preset]} {dict(case.options)}")
        rows.append((case, measure(case, args, peak, print)))
    text = report(rows, args, machine, peak)
    print(text)
    if args.docs:
        stem = "throughput" if device.type == "cpu" else f"throughput-{device.type}"
        for name, content in ((f"{stem}.md", text), (f"{stem}.json", json.dumps(record(rows, args, machine, peak),
                                                                               indent=1) + "\n")):
            path = os.path.join(ROOT, "docs", name)
            with open(path, "w") as f:
                f.write(content)
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
