"""Super-resolution networks of SRGAN (Ledig et al. 2017, fig. 4): the SRResNet generator and the
SRGAN discriminator. Plain nn.Modules, nothing about training.

Layers are named as in the paper's figure: k9n64s1 is a 9x9 conv with 64 filters and stride 1.
"""

from __future__ import annotations

from torch import Tensor, nn

from lightning_dgm.errors import ConfigError
from lightning_dgm.types import check_shape


def upsampling_factors(scale: int) -> list[int]:
    """The sub-pixel stages of a `scale`x upsampler: x2 stages for powers of two, one x3 stage for 3."""
    if scale == 3:
        return [3]
    if scale < 2 or scale & (scale - 1):
        raise ConfigError(f"scale must be 3 or a power of two (2, 4, 8), got {scale}")
    return [2] * (scale.bit_length() - 1)


class SubPixelUpsample(nn.Sequential):
    """(N, C, H, W) -> (N, C, rH, rW): a 3x3 conv to C * r^2 channels, PixelShuffle(r) and PReLU
    (Shi et al. 2016): output pixel (i*r + a, j*r + b) of channel c is conv channel c*r^2 + a*r + b at (i, j)."""

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels * factor**2, 3, padding=1),
            nn.PixelShuffle(factor),
            nn.PReLU(channels),
        )


class ResidualBlock(nn.Module):
    """x + (conv3x3, [BN], PReLU, conv3x3, [BN])(x); (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int, batch_norm: bool) -> None:
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(channels)) if batch_norm else nn.Identity
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm),
            norm(),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm),
            norm(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SRResNetGenerator(nn.Module):
    """SRResNet: LR images (N, C, h, w) in [-1, 1] -> SR images (N, C, h * scale, w * scale) in (-1, 1).

    k9n64s1 + PReLU; `blocks` residual blocks (k3n64s1, BN, PReLU, k3n64s1, BN; B = 16 in the paper);
    k3n64s1 + BN and the global skip from the first layer's output; log2(scale) sub-pixel x2 stages (one
    x3 stage for scale 3); k9n{C}s1; tanh. The tanh bounds the output to the framework's [-1, 1]
    (the paper scales its HR targets to [-1, 1]). Fully convolutional: any h, w.

    Args:
        scale: upscaling factor (2, 3, 4, ...); linked from the datamodule.
        channels: image channels.
        features: width of every hidden layer (64 in the paper).
        blocks: residual blocks B.
        batch_norm: BatchNorm in the blocks and after the trunk; False is the EDSR / MSRResNet variant
            (BN removed, convs keep their bias), faster and better on PSNR.
    """

    def __init__(
        self, scale: int = 4, channels: int = 3, features: int = 64, blocks: int = 16, batch_norm: bool = True
    ) -> None:
        super().__init__()
        if features < 1 or blocks < 0:
            raise ConfigError(f"need features >= 1 and blocks >= 0, got {features}, {blocks}")
        self.scale, self.channels = scale, channels
        self.head = nn.Sequential(nn.Conv2d(channels, features, 9, padding=4), nn.PReLU(features))
        self.trunk = nn.Sequential(
            *(ResidualBlock(features, batch_norm) for _ in range(blocks)),
            nn.Conv2d(features, features, 3, padding=1, bias=not batch_norm),
            nn.BatchNorm2d(features) if batch_norm else nn.Identity(),
        )
        self.upsample = nn.Sequential(*(SubPixelUpsample(features, r) for r in upsampling_factors(scale)))
        self.tail = nn.Sequential(nn.Conv2d(features, channels, 9, padding=4), nn.Tanh())

    def forward(self, low: Tensor) -> Tensor:
        if low.dim() != 4 or low.shape[1] != self.channels:
            raise ConfigError(f"SRResNetGenerator expects images (N, {self.channels}, h, w), got {tuple(low.shape)}")
        x = self.head(low)
        return self.tail(self.upsample(x + self.trunk(x)))


class SRGANDiscriminator(nn.Module):
    """SRGAN's D: HR images (N, C, H, W) in [-1, 1], (C, H, W) = `image_shape` -> logits (N, 1).

    Eight 3x3 convs, k3n64s1, k3n64s2, k3n128s1, k3n128s2, ..., k3n512s2 (the first without BN), each
    followed by LeakyReLU(0.2); then dense 1024, LeakyReLU(0.2), dense 1 (the logit; the paper's sigmoid
    is in the loss). The dense layer is sized for `image_shape`, the HR training crop (96 px: 6x6x512).

    Args:
        image_shape: (C, H, W) of the images judged; linked from the datamodule.
        features: filters of the first conv (64), doubled every second conv.
        hidden: width of the dense layer (1024).
        batch_norm: BatchNorm after convs 2-8.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 96, 96),
        features: int = 64,
        hidden: int = 1024,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        channels, height, width = self.image_shape
        layers: list[nn.Module] = []
        for i in range(8):
            out, stride = features * 2 ** (i // 2), 1 + i % 2
            layers += [nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=not (batch_norm and i > 0))]
            layers += [nn.BatchNorm2d(out)] if batch_norm and i > 0 else []
            layers += [nn.LeakyReLU(0.2)]
            channels = out
            if stride == 2:  # a 3x3 stride-2 conv with padding 1 gives ceil(side / 2)
                height, width = (height + 1) // 2, (width + 1) // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * height * width, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1)
        )

    def forward(self, images: Tensor) -> Tensor:
        check_shape(images, self.image_shape, type(self).__name__)
        return self.classifier(self.features(images))
