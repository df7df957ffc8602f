"""Exponential Adams-Bashforth-Moulton multistep in lambda = -ln s, with a free corrector.

The PF-ODE in scaled coordinates has the exact variation-of-constants form (Lu et al. 2022b, eq. 8)
  y_next = (s_next / s) y + int_0^h e^{u - h} D(lambda + u) du,   h = lambda_next - lambda.
Replacing D by the Lagrange polynomial through the last p evaluations and integrating it exactly against
e^{u - h} gives the exponential Adams-Bashforth predictor of order p (Hochbruck & Ostermann 2010, sec. 2.5;
with p = 1 it is DDIM). After the model is evaluated at the predicted state, the same formula through the
new point and the last p - 1 old ones (Adams-Moulton) corrects the step, raising the order by one without
another evaluation; the new evaluation is reused as history, as in UniPC (Zhao et al. 2023, sec. 3.2).
Weights: with nodes r_j = u_j / h and moments mu_k = int_0^1 e^{h(r - 1)} r^k h dr
(mu_0 = -expm1(-h), mu_k = 1 - k mu_{k-1} / h), w = V^-T mu for the Vandermonde matrix V_jk = r_j^k.
"""
from __future__ import annotations

import torch

from .loop import Hook, ScaledDenoiser, apply_hook, step_pairs
from .noise import SeedNoise


def exponential_weights(nodes: torch.Tensor, lam: torch.Tensor, lam_next: torch.Tensor) -> torch.Tensor:
    """Weights w_j with int_0^h e^{u-h} P(u) du = sum_j w_j D_j for the polynomial P through (nodes_j, D_j)."""
    h = (lam_next - lam).to(torch.float64)
    r = (nodes.to(torch.float64) - lam.to(torch.float64)) / h  # (p,)
    moments = [-torch.expm1(-h)]
    for k in range(1, len(r)):
        moments.append(1 - k * moments[-1] / h)
    vandermonde = r[:, None] ** torch.arange(len(r), dtype=torch.float64)[None, :]  # (p, p)
    return torch.linalg.solve(vandermonde.T, torch.stack(moments))  # (p,)


def _step(y: torch.Tensor, s: torch.Tensor, s_next: torch.Tensor, lams: list, ds: list) -> torch.Tensor:
    lam, lam_next = -torch.log(s), -torch.log(s_next)
    weights = exponential_weights(torch.stack(lams), lam, lam_next).to(y.dtype)
    return (s_next / s).to(y.dtype) * y + sum(w * d for w, d in zip(weights, ds))


def adams(denoise: ScaledDenoiser, y: torch.Tensor, sigmas: torch.Tensor, noise: SeedNoise, hook: Hook = None,
          order: int = 3, corrector: bool = True, progress: bool = False) -> torch.Tensor:
    """Order-`order` exponential Adams-Bashforth predictor, Adams-Moulton corrector; one evaluation per step."""
    lams: list = []  # explicit, local history: lambda_i and D_i, newest last
    ds: list = []
    previous = None  # (y, s) before the last predictor step, for its correction
    for i, s, s_next in step_pairs(sigmas, progress, f"adams{order}"):
        d = denoise(y, s)
        if corrector and previous is not None:  # Adams-Moulton through the new point, order + 1
            y_prev, s_prev, k = previous[0], previous[1], min(order, len(lams))
            y = apply_hook(hook, _step(y_prev, s_prev, s, lams[-k:] + [-torch.log(s)], ds[-k:] + [d]), s)
        lams, ds = (lams + [-torch.log(s)])[-order:], (ds + [d])[-order:]
        previous = (y, s)
        if bool(s_next == 0):  # the limit h -> infinity of every order: the last denoised state
            y = apply_hook(hook, d, s_next)
            continue
        y = apply_hook(hook, _step(y, s, s_next, lams, ds), s_next)
    return y
