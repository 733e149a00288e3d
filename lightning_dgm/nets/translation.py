"""Image-to-image translation networks: CycleGAN's ResNet generator and the PatchGAN discriminator.

Plain nn.Modules, nothing about training. pix2pix (Isola et al. 2017) pairs a U-Net generator
(`lightning_dgm.nets.unet`) with a PatchGAN discriminator that classifies every overlapping
70x70 patch as real or fake; CycleGAN (Zhu et al. 2017, Appendix 7.2) keeps that discriminator and
uses Johnson et al.'s residual generator. Layers are named as in the papers: c7s1-k (7x7 conv,
stride 1, k filters, norm, ReLU), dk (3x3 stride-2 conv), Rk (residual block), uk (3x3 stride-1/2
transposed conv), Ck (4x4 conv, norm, LeakyReLU(0.2)).

The normalization layer is an argument, any callable `num_features -> nn.Module` (a `NormCallable`,
set in YAML by class path like an `OptimizerCallable`): `InstanceNorm` (the default: CycleGAN's norm,
and pix2pix's "batch norm with batch size 1 and test-time statistics"), `BatchNorm`, `torch.nn.Identity`
for none, or any torch norm with its own settings (`{class_path: torch.nn.InstanceNorm2d, init_args:
{affine: true}}`). Weights follow pix2pix's init: convolutions N(0, 0.02), norm scales N(1, 0.02),
all biases 0.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from lightning_dgm.errors import ConfigError
from lightning_dgm.nets.dcgan import normal_init_

#: A normalization layer factory: called with a channel count, returns the module.
NormCallable = Callable[[int], nn.Module]


# Both take nothing but the channel count, so a config that swaps the default norm for another starts
# clean: with a torch class as the default, jsonargparse carries the default's init_args over to the
# newly chosen class (`norm: torch.nn.BatchNorm2d` would inherit InstanceNorm2d's affine=False).
class InstanceNorm(nn.InstanceNorm2d):
    """Per-image, per-channel normalization with no learned scale or shift and no running statistics."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=False, track_running_stats=False)


