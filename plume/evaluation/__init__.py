"""Evaluation of generated data: Fréchet distances, kernel inception distance, improved precision and recall, the
inception score, feature networks (the FID Inception-v3, DINOv2, Plume's own classifier for small image sets),
nearest-neighbour memorisation checks, and the prompt checker of the captioned shapes set."""
from .classifier import ImageClassifier, train_classifier
from .dinov2 import DINOv2, load_dinov2
from .features import FEATURE_NETWORKS, FeatureNetwork, feature_network
from .frechet import frechet_distance, frechet_from_statistics, gaussian_statistics
from .images import evaluate_images, fid_floor
from .inception import FIDInceptionV3, load_inception
from .inception_score import inception_score
from .kid import KIDResult, kernel_inception_distance
from .memorization import memorization_ratio, nearest_neighbor_distances, training_nn_distances
from .precision_recall import precision_recall
from .shapes_checker import CheckResult, check_image, match_rate

__all__ = ["ImageClassifier", "train_classifier", "frechet_distance", "frechet_from_statistics",
           "gaussian_statistics", "evaluate_images", "fid_floor", "memorization_ratio", "nearest_neighbor_distances",
           "training_nn_distances", "KIDResult", "kernel_inception_distance", "precision_recall", "inception_score",
           "FEATURE_NETWORKS", "FeatureNetwork", "feature_network", "FIDInceptionV3", "load_inception", "DINOv2",
           "load_dinov2", "CheckResult", "check_image", "match_rate"]
