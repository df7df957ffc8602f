"""Sampler accuracy versus model evaluations: every Plume sampler against every comparable diffusers scheduler.

What it measures. Two Gaussian mixtures with a closed-form denoiser E[x0 | x_t] (so the model is exact and
every error is the sampler's): the 2-D ring of 8 modes and a random 8-component mixture in 64-D. Both
libraries drive the same denoiser on DDPM's discrete linear table (`plume.process("ddpm")`), diffusers
through `plume.compat.diffusers_bridge`. Every deterministic sampler starts from the same x_T ~ N(0, I)
(per-sample seeds); model calls are counted by a wrapper around the denoiser, never assumed.
At NFE 5, 10, 20 and 50 (the largest step count whose evaluations fit; the counted NFE is reported):
  rmse  endpoint RMSE per coordinate against the probability-flow ODE solution from the same x_T
        (Plume's adaptive "ode" sampler at rtol = atol = 1e-9, checked against 1e-7); deterministic only.
  logp  |mean log p(samples) - E log p(exact samples)| under the true mixture (E from a large exact set).
  tv    total variation between the samples' mode histogram (most responsible component) and the weights.
Floors: the same distances for an independent exact sample set of the same size (and the spread of TV over
such sets), printed next to the results. Every grid (Plume) or scheduler option (diffusers) is screened on the
first 1000 samples; each sampler's best option (geometric mean over the NFEs of rmse, or of logp for stochastic
samplers; the same rule for both libraries), and Plume's default grid, then run on all samples (20000 in 2-D,
5000 in 64-D). The tables, a summary of the best of each library per NFE and the goal check (Plume's best at
least as accurate as diffusers' best at every NFE, half the error at NFE 10) are printed as markdown.

Run from the repository root (about 5 minutes on 2 CPU cores; needs diffusers, scipy and matplotlib):
  python bench/samplers.py            # full run, writes docs/samplers.md and docs/samplers.png
  python bench/samplers.py --quick    # smoke run with few samples (about 2 minutes), writes nothing unless --docs
References: Karras et al. 2022 (EDM); Lu et al. 2022 (DPM-Solver++); Song et al. 2021 (DDIM, score SDE).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import plume  # noqa: E402
from plume.compat.diffusers_bridge import diffusers_sample, eps_model  # noqa: E402
from plume.points import GaussianMixture, random_mixture, ring_mixture  # noqa: E402

NFES = (5, 10, 20, 50)
METRICS = ("rmse", "logp", "tv")
STOCHASTIC_PLUME = ("ddpm", "euler-maruyama", "pc")
ODE_TOLERANCES = (3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
TABLE = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", prediction_type="epsilon")


# --- the problem: mixture, fast exact denoiser, exact statistics -------------------------------------------
class FastMixture:
    """The mixture's log-densities and E[x0 | x_t] through matrix products; checked against GaussianMixture."""

    def __init__(self, mix: GaussianMixture):
        self.mix, self.means, self.var0 = mix, mix.means, mix.stds**2  # (K, D), (K,)
        self.log_w, self.mean_sq = torch.log(mix.weights), (mix.means**2).sum(1)  # (K,), (K,)

    def _logits(self, x: torch.Tensor, a: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """log pi_k + log N(x; a mu_k, var_k I): x (B, D), a (B, 1), var (B, K) -> (B, K)."""
        sq = (x**2).sum(1, keepdim=True) - 2 * a * (x @ self.means.T) + a**2 * self.mean_sq  # (B, K)
        return self.log_w - 0.5 * sq / var - 0.5 * x.shape[1] * torch.log(2 * math.pi * var)

    def component_logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        return self._logits(x, torch.ones(len(x), 1, dtype=x.dtype), self.var0.expand(len(x), -1))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.component_logits(x), 1)

    def denoiser(self, process) -> Callable:
        def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            t64 = torch.as_tensor(t, dtype=torch.float64).reshape(-1, 1).expand(len(x_t), 1)
            x, a, s = x_t.to(torch.float64), process.alpha(t64), process.sigma(t64)  # (B, D), (B, 1), (B, 1)
            var = a**2 * self.var0 + s**2  # (B, K)
            resp = torch.softmax(self._logits(x, a, var), 1)
            gain = a * self.var0 / var  # E[x0 | x_t, k] = mu_k + gain_k (x - a mu_k)
            out = (resp * (1 - a * gain)) @ self.means + (resp * gain).sum(1, keepdim=True) * x
            return out.to(x_t.dtype)

        return fn

    def check(self, process) -> None:
        """The fast formulas agree with the library's GaussianMixture to 1e-9."""
        g = torch.Generator().manual_seed(7)
        x0, _ = self.mix.sample(256, g)
        t = torch.randint(0, 1000, (256,), generator=g).to(torch.float64)
        x_t = process.add_noise(x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
        pairs = [(self.denoiser(process)(x_t, t), self.mix.denoiser(process)(x_t, t)),
                 (self.log_prob(x0), self.mix.log_prob(x0)),
                 (torch.softmax(self.component_logits(x0), 1), self.mix.responsibilities(x0))]
        for fast, slow in pairs:
            assert torch.allclose(fast, slow, atol=1e-9, rtol=1e-9), float((fast - slow).abs().max())


@dataclass
class Problem:
    name: str
    mix: GaussianMixture
    n: int
    fast: FastMixture = None
    z: torch.Tensor = None  # (n, D) x_T, shared by every sampler
    exact_logp: float = 0.0
    reference: torch.Tensor = None
    floors: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return self.mix.dim

    def subset(self, n: int) -> "Problem":
        """The first n samples (same seeds, same starting noise, same reference)."""
        return dataclasses.replace(self, n=n, z=self.z[:n], reference=self.reference[:n])


class Counter:
    """Counts calls of the model function: the NFE every table reports."""

    def __init__(self, fn: Callable):
        self.fn, self.calls = fn, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fn(x, t)


def mode_tv(fast: FastMixture, x: torch.Tensor) -> float:
    """TV between the histogram of most-responsible components and the true weights."""
    labels = fast.component_logits(x).argmax(1)
    hist = torch.bincount(labels, minlength=len(fast.log_w)).to(torch.float64) / len(x)
    return 0.5 * float((hist - fast.mix.weights).abs().sum())


def metrics(problem: Problem, x: torch.Tensor, deterministic: bool) -> dict:
    x = x.to(torch.float64)
    if not bool(torch.isfinite(x).all()):  # diverged: shown as "non-finite", never chosen
        return {m: float("inf") if deterministic or m != "rmse" else float("nan") for m in METRICS}
    rmse = float((x - problem.reference).pow(2).mean().sqrt()) if deterministic else float("nan")
    logp = abs(float(problem.fast.log_prob(x).mean()) - problem.exact_logp)
    return {"rmse": rmse, "logp": logp, "tv": mode_tv(problem.fast, x)}


def prepare(problem: Problem, process, n_exact: int, log: Callable) -> None:
    """Exact statistics, floors, shared starting noise and the reference ODE solution."""
    fast = problem.fast = FastMixture(problem.mix)
    fast.check(process)
    g = torch.Generator().manual_seed(1234)
    chunks = [fast.log_prob(problem.mix.sample(min(50_000, n_exact - i), g)[0]) for i in range(0, n_exact, 50_000)]
    problem.exact_logp = float(torch.cat(chunks).mean())
    logps = fast.log_prob(problem.mix.sample(problem.n, g)[0])  # an independent exact set of the same size
    tvs = torch.tensor([mode_tv(fast, problem.mix.sample(problem.n, g)[0]) for _ in range(40)])
    problem.floors = {"logp": abs(float(logps.mean()) - problem.exact_logp), "logp_se": float(logps.std()) / math.sqrt(problem.n),
                      "tv": float(tvs[0]), "tv_mean": float(tvs.mean()), "tv_95": float(tvs.quantile(0.95))}
    problem.z = plume.SeedNoise(range(problem.n)).randn((problem.dim,), torch.float64)  # x_T, row k from seed k
    refs = {}
    for tol in (1e-7, 1e-9):
        counter, start = Counter(fast.denoiser(process)), time.time()
        refs[tol] = plume.sample(counter, process, (problem.n, problem.dim), sampler="ode", x_start=problem.z,
                                 dtype=torch.float64, rtol=tol, atol=tol)
        log(f"  reference ODE rtol=atol={tol:g}: {counter.calls} NFE, {time.time() - start:.1f}s")
    problem.reference = refs[1e-9]
    problem.floors["rmse"] = float((refs[1e-7] - refs[1e-9]).pow(2).mean().sqrt())
    problem.floors["ref"] = metrics(problem, problem.reference, True)


# --- configurations and runs ----------------------------------------------------------------------------------
@dataclass
class Config:
    """One sampler with one option set; `draw(problem, target, model)` returns x0 for an NFE budget."""

    library: str
    sampler: str
    option: str
    deterministic: bool
    default: bool
    draw: Callable


@dataclass
class Run:
    library: str
    sampler: str
    config: str
    deterministic: bool
    default: bool
    target: int
    nfe: int
    values: dict


def plume_steps(name: str, nfe: int) -> int:
    """Steps whose evaluations fit in nfe: heun uses 2N - 1 (the last step is Euler), others N * per-step."""
    return plume.samplers.SAMPLERS[name].steps_for_evaluations(nfe)


def plume_configs(process) -> list[Config]:
    """Every fixed-grid Plume sampler on every named grid; sampler noise has seeds independent of x_T's."""
    configs = []
    for name, spec in plume.samplers.SAMPLERS.items():
        if name == "ode":
            continue
        for grid in plume.GRIDS:
            def draw(problem, target, model, name=name, grid=grid):
                return plume.sample(model, process, (problem.n, problem.dim), sampler=name, steps=plume_steps(name, target),
                                    grid=grid, seeds=[10**6 + k for k in range(problem.n)], x_start=problem.z,
                                    dtype=torch.float64)
            configs.append(Config("plume", name, grid, name not in STOCHASTIC_PLUME, grid == spec.default_grid, draw))
    return configs


FITTED_SAMPLERS = {"dpm++2m": ("dpm++2m", {}), "dpm++3m": ("dpm++3m", {}), "adams": ("adams", {"order": 3}),
                   "adams-4": ("adams", {"order": 4})}
FIT_PILOT, FIT_ITERATIONS, FIT_SEED = 256, 300, 10**7
_FITTED: dict = {}


def fitted_sigmas(problem: Problem, process, label: str, target: int) -> torch.Tensor:
    """plume.optimize_grid on pilot draws whose seeds (10^7 + k) none of the evaluated samples use; cached."""
    key, (name, options) = (problem.name, label, target), FITTED_SAMPLERS[label]
    if key not in _FITTED:
        start = time.time()
        grid = plume.optimize_grid(problem.fast.denoiser(process), process, (FIT_PILOT, problem.dim), sampler=name,
                                   steps=plume_steps(name, target), pilot_seed=FIT_SEED, iterations=FIT_ITERATIONS,
                                   **options)
        _FITTED[key] = grid.sigmas
        print(f"  fitted {name} grid for NFE {target} in {time.time() - start:.1f}s", file=sys.stderr, flush=True)
    return _FITTED[key]


def plume_fitted_configs(process) -> list[Config]:
    """Plume's multistep samplers on grids fitted to the model (one-time cost, logged; pilots disjoint from x_T)."""
    configs = []
    for label, (name, options) in FITTED_SAMPLERS.items():
        def draw(problem, target, model, label=label, name=name, options=options):
            return plume.sample(model, process, (problem.n, problem.dim), sampler=name, x_start=problem.z,
                                sigmas=fitted_sigmas(problem, process, label, target), dtype=torch.float64, **options)
        configs.append(Config("plume", label, "fitted", True, False, draw))
    return configs


def run_plume_ode(problem: Problem, process, log: Callable) -> list[Run]:
    """The adaptive ODE sampler at a ladder of tolerances; each NFE gets the tightest one that fits."""
    ladder = []
    for tol in ODE_TOLERANCES:
        counter = Counter(problem.fast.denoiser(process))
        x = plume.sample(counter, process, (problem.n, problem.dim), sampler="ode", x_start=problem.z,
                         dtype=torch.float64, rtol=tol, atol=tol)
        ladder.append((tol, counter.calls, metrics(problem, x, True)))
        if counter.calls > max(NFES):
            break
    log("  plume ode, tolerance -> NFE: " + ", ".join(f"{tol:g} -> {nfe}" for tol, nfe, _ in ladder))
    runs = []
    for target in NFES:
        fits = [(tol, nfe, values) for tol, nfe, values in ladder if nfe <= target]
        if fits:
            tol, nfe, values = fits[-1]
            runs.append(Run("plume", "ode", f"rtol=atol={tol:g}", True, True, target, nfe, values))
    return runs


def diffusers_options() -> list[tuple[str, str, str, dict, bool]]:
    """(sampler, option label, scheduler class, options, deterministic): each scheduler with its sensible options."""
    spacings = {s: {"timestep_spacing": s} for s in ("leading", "linspace", "trailing")}
    sigmas = {"karras": {"use_karras_sigmas": True}, "exponential": {"use_exponential_sigmas": True},
              "beta": {"use_beta_sigmas": True}}
    options = []

    def add(sampler, cls, base, deterministic=True, extra=None, labels=None):
        for label, opt in (labels or {**spacings, **(extra or {})}).items():
            options.append((sampler, label, cls, {**base, **opt}, deterministic))

    add("DDIM", "DDIMScheduler", {"clip_sample": False, "thresholding": False, "set_alpha_to_one": True})
    add("DDPM", "DDPMScheduler", {"clip_sample": False, "thresholding": False}, deterministic=False)
    add("Euler", "EulerDiscreteScheduler", {"final_sigmas_type": "zero"},
        extra={**sigmas, "log_linear": {"interpolation_type": "log_linear"}})
    add("EulerAncestral", "EulerAncestralDiscreteScheduler", {}, deterministic=False)
    add("Heun", "HeunDiscreteScheduler", {"clip_sample": False}, extra=sigmas)
    add("LMS", "LMSDiscreteScheduler", {}, extra=sigmas)
    add("KDPM2", "KDPM2DiscreteScheduler", {}, extra=sigmas)
    add("KDPM2Ancestral", "KDPM2AncestralDiscreteScheduler", {}, deterministic=False, extra=sigmas)
    dpm = {"thresholding": False, "final_sigmas_type": "zero", "algorithm_type": "dpmsolver++"}
    plus = {f"++ {label}": opt for label, opt in {**spacings, **sigmas, "lu_lambdas": {"use_lu_lambdas": True}}.items()}
    eps = {f"eps {label}": {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min", **opt}  # Lu et al. 2022a; no "zero" 
           for label, opt in {"linspace": {}, "karras": sigmas["karras"], "exponential": sigmas["exponential"]}.items()}
    for order in (2, 3):
        add(f"DPM-Solver-{order}M", "DPMSolverMultistepScheduler", {**dpm, "solver_order": order}, labels={**plus, **eps})
        single = {k: v for k, v in {**plus, **eps}.items() if "timestep_spacing" not in v and "use_lu_lambdas" not in v}
        add(f"DPM-Solver-{order}S", "DPMSolverSinglestepScheduler", {**dpm, "solver_order": order},
            labels={"++ default": {}, **single})
        for kind in ("bh1", "bh2"):
            # bh1's last step to sigma = 0 is 0 * inf = NaN in diffusers 0.42, so it ends at sigma_min
            uni = {"thresholding": False, "final_sigmas_type": "zero" if kind == "bh2" else "sigma_min", "solver_order": order,
                   "solver_type": kind}
            add(f"UniPC-{order}", "UniPCMultistepScheduler", uni,
                labels={f"{kind} {label}": opt for label, opt in {**spacings, **sigmas}.items()})
        add(f"DEIS-{order}", "DEISMultistepScheduler", {"thresholding": False, "solver_order": order}, extra=sigmas)
    add("DPM-Solver++2M-SDE", "DPMSolverMultistepScheduler", {**dpm, "algorithm_type": "sde-dpmsolver++"}, deterministic=False,
        extra=sigmas)
    return options


class _DropGenerator:
    """A scheduler whose step() takes no generator, seen through diffusers_sample's call."""

    def __init__(self, scheduler):
        self._scheduler = scheduler

    def __getattr__(self, name):
        return getattr(self._scheduler, name)

    def step(self, *args, generator=None, **kwargs):
        return self._scheduler.step(*args, **kwargs)


_STEPS_CACHE: dict = {}


def diffusers_steps(scheduler, target: int, key: str) -> int:
    """The most steps whose timesteps (one model call each) fit in `target`: bisection, cached per option set."""
    if (key, target) not in _STEPS_CACHE:
        def fits(steps: int) -> bool:
            try:
                scheduler.set_timesteps(steps)
            except Exception:  # noqa: BLE001 - some option combinations reject some step counts
                return False
            return len(scheduler.timesteps) <= target

        low, high = 0, target  # fits(low) (or low = 0), the answer is in [low, high]
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(mid) else (low, mid - 1)
        if low == 0:
            raise ValueError(f"no step count fits {target} evaluations")
        _STEPS_CACHE[key, target] = low
    return _STEPS_CACHE[key, target]


def diffusers_configs(process) -> list[Config]:
    import inspect
    import diffusers

    configs = []
    for sampler, label, cls_name, options, deterministic in diffusers_options():
        def draw(problem, target, model, cls_name=cls_name, options=options):
            scheduler = getattr(diffusers, cls_name)(**TABLE, **options)
            if "generator" not in inspect.signature(scheduler.step).parameters:
                scheduler = _DropGenerator(scheduler)
            steps = diffusers_steps(scheduler, target, f"{cls_name} {options}")
            x, _ = diffusers_sample(scheduler, eps_model(model, process), problem.z.clone(), steps,
                                    generator=torch.Generator().manual_seed(2024))
            return x
        configs.append(Config("diffusers", sampler, label, deterministic, False, draw))
    return configs


def execute(problem: Problem, configs: list[Config], process, log: Callable) -> list[Run]:
    """Every config at every NFE budget; a failure is logged and leaves its cells empty."""
    import warnings

    runs = []
    for config in configs:
        start = time.time()
        for target in NFES:
            counter = Counter(problem.fast.denoiser(process))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    x = config.draw(problem, target, counter)
            except Exception as error:  # noqa: BLE001 - report and go on
                what = f"{config.library} {config.sampler} {config.option} NFE {target}"
                log(f"  FAILED {what}: {type(error).__name__}: {error}"[:160])
                continue
            runs.append(Run(config.library, config.sampler, config.option, config.deterministic, config.default, target,
                            counter.calls, metrics(problem, x, config.deterministic)))
        log(f"  {config.library:9s} {config.sampler:15s} {config.option:16s} {time.time() - start:5.1f}s")
    return runs


def shortlist(chosen: dict, configs: list[Config]) -> list[Config]:
    """Each sampler's chosen option, plus Plume's defaults."""
    return [c for c in configs if chosen.get((c.library, c.sampler)) == c.option or c.default]



# --- selection and tables -----------------------------------------------------------------------------------
def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(max(v, 1e-300)) for v in values) / len(values))


