"""Data: toy sets, Gaussian mixtures with exact denoisers, and the codecs of each modality."""
from .gaussian_mixture import GaussianMixture, random_mixture, ring_mixture
from .toy import TOY_SETS, toy_data, toy_mixture

__all__ = ["GaussianMixture", "random_mixture", "ring_mixture", "TOY_SETS", "toy_data", "toy_mixture"]