class BatchNorm(nn.BatchNorm2d):
    """Batch normalization with learned scale and shift and running statistics (`--norm batch` officially)."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=True, track_running_stats=True)


def conv_norm(
    conv: type[nn.Conv2d] | type[nn.ConvTranspose2d], in_channels: int, out_channels: int, norm: NormCallable, **kwargs
) -> list[nn.Module]:
    """[conv, norm(out_channels)]; the conv has a bias only if the norm has no learned shift of its own.

    BatchNorm's beta makes a conv bias redundant, so it is dropped; InstanceNorm without affine
    parameters keeps the conv bias, as the official pix2pix/CycleGAN code does (its mean
    subtraction cancels that bias too, but dropping it would change the published parameter counts).
    """
    layer = norm(out_channels)
    if not isinstance(layer, nn.Module):
        raise TypeError(f"norm must return an nn.Module when called with a channel count, got {type(layer).__name__}")
    has_shift = isinstance(getattr(layer, "bias", None), nn.Parameter)
    return [conv(in_channels, out_channels, bias=not has_shift, **kwargs), layer]


def _check_images(name: str, x: Tensor, channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ConfigError(f"{name} expects images of shape (N, {channels}, H, W), got {tuple(x.shape)}")


class ResidualBlock(nn.Module):
    """Rk: x + (reflect-pad, 3x3 conv, norm, ReLU, [dropout], reflect-pad, 3x3 conv, norm)(x).

    (N, channels, H, W) -> (N, channels, H, W), H and W >= 2 (reflection padding needs them).
    No ReLU after the sum, as in the official code.
    """

    def __init__(self, channels: int, norm: NormCallable = InstanceNorm, dropout: float = 0.0) -> None:
        super().__init__()
        layers = [nn.ReflectionPad2d(1), *conv_norm(nn.Conv2d, channels, channels, norm, kernel_size=3), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), *conv_norm(nn.Conv2d, channels, channels, norm, kernel_size=3)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """Images (N, in_channels, H, W) in [-1, 1] -> (N, out_channels, H, W) in [-1, 1] (tanh output).

    CycleGAN's generator: c7s1-64, d128, d256, `num_blocks` x R256, u128, u64, c7s1-3, tanh (widths
    for base_channels=64). Reflection padding at the 7x7 convs and in the blocks avoids border
    artifacts. The paper uses 6 blocks for 128x128 images and 9 for 256x256 and larger. Fully
    convolutional: any H, W divisible by 4 (the two stride-2 steps) and at least 8.

    Args:
        in_channels, out_channels: image channels of the source and target domains.
        base_channels: width of the first layer; the residual trunk is 4 * base_channels wide.
        num_blocks: number of residual blocks.
        norm: normalization layer factory (see the module docstring).
        dropout: dropout probability inside each residual block (0 in CycleGAN).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        num_blocks: int = 9,
        norm: NormCallable = InstanceNorm,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_blocks < 0:
            raise ConfigError(f"num_blocks must be >= 0, got {num_blocks}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.out_channels, self.num_blocks = in_channels, out_channels, num_blocks
        b = base_channels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), *conv_norm(nn.Conv2d, in_channels, b, norm, kernel_size=7)]
        layers.append(nn.ReLU())
        for width in (b, 2 * b):  # d128, d256
            layers += [*conv_norm(nn.Conv2d, width, 2 * width, norm, kernel_size=3, stride=2, padding=1), nn.ReLU()]
        layers += [ResidualBlock(4 * b, norm, dropout) for _ in range(num_blocks)]
        for width in (4 * b, 2 * b):  # u128, u64; output_padding=1 makes each exactly double the side
            up = dict(kernel_size=3, stride=2, padding=1, output_padding=1)
            layers += [*conv_norm(nn.ConvTranspose2d, width, width // 2, norm, **up), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(b, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        normal_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        _check_images("ResNetGenerator", x, self.in_channels)
        h, w = x.shape[-2:]
        if h % 4 or w % 4 or min(h, w) < 8:
            raise ConfigError(
                f"ResNetGenerator needs H and W divisible by 4 and at least 8, got {h}x{w}; resize or crop the images"
            )
        return self.net(x)


class PatchGANDiscriminator(nn.Module):
    """Images (N, in_channels, H, W) -> raw realness logits (N, 1, H', W'), one per overlapping patch.

    C64 (no norm) - C128 - C256 - C512 - 1 for num_layers=3 (widths for base_channels=64, capped at
    8 * base_channels): `num_layers` stride-2 4x4 convs, then one stride-1 conv of width
    base_channels * min(2**num_layers, 8) and a stride-1 conv to one channel, all padding 1.
    H' = floor(H / 2**num_layers) - 2 (a 256 input gives 30x30); each logit sees a
    `receptive_field` x `receptive_field` patch (70 for num_layers=3: the 70x70 PatchGAN).

    pix2pix's conditional D sees the (input, output) pair stacked on channels: in_channels=6 for RGB.
    The logits are unnormalized; the loss (BCE-with-logits, least squares) is the system's choice.

    Args:
        in_channels: channels of the image (or of the stacked pair).
        base_channels: width of the first layer.
        num_layers: number of stride-2 convolutions (1 -> 16x16 patches, 2 -> 34, 3 -> 70, 4 -> 142).
        norm: normalization layer factory (see the module docstring); none on the first layer.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_layers: int = 3,
        norm: NormCallable = InstanceNorm,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
        self.in_channels, self.num_layers = in_channels, num_layers
        widths = [base_channels * min(2**n, 8) for n in range(num_layers + 1)]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for n in range(1, num_layers + 1):
            stride = 2 if n < num_layers else 1
            layers += [*conv_norm(nn.Conv2d, widths[n - 1], widths[n], norm, kernel_size=4, stride=stride, padding=1)]
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        normal_init_(self)

    @property
    def receptive_field(self) -> int:
        """Side of the input patch that one output logit sees, from the conv stack: r <- (r - 1) * s + k."""
        side = 1
        for conv in reversed([m for m in self.net if isinstance(m, nn.Conv2d)]):
            side = (side - 1) * conv.stride[0] + conv.kernel_size[0]
        return side

    def forward(self, x: Tensor) -> Tensor:
        _check_images("PatchGANDiscriminator", x, self.in_channels)
        smallest = 3 * 2**self.num_layers  # H' = floor(H / 2**num_layers) - 2 >= 1
        if min(x.shape[-2:]) < smallest:
            raise ConfigError(
                f"PatchGANDiscriminator with num_layers={self.num_layers} needs H and W >= {smallest}, "
                f"got {tuple(x.shape[-2:])}; use larger images or fewer layers"
            )
        return self.net(x)


__all__ = [
    "BatchNorm",
    "InstanceNorm",
    "NormCallable",
    "PatchGANDiscriminator",
    "ResNetGenerator",
    "ResidualBlock",
    "conv_norm",
]
