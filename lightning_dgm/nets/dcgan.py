"""DCGAN generator and discriminator (Radford, Metz & Chintala 2015), for 28, 32 and 64 pixel images.

Plain nn.Modules, nothing about training. The architecture guidelines of the paper (Sec. 3):
no pooling (strided convolutions in D, fractionally-strided ones in G), BatchNorm in both nets
except G's output layer and D's input layer, ReLU in G with tanh on its output, LeakyReLU(0.2)
in D, and every weight drawn from N(0, 0.02).

Depth follows the image side: G starts from a `start` x `start` map (4, or 7 for 28) and each
stride-2 4x4 transposed convolution doubles it; D mirrors that. Channel widths double as the side
halves, from `base_channels` at the largest map (the paper's 64x64 nets are base_channels=128).
"""

from __future__ import annotations

from torch import Tensor, nn

from lightning_dgm.errors import ConfigError

#: Supported image sides and the side of G's first (and D's last) feature map.
START_SIDE = {28: 7, 32: 4, 64: 4}


def _plan(name: str, image_shape: tuple[int, ...]) -> tuple[int, int]:
    """(start side, number of stride-2 layers) for a supported (C, H, W)."""
    if len(image_shape) != 3 or image_shape[1] != image_shape[2] or image_shape[1] not in START_SIDE:
        supported = ", ".join(f"(C, {s}, {s})" for s in START_SIDE)
        raise ConfigError(f"{name} supports images of shape {supported}, got {tuple(image_shape)}; resize the data")
    start = START_SIDE[image_shape[1]]
    return start, (image_shape[1] // start).bit_length() - 1  # side = start * 2**depth


def normal_init_(module: nn.Module) -> None:
    """DCGAN's init (Sec. 4: "All weights were initialized from a zero-centered Normal distribution
    with standard deviation 0.02"), which pix2pix and CycleGAN keep, in place: conv and
    transposed-conv weights N(0, 0.02), norm scales N(1, 0.02) so each norm starts near the
    identity, all biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(getattr(layer, "weight", None), nn.Parameter):  # the only other weighted layers are norms
            nn.init.normal_(layer.weight, 1.0, 0.02)
            if isinstance(getattr(layer, "bias", None), nn.Parameter):
                nn.init.zeros_(layer.bias)


class DCGANGenerator(nn.Module):
    """Noise (N, latent_dim) -> images (N, *image_shape) in [-1, 1] (tanh output).

    z is read as a 1x1 map and projected to base_channels * 2**(depth - 1) x start x start by a
    transposed convolution with a start x start kernel; then `depth` stride-2 4x4 transposed
    convolutions double the side, the last one to C channels.

    Args:
        latent_dim: size of z (100 in the paper).
        image_shape: (C, H, W) with H = W in 28, 32, 64; linked from the datamodule by the CLI.
        base_channels: width of the last hidden layer (the largest feature map).
    """

    def __init__(
        self,
        latent_dim: int = 100,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        start, depth = _plan("DCGANGenerator", self.image_shape)
        widths = [base_channels * 2**i for i in reversed(range(depth))]  # e.g. 4b, 2b, b for 32x32
        # Biases before BatchNorm are cancelled by its mean subtraction, so those layers have none.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], start, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        for width, after in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(width, after, 4, 2, 1, bias=False), nn.BatchNorm2d(after), nn.ReLU()]
        # No BatchNorm on the output layer: the paper found it made samples oscillate.
        layers += [nn.ConvTranspose2d(widths[-1], self.image_shape[0], 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        normal_init_(self)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ConfigError(f"DCGANGenerator expects noise of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        return self.net(z.view(len(z), self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Images (N, *image_shape) in [-1, 1] -> realness logits (N, 1).

    `depth` stride-2 4x4 convolution blocks (LeakyReLU(0.2); BatchNorm on all but the first) halve
    the side down to start x start, with widths base_channels, 2 * base_channels, ...; a final
    start x start convolution gives one logit. `features(x)` returns each block's activation map,
    which the paper's feature-learning evaluation max-pools to 4x4 and concatenates.

    Args:
        image_shape: (C, H, W) with H = W in 28, 32, 64; linked from the datamodule by the CLI.
        base_channels: width of the first block (the largest feature map).
    """

    def __init__(self, image_shape: tuple[int, int, int] = (3, 32, 32), base_channels: int = 64) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        start, depth = _plan("DCGANDiscriminator", self.image_shape)
        widths = [base_channels * 2**i for i in range(depth)]
        # The input layer has no BatchNorm (Sec. 3), so it keeps its bias.
        blocks = [nn.Sequential(nn.Conv2d(self.image_shape[0], widths[0], 4, 2, 1), nn.LeakyReLU(0.2))]
        for width, after in zip(widths, widths[1:]):
            blocks.append(
                nn.Sequential(nn.Conv2d(width, after, 4, 2, 1, bias=False), nn.BatchNorm2d(after), nn.LeakyReLU(0.2))
            )
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(widths[-1], 1, start, 1, 0)
        normal_init_(self)

    def features(self, x: Tensor) -> list[Tensor]:
        """Activation maps after each conv block: (N, base_channels * 2**i, H / 2**(i+1), W / 2**(i+1))."""
        if tuple(x.shape[1:]) != self.image_shape:
            raise ConfigError(
                f"DCGANDiscriminator was built for images of shape {self.image_shape}, got {tuple(x.shape[1:])}"
            )
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)[-1]).flatten(1)


__all__ = ["DCGANDiscriminator", "DCGANGenerator", "normal_init_"]
