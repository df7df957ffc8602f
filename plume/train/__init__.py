"""Training: the one loop (for a Denoiser or any Trainable), its data protocol, EMA, logs, and checkpoints (config.json +
safetensors, written atomically)."""
from .batches import RNG_BLOCK, MicroBatch, draw_micro_batch, step_generator
from .checkpoint import (FORMAT_VERSION, Checkpoint, build_denoiser, denoiser_config, find_checkpoint, load_checkpoint,
                         load_denoiser, read_config, save_checkpoint)
from .data import TensorData, TrainingData, as_training_data, check_data
from .distributed import Distributed, from_environment
from .ema import EMA
from .plots import scatter_image, scatter_plot
from .config import LR_SCHEDULES, PARALLEL, PRECISIONS, TrainConfig, learning_rate, train_config
from .denoising import DenoisingLoss, preview
from .step import StepResult, train_step
from .trainable import Trainable
from .trainer import TrainingInterrupted, TrainResult, train

__all__ = [
    "FORMAT_VERSION", "Checkpoint", "build_denoiser", "denoiser_config", "find_checkpoint", "load_checkpoint",
    "load_denoiser", "read_config", "save_checkpoint", "TensorData", "TrainingData", "as_training_data", "check_data",
    "EMA", "scatter_image", "scatter_plot", "LR_SCHEDULES", "PRECISIONS", "TrainConfig", "TrainingInterrupted",
    "TrainResult", "learning_rate", "preview", "step_generator", "train", "train_config", "train_step",
    "PARALLEL", "RNG_BLOCK", "MicroBatch", "draw_micro_batch", "Distributed", "from_environment", "DenoisingLoss", "StepResult",
    "Trainable",
]
