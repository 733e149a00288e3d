"""A fully connected projection discriminator (Miyato & Koyama 2018) for class-conditional GANs.

Plain nn.Module, nothing about training. It pairs with `ConditionalMLPGenerator` on the shared
GAN step of `ConditionalGAN`: the system needs nothing beyond this file and a YAML
(`configs/cgan_mnist_mlp_projection.yaml`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from lightning_dgm.errors import ConfigError
from lightning_dgm.nets.mlp import he_uniform_, hidden_stack
from lightning_dgm.types import check_labels, check_shape


class ProjectionMLPDiscriminator(nn.Module):
    """(images (N, *image_shape) in [-1, 1], labels (N,)) -> realness logits (N, 1).

    logit = psi(phi(x)) + <embed(y), phi(x)>  (eq. 3 of Miyato & Koyama), where phi(x) is the last
    hidden layer of an MLP (LeakyReLU units) on the flattened image, psi a linear map to one logit
    and embed(y) a learned vector of phi's width per class. Unlike concatenating y to x, the label
    enters only through the inner product, the form a log-likelihood ratio of class-conditional
    densities takes.

    Args:
        image_shape: (C, H, W); linked from the datamodule by the CLI.
        num_classes: number of classes; linked from the datamodule by the CLI.
        hidden_dims: widths of the hidden layers (phi's width is the last); at least one.
        negative_slope: LeakyReLU slope.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        hidden_dims: Sequence[int] = (512, 256),
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if num_classes < 1 or not hidden_dims:
            raise ConfigError(f"need num_classes >= 1 and at least one hidden layer, got {num_classes}, {hidden_dims}")
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        self.phi = nn.Sequential(*hidden_stack(math.prod(self.image_shape), hidden_dims, negative_slope))
        self.psi = nn.Linear(hidden_dims[-1], 1)
        he_uniform_(self)
        self.embed = nn.Embedding(num_classes, hidden_dims[-1])
        nn.init.normal_(self.embed.weight, 0.0, 0.02)  # starts near the unconditional D

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        check_shape(x, self.image_shape, "ProjectionMLPDiscriminator")
        check_labels(labels, len(x), self.num_classes, "ProjectionMLPDiscriminator")
        phi = self.phi(x.flatten(1))
        return self.psi(phi) + (self.embed(labels.long()).to(phi.dtype) * phi).sum(dim=1, keepdim=True)


__all__ = ["ProjectionMLPDiscriminator"]
