"""Dormand-Prince 5(4) with per-sample adaptive steps (Dormand & Prince 1980; Hairer et al., Solving ODEs I, II.5).

Each sample carries its own position u and step h, so a sample's path does not depend on the batch it is in.
"""
from __future__ import annotations

from typing import Callable

import torch

# Butcher tableau of DOPRI5; the last row of A is the fifth-order weights (first same as last).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_ERR = tuple(b5 - b4 for b5, b4 in zip(_A[6] + (0.0,), _B4))


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (like.ndim - 1)).to(like.dtype)


def solve_ode(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], state: torch.Tensor, u_start: float, u_end: float,
              rtol: float = 1e-5, atol: float = 1e-5, first_step: float = 0.05, max_evaluations: int = 100_000) -> tuple[torch.Tensor, int]:
    """Integrate d state / du = f(state, u) from u_start to u_end; `u` is (B,). Returns (state, evaluations)."""
    batch = state.shape[0]
    dtype = torch.float64
    u = torch.full((batch,), float(u_start), dtype=dtype, device=state.device)
    direction = 1.0 if u_end >= u_start else -1.0
    h = torch.full_like(u, direction * min(first_step, abs(u_end - u_start)))
    k1 = f(state, u)
    evaluations = 1
    done = (u - u_end).abs() <= 1e-12
    while not bool(done.all()):
        h = torch.where(done, torch.zeros_like(h), direction * torch.minimum(h.abs(), (u_end - u).abs()))
        ks = [k1]
        for c, row in zip(_C[1:], _A[1:]):
            increment = sum(_bcast(h * a, state) * k for a, k in zip(row, ks) if a != 0.0)
            ks.append(f(state + increment, u + c * h))
        evaluations += 6
        new_state = state + sum(_bcast(h * b, state) * k for b, k in zip(_A[6], ks) if b != 0.0)
        error = sum(_bcast(h * e, state) * k for e, k in zip(_ERR, ks) if e != 0.0)
        scale = atol + rtol * torch.maximum(state.abs(), new_state.abs())
        error_norm = (error / scale).flatten(1).pow(2).mean(dim=1).sqrt().to(dtype)  # (B,)
        accept = (error_norm <= 1.0) & ~done
        state = torch.where(_bcast(accept, state).bool(), new_state, state)
        k1 = torch.where(_bcast(accept, state).bool(), ks[6], k1)
        u = torch.where(accept, u + h, u)
        factor = torch.clamp(0.9 * error_norm.clamp_min(1e-10) ** -0.2, 0.2, 10.0)
        h = h * factor
        done = done | ((u - u_end).abs() <= 1e-12 * max(1.0, abs(u_end)))
        if evaluations > max_evaluations:
            raise RuntimeError(f"adaptive ODE solver needed more than {max_evaluations} evaluations; loosen rtol/atol")
    return state, evaluations
