"""Latent diffusion (Rombach et al. 2022): a KL-regularized convolutional autoencoder trained by Plume, diffusion on
its scaled latents (LatentData, trained by plume.train.train like any data), and decoding at sampling. The
autoencoder trains through the same plume.train.train (AutoencoderLoss is its Trainable). See docs/latent.md."""
from .autoencoder import DiagonalGaussian, KLAutoencoder
from .checkpoint import load_autoencoder, read_autoencoder_config, save_autoencoder
from .data import LatentData, decode_latents, encode_images, latent_autoencoder, latent_data_from_info
from .training import (AutoencoderConfig, AutoencoderLoss, AutoencoderResult, latent_scale, reconstruct,
    reconstruction_error, reconstruction_picture, train_autoencoder)

__all__ = ["DiagonalGaussian", "KLAutoencoder", "load_autoencoder", "read_autoencoder_config", "save_autoencoder",
           "LatentData", "decode_latents", "encode_images", "latent_autoencoder", "latent_data_from_info",
           "AutoencoderConfig", "AutoencoderLoss", "AutoencoderResult", "latent_scale", "reconstruct",
           "reconstruction_error", "reconstruction_picture", "train_autoencoder"]
