"""Fully connected networks for 2-D point data, as in the mode-collapse experiments of VEEGAN
(Srivastava et al. 2017) and PacGAN (Lin et al. 2018, section 5.1): G has four hidden layers of
400 ReLU units with BatchNorm; D has three hidden layers of 200 maxout units with 5 pieces.

PacGAN is an option of the discriminator (`pack=m`): D judges m samples at once, concatenated
into one input, so a batch of N points yields N / m decisions (Lin et al. 2018, section 3).

PacGAN's official code (github.com/fjxmlzn/PacGAN, synthetic_data_experiments/*/pacgan_task.py)
differs from the PyTorch defaults in two ways, both options here: G's linear layers have no bias
(BatchNorm's shift follows each hidden one; the output layer keeps its bias), and every weight is
drawn from N(0, 0.02) with biases 0 (`init_std=0.02`; BatchNorm starts at scale 1, shift 0).

Plain nn.Modules: tensors in, tensors out, nothing about training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from lightning_dgm.errors import ConfigError


class Maxout(nn.Module):
    """Linear maxout units (Goodfellow et al. 2013): out_features units, each the max of `pieces` affine maps."""

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(len(x), self.out_features, self.pieces).amax(dim=2)


def _normal_init_(module: nn.Module, std: float) -> None:
    """In place: every nn.Linear weight ~ N(0, std), every Linear bias 0 (PacGAN's IsotropicGaussian(0.02)
    and Constant(0)). BatchNorm keeps PyTorch's start, scale 1 and shift 0, as Blocks' BatchNormalization
    does; unlike `nets.dcgan.normal_init_`, which draws the scales from N(1, 0.02)."""
    if std <= 0:
        raise ConfigError(f"init_std must be positive, got {std}")
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class PointGenerator(nn.Module):
    """Noise (N, latent_dim) -> points (N, *image_shape), unbounded (no output activation).

    Args:
        latent_dim: size of z (2 in the papers).
        hidden_dims: widths of the hidden layers, each Linear -> [BatchNorm] -> ReLU.
        image_shape: shape of one data point, (2,) for the plane; linked from the datamodule.
        batch_norm: BatchNorm1d after each hidden linear layer (on in the papers).
        hidden_bias: whether the hidden linear layers have a bias; PacGAN's code has none
            (`use_bias=False`), the output layer keeps one either way.
        init_std: draw every weight from N(0, init_std) and zero every bias (0.02 in PacGAN's
            code); None keeps PyTorch's default init.
        batch_norm_momentum: weight of each batch in BatchNorm's running statistics, which
            evaluation (eval mode) uses; PyTorch's default is 0.1, PacGAN's code uses 0.05.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        hidden_dims: Sequence[int] = (400, 400, 400, 400),
        image_shape: tuple[int, ...] = (2,),
        batch_norm: bool = True,
        hidden_bias: bool = True,
        init_std: float | None = None,
        batch_norm_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = []
        width = latent_dim
        for hidden in hidden_dims:
            norm = [nn.BatchNorm1d(hidden, momentum=batch_norm_momentum)] if batch_norm else []
            layers += [nn.Linear(width, hidden, bias=hidden_bias), *norm, nn.ReLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, math.prod(self.image_shape)))
        if init_std is not None:
            _normal_init_(self, init_std)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ConfigError(f"PointGenerator expects noise of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        return self.net(z).view(len(z), *self.image_shape)


class PointDiscriminator(nn.Module):
    """Points (N, *image_shape) -> realness logits (N / pack, 1).

    With `pack=m`, consecutive groups of m points form one input of m * prod(image_shape)
    numbers and get one logit. Real and fake points reach D in separate calls, so a pack never
    mixes them; N must be a multiple of m.

    Args:
        image_shape: shape of one data point; linked from the datamodule.
        hidden_dims: widths of the maxout hidden layers.
        maxout_pieces: affine pieces per maxout unit (5 in the papers); at least 2, since one
            piece would make D linear.
        pack: points per decision, m in PacGAN (1 is a plain GAN; the paper uses 2, 3, 4).
        init_std: draw every weight from N(0, init_std) and zero every bias (0.02 in PacGAN's
            code); None keeps PyTorch's default init.
    """

    def __init__(
        self,
        image_shape: tuple[int, ...] = (2,),
        hidden_dims: Sequence[int] = (200, 200, 200),
        maxout_pieces: int = 5,
        pack: int = 1,
        init_std: float | None = None,
    ) -> None:
        super().__init__()
        if maxout_pieces < 2 or pack < 1:
            raise ConfigError(f"need maxout_pieces >= 2 and pack >= 1, got {maxout_pieces} and {pack}")
        self.image_shape = tuple(image_shape)
        self.pack = pack
        layers: list[nn.Module] = []
        width = pack * math.prod(self.image_shape)
        for hidden in hidden_dims:
            layers.append(Maxout(width, hidden, maxout_pieces))
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))
        if init_std is not None:
            _normal_init_(self, init_std)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ConfigError(
                f"PointDiscriminator was built for points of shape {self.image_shape}, got {tuple(x.shape[1:])}"
            )
        if len(x) % self.pack:
            raise ConfigError(
                f"PointDiscriminator packs {self.pack} points per decision, but got a batch of "
                f"{len(x)}; use a batch size that is a multiple of {self.pack}"
            )
        return self.net(x.reshape(len(x) // self.pack, -1))


__all__ = ["Maxout", "PointDiscriminator", "PointGenerator"]
