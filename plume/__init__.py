"""Plume: diffusion models for every formulation and data type."""
__version__ = "0.1.0"

from .errors import PlumeError
from .predictions import PREDICTIONS, Prediction, prediction
from .processes import PROCESSES, GaussianProcess, process
from .samplers import GRIDS, SAMPLERS, SeedNoise, time_grid
from .sampling import sample, scaled_denoiser
from .samplers.optimized_grid import optimize_grid
from .backbones import BACKBONES, backbone
from .denoiser import Denoiser
from .train import TrainConfig, load_denoiser

__all__ = [
    "PlumeError", "PREDICTIONS", "Prediction", "prediction", "PROCESSES", "GaussianProcess", "process",
    "GRIDS", "SAMPLERS", "SeedNoise", "time_grid", "sample", "scaled_denoiser", "optimize_grid", "__version__",
    "BACKBONES", "backbone", "Denoiser", "TrainConfig", "load_denoiser",
]