def group(runs: list[Run]) -> dict:
    """{(library, sampler): {option: {target: Run}}}; the "ode" sampler's per-NFE tolerances form one option."""
    groups: dict = {}
    for r in runs:
        option = "adaptive" if r.sampler == "ode" else r.config
        groups.setdefault((r.library, r.sampler), {}).setdefault(option, {})[r.target] = r
    return groups


def choose(runs: list[Run]) -> dict:
    """Each sampler's option: the best geometric mean over the NFEs of rmse (deterministic) or logp (stochastic)."""
    chosen = {}
    for key, options in group(runs).items():
        metric = "rmse" if next(iter(next(iter(options.values())).values())).deterministic else "logp"
        score = {}
        for option, cells in options.items():
            values = [r.values[metric] for r in cells.values()]
            if len(cells) == len(NFES) and not any(math.isnan(v) for v in values):
                score[option] = geometric_mean(values)
        chosen[key] = min(score, key=score.get) if score else next(iter(options))
    return chosen


def best_rows(runs: list[Run], chosen: dict) -> list[dict]:
    """One row per sampler at its chosen option, plus Plume's default grid where that is another."""
    rows = []
    for (library, sampler), options in group(runs).items():
        best = chosen.get((library, sampler), "adaptive")
        default = next((o for o, cells in options.items() if any(r.default for r in cells.values())), None)
        for option in [best] + ([default] if default not in (None, best) else []):
            cells = options[option]
            label = option if sampler != "ode" else "tol " + "/".join(r.config.split("=")[-1] for r in cells.values())
            if library == "plume" and default not in (None, best):
                label += " (default)" if option == default else " (best)"
            elif library == "plume" and sampler != "ode":
                label += " (default, best)"
            rows.append({"library": library, "sampler": sampler, "option": option, "config": label, "cells": cells,
                         "best": option == best})
    return rows


