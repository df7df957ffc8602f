"""Metrics that know no data type: Fréchet distances, kernel inception distance, improved precision and recall, the
inception score (of any classifier's probabilities) and nearest-neighbour memorization distances. Each data type
measures its samples with them in its own feature space (plume.images.evaluation: Inception-v3, DINOv2, a
classifier trained on the data)."""
from .frechet import frechet_distance, frechet_from_statistics, gaussian_statistics
from .inception_score import inception_score
from .kid import KIDResult, kernel_inception_distance
from .memorization import memorization_ratio, nearest_neighbor_distances, training_nn_distances
from .precision_recall import precision_recall

__all__ = ["frechet_distance", "frechet_from_statistics", "gaussian_statistics", "memorization_ratio",
           "nearest_neighbor_distances", "training_nn_distances", "KIDResult", "kernel_inception_distance",
           "precision_recall", "inception_score"]
