"""The Gaussian forward process x_t = alpha(t) x0 + sigma(t) eps, and everything derived from alpha and sigma.

Kingma et al. 2021 (VDM), Song et al. 2021 (score SDE), Karras et al. 2022 (EDM, Table 1).
Samplers work in the scaled coordinates y = x / alpha, s = sigma / alpha (EDM eq. 4 with s(t) = alpha),
where every Gaussian process is the same variance-exploding process y = x0 + s * eps.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..broadcast import append_dims


def time_derivative(fn: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor) -> torch.Tensor:
    """d fn / dt for an elementwise function of t, by automatic differentiation."""
    with torch.enable_grad():
        t_ = t.detach().clone().requires_grad_(True)
        value = fn(t_)
        if not value.requires_grad:  # constant in t, e.g. alpha = 1
            return torch.zeros_like(t_)
        (grad,) = torch.autograd.grad(value.sum(), t_)
    return grad


class GaussianProcess:
    """A forward noising process defined by alpha(t) and sigma(t); subclasses define those two only.

    t_min and t_max bound the sampling range; `clean_time` is where sigma(t) = 0 if the process reaches it.
    """

    name: str = "gaussian"
    t_min: float = 0.0
    t_max: float = 1.0
    clean_time: "float | None" = None  # the time where sigma = 0, if the process reaches it
    steps: "int | None" = None  # number of steps of a discrete-time process

    # --- the two functions that define a process -------------------------------------------------
    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """Signal scale alpha(t) of x_t = alpha(t) x0 + sigma(t) eps."""
        raise NotImplementedError

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Noise scale sigma(t) of x_t = alpha(t) x0 + sigma(t) eps."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The constructor options that rebuild this process (saved in checkpoints)."""
        return {}

    # --- derived quantities ------------------------------------------------------------------------
    def sigma_ratio(self, t: torch.Tensor) -> torch.Tensor:
        """s(t) = sigma(t) / alpha(t), the noise level in scaled coordinates (EDM's sigma)."""
        return self.sigma(t) / self.alpha(t)

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """lambda(t) = log(alpha^2 / sigma^2) (VDM eq. 3)."""
        return -2.0 * torch.log(self.sigma_ratio(t))

    def time_of_sigma_ratio(self, s: torch.Tensor) -> torch.Tensor:
        """Inverse of s(t) on [t_min, t_max] by bisection in float64; subclasses override with closed forms."""
        s64 = torch.as_tensor(s, dtype=torch.float64)
        lo = torch.full_like(s64, self.t_min)
        hi = torch.full_like(s64, self.t_max)
        lo_s = self.sigma_ratio(lo)
        for _ in range(64):  # s(t) is increasing in t
            mid = 0.5 * (lo + hi)
            above = self.sigma_ratio(mid) > s64
            hi = torch.where(above, mid, hi)
            lo = torch.where(above, lo, mid)
        t = 0.5 * (lo + hi)
        t = torch.where(s64 <= lo_s, torch.full_like(t, self.t_min), t)
        return t.to(torch.as_tensor(s).dtype if torch.is_tensor(s) and s.is_floating_point() else torch.float64)

    def clean_end(self) -> float:
        """The time that stands for clean data at the end of a sampling grid."""
        return self.t_min if self.clean_time is None else self.clean_time

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x0) = N(alpha(t) x0, sigma(t)^2 I) given standard normal noise."""
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
        return append_dims(self.alpha(t), x0) * x0 + append_dims(self.sigma(t), x0) * noise

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """d alpha / dt."""
        return time_derivative(self.alpha, t)

    def d_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """d sigma / dt."""
        return time_derivative(self.sigma, t)

    def sde(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift coefficient f(t) and diffusion g(t) of dx = f(t) x dt + g(t) dw with these marginals.

        f = d log alpha / dt and g^2 = d sigma^2 / dt - 2 f sigma^2 (VDM appendix; score SDE eq. 5-6).
        """
        alpha, sigma = self.alpha(t), self.sigma(t)
        f = self.d_alpha(t) / alpha
        g2 = 2.0 * sigma * self.d_sigma(t) - 2.0 * f * sigma**2
        return f, torch.sqrt(torch.clamp(g2, min=0.0))

    def prior_std(self) -> float:
        """Standard deviation of the x-space prior at t_max: sqrt(sigma^2 + alpha^2), exact for unit-variance data."""
        t = torch.tensor(self.t_max, dtype=torch.float64)
        return float(torch.sqrt(self.sigma(t) ** 2 + self.alpha(t) ** 2))

    def uniform_time(self, u: torch.Tensor) -> torch.Tensor:
        """Map u ~ U[0, 1) to a training time, uniform over the process's time range."""
        return self.t_min + u * (self.t_max - self.t_min)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


def as_float_tensor(t: Any) -> torch.Tensor:
    """Accept Python numbers and tensors alike; integers become float64."""
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.float64)


