"""Points: vectors (D,) as a Plume data type (plume.points.modality), the 2-D toy sets, Gaussian mixtures with
closed-form denoisers (the exact answers the samplers are tested against), sample-quality measures for vectors, and
an anomaly detector for numeric tables fitted to normal rows (plume.points.table_anomaly)."""
from ..modality import register_modality
from .gaussian_mixture import GaussianMixture, random_mixture, ring_mixture
from .metrics import energy_distance, mixture_errors, vector_report
from .modality import POINTS, VECTOR_RECIPE, Points, toy_training_data
from .toy import TOY_SETS, toy_data, toy_mixture

register_modality(POINTS)

__all__ = ["GaussianMixture", "random_mixture", "ring_mixture", "TOY_SETS", "toy_data", "toy_mixture", "POINTS",
           "VECTOR_RECIPE", "Points", "toy_training_data", "energy_distance", "mixture_errors", "vector_report"]
