"""Plume's samplers against k-diffusion's (Crowson), driven by one denoiser D(y, s) in scaled coordinates.

k-diffusion's samplers are plain functions of (model, x, sigmas), as Plume's are, so both get the same
`plume.scaled_denoiser` and the same float64 sigmas; every model call (state and level) and the result must agree
to float64 rounding, on DDPM, VP and EDM processes:

  k_diffusion.sampling                  Plume
  sample_euler                          euler (and ddim, eta = 0: DDIM is Euler in scaled coordinates)
  sample_heun, with and without churn   heun (EDM Alg. 2; the churn noise replayed from k-diffusion's global RNG)
  sample_dpmpp_2m                       dpm++2m (Karras and log-SNR grids)
  sample_euler_ancestral, eta 1 / 0.5   ddim with that eta (the same noise through noise_sampler)

Not compared: sample_dpmpp_3m_sde(eta=0) uses the "heun"-type second-order step phi_2 D1 on its second step, where
Plume and diffusers use the midpoint step phi_1 D1 / 2, and it has no < 15-step rule, so it is another algorithm.

k-diffusion's package __init__ imports torchvision, clip, wandb and more; only k_diffusion/sampling.py is loaded,
which needs scipy, torchdiffeq, torchsde and utils.append_dims. Install:
    pip install k-diffusion torchsde torchdiffeq trampoline --no-deps
"""
from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest
import torch

import plume
from plume.points.gaussian_mixture import random_mixture
from plume.samplers import SAMPLERS, time_grid

for _dependency in ("scipy", "torchdiffeq", "torchsde"):
    pytest.importorskip(_dependency, reason="k_diffusion/sampling.py imports it: "
                                            "pip install torchsde torchdiffeq trampoline --no-deps")

BATCH, DIM = 8, 16
TOL = dict(rtol=1e-12, atol=1e-12)
PROCESSES = ["ddpm", "vp", "edm"]


def _append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """k_diffusion.utils.append_dims, verbatim (utils.py itself imports torchvision)."""
    dims_to_append = target_dims - x.ndim
    if dims_to_append < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * dims_to_append]


