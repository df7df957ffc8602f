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
  lognormal    ln s ~ N(P_mean, P_std^2), P_mean = -1.2, P_std = 1.2 (Karras et al. 2022, Table 1; set for
               sigma_data 0.5: Denoiser(lognormal_mean=...) moves P_mean for data of another spread)
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


def _edm_weight(process: GaussianProcess, t: torch.Tensor, sigma_data: float) -> torch.Tensor:
    s = process.sigma_ratio(t)
    return (s**2 + sigma_data**2) / (s * sigma_data) ** 2


# w(process, prediction, t, sigma_data, gamma) on the x0-space error
_WEIGHTS: dict[str, Callable[..., torch.Tensor]] = {
    "simple": lambda process, prediction, t, sigma_data, gamma: prediction.output_weight(process, t),
    "snr": lambda process, prediction, t, sigma_data, gamma: _snr(process, t),
    "min-snr": lambda process, prediction, t, sigma_data, gamma: torch.clamp(_snr(process, t), max=gamma),
    "edm": lambda process, prediction, t, sigma_data, gamma: _edm_weight(process, t, sigma_data),
    "likelihood": lambda process, prediction, t, sigma_data, gamma: -time_derivative(lambda u: _snr(process, u), t),
}
WEIGHTINGS = tuple(_WEIGHTS)


def x0_weight(name: str, process: GaussianProcess, prediction: Prediction, t: torch.Tensor,
              sigma_data: float = 0.5, gamma: float = 5.0) -> torch.Tensor:
    """w(t) on the x0-space squared error for weighting `name`, shape (B,)."""
    if name not in _WEIGHTS:
        raise unknown_name("loss weighting", name, WEIGHTINGS)
    return _WEIGHTS[name](process, prediction, t, sigma_data, gamma)


def _clamped_time(process: GaussianProcess, s: torch.Tensor) -> torch.Tensor:
    return process.time_of_sigma_ratio(s).clamp(process.t_min, process.t_max)


def _logsnr_uniform(process: GaussianProcess, u: torch.Tensor) -> torch.Tensor:
    ends = process.sigma_ratio(torch.tensor([process.t_min, process.t_max], dtype=torch.float64)).log()
    return _clamped_time(process, torch.exp(ends[0] + u * (ends[1] - ends[0])))


P_MEAN, P_STD = -1.2, 1.2  # the lognormal rule's defaults (Karras et al. 2022, Table 1; set for sigma_data 0.5)


def sample_times(name: str, process: GaussianProcess, n: int, generator: Optional[torch.Generator] = None,
                 p_mean: float = P_MEAN, p_std: float = P_STD) -> torch.Tensor:
    """Draw n training times (float64, (n,)) by rule `name`."""
    if name not in TIME_SAMPLINGS:
        raise unknown_name("time sampling", name, TIME_SAMPLINGS)
    if name == "lognormal":
        z = torch.randn(n, dtype=torch.float64, generator=generator)
        return _clamped_time(process, torch.exp(p_mean + p_std * z))
    u = torch.rand(n, dtype=torch.float64, generator=generator)
    return process.uniform_time(u) if name == "uniform" else _logsnr_uniform(process, u)


TIME_SAMPLINGS = ("uniform", "lognormal", "logsnr")

