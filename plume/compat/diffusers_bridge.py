"""Drive a diffusers scheduler with a Plume model, for side-by-side tests and benchmarks.

diffusers' discrete schedulers expect an eps-predicting model on DDPM's table, called with the
scheduler-scaled input and the (possibly fractional) timestep. `eps_model` turns any Plume
fn(x_t, t) on the "ddpm" process into that model.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..predictions import prediction as build_prediction
from ..processes import GaussianProcess


def eps_model(fn: Callable, process: GaussianProcess, prediction: str = "x0") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """fn(x_t, t) -> `prediction` on `process` as eps(x_t, t), the output diffusers' schedulers take."""
    pred = build_prediction(prediction)

    def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x_t.dtype).expand(x_t.shape[0])  # (B,)
        x0 = pred.to_x0(fn(x_t, t), x_t, process, t)
        shape = (-1,) + (1,) * (x_t.ndim - 1)
        return (x_t - process.alpha(t).reshape(shape) * x0) / process.sigma(t).reshape(shape)

    return eps


def diffusers_sample(scheduler, eps: Callable, x_start: torch.Tensor, steps: int, generator: Optional[torch.Generator] = None,
                     trajectory: Optional[list] = None) -> tuple[torch.Tensor, int]:
    """Run `scheduler` for `steps` steps from unit-variance noise x_start; returns (x0, model evaluations).

    x_start is standard normal noise; it is scaled by the scheduler's init_noise_sigma. If `trajectory`
    is a list, the state after every scheduler step is appended to it.
    """
    scheduler.set_timesteps(steps)
    x = x_start * scheduler.init_noise_sigma
    evaluations = 0
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)
        out = eps(model_input, t)
        evaluations += 1
        extra = {} if generator is None else {"generator": generator}  # Heun's step takes no generator
        x = scheduler.step(out, t, x, **extra).prev_sample
        if trajectory is not None:
            trajectory.append(x.clone())
    return x, evaluations
