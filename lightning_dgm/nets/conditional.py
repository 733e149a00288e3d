"""Label-conditioned generators and discriminators for conditional GANs (Mirza & Osindero 2014).

Plain nn.Modules, nothing about training. Each wraps one of the unconditional networks and feeds
it the class label y (int64 (N,) in [0, num_classes)) as well:

* MLP: a learned embedding of y is concatenated to z in G and to the flattened image in D, the
  paper's construction (a one-hot y followed by a linear layer is the same model).
* DCGAN, G: the embedding is concatenated to z before the first transposed convolution.
* DCGAN, D, by class: `ProjectionDCGANDiscriminator` adds <embed(y), phi(x)> to the logit
  (Miyato & Koyama 2018); `ConcatDCGANDiscriminator` stacks one-hot label maps onto the image
  as extra input channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_dgm.errors import ConfigError
from lightning_dgm.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from lightning_dgm.nets.mlp import MLPGenerator, he_uniform_, hidden_stack
from lightning_dgm.types import check_labels, check_shape


def _check_classes(num_classes: int, who: str) -> None:
    if num_classes < 1:
        raise ConfigError(f"{who} needs num_classes >= 1, got {num_classes}")


def _check_noise(z: Tensor, latent_dim: int, who: str) -> None:
    if z.dim() != 2 or z.shape[1] != latent_dim:
        raise ConfigError(f"{who} expects noise of shape (N, {latent_dim}), got {tuple(z.shape)}")


class ConditionalMLPGenerator(nn.Module):
    """(z (N, latent_dim), labels (N,)) -> images (N, *image_shape) in [-1, 1] (tanh output).

    An `MLPGenerator` whose input is [z, embed(y)], of size latent_dim + embedding_dim.

    Args:
        latent_dim: size of z.
        num_classes: number of classes; linked from the datamodule by the CLI.
        embedding_dim: size of the learned label embedding.
        hidden_dims, image_shape, negative_slope, he_uniform_init: as in `MLPGenerator`.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        num_classes: int = 10,
        embedding_dim: int = 10,
        hidden_dims: Sequence[int] = (256,),
        image_shape: tuple[int, int, int] = (1, 28, 28),
        negative_slope: float = 0.2,
        he_uniform_init: bool = True,
    ) -> None:
        super().__init__()
        _check_classes(num_classes, "ConditionalMLPGenerator")
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.image_shape = tuple(image_shape)
        self.embed = nn.Embedding(num_classes, embedding_dim)
        self.body = MLPGenerator(latent_dim + embedding_dim, hidden_dims, image_shape, negative_slope, he_uniform_init)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        _check_noise(z, self.latent_dim, "ConditionalMLPGenerator")
        check_labels(labels, len(z), self.num_classes, "ConditionalMLPGenerator")
        return self.body(torch.cat([z, self.embed(labels.long()).to(z.dtype)], dim=1))


