"""A fitted grid beats the named grids on draws it was not fitted on."""
import pytest
import torch

import plume
from plume.points import ring_mixture


def test_fitted_grid_reduces_error_on_held_out_draws():
    mixture, process = ring_mixture(), plume.process("ddpm")
    fn = mixture.denoiser(process)
    grid = plume.optimize_grid(fn, process, (128, 2), sampler="dpm++2m", steps=8, iterations=60, pilot_seed=10_000)
    assert bool((grid.sigmas[1:] < grid.sigmas[:-1]).all()) and float(grid.sigmas[-1]) == 0.0
    x_start = torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reference = plume.sample(fn, process, (300, 2), sampler="ode", x_start=x_start, dtype=torch.float64, rtol=1e-8, atol=1e-8)

    def rmse(**options):
        x = plume.sample(fn, process, (300, 2), sampler="dpm++2m", steps=8, x_start=x_start, dtype=torch.float64, **options)
        return float((x - reference).pow(2).mean().sqrt())

    fitted = rmse(sigmas=grid.sigmas)
    best_named = min(rmse(grid=name) for name in plume.GRIDS)
    assert fitted < 0.5 * best_named, (fitted, best_named)


def test_stochastic_samplers_are_refused():
    with pytest.raises(plume.PlumeError, match="deterministic"):
        plume.optimize_grid(lambda x, t: x, "vp", (4, 2), sampler="ddpm")
