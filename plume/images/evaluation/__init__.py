"""Evaluation of generated images: feature networks (the FID Inception-v3, DINOv2, Plume's own classifier for small
image sets), every metric of one sample set in one report with cached reference features, class accuracy of
conditional runs, bits/dim, the memorization audit picture, PSNR/SSIM fidelity, and the prompt checker of the
captioned shapes set. The metrics themselves know no data type (plume.evaluation)."""
from .classifier import ImageClassifier, train_classifier
from .dinov2 import DINOv2, load_dinov2
from .features import FEATURE_NETWORKS, FeatureNetwork, feature_network
from .inception import FIDInceptionV3, load_inception
from .labelled import evaluate_images, fid_floor
from .shapes_checker import CheckResult, check_image, match_rate

__all__ = ["ImageClassifier", "train_classifier", "evaluate_images", "fid_floor", "FEATURE_NETWORKS",
           "FeatureNetwork", "feature_network", "FIDInceptionV3", "load_inception", "DINOv2", "load_dinov2",
           "CheckResult", "check_image", "match_rate"]