def fmt(value: float) -> str:
    if value is None or math.isnan(value):
        return "—"
    return "non-finite" if math.isinf(value) else f"{value:.2e}"


def cell(runs: dict[int, Run], target: int, metric: str) -> str:
    r = runs.get(target)
    if r is None:
        return "—"
    return fmt(r.values[metric]) + ("" if r.nfe == target else f" ({r.nfe})")


def metric_table(problem: Problem, rows: list[dict], metric: str) -> str:
    head = "| sampler | library | grid / option | " + " | ".join(f"NFE {n}" for n in NFES) + " |"
    lines = [head, "|" + "---|" * (3 + len(NFES))]
    floor = problem.floors
    if metric == "rmse":
        lines.append("| reference ODE 1e-9 vs 1e-7 (floor) | plume | ode | " + " | ".join([fmt(floor["rmse"])] * len(NFES))
                     + " |")
    else:
        lines.append("| exact samples (floor) | — | — | " + " | ".join([fmt(floor[metric])] * len(NFES)) + " |")
        lines.append("| reference ODE | plume | ode 1e-9 | " + " | ".join([fmt(floor["ref"][metric])] * len(NFES)) + " |")
    for row in rows:
        cells = " | ".join(cell(row["cells"], n, metric) for n in NFES)
        if any(not math.isnan(r.values[metric]) for r in row["cells"].values()):
            lines.append(f"| {row['sampler']} | {row['library']} | {row['config']} | {cells} |")
    return "\n".join(lines)


