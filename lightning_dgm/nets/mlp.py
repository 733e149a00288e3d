"""Fully connected generator and discriminator (Goodfellow et al. 2014, the MLP recipe).

Plain nn.Modules: tensors in, tensors out, nothing about training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from lightning_dgm.errors import ConfigError


def he_uniform_(module: nn.Module) -> None:
    """He-uniform (Keras' he_uniform) for every Linear: U(-sqrt(6 / fan_in), sqrt(6 / fan_in)), zero bias."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)


def hidden_stack(in_features: int, hidden_dims: Sequence[int], negative_slope: float) -> list[nn.Module]:
    """Linear + LeakyReLU(negative_slope) per width of `hidden_dims`, from `in_features` on."""
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers += [nn.Linear(in_features, width), nn.LeakyReLU(negative_slope)]
        in_features = width
    return layers


class MLPGenerator(nn.Module):
    """Noise (N, latent_dim) -> images (N, *image_shape) in [-1, 1] (tanh output).

    Args:
        latent_dim: size of z.
        hidden_dims: widths of the hidden layers, each followed by LeakyReLU.
        image_shape: (C, H, W) of the images made; linked from the datamodule by the CLI.
        negative_slope: LeakyReLU slope (0.01 in the lecture recipe).
        he_uniform_init: He-uniform weights and zero biases; False keeps PyTorch's default init.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        hidden_dims: Sequence[int] = (128,),
        image_shape: tuple[int, int, int] = (1, 28, 28),
        negative_slope: float = 0.01,
        he_uniform_init: bool = True,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        width = hidden_dims[-1] if hidden_dims else latent_dim
        self.net = nn.Sequential(
            *hidden_stack(latent_dim, hidden_dims, negative_slope),
            nn.Linear(width, math.prod(self.image_shape)),
            nn.Tanh(),
        )
        if he_uniform_init:
            he_uniform_(self)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ConfigError(f"MLPGenerator expects noise of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        return self.net(z).view(len(z), *self.image_shape)


class MLPDiscriminator(nn.Module):
    """Images (N, *image_shape) in [-1, 1] -> logits (N, out_features).

    out_features=1 gives one realness logit (for BCE-with-logits and every other loss);
    out_features=2 gives [fake, real] class logits for a 2-way softmax trained with
    cross-entropy, as in the lecture recipe. The losses in `lightning_dgm.losses` read both.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        hidden_dims: Sequence[int] = (128,),
        negative_slope: float = 0.01,
        out_features: int = 1,
        he_uniform_init: bool = True,
    ) -> None:
        super().__init__()
        if out_features not in (1, 2):
            raise ConfigError(f"out_features must be 1 (realness logit) or 2 ([fake, real] logits), got {out_features}")
        self.image_shape = tuple(image_shape)
        in_features = math.prod(self.image_shape)
        width = hidden_dims[-1] if hidden_dims else in_features
        self.net = nn.Sequential(
            nn.Flatten(),
            *hidden_stack(in_features, hidden_dims, negative_slope),
            nn.Linear(width, out_features),
        )
        if he_uniform_init:
            he_uniform_(self)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ConfigError(
                f"MLPDiscriminator was built for images of shape {self.image_shape}, got {tuple(x.shape[1:])}"
            )
        return self.net(x)


__all__ = ["MLPDiscriminator", "MLPGenerator"]
