"""Training throughput of Plume's U-Net against diffusers' UNet2DModel of the same size, in one run.

What it measures. For each configuration, Plume's `UNet` (plume.backbones.backbone("unet", ...)) and the
diffusers `UNet2DModel` built to match it by `diffusers_twin`: the same block_out_channels (Plume's channels),
layers_per_block (blocks_per_level), AttnDownBlock2D / AttnUpBlock2D at the same levels, attention_head_dim =
head_channels (channels per head), norm_num_groups, a middle attention block, and scale-shift conditioning of
the residual blocks (resnet_time_scale_shift="scale_shift", which Plume's ADM-style blocks use). Parameter
counts of both are printed (they differ by the noise-embedding input width and the affine terms of one
GroupNorm per block, under 1 %). Each runs in two memory formats: channels_last, as Plume's trainer keeps images
and conv weights (TrainConfig.channels_last), and contiguous, as diffusers' example trains. One training step is
forward, MSE loss against a fixed random target, backward, and an AdamW step (foreach). After warm-up steps,
timing rounds go through the four contenders, in reversed order every other round, so that drift in the
machine's speed hits all alike; each round times `--steps` consecutive steps, and the median step time over
rounds gives images/s.

Memory. CUDA: the model's weights and optimizer state plus the growth of torch.cuda.max_memory_allocated over
two steps (gradients, activations, workspace; other resident models and the allocator's cache do not count).
CPU, where the process's resident size mostly shows the allocator and the libraries: the bytes a step must hold
at its peak, counted exactly, i.e. weights, gradients and AdamW's two moments plus every tensor autograd saves
for the backward pass.

Run from the repository root (needs diffusers):
  python bench/unet_throughput.py                       # CPU, writes docs/unet_throughput.md
  python bench/unet_throughput.py --device cuda --precision bf16
  python bench/unet_throughput.py --quick --no-docs     # smoke run
bench/throughput.py builds on this file's pieces (twin, Trainee, memory count) to time training and sampling of
the U-Net and the DiT side by side with diffusers.
References: Ho et al. 2020 (DDPM U-Net); Dhariwal & Nichol 2021 (ADM: scale-shift norm, attention heads).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from plume.backbones import PRESETS, backbone  # noqa: E402


@dataclass(frozen=True)
class Case:
    """One configuration: a Plume U-Net (preset + overrides) on images (channels, size, size) at a batch size."""

    name: str
    preset: str
    image_channels: int
    size: int
    batch: int
    options: tuple = ()  # extra UNet options as (key, value) pairs


CPU_CASES = (
    Case("digits 8x8x1, tiny preset", "tiny", 1, 8, 128),
    Case("32x32x3, small preset (64,128,128), attention at level 1", "small", 3, 32, 32),
)
CUDA_CASES = CPU_CASES[:1] + (
    Case("32x32x3, small preset (64,128,128), attention at level 1", "small", 3, 32, 128),
    Case("32x32x3, base preset (DDPM CIFAR-10 size)", "base", 3, 32, 128),
)


@dataclass(frozen=True)
class Contender:
    """A library's U-Net in a memory format; `default` marks how that library's own trainer runs it."""

    kind: str  # "plume" or "diffusers"
    channels_last: bool
    default: bool

    @property
    def label(self) -> str:
        return f"{self.kind} {'channels_last' if self.channels_last else 'contiguous'}"


# Plume's trainer keeps images and conv weights in channels_last (TrainConfig.channels_last); diffusers' example
# trains contiguous tensors. The other two rows show each model in the other format.
CONTENDERS = (Contender("plume", True, True), Contender("diffusers", False, True),
              Contender("plume", False, False), Contender("diffusers", True, False))


def diffusers_twin(options: dict[str, Any], sample_size: int):
    """The diffusers UNet2DModel with the widths, depth, attention levels, heads and norm groups of a Plume UNet
    whose options() are `options`."""
    from diffusers import UNet2DModel

    levels, attention = len(options["channels"]), set(options["attention_levels"])
    down = tuple("AttnDownBlock2D" if level in attention else "DownBlock2D" for level in range(levels))
    up = tuple("AttnUpBlock2D" if level in attention else "UpBlock2D" for level in reversed(range(levels)))
    return UNet2DModel(sample_size=sample_size, in_channels=options["in_channels"], out_channels=options["out_channels"],
                       block_out_channels=tuple(options["channels"]), layers_per_block=options["blocks_per_level"],
                       down_block_types=down, up_block_types=up, attention_head_dim=options["head_channels"],
                       norm_num_groups=options["norm_groups"], add_attention=options["mid_attention"],
                       dropout=options["dropout"], resnet_time_scale_shift="scale_shift")


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def random_batch(kind: str, shape: tuple, device: torch.device, memory_format: torch.memory_format, seed: int = 1,
                 num_classes: Optional[int] = None) -> tuple:
    """One fixed random batch (x, target, noise level, labels or None), the noise level in `kind`'s convention."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(device, memory_format=memory_format)  # (B, C, H, W)
    target = torch.randn(shape, generator=g).to(device, memory_format=memory_format)
    # Plume's backbone takes c_noise = ln(sigma) / 4; diffusers' a DDPM timestep in [0, 1000).
    level = torch.randn(shape[0], generator=g) if kind == "plume" else torch.rand(shape[0], generator=g) * 999
    labels = None if num_classes is None else torch.randint(num_classes, (shape[0],), generator=g).to(device)
    return x, target, level.to(device), labels


