"""Image classifiers for the framework's own domain metrics (classifier-FID, class coverage,
conditional accuracy; see `lightning_dgm.metrics.classes`).

Plain nn.Modules, nothing about training. A classifier maps images (N, C, H, W) in [-1, 1] to
class logits (N, num_classes) and exposes its penultimate layer: `features(x)` -> (N, num_features),
the representation a domain FID compares (as FID reads Inception's pool3, the layer before its logits).
"""

from __future__ import annotations

from collections.abc import Sequence

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


__all__ = ["ConvClassifier"]
