"""Image classifiers for the framework's own domain metrics (classifier-FID, class coverage,
conditional accuracy; see `lightning_dgm.metrics.classes`).

Plain nn.Modules, nothing about training. A classifier maps images (N, C, H, W) in [-1, 1] to
class logits (N, num_classes) and exposes its penultimate layer: `features(x)` -> (N, num_features),
the representation a domain FID compares (as FID reads Inception's pool3, the layer before its logits).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_dgm.errors import ConfigError


class ConvClassifier(nn.Module):
    """A small VGG-style CNN: images (N, *image_shape) in [-1, 1] -> logits (N, num_classes).

    `len(channels)` stages, each `convs_per_stage` 3x3 convolutions (padding 1; BatchNorm when
    `batch_norm`) with ReLU, then a 2x2 max-pool that halves the side (rounding down); the last map
    is flattened into a dense layer of `num_features` units with ReLU: the penultimate features
    (non-negative). Dropout, then a linear layer gives the logits.

    The defaults, two 1-conv stages (32, 64) and 128 features, reach about 99% on MNIST in two or
    three epochs; `channels=(64, 128, 256), convs_per_stage=2, batch_norm=True` is a small VGG for
    CIFAR-10.

    Args:
        image_shape: (C, H, W) of the input; linked from the datamodule by the CLI.
        num_classes: number of logits; linked from the datamodule by the CLI.
        channels: output channels of each stage.
        convs_per_stage: 3x3 convolutions per stage.
        batch_norm: BatchNorm after each convolution (then the convolution has no bias).
        num_features: width of the penultimate dense layer, the `features` output.
        dropout: dropout probability on the features before the last layer (training only).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        channels: Sequence[int] = (32, 64),
        convs_per_stage: int = 1,
        batch_norm: bool = False,
        num_features: int = 128,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        if len(self.image_shape) != 3:
            raise ConfigError(f"ConvClassifier expects image_shape (C, H, W), got {self.image_shape}")
        side = min(self.image_shape[1:]) // 2 ** len(channels)
        if not channels or side < 1:
            raise ConfigError(
                f"ConvClassifier halves the side once per stage: {len(channels)} stages do not fit images of shape "
                f"{self.image_shape}; use fewer channels entries"
            )
        if num_classes < 2 or num_features < 1 or convs_per_stage < 1 or not 0 <= dropout < 1:
            raise ConfigError(
                "ConvClassifier needs num_classes >= 2, num_features >= 1, convs_per_stage >= 1 and dropout in [0, 1), "
                f"got {num_classes}, {num_features}, {convs_per_stage}, {dropout}"
            )
        self.num_classes, self.num_features = num_classes, num_features
        layers: list[nn.Module] = []
        width = self.image_shape[0]
        for out in channels:
            for _ in range(convs_per_stage):
                # A bias before BatchNorm is cancelled by its mean subtraction.
                layers.append(nn.Conv2d(width, out, 3, padding=1, bias=not batch_norm))
                layers += [nn.BatchNorm2d(out), nn.ReLU()] if batch_norm else [nn.ReLU()]
                width = out
            layers.append(nn.MaxPool2d(2))
        height, breadth = (s // 2 ** len(channels) for s in self.image_shape[1:])
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.penultimate = nn.Sequential(nn.Linear(width * height * breadth, num_features), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (N, num_features), >= 0, of images (N, *image_shape) in [-1, 1]."""
        if tuple(x.shape[1:]) != self.image_shape:
            raise ConfigError(
                f"ConvClassifier was built for images of shape {self.image_shape}, got {tuple(x.shape[1:])}"
            )
        return self.penultimate(self.body(x))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (N, num_classes)."""
        return self.head(self.features(x))


class _BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU. Where the block changes the shape
    (stride 2, doubled channels) the shortcut is He et al.'s "option A": subsample by 2 and pad the
    new channels with zeros, parameter-free (what the published CIFAR ResNet-20 weights assume)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride, self.pad = stride, out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        if self.stride != 1 or self.pad:
            half = self.pad // 2  # new channels: zeros, half before and half after the old ones
            shortcut = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, half, self.pad - half))
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + shortcut)


class CifarResNet(nn.Module):
    """He et al. (2016)'s CIFAR ResNet of depth 6n + 2 (20: n = 3): a 3x3 conv to 16 channels, three
    stages of n basic blocks at 16, 32 and 64 channels (stages 2 and 3 start by halving the side),
    global average pooling (the 64-d `features`), a linear layer to the logits. Parameter names
    follow the widely used CIFAR ResNet code (conv1, bn1, layer1..3, linear), so its published
    state_dicts load as they are (see `lightning_dgm.metrics.CIFAR10ResNet20`).

    Input: (N, 3, H, W) float in [-1, 1] (32x32 for CIFAR). `input_mean` / `input_std`, when given,
    normalise the [0, 1] image per channel first, as the weights were trained.

    Args:
        depth: 6n + 2 layers (20, 32, 44, 56, 110).
        num_classes: number of logits.
        input_mean, input_std: per-channel normalisation of [0, 1] images; None: none.
    """

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 or num_classes < 2:
            raise ConfigError(
                f"CifarResNet needs depth 6n + 2 (20, 32, 44, 56, 110) and num_classes >= 2, got {depth}, {num_classes}"
            )
        if (input_mean is None) != (input_std is None):
            raise ConfigError("give CifarResNet both input_mean and input_std, or neither")
        self.num_classes, self.num_features, self.image_shape = num_classes, 64, (3, 32, 32)
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        width, stages = 16, []
        for out, stride in ((16, 1), (32, 2), (64, 2)):
            first = _BasicBlock(width, out, stride)
            stages.append(nn.Sequential(first, *(_BasicBlock(out, out, 1) for _ in range(blocks - 1))))
            width = out
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes)
        mean = torch.tensor(input_mean if input_mean is not None else [0.0, 0.0, 0.0]).view(1, 3, 1, 1)
        std = torch.tensor(input_std if input_std is not None else [1.0, 1.0, 1.0]).view(1, 3, 1, 1)
        self.register_buffer("input_mean", mean, persistent=False)
        self.register_buffer("input_std", std, persistent=False)

    def features(self, x: Tensor) -> Tensor:
        """Globally pooled activations (N, 64), >= 0, of images (N, 3, H, W) in [-1, 1]."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ConfigError(f"CifarResNet takes RGB images (N, 3, H, W), got shape {tuple(x.shape)}")
        x = ((x + 1) / 2 - self.input_mean) / self.input_std
        out = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(out))).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (N, num_classes)."""
        return self.linear(self.features(x))


__all__ = ["CifarResNet", "ConvClassifier"]