def noise_level(problem: Problem, metric: str) -> float:
    """Below this a distance is within the noise of exact sampling (2 standard errors; 95th percentile of exact-set TV)."""
    return {"rmse": problem.floors["rmse"], "logp": 2 * problem.floors["logp_se"], "tv": problem.floors["tv_95"]}[metric]


def _name(row: Optional[dict], target: int) -> str:
    if row is None:
        return "—"
    run = row["cells"][target]
    option = run.config if row["sampler"] == "ode" else row["option"]
    return f"{row['sampler']} [{option}]" + ("" if run.nfe == target else f" NFE {run.nfe}")


def summary(problems: list[Problem], all_rows: dict) -> tuple[str, list[str]]:
    """Per problem, metric and NFE: the best chosen-option row of each library, their ratio and the goal."""
    lines = ["| problem | metric | NFE | Plume best | error | diffusers best | error | ratio | goal | note |",
             "|" + "---|" * 10]
    verdicts = []
    for problem in problems:
        for metric in METRICS:
            rows = [r for r in all_rows[problem.name] if r["best"]]
            for target in NFES:
                best = {}
                for library in ("plume", "diffusers"):
                    cands = [(r["cells"][target].values[metric], r) for r in rows if r["library"] == library
                             and target in r["cells"] and not math.isnan(r["cells"][target].values[metric])]
                    best[library] = min(cands, key=lambda c: c[0]) if cands else (float("nan"), None)
                (pv, pr), (dv, dr) = best["plume"], best["diffusers"]
                ratio = pv / dv if dv > 0 else float("nan")
                need = 0.5 if target == 10 else 1.0
                ok = ratio <= need
                note = "both within noise" if max(pv, dv) < noise_level(problem, metric) else ""
                lines.append(f"| {problem.name} | {metric} | {target} | {_name(pr, target)} | {fmt(pv)} | {_name(dr, target)} | "
                             f"{fmt(dv)} | "
                             f"{ratio:.2f} | {'yes' if ok else 'NO'} (<= {need}) | {note} |")
                if not ok:
                    verdicts.append(f"{problem.name} {metric} NFE {target}: ratio {ratio:.2f} > {need}"
                                    + (f" ({note})" if note else ""))
    return "\n".join(lines), verdicts


