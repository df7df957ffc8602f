"""DPM-Solver++ multistep, second and third order, in data prediction (Lu et al. 2022b, Alg. 2 and eq. 9).

With lambda = -log s and h = lambda_next - lambda, the exact solution of the PF-ODE in scaled coordinates is
y_next = (s_next / s) y + s_next int e^lambda D dlambda; a Taylor expansion of D in lambda gives
  order 1: y_next = (s_next / s) y - expm1(-h) D0                        (= DDIM)
  order 2: ... - expm1(-h) (D0 + D1 / 2),  D1 = (D0 - D_prev) / r0,  r0 = h_prev / h
  order 3: ... - expm1(-h) D0 + (expm1(-h)/h + 1) D1 - ((expm1(-h) + h)/h^2 - 1/2) D2
The step into s = 0 is first order (it returns D0); with fewer than 15 steps the step before it is at
most second order, as in the reference implementation.
"""
from __future__ import annotations

import torch

from .loop import Hook, ScaledDenoiser, apply_hook, step_pairs
from .noise import SeedNoise


def _multistep_update(y: torch.Tensor, history: list[tuple[torch.Tensor, torch.Tensor]], s_next: torch.Tensor, order: int) -> torch.Tensor:
    """One DPM-Solver++ step of `order` from the last `order` (lambda, D) pairs, newest last."""
    lam0, d0 = history[-1]
    if bool(s_next == 0):
        return d0
    lam_next = -torch.log(s_next)
    h = lam_next - lam0
    phi1 = torch.expm1(-h)
    y = (torch.exp(-h)).to(y.dtype) * y - phi1.to(y.dtype) * d0
    if order == 1:
        return y
    lam1, d1 = history[-2]
    r0 = (lam0 - lam1) / h
    d1_0 = (d0 - d1) / r0.to(y.dtype)
    if order == 2:
        return y - (0.5 * phi1).to(y.dtype) * d1_0
    lam2, d2 = history[-3]
    r1 = (lam1 - lam2) / h
    d1_1 = (d1 - d2) / r1.to(y.dtype)
    first = d1_0 + (r0 / (r0 + r1)).to(y.dtype) * (d1_0 - d1_1)
    second = (d1_0 - d1_1) / (r0 + r1).to(y.dtype)
    phi2 = phi1 / h + 1
    phi3 = (phi1 + h) / h**2 - 0.5
    return y + phi2.to(y.dtype) * first - phi3.to(y.dtype) * second


def _multistep(denoise: ScaledDenoiser, y: torch.Tensor, sigmas: torch.Tensor, hook: Hook, max_order: int, progress: bool) -> torch.Tensor:
    steps = len(sigmas) - 1
    history: list[tuple[torch.Tensor, torch.Tensor]] = []  # explicit, local: (lambda_i, D_i)
    for i, s, s_next in step_pairs(sigmas, progress, f"dpm++{max_order}m"):
        history = (history + [(-torch.log(s), denoise(y, s))])[-max_order:]
        order = min(max_order, len(history))
        if steps < 15 and i == steps - 2:
            order = min(order, 2)
        y = apply_hook(hook, _multistep_update(y, history, s_next, order), s_next)
    return y


def dpmpp_2m(denoise: ScaledDenoiser, y: torch.Tensor, sigmas: torch.Tensor, noise: SeedNoise, hook: Hook = None,
             progress: bool = False) -> torch.Tensor:
    """DPM-Solver++(2M): one model evaluation per step."""
    return _multistep(denoise, y, sigmas, hook, 2, progress)


def dpmpp_3m(denoise: ScaledDenoiser, y: torch.Tensor, sigmas: torch.Tensor, noise: SeedNoise, hook: Hook = None,
             progress: bool = False) -> torch.Tensor:
    """DPM-Solver++(3M): third-order multistep; one model evaluation per step."""
    return _multistep(denoise, y, sigmas, hook, 3, progress)
