"""What a network predicts, and the exact conversions to x0_hat and to training targets.

With x_t = alpha x0 + sigma eps:
  eps   (Ho et al. 2020):              x0 = (x - sigma eps) / alpha
  x0:                                  x0 = out
  v     (Salimans & Ho 2022, eq. 9):   v = alpha eps - sigma x0,  x0 = (alpha x - sigma v) / (alpha^2 + sigma^2)
  score (Song et al. 2021):            score = -eps / sigma,      x0 = (x + sigma^2 score) / alpha
  flow  (Lipman et al. 2023):          u = alpha' x0 + sigma' eps, x0 = (sigma' x - sigma u) / (alpha sigma' - sigma alpha')
  edm   (Karras et al. 2022, eq. 7):   x0 = c_skip(s) x / alpha + c_out(s) F, in scaled coordinates s = sigma / alpha
`output_weight` is (d x0 / d out)^-2, so MSE in output space = output_weight * MSE in x0 space.
"""
from __future__ import annotations

from typing import Any

import torch

from .broadcast import append_dims
from .errors import unknown_name
from .processes import GaussianProcess


class Prediction:
    """Base: a network output kind; subclasses define to_x0, target and output_weight."""

    name = "base"

    def options(self) -> dict[str, Any]:
        return {}

    def to_x0(self, out: torch.Tensor, x_t: torch.Tensor, process: GaussianProcess, t: torch.Tensor) -> torch.Tensor:
        """x0_hat from the network output at (x_t, t)."""
        raise NotImplementedError

    def target(self, x0: torch.Tensor, noise: torch.Tensor, process: GaussianProcess, t: torch.Tensor) -> torch.Tensor:
        """The output a perfect network gives for x_t = alpha x0 + sigma noise."""
        raise NotImplementedError

    def output_weight(self, process: GaussianProcess, t: torch.Tensor) -> torch.Tensor:
        """(d x0_hat / d out)^-2 per sample, shape (B,)."""
        raise NotImplementedError


def _coefficients(process: GaussianProcess, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return append_dims(process.alpha(t), like), append_dims(process.sigma(t), like)


class EpsPrediction(Prediction):
    name = "eps"

    def to_x0(self, out, x_t, process, t):
        a, s = _coefficients(process, t, x_t)
        return (x_t - s * out) / a

    def target(self, x0, noise, process, t):
        return noise

    def output_weight(self, process, t):
        return (process.alpha(t) / process.sigma(t)) ** 2


class X0Prediction(Prediction):
    name = "x0"

    def to_x0(self, out, x_t, process, t):
        return out

    def target(self, x0, noise, process, t):
        return x0

    def output_weight(self, process, t):
        return torch.ones_like(process.alpha(t))


class VPrediction(Prediction):
    name = "v"

    def to_x0(self, out, x_t, process, t):
        a, s = _coefficients(process, t, x_t)
        return (a * x_t - s * out) / (a**2 + s**2)

    def target(self, x0, noise, process, t):
        a, s = _coefficients(process, t, x0)
        return a * noise - s * x0

    def output_weight(self, process, t):
        a, s = process.alpha(t), process.sigma(t)
        return ((a**2 + s**2) / s) ** 2


class ScorePrediction(Prediction):
    name = "score"

    def to_x0(self, out, x_t, process, t):
        a, s = _coefficients(process, t, x_t)
        return (x_t + s**2 * out) / a

    def target(self, x0, noise, process, t):
        _, s = _coefficients(process, t, x0)
        return -noise / s

    def output_weight(self, process, t):
        return process.alpha(t) ** 2 / process.sigma(t) ** 4


class FlowPrediction(Prediction):
    name = "flow"

    def _derivatives(self, process, t, like):
        return append_dims(process.d_alpha(t), like), append_dims(process.d_sigma(t), like)

    def to_x0(self, out, x_t, process, t):
        a, s = _coefficients(process, t, x_t)
        da, ds = self._derivatives(process, t, x_t)
        return (ds * x_t - s * out) / (a * ds - s * da)

    def target(self, x0, noise, process, t):
        da, ds = self._derivatives(process, t, x0)
        return da * x0 + ds * noise

    def output_weight(self, process, t):
        a, s = process.alpha(t), process.sigma(t)
        return ((a * process.d_sigma(t) - s * process.d_alpha(t)) / s) ** 2


class EDMPrediction(Prediction):
    """EDM preconditioning (Karras et al. 2022, Table 1): c_skip = sd^2/(s^2+sd^2), c_out = s sd / sqrt(s^2+sd^2)."""

    name = "edm"

    def __init__(self, sigma_data: float = 0.5):
        self.sigma_data = sigma_data

    def options(self):
        return {"sigma_data": self.sigma_data}

    def skip_out(self, process, t):
        s, sd = process.sigma_ratio(t), self.sigma_data
        return sd**2 / (s**2 + sd**2), s * sd / torch.sqrt(s**2 + sd**2)

    def to_x0(self, out, x_t, process, t):
        c_skip, c_out = (append_dims(c, x_t) for c in self.skip_out(process, t))
        return c_skip * x_t / append_dims(process.alpha(t), x_t) + c_out * out

    def target(self, x0, noise, process, t):  # EDM eq. 8: F target = (x0 - c_skip y) / c_out
        c_skip, c_out = (append_dims(c, x0) for c in self.skip_out(process, t))
        y = x0 + append_dims(process.sigma_ratio(t), x0) * noise
        return (x0 - c_skip * y) / c_out

    def output_weight(self, process, t):
        return self.skip_out(process, t)[1] ** -2


PREDICTIONS: dict[str, type[Prediction]] = {
    cls.name: cls for cls in (EpsPrediction, X0Prediction, VPrediction, ScorePrediction, FlowPrediction, EDMPrediction)
}


def prediction(name: "str | Prediction", **options: Any) -> Prediction:
    """Build a prediction kind by name: "eps", "x0", "v", "score", "flow" or "edm"."""
    if isinstance(name, Prediction):
        return name
    if name not in PREDICTIONS:
        raise unknown_name("prediction", name, list(PREDICTIONS))
    return PREDICTIONS[name](**options)
