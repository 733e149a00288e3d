"""Independent judges of CIFAR-10 samples: a published CIFAR-10 ResNet-20 classifier (He et al. 2016;
the widely used weights of github.com/akamaster/pytorch_resnet_cifar10, 91.78% on CIFAR-10's test
split), loaded from a local file. It was trained by someone else on real CIFAR-10, so it cannot
share a framework model's blind spots: a fair instrument for the conditional accuracy of a
class-conditional generator, and its 64-d pooled features for a classifier-FID and for precision,
recall, density and coverage.

* `CIFAR10ResNet20`: the classifier as a module, images (N, 3, 32, 32) in [-1, 1] -> logits (N, 10),
  with `features(x)` (N, 64); what `ClassMetrics(classifier=...)` takes.
* `ResNet20Features` / `ResNet20Logits`: its features / logits in torchmetrics' extractor contract
  (uint8 [0, 255] or float [0, 1] in), for `SampleMetrics(feature=..., classifier=...)`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import Tensor, nn

from lightning_dgm.errors import ConfigError, MissingFileError
from lightning_dgm.metrics.classes import Penultimate
from lightning_dgm.metrics.features import ImageFeatures
from lightning_dgm.nets.classifiers import CifarResNet

RESNET20_FILE = "resnet20-12fca82f.th"
RESNET20_URL = f"https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/{RESNET20_FILE}"
# The normalisation those weights were trained with (ImageNet's mean and std, on [0, 1] images).
RESNET20_MEAN, RESNET20_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class CIFAR10ResNet20(CifarResNet):
    """The published CIFAR-10 ResNet-20 from a local weights file (`{'best_prec1', 'state_dict'}` with
    keys prefixed `module.`, or a plain state_dict), frozen and in eval mode. Nothing is downloaded:
    a missing file raises an error saying what to fetch and where to put it.

    Args:
        weights_path: the `.th` / `.pt` file; None: `$TORCH_HOME/hub/checkpoints/resnet20-12fca82f.th`
            (default `~/.cache/torch/hub/checkpoints/`), where the Inception weights live too.
    """

    def __init__(self, weights_path: str | None = None) -> None:
        super().__init__(depth=20, num_classes=10, input_mean=RESNET20_MEAN, input_std=RESNET20_STD)
        path = (
            Path(weights_path).expanduser()
            if weights_path
            else Path(torch.hub.get_dir()) / "checkpoints" / RESNET20_FILE
        )
        if not path.is_file():
            raise MissingFileError(
                f"CIFAR-10 ResNet-20 weights not found at {path}: nothing is downloaded at run time; fetch "
                f"{RESNET20_URL} and save it there (`mkdir -p {path.parent} && curl -L -o {path} {RESNET20_URL}`), "
                "or pass weights_path= the file's location"
            )
        try:  # weights_only: a weights file needs no code to unpickle, and none is run
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
            reason = " ".join(str(error).split())[:120]
            raise ConfigError(
                f"{path} is not a readable weights file ({reason}); fetch {RESNET20_URL} again"
            ) from error
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise ConfigError(f"{path} holds no state_dict of a CIFAR ResNet-20")
        state = {key.removeprefix("module."): value for key, value in state.items()}
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [key for key in missing if not key.endswith("num_batches_tracked")]  # not in older files
        if missing or unexpected:
            raise ConfigError(
                f"{path} is not a CIFAR ResNet-20 state_dict (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        self.weights_path = str(path)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> CIFAR10ResNet20:
        return super().train(False)  # a measuring instrument: its BatchNorm never trains

    def extra_repr(self) -> str:
        return f"weights={Path(self.weights_path).name}"


class ResNet20Features(ImageFeatures):
    """The ResNet-20's 64-d pooled features (N, 64) of images (N, 3, 32, 32), uint8 [0, 255] or float
    [0, 1] (torchmetrics' contract): a CIFAR-10 classifier-FID, and precision / recall. Images of
    another size are refused rather than resized: the judge only knows 32x32 CIFAR images."""

    def __init__(self, weights_path: str | None = None) -> None:
        network = CIFAR10ResNet20(weights_path)
        super().__init__(self._head(network), self._width(network), in_channels=3)
        self.classifier_image_shape = network.image_shape

    @staticmethod
    def _head(network: CifarResNet) -> nn.Module:
        return Penultimate(network)

    @staticmethod
    def _width(network: CifarResNet) -> int:
        return network.num_features

    def forward(self, images: Tensor) -> Tensor:
        if tuple(images.shape[-2:]) != self.classifier_image_shape[1:]:
            raise ConfigError(
                f"the CIFAR-10 ResNet-20 takes 32x32 images, got {tuple(images.shape[-2:])}: use it on CIFAR-10 samples"
            )
        return super().forward(images)


class ResNet20Logits(ResNet20Features):
    """The ResNet-20's logits (N, 10), for a classifier Inception Score; input as `ResNet20Features`."""

    @staticmethod
    def _head(network: CifarResNet) -> nn.Module:
        return network

    @staticmethod
    def _width(network: CifarResNet) -> int:
        return network.num_classes


__all__ = ["CIFAR10ResNet20", "RESNET20_URL", "ResNet20Features", "ResNet20Logits"]
