"""Image tasks built on a trained denoiser: each wraps the denoiser or hooks a sampler (DESIGN.md), never forks
one. plume.tasks.start holds what they share: starting the reverse process part-way from a given image."""
from .start import denoise_from, noise_to, partial_sigmas, sigmas_below

__all__ = ["denoise_from", "noise_to", "partial_sigmas", "sigmas_below"]