class ConditionalMLPDiscriminator(nn.Module):
    """(images (N, *image_shape) in [-1, 1], labels (N,)) -> logits (N, out_features).

    The flattened image and embed(y) are concatenated, then LeakyReLU hidden layers and a linear
    output, as in `MLPDiscriminator` (out_features 1: a realness logit; 2: [fake, real] logits).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        embedding_dim: int = 10,
        hidden_dims: Sequence[int] = (256,),
        negative_slope: float = 0.2,
        out_features: int = 1,
        he_uniform_init: bool = True,
    ) -> None:
        super().__init__()
        _check_classes(num_classes, "ConditionalMLPDiscriminator")
        if out_features not in (1, 2):
            raise ConfigError(f"out_features must be 1 (realness logit) or 2 ([fake, real] logits), got {out_features}")
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        self.embed = nn.Embedding(num_classes, embedding_dim)
        in_features = math.prod(self.image_shape) + embedding_dim
        width = hidden_dims[-1] if hidden_dims else in_features
        layers = hidden_stack(in_features, hidden_dims, negative_slope)
        self.net = nn.Sequential(*layers, nn.Linear(width, out_features))
        if he_uniform_init:
            he_uniform_(self.net)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        check_shape(x, self.image_shape, "ConditionalMLPDiscriminator")
        check_labels(labels, len(x), self.num_classes, "ConditionalMLPDiscriminator")
        return self.net(torch.cat([x.flatten(1), self.embed(labels.long()).to(x.dtype)], dim=1))


class ConditionalDCGANGenerator(nn.Module):
    """(z (N, latent_dim), labels (N,)) -> images (N, *image_shape) in [-1, 1] (tanh output).

    A `DCGANGenerator` whose 1x1 input map is [z, embed(y)], latent_dim + embedding_dim channels.
    The embedding keeps nn.Embedding's N(0, 1) init, the same scale as z ~ N(0, I). Keep it small
    next to z: on MNIST a 50-d embedding made G ignore z within one epoch (every sample of a class
    alike), while a 10-d one stayed as diverse as the data.

    Args:
        latent_dim: size of z.
        num_classes: number of classes; linked from the datamodule by the CLI.
        embedding_dim: size of the learned label embedding.
        image_shape, base_channels: as in `DCGANGenerator` (H = W in 28, 32, 64).
    """

    def __init__(
        self,
        latent_dim: int = 100,
        num_classes: int = 10,
        embedding_dim: int = 10,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        _check_classes(num_classes, "ConditionalDCGANGenerator")
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.image_shape = tuple(image_shape)
        self.embed = nn.Embedding(num_classes, embedding_dim)
        self.body = DCGANGenerator(latent_dim + embedding_dim, image_shape, base_channels)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        _check_noise(z, self.latent_dim, "ConditionalDCGANGenerator")
        check_labels(labels, len(z), self.num_classes, "ConditionalDCGANGenerator")
        return self.body(torch.cat([z, self.embed(labels.long()).to(z.dtype)], dim=1))


class ProjectionDCGANDiscriminator(nn.Module):
    """(images (N, *image_shape) in [-1, 1], labels (N,)) -> realness logits (N, 1).

    Projection discriminator (Miyato & Koyama 2018, eq. 3): logit = psi(phi(x)) + <embed(y), phi(x)>,
    where phi(x) is the last feature map of a `DCGANDiscriminator` (flattened, C*s*s values), psi
    its start x start convolution head (a linear map of that same vector), and embed(y) a learned
    vector of the same size per class. The embedding starts like the head's weights, N(0, 0.02).
    """

    def __init__(
        self, image_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10, base_channels: int = 64
    ) -> None:
        super().__init__()
        _check_classes(num_classes, "ProjectionDCGANDiscriminator")
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        self.body = DCGANDiscriminator(image_shape, base_channels)
        self.embed = nn.Embedding(num_classes, self.body.head.weight[0].numel())
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def features(self, x: Tensor) -> list[Tensor]:
        """The label-free feature maps phi of `DCGANDiscriminator.features`."""
        return self.body.features(x)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        check_shape(x, self.image_shape, "ProjectionDCGANDiscriminator")
        check_labels(labels, len(x), self.num_classes, "ProjectionDCGANDiscriminator")
        phi = self.body.features(x)[-1]
        projection = (self.embed(labels.long()).to(phi.dtype) * phi.flatten(1)).sum(dim=1, keepdim=True)
        return self.body.head(phi).flatten(1) + projection


class ConcatDCGANDiscriminator(nn.Module):
    """(images (N, *image_shape) in [-1, 1], labels (N,)) -> realness logits (N, 1).

    A `DCGANDiscriminator` over C + num_classes input channels: the image and, per class, a map
    that is 1 where y is that class and 0 elsewhere (one-hot y broadcast over H x W).
    """

    def __init__(
        self, image_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10, base_channels: int = 64
    ) -> None:
        super().__init__()
        _check_classes(num_classes, "ConcatDCGANDiscriminator")
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        channels, height, width = self.image_shape
        self.body = DCGANDiscriminator((channels + num_classes, height, width), base_channels)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        check_shape(x, self.image_shape, "ConcatDCGANDiscriminator")
        check_labels(labels, len(x), self.num_classes, "ConcatDCGANDiscriminator")
        maps = F.one_hot(labels.long(), self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return self.body(torch.cat([x, maps], dim=1))


__all__ = [
    "ConcatDCGANDiscriminator",
    "ConditionalDCGANGenerator",
    "ConditionalMLPDiscriminator",
    "ConditionalMLPGenerator",
    "ProjectionDCGANDiscriminator",
]
