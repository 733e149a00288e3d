"""pix2pix's U-Net generator (Isola et al. 2017, Sec. 3.2.1 and Appendix 6.1.1).

Plain nn.Module, nothing about training. An encoder-decoder whose decoder layer i also sees the
encoder features of the mirrored layer n - i (concatenated on channels), so low-level structure
shared by input and output (edges, layout) can skip the bottleneck.

Encoder for 256x256: C64-C128-C256-C512-C512-C512-C512-C512 (4x4 stride-2 convs, LeakyReLU(0.2),
no norm on the first layer nor at the 1x1 bottleneck, where instance or batch-size-1 statistics
would zero the features). Decoder: CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128 counting the
concatenated skip channels (4x4 stride-2 transposed convs, ReLU, D = dropout 0.5), then tanh.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_dgm.errors import ConfigError
from lightning_dgm.nets.dcgan import normal_init_
from lightning_dgm.nets.translation import InstanceNorm, NormCallable, conv_norm


class UNetGenerator(nn.Module):
    """Images (N, C, S, S) in [-1, 1] -> (N, out_channels, S, S) in [-1, 1] (tanh output).

    `num_downs` stride-2 layers halve the side down to S / 2**num_downs (1x1 by default: num_downs
    = log2(S), so 8 for 256, 7 for 128, 6 for 64). Encoder widths double from base_channels up to
    8 * base_channels and then stay; the decoder mirrors them. Dropout sits on the three innermost
    decoder layers, as in the paper (the official code shifts it one layer outwards). pix2pix keeps
    dropout on at test time as its only noise source; that is the system's choice (`.train()`).

    Args:
        image_shape: (C, S, S) of the input images, S a power of two; the CLI links it from the
            datamodule (the translation datamodules serve (3, crop_size, crop_size)).
        out_channels: channels of the output images.
        base_channels: width of the first encoder layer (64 in the paper).
        num_downs: number of stride-2 layers, <= log2(image_size); None -> log2(image_size).
        norm: normalization layer factory, `num_features -> nn.Module`: `InstanceNorm` (default),
            `BatchNorm`, ... (see `lightning_dgm.nets.translation`).
        dropout: dropout probability of the three innermost decoder layers (0 turns it off).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 256, 256),
        out_channels: int = 3,
        base_channels: int = 64,
        num_downs: int | None = None,
        norm: NormCallable = InstanceNorm,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        in_channels, image_size, width = image_shape
        if image_size != width:
            raise ConfigError(
                f"UNetGenerator needs square images, got image_shape {tuple(image_shape)}; crop them square"
            )
        if image_size < 2 or image_size & (image_size - 1):
            raise ConfigError(
                f"UNetGenerator needs image_size a power of two (e.g. 64, 128, 256), got {image_size}; "
                "resize or crop the images"
            )
        most = image_size.bit_length() - 1  # log2(image_size): down to a 1x1 bottleneck
        depth = most if num_downs is None else num_downs
        if not 1 <= depth <= most:
            raise ConfigError(
                f"UNetGenerator with image_size={image_size} takes num_downs in [1, {most}], got {num_downs}; "
                "leave it None for a 1x1 bottleneck"
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.image_size, self.num_downs = image_size, depth
        widths = [base_channels * 2 ** min(i, 3) for i in range(depth)]

        # down[i]: (w[i-1], S / 2**i) -> (w[i], S / 2**(i+1)). Each block opens with its activation, so
        # the skips carry features before any activation and the decoder applies its own ReLU to them.
        self.down = nn.ModuleList([nn.Sequential(nn.Conv2d(in_channels, widths[0], 4, stride=2, padding=1))])
        for i in range(1, depth):
            if i < depth - 1:
                conv = conv_norm(nn.Conv2d, widths[i - 1], widths[i], norm, kernel_size=4, stride=2, padding=1)
            else:
                conv = [nn.Conv2d(widths[i - 1], widths[i], 4, stride=2, padding=1)]  # bottleneck: no norm
            self.down.append(nn.Sequential(nn.LeakyReLU(0.2), *conv))

        # up[j], innermost first, undoes down[depth - 1 - j]; every input but the bottleneck's is the
        # previous up output concatenated with the mirrored encoder features, hence 2 * width.
        self.up = nn.ModuleList()
        for i in reversed(range(1, depth)):
            width = widths[i] if i == depth - 1 else 2 * widths[i]
            up = conv_norm(nn.ConvTranspose2d, width, widths[i - 1], norm, kernel_size=4, stride=2, padding=1)
            layers = [nn.ReLU(), *up]
            if dropout > 0 and depth - i <= 3:
                layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        width = widths[0] if depth == 1 else 2 * widths[0]
        output = nn.ConvTranspose2d(width, out_channels, 4, stride=2, padding=1)  # no norm, keeps its bias
        self.up.append(nn.Sequential(nn.ReLU(), output, nn.Tanh()))
        normal_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            shape = ", ".join(map(str, expected))
            raise ConfigError(f"UNetGenerator expects images of shape (N, {shape}), got {tuple(x.shape)}")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck goes straight into the decoder
        for block in self.up[:-1]:
            x = torch.cat([block(x), skips.pop()], dim=1)
        return self.up[-1](x)


__all__ = ["UNetGenerator"]
