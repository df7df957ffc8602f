"""Samplers by name. Each is a stateless function over an explicit grid and explicit per-sample noise."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import PlumeError, unknown_name
from .adams import adams
from .adaptive import adaptive_ode
from .ancestral import ddim, ddpm
from .dpm_solver import dpmpp_2m, dpmpp_3m
from .euler import euler, heun
from .grids import GRIDS, Grid, grid_from_sigmas, grid_from_times, time_grid
from .loop import ancestral_split, apply_hook, step_pairs
from .noise import SeedNoise, derive_seed
from .stochastic import euler_maruyama, langevin_correct, predictor_corrector


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler function with its default grid and model evaluations per step (for NFE budgets).

    `evaluations_saved_at_end`: evaluations the last step skips when the grid ends at sigma = 0 (Heun's last step
    is Euler's, so N Heun steps cost 2N - 1). `evaluations_per_step` 0 marks an adaptive solver, whose NFE
    follows its tolerance rather than a step count.
    """

    function: Callable
    default_grid: str
    evaluations_per_step: float = 1.0
    grid_steps: "int | None" = None  # adaptive solvers need only the grid's ends
    evaluations_saved_at_end: int = 0

    def evaluations(self, steps: int) -> int:
        """Model evaluations of `steps` steps on a grid that ends at sigma = 0."""
        return int(steps * self.evaluations_per_step) - self.evaluations_saved_at_end

    def steps_for_evaluations(self, nfe: int) -> int:
        """The most steps whose evaluations fit in `nfe` (at least 1), the one rule every NFE budget uses."""
        if self.evaluations_per_step == 0:
            raise PlumeError("an adaptive solver's evaluations follow its tolerance, not a step count")
        return max(1, int((nfe + self.evaluations_saved_at_end) // self.evaluations_per_step))



SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(ddpm, "trailing"),
    "ddim": SamplerSpec(ddim, "trailing"),
    "euler": SamplerSpec(euler, "karras"),
    "heun": SamplerSpec(heun, "karras", 2.0, evaluations_saved_at_end=1),
    "euler-maruyama": SamplerSpec(euler_maruyama, "karras"),
    "pc": SamplerSpec(predictor_corrector, "karras", 2.0),
    "dpm++2m": SamplerSpec(dpmpp_2m, "logsnr"),
    "dpm++3m": SamplerSpec(dpmpp_3m, "logsnr"),
    "adams": SamplerSpec(adams, "logsnr"),
    "ode": SamplerSpec(adaptive_ode, "karras", 0.0, grid_steps=2),
}


def sampler_spec(name: str) -> SamplerSpec:
    """Look a sampler up by name; an unknown name lists the valid ones."""
    if name not in SAMPLERS:
        raise unknown_name("sampler", name, list(SAMPLERS))
    return SAMPLERS[name]


__all__ = [
    "SAMPLERS", "SamplerSpec", "sampler_spec", "GRIDS", "Grid", "time_grid", "grid_from_sigmas", "grid_from_times",
    "SeedNoise", "derive_seed", "step_pairs", "apply_hook", "ancestral_split", "ddpm", "ddim", "euler", "heun", "euler_maruyama",
    "predictor_corrector", "langevin_correct", "dpmpp_2m", "dpmpp_3m", "adams", "adaptive_ode",
]
