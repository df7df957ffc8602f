"""Power-function EMA and its post-hoc reconstruction (Karras et al. 2024, "Analyzing and Improving the Training
Dynamics of Diffusion Models" (EDM2), sec. 3 and app. C).

A power-function EMA averages the weights theta_tau of every step tau <= t with weight proportional to tau^gamma:

    theta_hat_gamma(t) = beta_gamma(t) theta_hat_gamma(t - 1) + (1 - beta_gamma(t)) theta(t),
    beta_gamma(t) = (1 - 1/t)^(gamma + 1)                                                      (EDM2 eq. 2)

at 1-based step t, so it forgets the random initialisation at once and its length grows with training. Its width is
given by sigma_rel, the standard deviation of the averaging profile relative to t:

    sigma_rel = ((gamma + 1) / ((gamma + 2)^2 (gamma + 3)))^(1/2)                            (EDM2 eq. 3)

Post hoc: store snapshots theta_hat_{gamma_i}(t_i) of one or two such EMAs during training; then any other EMA
(gamma_r, t_r) is approximated by the combination sum_i w_i theta_hat_i whose averaging profile is nearest to the
target's in L2. With the continuous profiles p_i(tau) = (gamma_i + 1) tau^gamma_i / t_i^(gamma_i + 1) on
[0, t_i], the normal equations A w = b have the closed-form inner products of `profile_inner` (EDM2 app. C.3).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import PlumeError
from .ema import EMA

MAX_SIGMA_REL = 0.28  # below the profile family's widest (about 0.2996, at gamma near -0.3): one root gamma > 0


def sigma_rel_of(gamma: float) -> float:
    """sigma_rel of the power-function profile with exponent gamma (EDM2 eq. 3)."""
    if not gamma > -1:
        raise PlumeError(f"a power-function EMA needs gamma > -1, got {gamma}")
    return float(np.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3))))


def gamma_of(sigma_rel: float) -> float:
    """The exponent gamma whose profile has relative width sigma_rel: the real root > -1 of
    s^2 (g + 2)^2 (g + 3) = g + 1, i.e. s^2 g^3 + 7 s^2 g^2 + (16 s^2 - 1) g + 12 s^2 - 1 = 0 (eq. 3 inverted);
    the larger root."""
    if not 0 < sigma_rel < MAX_SIGMA_REL:
        raise PlumeError(f"sigma_rel must lie in (0, {MAX_SIGMA_REL}), got {sigma_rel}")
    s2 = sigma_rel ** 2
    roots = np.roots([s2, 7 * s2, 16 * s2 - 1, 12 * s2 - 1])
    real = [r.real for r in roots if abs(r.imag) < 1e-9 and r.real > -1]
    return float(max(real))


class PowerEMA(EMA):
    """The power-function EMA of `model`'s weights with relative width sigma_rel (module doc, eq. 2): EMA with
    decay d_t = (1 - 1/(t + 1))^(gamma + 1) after 0-based optimizer step t."""

    def __init__(self, model, sigma_rel: float):
        self.sigma_rel = float(sigma_rel)
        self.gamma = gamma_of(self.sigma_rel)
        super().__init__(model, decay=1.0)

    def decay_at(self, step: int) -> float:
        """beta_gamma(t) at 1-based t = step + 1 (0 at the first step: the average starts at theta_1)."""
        return (1.0 - 1.0 / (step + 1)) ** (self.gamma + 1.0)


def profile(tau: np.ndarray, step: float, gamma: float) -> np.ndarray:
    """The averaging profile p(tau) = (gamma + 1) tau^gamma / t^(gamma + 1) on [0, t] (0 beyond): the weight of the
    step-tau weights in the EMA of exponent gamma at step t = `step` (module doc)."""
    ratio = np.asarray(tau, np.float64) / step
    return np.where((ratio >= 0) & (ratio <= 1), (gamma + 1) * np.clip(ratio, 0, 1) ** gamma / step, 0.0)


def profile_inner(t_a: np.ndarray, gamma_a: np.ndarray, t_b: np.ndarray, gamma_b: np.ndarray) -> np.ndarray:
    """<p_a, p_b> = int_0^min(t_a, t_b) p_a(tau) p_b(tau) dtau for the normalized power profiles of the module doc,
    broadcast over the arrays: (g_a + 1)(g_b + 1) / (g_a + g_b + 1) (m / t_a)^(g_a + 1) (m / t_b)^(g_b + 1) / m,
    m = min(t_a, t_b) (written with ratios <= 1 so that large exponents do not overflow)."""
    t_a, t_b = np.asarray(t_a, np.float64), np.asarray(t_b, np.float64)
    g_a, g_b = np.asarray(gamma_a, np.float64), np.asarray(gamma_b, np.float64)
    m = np.minimum(t_a, t_b)
    return (g_a + 1) * (g_b + 1) / (g_a + g_b + 1) * (m / t_a) ** (g_a + 1) * (m / t_b) ** (g_b + 1) / m


def profile_weights(steps: Sequence[float], gammas: Sequence[float], target_step: float,
                    target_gamma: float) -> tuple[np.ndarray, float]:
    """The least-squares weights w (K,) of K snapshots (their 1-based steps t_i and exponents gamma_i) whose combined
    profile is nearest the target profile (target_step, target_gamma), and the relative L2 error of that fit,
    ||sum_i w_i p_i - p_r||^2 / ||p_r||^2 (0: exact)."""
    t, g = np.asarray(steps, np.float64), np.asarray(gammas, np.float64)  # (K,), (K,)
    if t.ndim != 1 or len(t) == 0 or t.shape != g.shape:
        raise PlumeError("post-hoc EMA needs at least one snapshot, each with a step and a gamma")
    if not (t >= 1).all() or not target_step >= 1:
        raise PlumeError("post-hoc EMA steps count from 1")
    a = profile_inner(t[:, None], g[:, None], t[None, :], g[None, :])  # (K, K)
    b = profile_inner(t, g, target_step, target_gamma)  # (K,)
    c = float(profile_inner(target_step, target_gamma, target_step, target_gamma))
    w = np.linalg.lstsq(a, b, rcond=None)[0]  # (K,)
    error = float(max(0.0, w @ a @ w - 2 * w @ b + c) / c)
    return w, error


__all__ = ["MAX_SIGMA_REL", "PowerEMA", "gamma_of", "profile", "profile_inner", "profile_weights", "sigma_rel_of"]
