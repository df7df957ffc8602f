"""Training objective: which noise levels to train on and how to weight their errors.

Every weighting is stated as w(t) on the x0-space error ||x0_hat - x0||^2 (Kingma & Gao 2023, "Understanding
diffusion objectives", eq. 2-5 express all of them this way):
  simple       the prediction's own unweighted MSE: w = (d x0 / d out)^-2 (Ho et al. 2020, eq. 14 for eps)
  snr          w = SNR(t) = alpha^2 / sigma^2 (the eps-MSE)
  min-snr      w = min(SNR(t), gamma) (Hang et al. 2023, eq. 6), gamma = 5
  edm          w = lambda(s) = (s^2 + sd^2) / (s sd)^2 (Karras et al. 2022, eq. 8 and Table 1)
  likelihood   w = -d SNR / dt, the continuous ELBO for t ~ U(t_min, t_max) (Kingma et al. 2021, eq. 17;
               Song et al. 2021b, maximum-likelihood weighting g^2)
Time sampling:
  uniform      t ~ U over the process's range (whole steps for DDPM)
  lognormal    ln s ~ N(P_mean, P_std^2), P_mean = -1.2, P_std = 1.2 (Karras et al. 2022, Table 1)
  logsnr       log-SNR uniform between its values at t_max and t_min
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from .errors import unknown_name
from .predictions import Prediction
from .processes import GaussianProcess, time_derivative


def _snr(process: GaussianProcess, t: torch.Tensor) -> torch.Tensor:
    return process.sigma_ratio(t) ** -2


def x0_weight(name: str, process: GaussianProcess, prediction: Prediction, t: torch.Tensor,
              sigma_data: float = 0.5, gamma: float = 5.0) -> torch.Tensor:
    """w(t) on the x0-space squared error for weighting `name`, shape (B,)."""
    if name == "simple":
        return prediction.output_weight(process, t)
    if name == "snr":
        return _snr(process, t)
    if name == "min-snr":
        return torch.clamp(_snr(process, t), max=gamma)
    if name == "edm":
        s = process.sigma_ratio(t)
        return (s**2 + sigma_data**2) / (s * sigma_data) ** 2
    if name == "likelihood":
        return -time_derivative(lambda u: _snr(process, u), t)
    raise unknown_name("loss weighting", name, WEIGHTINGS)


WEIGHTINGS = ("simple", "snr", "min-snr", "edm", "likelihood")


def sample_times(name: str, process: GaussianProcess, n: int, generator: Optional[torch.Generator] = None,
                 p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """Draw n training times (float64, (n,)) by rule `name`."""
    if name == "uniform":
        return process.uniform_time(torch.rand(n, dtype=torch.float64, generator=generator))
    if name == "lognormal":
        s = torch.exp(p_mean + p_std * torch.randn(n, dtype=torch.float64, generator=generator))
        return _clamped_time(process, s)
    if name == "logsnr":
        ends = process.sigma_ratio(torch.tensor([process.t_min, process.t_max], dtype=torch.float64)).log()
        u = torch.rand(n, dtype=torch.float64, generator=generator)
        return _clamped_time(process, torch.exp(ends[0] + u * (ends[1] - ends[0])))
    raise unknown_name("time sampling", name, TIME_SAMPLINGS)


TIME_SAMPLINGS = ("uniform", "lognormal", "logsnr")


def _clamped_time(process: GaussianProcess, s: torch.Tensor) -> torch.Tensor:
    return process.time_of_sigma_ratio(s).clamp(process.t_min, process.t_max)


WeightFn = Callable[[GaussianProcess, Prediction, torch.Tensor], torch.Tensor]