def _load_sampling() -> types.ModuleType:
    """k_diffusion/sampling.py alone, under a private package name whose `utils` holds only append_dims."""
    spec = importlib.util.find_spec("k_diffusion")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("k-diffusion is not installed: pip install k-diffusion torchsde torchdiffeq trampoline --no-deps",
                    allow_module_level=True)
    path = Path(list(spec.submodule_search_locations)[0]) / "sampling.py"
    used = set(re.findall(r"utils\.(\w+)", path.read_text()))
    if used != {"append_dims"}:
        pytest.skip(f"this k-diffusion's sampling.py uses utils.{sorted(used)}, not only append_dims",
                    allow_module_level=True)
    name = "_plume_test_k_diffusion"
    package = types.ModuleType(name)
    package.__path__ = []
    package.utils = types.ModuleType(f"{name}.utils")
    package.utils.append_dims = _append_dims
    sys.modules[name], sys.modules[f"{name}.utils"] = package, package.utils
    module_spec = importlib.util.spec_from_file_location(f"{name}.sampling", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


K = _load_sampling()



# --- the shared denoiser and what it saw ----------------------------------------------------------------------
class RandomMLP(torch.nn.Module):
    """A small randomly initialised eps-predictor of (x, t); nobody fitted it."""

    def __init__(self, dim: int, hidden: int = 32, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = torch.nn.Sequential(torch.nn.Linear(dim + 1, hidden), torch.nn.SiLU(),
                                           torch.nn.Linear(hidden, dim)).double()

    @torch.no_grad()
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).expand(x.shape[0])[:, None]  # (B, 1)
        return self.net(torch.cat([x.to(torch.float64), torch.log1p(t)], dim=1)).to(x.dtype)  # (B, D)


class Recorded:
    """D(y, s) that logs every call: the states and levels a sampler visits, predictor and corrector alike."""

    def __init__(self, denoise):
        self.denoise, self.calls = denoise, []

    def __call__(self, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(s, dtype=torch.float64)
        level = float(s.flatten()[0])
        assert bool((s == level).all())  # one level per call, as both libraries do
        self.calls.append((y.clone(), level))
        return self.denoise(y, s)


def setup(process_name: str, model: str, steps: int, grid: str = "karras"):
    """(process, fn, prediction, sigmas, y0, make_denoiser) with float64 sigmas ending in 0."""
    process = plume.process(process_name)
    if model == "mixture":
        fn, pred = random_mixture(DIM, seed=4).denoiser(process), "x0"
    else:
        fn, pred = RandomMLP(DIM), "eps"
    the_grid = time_grid(process, steps, grid)
    noise = torch.randn(BATCH, DIM, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y0 = noise * (the_grid.sigmas[0] ** 2 + 1).sqrt()  # (B, D), the prior in scaled coordinates

    def make_denoiser() -> Recorded:
        return Recorded(plume.scaled_denoiser(fn, process, plume.prediction(pred), the_grid))

    return process, fn, pred, the_grid, y0, make_denoiser


def assert_same_calls(ours: Recorded, theirs: Recorded) -> None:
    assert len(ours.calls) == len(theirs.calls), f"{len(ours.calls)} model calls vs k-diffusion's {len(theirs.calls)}"
    for k, ((y_ours, s_ours), (y_theirs, s_theirs)) in enumerate(zip(ours.calls, theirs.calls)):
        assert s_ours == pytest.approx(s_theirs, rel=1e-14), f"call {k}: level {s_ours} vs {s_theirs}"
        torch.testing.assert_close(y_ours, y_theirs, **TOL, msg=lambda m: f"call {k} at s = {s_ours:.4g}: {m}")


class ReplayNoise:
    """A Plume noise source handing out a prepared list of draws in order."""

    def __init__(self, draws):
        self.draws, self.used = list(draws), 0

    def randn_like(self, y):
        self.used += 1
        return self.draws[self.used - 1].to(y.dtype)


# --- deterministic samplers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("process_name", PROCESSES)
@pytest.mark.parametrize("model", ["mixture", "mlp"])
@pytest.mark.parametrize("name,k_name,grid,steps", [
    ("euler", "sample_euler", "karras", 12),
    ("heun", "sample_heun", "karras", 8),
    ("dpm++2m", "sample_dpmpp_2m", "karras", 10),
    ("dpm++2m", "sample_dpmpp_2m", "logsnr", 20),
])
def test_deterministic_samplers(process_name, model, name, k_name, grid, steps):
    process, fn, pred, the_grid, y0, make_denoiser = setup(process_name, model, steps, grid)
    ours, theirs = make_denoiser(), make_denoiser()
    y_ours = SAMPLERS[name].function(ours, y0.clone(), the_grid.sigmas, None)
    y_theirs = getattr(K, k_name)(theirs, y0.clone(), the_grid.sigmas, disable=True)
    assert_same_calls(ours, theirs)
    torch.testing.assert_close(y_ours, y_theirs, **TOL)
    assert float((y_theirs - y0 / (the_grid.sigmas[0] ** 2 + 1).sqrt()).abs().max()) > 0.1  # it went somewhere

    # the public API runs the same thing: x_start = alpha y0, and x = y at the clean end
    x = plume.sample(fn, process, (BATCH, DIM), sampler=name, prediction=pred, sigmas=the_grid.sigmas,
                     x_start=y0 * process.alpha(the_grid.times[0]), dtype=torch.float64)
    torch.testing.assert_close(x, y_theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("process_name", PROCESSES)
def test_ddim_eta0_is_k_diffusion_euler(process_name):
    process, fn, pred, the_grid, y0, make_denoiser = setup(process_name, "mixture", 10)
    ours, theirs = make_denoiser(), make_denoiser()
    y_ours = SAMPLERS["ddim"].function(ours, y0.clone(), the_grid.sigmas, None, eta=0.0)
    y_theirs = K.sample_euler(theirs, y0.clone(), the_grid.sigmas, disable=True)
    assert_same_calls(ours, theirs)
    torch.testing.assert_close(y_ours, y_theirs, **TOL)


# --- stochastic samplers, with the same noise -----------------------------------------------------------------
@pytest.mark.parametrize("process_name", PROCESSES)
@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_ancestral(process_name, eta):
    """sample_euler_ancestral is DDIM with eta in scaled coordinates: s_up, s_down, Euler to s_down, then s_up noise."""
    steps = 12
    process, fn, pred, the_grid, y0, make_denoiser = setup(process_name, "mixture", steps)
    g = torch.Generator().manual_seed(7)
    draws = [torch.randn(BATCH, DIM, generator=g, dtype=torch.float64) for _ in range(steps - 1)]
    replay = iter(draws)
    ours, theirs, noise = make_denoiser(), make_denoiser(), ReplayNoise(draws)
    y_ours = SAMPLERS["ddim"].function(ours, y0.clone(), the_grid.sigmas, noise, eta=eta)
    y_theirs = K.sample_euler_ancestral(theirs, y0.clone(), the_grid.sigmas, disable=True, eta=eta,
                                        noise_sampler=lambda sigma, sigma_next: next(replay))
    assert noise.used == steps - 1
    assert_same_calls(ours, theirs)
    torch.testing.assert_close(y_ours, y_theirs, **TOL)


@pytest.mark.parametrize("process_name", PROCESSES)
@pytest.mark.parametrize("churn,window,churn_noise", [(30.0, (0.0, float("inf")), 1.0), (40.0, (0.05, 10.0), 1.007)])
def test_heun_churn(process_name, churn, window, churn_noise):
    """EDM's stochastic Heun (Alg. 2): k-diffusion draws randn_like(x) from the global RNG on every step and uses it
    where s_tmin <= s_i <= s_tmax; Plume draws only on those steps, so it is handed those draws."""
    steps = 10
    process, fn, pred, the_grid, y0, make_denoiser = setup(process_name, "mixture", steps)
    s_tmin, s_tmax = window
    with torch.random.fork_rng():
        torch.manual_seed(3)
        draws = [torch.randn_like(y0) for _ in range(steps)]
        torch.manual_seed(3)
        theirs = make_denoiser()
        y_theirs = K.sample_heun(theirs, y0.clone(), the_grid.sigmas, disable=True, s_churn=churn, s_tmin=s_tmin,
                                 s_tmax=s_tmax, s_noise=churn_noise)
    churned = [i for i in range(steps) if s_tmin <= float(the_grid.sigmas[i]) <= s_tmax]
    assert 0 < len(churned) <= steps
    noise = ReplayNoise([draws[i] for i in churned])
    ours = make_denoiser()
    y_ours = SAMPLERS["heun"].function(ours, y0.clone(), the_grid.sigmas, noise, churn=churn, churn_min=s_tmin,
                                       churn_max=s_tmax, churn_noise=churn_noise)
    assert noise.used == len(churned)
    assert_same_calls(ours, theirs)
    torch.testing.assert_close(y_ours, y_theirs, **TOL)
    off_grid = [s for _, s in theirs.calls if s not in set(the_grid.sigmas.tolist())]
    assert len(off_grid) == len(churned)  # the churned steps evaluate at s_hat = s (1 + gamma), off the grid