class Trainee:
    """A model (already on its device and in its memory format), its AdamW optimizer and one fixed batch from
    `random_batch`; `step()` runs one training step. `compile_model` wraps the model in torch.compile; `net` stays
    the eager module (parameters, memory and FLOP counts)."""

    def __init__(self, kind: str, net: torch.nn.Module, batch: tuple, device: torch.device, precision: str,
                 compile_model: bool = False, optimizer: str = "foreach"):
        self.kind, self.device, self.precision = kind, device, precision
        self.net = net.train()
        self.model = torch.compile(net) if compile_model else net
        self.optimizer = make_optimizer(optimizer, self.net, device)
        self.x, self.target, self.level, self.labels = batch

    def call(self, model: Callable, x: torch.Tensor, level: torch.Tensor,
             labels: Optional[torch.Tensor]) -> torch.Tensor:
        """model(x, level, labels) as a tensor: Plume's backbones return it, diffusers' models wrap it in `.sample`."""
        out = model(x, level, labels)  # Plume: cond; UNet2DModel and DiTTransformer2DModel: class_labels
        return out if self.kind == "plume" else out.sample

    def forward(self) -> torch.Tensor:
        return self.call(self.model, self.x, self.level, self.labels)

    def step(self) -> None:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            loss = F.mse_loss(self.forward().float(), self.target)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


OPTIMIZERS = ("foreach", "plume", "torch-default")


