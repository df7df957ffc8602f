"""Image-to-image translation by SDEdit (Meng et al. 2022, "SDEdit: guided image synthesis and editing with
stochastic differential equations", sec. 3 and Algorithm 1).

A guide image x_g (a photo, a sketch, a collage) is noised to an intermediate level and the reverse process of a
model trained on other data runs from there:

    x_t0 = alpha(t0) (x_g + s0 eps)      (Algorithm 1, line 3: perturb the guide; eps ~ N(0, I), one generator per seed)
    x_0 = reverse process from t0        (lines 4-7, here any Plume sampler)

The noise hides the guide's fine detail (its "unrealism") while its coarse layout and colours survive; the model
fills in detail from its own data. `strength` picks t0 as in diffusers' img2img: the sampler's own grid of
steps / strength steps is cut to its last `steps` (plume.tasks.start.partial_sigmas), so strength 1 is ordinary
sampling from pure noise (up to the guide's share x_g / s_max of the start), strength -> 0 returns the guide.
A conditional model (class labels, prompts) is passed in already conditioned, e.g. by `conditioned`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from ...errors import PlumeError
from ...guidance import classifier_free_guidance
from ...processes import GaussianProcess
from ...tasks.start import denoise_from, noise_to, partial_sigmas

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def image_to_image(fn: ModelFn, process: "str | GaussianProcess", guide: torch.Tensor, strength: float,
                   seeds: Sequence[int], steps: int = 20, sampler: str = "dpm++2m", prediction: str = "x0",
                   grid: str = "karras", **sampler_options: Any) -> torch.Tensor:
    """SDEdit outputs (B, ...) from guide images (B, ...) in the data's scale, one seed per output."""
    if guide.ndim < 2:
        raise PlumeError(f"image_to_image takes a batch of guides (B, ...), got shape {tuple(guide.shape)}")
    sigmas = partial_sigmas(process, steps, strength, grid)  # (steps + 1,) from s0 down to 0
    x_t = noise_to(process, guide, float(sigmas[0]), seeds)  # (B, ...), Algorithm 1 line 3
    return denoise_from(fn, process, x_t, sigmas, seeds, sampler, prediction, **sampler_options)  # (B, ...)


def conditioned(denoiser: nn.Module, cond: Optional[torch.Tensor], guidance: float = 1.0,
                negative: Optional[torch.Tensor] = None) -> ModelFn:
    """The x0-predictor fn(x_t, t) of a (possibly conditional) denoiser for conditions cond (B,) / (B, T) or None:
    the denoiser itself, conditioned on cond, or with classifier-free guidance of scale `guidance` (plume.guidance)."""
    if cond is None:
        return denoiser
    if guidance != 1.0 or negative is not None:
        return classifier_free_guidance(denoiser, cond, guidance, negative)
    return lambda x_t, t: denoiser(x_t, t, cond.to(x_t.device))


__all__ = ["image_to_image", "conditioned"]
