"""The denoiser D(x_t, t) -> x0_hat: a backbone, a process and a prediction kind, and its training loss.

The backbone sees the input scaled to unit variance, c_in = 1 / sqrt(sigma^2 + alpha^2 sd^2), and the noise
level c_noise = ln(s) / 4 with s = sigma / alpha (Karras et al. 2022, Table 1, written for any process),
so backbones know nothing of schedules. The loss is w(t) ||x0_hat - x0||^2 computed in the prediction's
output space, where it is (w / output_weight) ||out - target||^2 (see plume.objective).

Residual denoising: a backbone with a method `offset(x_t, cond) -> m (B, ...)` (a guess of x0 from the
conditioning alone, e.g. super-resolution's upsampled low-resolution image) makes the denoiser model the residual
r = x0 - m instead of x0 (SRDiff, Li et al. 2022, sec. 3.2; Whang et al. 2022, "predict and refine"): since
x_t - alpha m = alpha r + sigma eps, D(x_t, t) = m + D_r(x_t - alpha m, t), and the loss on r equals the loss on
x0. sigma_data is then the residual's standard deviation, and a model that learned nothing returns m itself.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from .broadcast import append_dims
from .errors import PlumeError
from .objective import P_MEAN, TIME_SAMPLINGS, WEIGHTINGS, sample_times, x0_weight
from .predictions import Prediction, prediction as build_prediction
from .processes import GaussianProcess, process as build_process


class Denoiser(nn.Module):
    """x0_hat = D(x_t, t); usable directly as `plume.sample(denoiser, process, ..., prediction="x0")`."""

    def __init__(self, backbone: nn.Module, process: "str | GaussianProcess" = "vp", prediction: "str | Prediction" = "eps",
                 weighting: str = "simple", time_sampling: str = "uniform", sigma_data: float = 1.0,
                 lognormal_mean: float = P_MEAN):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise PlumeError(f"unknown loss weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
        if time_sampling not in TIME_SAMPLINGS:
            raise PlumeError(f"unknown time sampling {time_sampling!r}; valid: {', '.join(TIME_SAMPLINGS)}")
        self.backbone = backbone
        self.process = build_process(process)
        self.prediction = build_prediction(prediction, **({"sigma_data": sigma_data} if prediction == "edm" else {}))
        self.weighting, self.time_sampling, self.sigma_data = weighting, time_sampling, sigma_data
        self.lognormal_mean = float(lognormal_mean)  # P_mean of time_sampling="lognormal" (ln s ~ N(P_mean, 1.2^2))

    def options(self) -> dict[str, Any]:
        """What rebuilds this denoiser around a backbone (saved in config.json)."""
        return {
            "process": {"name": self.process.name, **self.process.options()},
            "prediction": self.prediction.name,
            "weighting": self.weighting,
            "time_sampling": self.time_sampling,
            "sigma_data": self.sigma_data,
            "lognormal_mean": self.lognormal_mean,
        }

    def network_output(self, x_t: torch.Tensor, t: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The backbone's raw output at (x_t, t), with EDM's input and noise-level conditioning."""
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device).expand(x_t.shape[0])  # (B,)
        alpha, sigma = self.process.alpha(t), self.process.sigma(t)
        c_in = torch.rsqrt(sigma**2 + alpha**2 * self.sigma_data**2)  # (B,)
        c_noise = 0.25 * torch.log(sigma / alpha)  # (B,)
        return self.backbone(append_dims(c_in, x_t) * x_t, c_noise, cond)

    def offset(self, x_t: torch.Tensor, cond: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """The backbone's guess m (B, ...) of x0 from the conditioning (residual denoising), or None."""
        guess = getattr(self.backbone, "offset", None)
        return None if guess is None else guess(x_t, cond)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device).expand(x_t.shape[0])
        m = self.offset(x_t, cond)  # (B, ...) or None
        if m is None:
            return self.prediction.to_x0(self.network_output(x_t, t, cond), x_t, self.process, t)
        x_r = x_t - append_dims(self.process.alpha(t), x_t) * m  # = alpha r + sigma eps
        return m + self.prediction.to_x0(self.network_output(x_r, t, cond), x_r, self.process, t)

    def draw_times(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """n training times (float64, (n,)) by this denoiser's time-sampling rule (plume.objective)."""
        return sample_times(self.time_sampling, self.process, n, generator, p_mean=self.lognormal_mean)

    def loss(self, x0: torch.Tensor, generator: Optional[torch.Generator] = None, cond: Optional[torch.Tensor] = None,
             t: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-sample weighted denoising loss (B,) on clean data x0; t and noise are drawn if not given."""
        n = x0.shape[0]
        if t is None:
            t = self.draw_times(n, generator).to(x0.device)
        t = t.to(device=x0.device, dtype=x0.dtype)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu" if generator is None else generator.device).to(x0.device)
        m = self.offset(x0, cond)  # (B, ...) or None: the loss is then the residual's, equal to x0's
        x0 = x0 if m is None else x0 - m
        x_t = self.process.add_noise(x0, t, noise)
        out = self.network_output(x_t, t, cond)
        target = self.prediction.target(x0, noise, self.process, t)
        w = x0_weight(self.weighting, self.process, self.prediction, t, self.sigma_data) / self.prediction.output_weight(self.process, t)
        return w * ((out - target) ** 2).flatten(1).mean(1)