def all_configs_table(runs: list[Run]) -> str:
    head = "| library | sampler | option | " + " | ".join(f"{m}@{n}" for m in METRICS for n in NFES) + " |"
    lines = [head, "|" + "---|" * (3 + len(METRICS) * len(NFES))]
    keys = dict.fromkeys((r.library, r.sampler, "adaptive" if r.sampler == "ode" else r.config) for r in runs)
    for library, sampler, config in keys:
        cells = {r.target: r for r in runs
                 if (r.library, r.sampler) == (library, sampler) and (sampler == "ode" or r.config == config)}
        values = " | ".join(cell(cells, n, m) for m in METRICS for n in NFES)
        lines.append(f"| {library} | {sampler} | {config} | {values} |")
    return "\n".join(lines)


def plot(problems: list[Problem], all_rows: dict, path: str) -> None:
    """Error vs counted NFE, log-log: one line per sampler at its chosen option; Plume solid, diffusers dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(len(problems), len(METRICS), figsize=(6.5 * len(METRICS), 5 * len(problems)), squeeze=False)
    palette = plt.get_cmap("tab20").colors + plt.get_cmap("tab20b").colors
    keys = dict.fromkeys((r["library"], r["sampler"]) for rows in all_rows.values() for r in rows)
    colors = {key: palette[k % len(palette)] for k, key in enumerate(keys)}
    handles = {}
    for i, problem in enumerate(problems):
        for j, metric in enumerate(METRICS):
            ax = axes[i][j]
            for row in (r for r in all_rows[problem.name] if r["best"]):
                points = sorted((r.nfe, r.values[metric]) for r in row["cells"].values() if 0 < r.values[metric] < math.inf)
                if points:
                    plume_row = row["library"] == "plume"
                    label = f"{row['sampler']} ({row['library']})"
                    (line,) = ax.plot(*zip(*points), "-" if plume_row else "--", marker="o" if plume_row else "s", ms=3,
                                      lw=1.6 if plume_row else 1.1, color=colors[row["library"], row["sampler"]], label=label)
                    handles.setdefault(label, line)
            if metric != "rmse":  # the rmse floor (reference accuracy) is far below every sampler
                ax.axhline(noise_level(problem, metric), color="gray", ls=":", lw=1)
            ax.set(xscale="log", yscale="log", xlabel="NFE (counted)", title=f"{problem.name}: {metric}")
            ax.set_xticks(NFES, [str(n) for n in NFES])
            ax.xaxis.set_minor_formatter(NullFormatter())
    fig.legend(handles.values(), handles.keys(), loc="center right", fontsize=7)
    fig.suptitle("Error vs NFE (Plume solid, diffusers dashed; dotted: exact-sampling noise level)")
    fig.tight_layout(rect=(0, 0, 0.87, 1))
    fig.savefig(path, dpi=100)


# --- main -----------------------------------------------------------------------------------------------------
def build_problems(args) -> list[Problem]:
    return [Problem("2-D ring", ring_mixture(), args.n2d),
            Problem("64-D mixture", random_mixture(64, components=8, spread=0.4, std=0.5, seed=0), args.n64d)]


def describe(problem: Problem) -> str:
    mix = problem.mix
    gaps = torch.cdist(mix.means, mix.means) + torch.eye(len(mix.weights)) * 1e9
    f = problem.floors
    return (f"**{problem.name}**: {len(mix.weights)} components in {mix.dim}-D, std {float(mix.stds[0]):.2f}, closest means "
            f"{float(gaps.min()):.2f} apart, weights {float(mix.weights.min()):.3f}..{float(mix.weights.max()):.3f}; "
            f"{problem.n} samples. Floors: reference ODE 1e-9 vs 1e-7 RMSE {fmt(f['rmse'])}; exact-vs-exact logp gap "
            f"{fmt(f['logp'])} (standard error {fmt(f['logp_se'])}); exact-sample mode TV {fmt(f['tv'])} "
            f"(over 40 exact sets: mean {fmt(f['tv_mean'])}, 95th percentile {fmt(f['tv_95'])}).")


METRIC_TEXT = {
    "rmse": "endpoint RMSE per coordinate vs the reference ODE solution from the same x_T (deterministic samplers)",
    "logp": "|mean log p(samples) - E log p(exact)| under the true mixture",
    "tv": "total variation between the mode histogram and the true weights",
}


def report(problems: list[Problem], runs: dict, screens: dict, args, seconds: float) -> tuple[str, dict]:
    all_rows, sections = {}, []
    for problem in problems:
        sections.append(f"## {problem.name}\n\n{describe(problem)}\n")
        rows = all_rows[problem.name] = best_rows(runs[problem.name], choose(screens[problem.name]))
        for metric in METRICS:
            sections.append(f"### {problem.name}: {metric} ({METRIC_TEXT[metric]})\n\n{metric_table(problem, rows, metric)}\n")
    table, verdicts = summary(problems, all_rows)
    goal = "The goal does NOT hold at:\n" + "\n".join(f"- {v}" for v in verdicts) if verdicts else "The goal holds everywhere."
    appendix = "\n".join(f"<details><summary>{p.name}: every option, first {args.screen} samples</summary>\n\n"
                         f"{all_configs_table(screens[p.name])}\n\n</details>\n" for p in problems)
    header = (f"# Samplers: error versus model evaluations\n\nGenerated by `{' '.join(['python'] + sys.argv)}` on "
              f"{datetime.date.today().isoformat()} (torch {torch.__version__}, diffusers {args.diffusers_version}, "
              f"{torch.get_num_threads()} torch thread(s), {seconds:.0f} s). Do not edit by hand: rerun the script.\n\n{HOW}\n")
    text = (f"{header}\n## Summary: best Plume sampler vs best diffusers scheduler\n\nGoal: ratio <= 1 at every NFE, "
            f"<= 0.5 at NFE 10 (ratio = Plume / diffusers). \"both within noise\": both errors are below the noise level "
            f"(2 standard errors of the mean for logp, the 95th percentile of exact-set TV for tv), so the ratio there is "
            f"noise.\n\n{table}\n\n{goal}\n\n"
            + "\n".join(sections) + f"\n![error vs NFE](samplers.png)\n\n## All options (screening)\n\n{SCREEN}\n\n" + appendix)
    return text, all_rows


HOW = """Both libraries drive the same exact denoiser E[x0 | x_t] of a Gaussian mixture on DDPM's discrete linear
beta table (1000 steps), diffusers through `plume.compat.diffusers_bridge.eps_model`. Every sampler starts from
the same x_T ~ N(0, I) (one seed per sample); NFE is counted by wrapping the model, and a cell shows the counted
NFE in parentheses where it differs from the column's budget (Heun-type samplers use 2N - 1, "pc" 2N; the
adaptive "ode" sampler gets the tightest tolerance of a ladder whose counted NFE fits, "—" where none fits).

