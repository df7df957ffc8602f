"""Evaluation of generated data: Fréchet distances, Plume's own feature classifier for small image sets, and
nearest-neighbour memorisation checks."""
from .classifier import ImageClassifier, train_classifier
from .frechet import frechet_distance, frechet_from_statistics, gaussian_statistics
from .images import evaluate_images, fid_floor
from .memorization import memorization_ratio, nearest_neighbor_distances, training_nn_distances

__all__ = ["ImageClassifier", "train_classifier", "frechet_distance", "frechet_from_statistics",
           "gaussian_statistics", "evaluate_images", "fid_floor", "memorization_ratio", "nearest_neighbor_distances",
           "training_nn_distances"]
