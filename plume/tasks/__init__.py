"""Tasks built on a trained denoiser of any data type: each wraps the denoiser or hooks a sampler (DESIGN.md), never
forks one: starting the reverse process part-way from a given example (start), anomaly scores (anomaly). The tasks
of one data type live in its package (plume.images.tasks)."""
from .start import denoise_from, noise_to, partial_sigmas, sigmas_below

__all__ = ["denoise_from", "noise_to", "partial_sigmas", "sigmas_below"]
