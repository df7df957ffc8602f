"""A convolutional KL-regularized autoencoder: the first stage of latent diffusion (Rombach et al. 2022, "High-
Resolution Image Synthesis with Latent Diffusion Models", sec. 3 and appendix G).

The encoder maps an image x (B, C, H, W) to a diagonal Gaussian posterior q(z | x) = N(mu, diag(sigma^2)) over
latents z (B, z, H/f, W/f); the decoder maps z back to (B, C, H, W). Training minimizes, per image,

    L = sum_pixels (x - D(z))^2 + beta * KL(q(z | x) || N(0, I)),   z = mu + sigma * eps   (LDM, eq. 25 without
                                                                                    the perceptual and GAN terms)

with KL in closed form (Kingma & Welling 2014, appendix B): KL = 1/2 sum (mu^2 + sigma^2 - 1 - log sigma^2).
Both terms are sums over the image (and latent) elements, LDM's convention, so beta means what it means there
(1e-6: the KL term only keeps the latent space from drifting to arbitrary scales). The reconstruction term is the
squared error (a Gaussian likelihood), not LDM's L1: L1's minimizer is the per-pixel median, and on the shapes
scenes (a few small shapes on black) the median of most pixels is black, so an L1 autoencoder settles on blank
images and stays there (32 scenes at 16 x 16, 300 steps: MSE 0.055 with L1, against 0.060 for all-black images
and 0.0027 with the squared error). LDM's L1 works beside its perceptual and GAN terms, which we leave out.

Layout (LDM's Encoder / Decoder of ldm/modules/diffusionmodules/model.py, smaller and without attention):
a 3x3 input conv; per level `blocks_per_level` residual blocks (GroupNorm, SiLU, 3x3 conv, twice, around an identity
skip) and, except after the last level, a stride-2 3x3 conv that halves H and W and widens to the next level; a
middle residual block; GroupNorm, SiLU and a 3x3 conv to 2z channels (mean and log-variance). Widths double at every
level, width * 2^l (LDM's ch_mult (1, 2, 4) for f = 4). The decoder mirrors it: a 3x3 conv from z channels, a middle
block, per level the residual blocks then nearest-neighbour 2x upsampling and a 3x3 conv that narrows to the level
above. The width changes in the down- and upsampling convs, not in the residual blocks (LDM changes it in the
blocks, through 1x1 skip convs): cheaper at full resolution, where most of the cost is. LDM's 1x1 quant_conv /
post_quant_conv are left out: they compose with the adjacent convs.

`scale_factor` (LDM's scale_factor, 1 / std of the encoded training latents; plume.images.latent.training.latent_scale)
maps posterior means to the unit-variance latents diffusion trains on: to_latent and from_latent.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import PlumeError

LOGVAR_RANGE = (-30.0, 20.0)  # LDM clamps the log-variance to this range (DiagonalGaussianDistribution)
MAX_FACTOR = 64


class DiagonalGaussian:
    """q(z | x) = N(mean, diag(exp(logvar))) over latents (B, z, h, w) (Kingma & Welling 2014)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean = mean  # (B, z, h, w)
        self.logvar = logvar.clamp(*LOGVAR_RANGE)  # (B, z, h, w)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)  # (B, z, h, w)

    def sample(self, generator: Optional[torch.Generator] = None,
               noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z = mean + std * eps, eps ~ N(0, I) given as `noise` or drawn from `generator` (the reparameterization
        trick)."""
        eps = noise if noise is not None else torch.randn(
            self.mean.shape, generator=generator, dtype=self.mean.dtype,
            device=generator.device if generator is not None else self.mean.device)  # (B, z, h, w)
        return self.mean + self.std * eps.to(self.mean.device)  # (B, z, h, w)

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per example, summed over the latent elements: 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2)."""
        return 0.5 * (self.mean ** 2 + self.logvar.exp() - 1.0 - self.logvar).flatten(1).sum(1)  # (B,)


class ResBlock(nn.Module):
    """x -> x + conv2(SiLU(GN(conv1(SiLU(GN(x)))))): LDM's ResnetBlock at one width, without a time embedding."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, channels), nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(groups, channels), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C, H, W)
        return x + self.conv2(F.silu(self.norm2(h)))  # (B, C, H, W)


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling, then a 3x3 conv to the next level's width."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, Co, 2H, 2W)


def _head(channels: int, out: int, groups: int) -> nn.Sequential:
    """GroupNorm, SiLU and a 3x3 conv to `out` channels: the last layers of the encoder and of the decoder."""
    return nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, out, 3, padding=1))


class KLAutoencoder(nn.Module):
    """Images (B, C, H, W) <-> latents (B, z, H/f, W/f) through a diagonal Gaussian posterior (LDM's AutoencoderKL)."""

    def __init__(self, in_channels: int = 3, latent_channels: int = 4, factor: int = 4, width: int = 16,
                 blocks_per_level: int = 1, norm_groups: int = 8):
        super().__init__()
        _check(in_channels, latent_channels, factor, width, blocks_per_level, norm_groups)
        self._options = {"in_channels": in_channels, "latent_channels": latent_channels, "factor": factor,
                         "width": width, "blocks_per_level": blocks_per_level, "norm_groups": norm_groups}
        self.in_channels, self.latent_channels, self.factor = in_channels, latent_channels, factor
        self.scale_factor = 1.0  # set from data by plume.images.latent.training.latent_scale; saved in config.json
        widths = [width * 2 ** level for level in range(factor.bit_length())]  # log2(f) + 1 levels
        groups = norm_groups
        encoder: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        for level, w in enumerate(widths):
            encoder += [ResBlock(w, groups) for _ in range(blocks_per_level)]
            if level < len(widths) - 1:  # halve H and W, widen to the next level's width
                encoder.append(nn.Conv2d(w, widths[level + 1], 3, stride=2, padding=1))
        encoder += [ResBlock(widths[-1], groups), _head(widths[-1], 2 * latent_channels, groups)]
        self.encoder = nn.Sequential(*encoder)
        decoder: list[nn.Module] = [nn.Conv2d(latent_channels, widths[-1], 3, padding=1), ResBlock(widths[-1], groups)]
        for level in reversed(range(len(widths))):
            decoder += [ResBlock(widths[level], groups) for _ in range(blocks_per_level)]
            if level > 0:  # double H and W, narrow to the previous level's width
                decoder.append(Upsample(widths[level], widths[level - 1]))
        decoder.append(_head(widths[0], in_channels, groups))
        self.decoder = nn.Sequential(*decoder)

    def options(self) -> dict[str, Any]:
        """The constructor options that rebuild this autoencoder (saved in config.json)."""
        return dict(self._options)

    def latent_shape(self, image_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(z, H/f, W/f) of the latents of images shaped (C, H, W); refuses shapes this autoencoder cannot take."""
        self._check_images(image_shape, "images")
        _, height, width = image_shape
        return self.latent_channels, height // self.factor, width // self.factor

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """q(z | x) for images x (B, C, H, W) in [-1, 1]: mean and log-variance (B, z, H/f, W/f)."""
        if x.ndim != 4:
            raise PlumeError(f"the autoencoder encodes images (B, {self.in_channels}, H, W), "
                             f"got shape {tuple(x.shape)}")
        self._check_images(tuple(x.shape[1:]), "images")
        mean, logvar = self.encoder(x).chunk(2, dim=1)  # 2 x (B, z, H/f, W/f)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) from latents z (B, z, h, w), h = H/f."""
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise PlumeError(f"the autoencoder decodes latents (B, {self.latent_channels}, h, w), "
                             f"got shape {tuple(z.shape)}")
        return self.decoder(z)  # (B, C, h*f, w*f)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None,
                noise: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, DiagonalGaussian]:
        """(reconstruction (B, C, H, W) from a posterior sample, the posterior); the sample's eps is `noise`
        (B, z, h, w) if given, else drawn from `generator`."""
        posterior = self.encode(x)
        return self.decode(posterior.sample(generator, noise)), posterior

    def loss(self, x: torch.Tensor, beta: float, generator: Optional[torch.Generator] = None,
             noise: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Per-image terms (B,) of L = sum (x - x_hat)^2 + beta * KL (module docstring), and the per-element MSE;
        the posterior sample's eps is `noise` if given, else drawn from `generator`."""
        x_hat, posterior = self(x, generator, noise)  # (B, C, H, W)
        squared = ((x - x_hat) ** 2).flatten(1).sum(1)  # (B,)
        kl = posterior.kl()  # (B,)
        return {"loss": squared + beta * kl, "mse": squared / x[0].numel(), "kl": kl}

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """scale_factor * E[z | x]: the unit-variance latents (B, z, H/f, W/f) diffusion trains on (LDM, sec. 4.3.2)."""
        return self.encode(x).mean * self.scale_factor  # (B, z, h, w)

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) from scaled latents: decode(z / scale_factor)."""
        return self.decode(z / self.scale_factor)  # (B, C, H, W)

    def _check_images(self, shape: tuple[int, ...], what: str) -> None:
        if len(shape) != 3 or shape[0] != self.in_channels or shape[1] % self.factor or shape[2] % self.factor:
            raise PlumeError(f"the autoencoder takes {what} ({self.in_channels}, H, W) with H and W multiples of its "
                             f"downsampling factor f={self.factor}; got {'x'.join(map(str, shape))}"
                             + (f": train an autoencoder with in_channels={shape[0]} for these" if len(shape) == 3
                                and shape[0] != self.in_channels else ": resize or crop the images"))


def _check(in_channels: int, latent_channels: int, factor: int, width: int, blocks_per_level: int,
           norm_groups: int) -> None:
    """Refuse options that cannot build the autoencoder, saying which value to change."""
    if not isinstance(factor, int) or factor < 1 or factor & (factor - 1) or factor > MAX_FACTOR:
        raise PlumeError(f"the autoencoder's downsampling factor must be a power of 2 from 1 to {MAX_FACTOR} "
                         f"(each level halves H and W), got factor={factor!r}")
    small = {k: v for k, v in (("in_channels", in_channels), ("latent_channels", latent_channels), ("width", width),
                               ("blocks_per_level", blocks_per_level), ("norm_groups", norm_groups)) if v < 1}
    if small:
        name, value = next(iter(small.items()))
        raise PlumeError(f"autoencoder option {name} must be at least 1, got {value}")
    if width % norm_groups:
        fits = [g for g in range(1, min(width, 32) + 1) if width % g == 0]
        raise PlumeError(f"the autoencoder's width={width} must divide by norm_groups={norm_groups} (GroupNorm); "
                         f"use norm_groups in {fits} or a width that is a multiple of {norm_groups}")


__all__ = ["DiagonalGaussian", "KLAutoencoder", "LOGVAR_RANGE"]
