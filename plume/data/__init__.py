"""Data: toy sets, Gaussian mixtures with exact denoisers, and the codecs of each modality."""
from .gaussian_mixture import GaussianMixture, random_mixture, ring_mixture

__all__ = ["GaussianMixture", "random_mixture", "ring_mixture"]