Metrics:
- **rmse**: endpoint RMSE per coordinate against the probability-flow ODE solution from the same x_T (Plume's
  adaptive DOPRI5 sampler at rtol = atol = 1e-9; its distance to the 1e-7 solution is the floor). Deterministic
  samplers only.
- **logp**: |mean log p(samples) - E log p(x0)| under the true mixture, E from a large exact sample. The floor is
  the same gap for an independent exact set of the same size; its standard error is also given.
- **tv**: total variation between the histogram of each sample's most responsible component and the true weights.
  The floor is the TV of an exact set of the same size (and its mean and 95th percentile over 40 exact sets).

Deterministic samplers all map the same x_T, so as they converge their logp and tv approach the reference ODE's
values (a row of each table): what is left there is the sampling noise of that one set of x_T, not sampler error.

Each sampler is shown at its best grid (Plume: uniform, trailing, leading, karras, logsnr) or best scheduler
option (diffusers: timestep spacing, karras / exponential / beta / lu-lambda sigmas, solver type), chosen
the same way for both libraries: every option is screened on a subset of the samples (the last section), and the
one with the best geometric mean over the NFEs of rmse (deterministic samplers) or logp (stochastic ones) is run
on all samples, with Plume's default grid as a second row where it is another. diffusers runs with clip_sample
and thresholding off and final_sigmas_type "zero" where it exists, except where diffusers 0.42 refuses it or
returns NaN with it (DPM-Solver in noise prediction, "eps"; UniPC with B(h) = bh1): those end at sigma_min.
Plume's dpm++2m, dpm++3m and adams (orders 3 and 4) also run on "fitted" grids: `plume.optimize_grid` chooses the N noise levels by
differentiating the sampler through them to match the exact ODE on 256 pilot draws (seeds 10^7 + k, never used
by the evaluated samples; 300 Adam steps, a one-time cost per model, sampler and NFE, logged by the script and not
counted in the NFE, as a tuned schedule is not counted either). diffusers has no equivalent option.
The exact denoiser is the mixture's E[x0 | x_t] written with matrix products (checked against
`GaussianMixture.denoiser` to 1e-9 at start-up): same numbers, several times faster in 64-D."""


SCREEN = """Every option of every sampler on the first samples (same x_T, same reference). The rmse column is as
precise here as in the tables above; logp and tv carry more sampling noise at this size."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few samples, writes no docs unless --docs")
    parser.add_argument("--n2d", type=int, default=None, help="samples in 2-D (default 20000, quick 1000)")
    parser.add_argument("--n64d", type=int, default=None, help="samples in 64-D (default 5000, quick 300)")
    parser.add_argument("--screen", type=int, default=None, help="samples for screening options (default 1000, quick 300)")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=None, help="write docs/samplers.md and .png")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these small tensors)")
    args = parser.parse_args()
    args.n2d = args.n2d or (1000 if args.quick else 20_000)
    args.n64d = args.n64d or (300 if args.quick else 5_000)
    args.screen = args.screen or (300 if args.quick else 1_000)
    write = (not args.quick) if args.docs is None else args.docs
    torch.set_num_threads(args.threads)
    import diffusers
    args.diffusers_version = diffusers.__version__
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    start, process, runs, screens = time.time(), plume.process("ddpm"), {}, {}
    problems = build_problems(args)
    configs = plume_configs(process) + plume_fitted_configs(process) + diffusers_configs(process)
    for problem in problems:
        log(f"{problem.name}: {problem.n} samples")
        prepare(problem, process, 20 * problem.n, log)
        log(f"  screening {len(configs)} options on the first {min(args.screen, problem.n)} samples")
        screens[problem.name] = execute(problem.subset(min(args.screen, problem.n)), configs, process, log)
        chosen = shortlist(choose(screens[problem.name]), configs)
        log(f"  {len(chosen)} options on all {problem.n} samples")
        runs[problem.name] = (execute(problem, [c for c in chosen if c.library == "plume"], process, log)
                              + run_plume_ode(problem, process, log)
                              + execute(problem, [c for c in chosen if c.library != "plume"], process, log))
    text, all_rows = report(problems, runs, screens, args, time.time() - start)
    print(text)
    table, verdicts = summary(problems, all_rows)  # once more at the end, where a terminal shows it
    print("\n## Summary\n\n" + table + "\n\n" + ("\n".join(verdicts) or "The goal holds everywhere."))
    if write:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(root, "docs", "samplers.md"), "w") as f:
            f.write(text)
        plot(problems, all_rows, os.path.join(root, "docs", "samplers.png"))
        log("wrote docs/samplers.md and docs/samplers.png")
    log(f"total {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
