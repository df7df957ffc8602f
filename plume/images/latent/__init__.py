"""Latent diffusion (Rombach et al. 2022): a KL-regularized convolutional autoencoder trained by Plume, diffusion on
its scaled latents (LatentData in memory, EncodedLatents encoded as batches ask, CachedLatents from a cache written
once by `plume prepare --latent`; trained by plume.train.train like any data), and decoding at sampling. The
autoencoder trains through the same plume.train.train (AutoencoderLoss is its Trainable). See docs/latent.md."""
from .autoencoder import DiagonalGaussian, KLAutoencoder
from .cache import CachedLatents, cache_summary, is_latent_cache, latents_from_info, prepare_latents
from .checkpoint import load_autoencoder, read_autoencoder_config, save_autoencoder
from .data import (EncodedLatents, LatentData, decode_latents, encode_images, latent_autoencoder, latent_data,
    latent_data_from_info)
from .training import (AutoencoderConfig, AutoencoderLoss, AutoencoderResult, latent_scale, reconstruct,
    reconstruction_error, reconstruction_picture, train_autoencoder)

__all__ = ["DiagonalGaussian", "KLAutoencoder", "CachedLatents", "cache_summary", "is_latent_cache",
           "latents_from_info", "prepare_latents", "load_autoencoder", "read_autoencoder_config", "save_autoencoder",
           "EncodedLatents", "LatentData", "decode_latents", "encode_images", "latent_autoencoder", "latent_data",
           "latent_data_from_info", "AutoencoderConfig", "AutoencoderLoss", "AutoencoderResult", "latent_scale",
           "reconstruct", "reconstruction_error", "reconstruction_picture", "train_autoencoder"]
