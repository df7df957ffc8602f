"""Plume: diffusion models for every formulation and data type."""
from .version import __version__

from .errors import PlumeError
from .predictions import PREDICTIONS, Prediction, prediction
from .processes import PROCESSES, GaussianProcess, process
from .samplers import GRIDS, SAMPLERS, SeedNoise, time_grid
from .sampling import sample, scaled_denoiser
from .samplers.optimized_grid import optimize_grid
from .backbones import BACKBONES, backbone
from .denoiser import Denoiser
from .modality import MODALITIES, Modality, register_modality
from .run import Run, load
from .fit import fit
from .train import TrainConfig, load_denoiser

# The data types that ship with Plume; each registers itself (plume.modality). A new one is a package and a line here.
from . import points  # noqa: E402
from . import images  # noqa: E402

__all__ = [
    "PlumeError", "PREDICTIONS", "Prediction", "prediction", "PROCESSES", "GaussianProcess", "process",
    "GRIDS", "SAMPLERS", "SeedNoise", "time_grid", "sample", "scaled_denoiser", "optimize_grid", "__version__",
    "BACKBONES", "backbone", "Denoiser", "TrainConfig", "load_denoiser", "MODALITIES", "Modality",
    "register_modality", "Run", "load", "fit",
]