def make_optimizer(name: str, net: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """AdamW at lr 1e-4 in one of three kernels: "foreach"; "plume", Plume's trainer's (plume.train.optimizer.adamw:
    fused on CPU and CUDA); "torch-default", torch.optim.AdamW's own choice, as diffusers' training examples build it
    (foreach for CUDA parameters, a per-tensor loop for CPU ones)."""
    if name == "plume":
        from plume.train.optimizer import adamw
        return adamw(net.parameters(), 1e-4, device=device)
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return torch.optim.AdamW(net.parameters(), lr=1e-4, **({"foreach": True} if name == "foreach" else {}))


def unet_trainee(kind: str, case: Case, device: torch.device, precision: str, channels_last: bool) -> Trainee:
    """A Trainee of Plume's U-Net for `case` (kind "plume") or of its diffusers twin (kind "diffusers")."""
    torch.manual_seed(0)
    plume_net = backbone("unet", preset=case.preset, in_channels=case.image_channels, **dict(case.options))
    net = plume_net if kind == "plume" else diffusers_twin(plume_net.options(), case.size)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    batch = random_batch(kind, (case.batch, case.image_channels, case.size, case.size), device, memory_format)
    return Trainee(kind, net.to(device, memory_format=memory_format), batch, device, precision)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(trainee: Trainee, steps: int) -> float:
    """Seconds per step over `steps` consecutive steps."""
    synchronize(trainee.device)
    began = time.perf_counter()
    for _ in range(steps):
        trainee.step()
    synchronize(trainee.device)
    return (time.perf_counter() - began) / steps


def measure_speed(case: Case, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """Median seconds per step of every contender over interleaved rounds, and its training memory."""
    device = torch.device(args.device)
    trainees = {c: unet_trainee(c.kind, case, device, args.precision, c.channels_last) for c in CONTENDERS}
    for trainee in trainees.values():
        timed(trainee, args.warmup)
    times: dict[Contender, list[float]] = {c: [] for c in trainees}
    for r in range(args.rounds):
        order = list(trainees) if r % 2 == 0 else list(reversed(trainees))
        for contender in order:
            times[contender].append(timed(trainees[contender], args.steps))
    result = {c: {"params": parameter_count(t.net), "seconds_per_step": statistics.median(times[c]),
                  "spread": (min(times[c]), max(times[c])), "memory_mib": training_memory_mib(t)}
              for c, t in trainees.items()}
    for c, r in result.items():
        log(f"  {c.label:24s} {r['params']:>11,} params  {1000 * r['seconds_per_step']:8.1f} ms/step "
            f"(rounds {1000 * r['spread'][0]:.1f}..{1000 * r['spread'][1]:.1f})  {r['memory_mib']:.0f} MiB")
    return result


def training_memory_mib(trainee: Trainee) -> float:
    """Memory of one training step in MiB: weights, gradients and AdamW's two moments plus what the step
    allocates on top. CUDA: this model's weights and optimizer state plus the growth of
    torch.cuda.max_memory_allocated over two steps above what was allocated before them (so other models resident
    in the process do not count). CPU: counted exactly, 4 x the parameter bytes plus every tensor autograd saves
    for the backward pass (unique storages, recorded by a saved-tensors hook during the forward)."""
    if trainee.device.type == "cuda":
        timed(trainee, 1)  # the optimizer state exists from here on
        before = torch.cuda.memory_allocated(trainee.device)
        torch.cuda.reset_peak_memory_stats(trainee.device)
        timed(trainee, 2)
        state = list(trainee.net.parameters()) + [t for s in trainee.optimizer.state.values() for t in s.values()
                                                  if torch.is_tensor(t)]
        own = sum(t.numel() * t.element_size() for t in state)
        return (torch.cuda.max_memory_allocated(trainee.device) - before + own) / 2**20
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    bf16 = torch.autocast("cpu", dtype=torch.bfloat16, enabled=trainee.precision == "bf16")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), bf16:
        out = trainee.call(trainee.net, trainee.x, trainee.level, trainee.labels)  # eager, even under --compile
        loss = F.mse_loss(out.float(), trainee.target)
    loss.backward()
    trainee.optimizer.zero_grad(set_to_none=True)
    state = 4 * sum(p.numel() * p.element_size() for p in trainee.net.parameters())
    return (state + sum(storages.values())) / 2**20


def describe_machine(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} threads, torch {torch.__version__}"


def report(rows: list[tuple[Case, dict[Contender, Any]]], args: argparse.Namespace, machine: str) -> str:
    import diffusers

    memory = "peak CUDA memory (MiB)" if args.device.startswith("cuda") else "training memory (MiB)"
    lines = ["| configuration | batch | model, memory format | params | images/s | speed vs diffusers default | "
             f"{memory} |", "|---|---|---|---|---|---|---|"]
    for case, result in rows:
        baseline = next(r for c, r in result.items() if c.kind == "diffusers" and c.default)
        for c, r in result.items():
            name = f"**{c.label} (its trainer's default)**" if c.default else c.label
            lines.append(f"| {case.name} | {case.batch} | {name} | {r['params']:,} | "
                         f"{case.batch / r['seconds_per_step']:.4g} | "
                         f"{baseline['seconds_per_step'] / r['seconds_per_step']:.2f} | {r['memory_mib']:.0f} |")
    command = "python bench/unet_throughput.py " + " ".join(sys.argv[1:])
    return "\n".join([
        "# U-Net training throughput: Plume vs diffusers", "",
        f"`{command.strip()}` on {datetime.date.today().isoformat()}: {machine}, diffusers {diffusers.__version__}, "
        f"precision {args.precision}.", "",
        *lines, "",
        f"One step = forward, MSE loss, backward, AdamW (foreach). {args.warmup} warm-up steps, then {args.rounds} "
        f"rounds of {args.steps} steps per model, the order reversed every other round; images/s from the median "
        "round. The diffusers model is `diffusers_twin` of Plume's options (same widths, blocks per level, attention "
        "levels, head width, norm groups, mid attention, scale-shift conditioning). Plume's trainer keeps images and "
        "conv weights in channels_last (`TrainConfig.channels_last`, on by default); diffusers' example trains "
        "contiguous tensors; the other rows put each model in the other format. Memory: on CUDA the model's "
        "weights and AdamW state plus the growth of `torch.cuda.max_memory_allocated` over two steps; on CPU "
        "weights, gradients and AdamW moments plus the tensors autograd saves for backward, counted exactly (see "
        "`training_memory_mib`).", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5, help="steps per timing round")
    parser.add_argument("--quick", action="store_true", help="one warm-up step, 2 rounds of 2 steps")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=True,
                        help="write docs/unet_throughput.md (default on)")
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.rounds, args.steps = 1, 2, 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine = describe_machine(device, args.threads)
    print(f"{machine}; precision {args.precision}")
    rows = []
    for case in CUDA_CASES if device.type == "cuda" else CPU_CASES:
        print(f"{case.name}, batch {case.batch} ({PRESETS['unet'][case.preset]})")
        result = measure_speed(case, args, print)
        rows.append((case, result))
    text = report(rows, args, machine)
    print(text)
    if args.docs:
        path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "unet_throughput.md")
        with open(path, "w") as f:
            f.write(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
