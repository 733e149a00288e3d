"""Encoders and decoders for autoencoders and VAEs: fully connected and convolutional.

Plain nn.Modules, nothing about training. An encoder maps images (N, C, H, W) in [-1, 1] to
codes (N, latent_dim), or, with `gaussian_posterior=True`, to (N, 2 * latent_dim): the mean and
log-variance of a diagonal Gaussian q(z | x), in that order. A decoder maps codes
(N, latent_dim) to unbounded (N, C, H, W) outputs; what they mean (Bernoulli logits, Gaussian
means) is the likelihood's business, not the network's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from lightning_dgm.errors import ConfigError
from lightning_dgm.types import check_shape


def _check_codes(name: str, z: Tensor, latent_dim: int) -> None:
    if z.dim() != 2 or z.shape[1] != latent_dim:
        raise ConfigError(f"{name} expects codes of shape (N, {latent_dim}), got {tuple(z.shape)}")


#: hidden units of the MLPs, by name (the IWAE paper's VAE uses tanh)
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def _mlp(in_features: int, hidden_dims: Sequence[int], out_features: int, activation: str = "relu") -> list[nn.Module]:
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers += [nn.Linear(in_features, width), ACTIVATIONS[activation]()]
        in_features = width
    return [*layers, nn.Linear(in_features, out_features)]


class _Encoder(nn.Module):
    """What the encoders share: the image shape they take and their output, `latent_dim` codes or,
    with `gaussian_posterior`, the mean and log-variance of q(z | x) (`out_features` of them)."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int, gaussian_posterior: bool) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        self.gaussian_posterior = gaussian_posterior
        self.out_features = latent_dim * (2 if gaussian_posterior else 1)

    def forward(self, x: Tensor) -> Tensor:
        check_shape(x, self.image_shape, type(self).__name__)
        return self.net(x)


class MLPEncoder(_Encoder):
    """Images (N, *image_shape) -> (N, latent_dim), or (N, 2 * latent_dim) for a Gaussian posterior.

    The IWAE paper's one-stochastic-layer VAE is hidden_dims (200, 200), latent_dim 50, tanh.
    `activation` names the hidden units: "relu" or "tanh".
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        hidden_dims: Sequence[int] = (200, 200),
        latent_dim: int = 20,
        gaussian_posterior: bool = False,
        activation: Literal["relu", "tanh"] = "relu",
    ) -> None:
        super().__init__(image_shape, latent_dim, gaussian_posterior)
        layers = _mlp(math.prod(self.image_shape), hidden_dims, self.out_features, activation)
        self.net = nn.Sequential(nn.Flatten(), *layers)


class MLPDecoder(nn.Module):
    """Codes (N, latent_dim) -> unbounded outputs (N, *image_shape); hidden units "relu" or "tanh"."""

    def __init__(
        self,
        latent_dim: int = 20,
        hidden_dims: Sequence[int] = (200, 200),
        image_shape: tuple[int, int, int] = (1, 28, 28),
        activation: Literal["relu", "tanh"] = "relu",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        self.net = nn.Sequential(*_mlp(latent_dim, hidden_dims, math.prod(self.image_shape), activation))

    def forward(self, z: Tensor) -> Tensor:
        _check_codes("MLPDecoder", z, self.latent_dim)
        return self.net(z).view(len(z), *self.image_shape)


def _bottom_size(name: str, image_shape: tuple[int, ...], depth: int) -> int:
    # Each stride-2 layer (kernel 4, padding 1) halves the side exactly, so it must divide.
    side = image_shape[-1]
    if image_shape[-2] != side or side % 2**depth:
        raise ConfigError(
            f"{name} with {depth} stride-2 layers needs square images with a side divisible by {2**depth}, "
            f"got {tuple(image_shape)}; change `channels`"
        )
    return side // 2**depth


class ConvEncoder(_Encoder):
    """Images (N, C, H, W) -> codes: stride-2 4x4 convolutions (BatchNorm, ReLU), then a linear head.

    Each entry of `channels` is one layer that halves the side: (32, 64) takes 28x28 to 64x7x7,
    (32, 64, 128) takes 32x32 to 128x4x4.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        channels: Sequence[int] = (32, 64, 128),
        latent_dim: int = 128,
        gaussian_posterior: bool = False,
    ) -> None:
        super().__init__(image_shape, latent_dim, gaussian_posterior)
        side = _bottom_size("ConvEncoder", self.image_shape, len(channels))
        layers: list[nn.Module] = []
        previous = self.image_shape[0]
        for width in channels:
            layers += [nn.Conv2d(previous, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            previous = width
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(previous * side * side, self.out_features))


class ConvDecoder(nn.Module):
    """Codes (N, latent_dim) -> unbounded (N, C, H, W): a linear layer to channels[0] x s x s, then
    stride-2 4x4 transposed convolutions (BatchNorm, ReLU) that double the side, one per entry of
    `channels` (the last goes to C image channels, without norm or activation).
    """

    def __init__(
        self,
        latent_dim: int = 128,
        channels: Sequence[int] = (128, 64, 32),
        image_shape: tuple[int, int, int] = (3, 32, 32),
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        self.side = _bottom_size("ConvDecoder", self.image_shape, len(channels))
        self.channels = tuple(channels)
        self.project = nn.Linear(latent_dim, channels[0] * self.side * self.side)
        layers: list[nn.Module] = [nn.BatchNorm2d(channels[0]), nn.ReLU()]
        outs = [*channels[1:], self.image_shape[0]]
        for i, (width, after) in enumerate(zip(channels, outs)):
            last = i == len(channels) - 1
            layers.append(nn.ConvTranspose2d(width, after, 4, 2, 1, bias=last))
            if not last:
                layers += [nn.BatchNorm2d(after), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        _check_codes("ConvDecoder", z, self.latent_dim)
        return self.net(self.project(z).view(len(z), self.channels[0], self.side, self.side))


__all__ = ["ConvDecoder", "ConvEncoder", "MLPDecoder", "MLPEncoder"]
