"""Training: the loop, EMA, and checkpoints (config.json + safetensors, written atomically)."""
from .checkpoint import (FORMAT_VERSION, Checkpoint, build_denoiser, denoiser_config, find_checkpoint, load_checkpoint,
                         load_denoiser, read_config, save_checkpoint)
from .ema import EMA
from .plots import scatter_plot
from .trainer import (TrainConfig, TrainResult, check_data, learning_rate, step_generator, train, train_config,
                      train_step)

__all__ = [
    "FORMAT_VERSION", "Checkpoint", "build_denoiser", "denoiser_config", "find_checkpoint", "load_checkpoint",
    "load_denoiser", "read_config", "save_checkpoint", "EMA", "scatter_plot", "TrainConfig", "TrainResult",
    "check_data", "learning_rate", "step_generator", "train", "train_config", "train_step",
]
