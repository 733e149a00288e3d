"""Feature extractors for FID, KID and IS (`SampleMetrics`' `feature=` and `classifier=`).

The contract is torchmetrics' own for a custom extractor: an `nn.Module` with an int attribute
`num_features`, taking images (N, C, H, W) either as uint8 in [0, 255] (torchmetrics'
`normalize=False`, what `SampleMetrics` passes) or as float in [0, 1] (`normalize=True`), and
returning float features (N, num_features). Both extractors here accept 1- or 3-channel images
of any size; each repeats grey to RGB and resizes only where its network needs it.

* `InceptionFeatures`: the FID Inception-v3 (TensorFlow's 2015-12-05 graph, as ported by
  torch-fidelity and pytorch-fid), read only from a local weights file: published FID / KID / IS
  numbers are in its feature space.
* `ImageFeatures`: any network taking images in [-1, 1] (a domain classifier, a small test net).
* `FeaturesAndLogits`: a callback's feature extractor and classifier as one module, running one
  Inception forward per batch when both are the same Inception.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_dgm.errors import ConfigError, MissingFileError

# torch-fidelity's port of TensorFlow's 2015-12-05 Inception graph: the file torchmetrics downloads
# into $TORCH_HOME/hub/checkpoints/ when it may, and the network definition we load it into.
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
# pytorch-fid publishes the same weights (same sha256 prefix, same state_dict keys) under this name.
INCEPTION_FILE_PYTORCH_FID = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_OUTPUTS = {64: 64, 192: 192, 768: 768, 2048: 2048, "logits_unbiased": 1008, "logits": 1008}


def _unit_float(images: Tensor) -> Tensor:
    """torchmetrics' two input conventions -> float in [0, 1]."""
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not images.is_floating_point():
        raise TypeError(f"expected uint8 images in [0, 255] or float images in [0, 1], got {images.dtype}")
    return images.float()


def _check_images(images: Tensor, who: str) -> None:
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ConfigError(f"{who} expects images (N, 1 or 3, H, W), got shape {tuple(images.shape)}")


def inception_weights_path(weights_path: str | os.PathLike | None = None) -> Path:
    """The local Inception-v3 FID weights: `weights_path`, else `$TORCH_HOME/hub/checkpoints/`
    (default `~/.cache/torch/hub/checkpoints/`) holding `INCEPTION_FILE` or pytorch-fid's copy.
    Never downloads: a missing file raises FileNotFoundError saying what to fetch and where."""
    if weights_path is not None:
        target = Path(weights_path).expanduser()
        if target.is_file():
            return target
    else:
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        for name in (INCEPTION_FILE, INCEPTION_FILE_PYTORCH_FID):
            if (folder / name).is_file():
                return folder / name
        target = folder / INCEPTION_FILE
    raise MissingFileError(
        f"Inception-v3 FID weights not found at {target}. Nothing is downloaded at run time: fetch "
        f"{INCEPTION_FILE} from {INCEPTION_URL} and save it as {target} (`mkdir -p {target.parent} && "
        f"curl -L -o {target} {INCEPTION_URL}`), or pass weights_path= the file's location."
    )


class InceptionFeatures(nn.Module):
    """The FID Inception-v3 (torchmetrics' `NoTrainInceptionV3` over torch-fidelity's network),
    loaded from a local file only (see `inception_weights_path`).

    Input: (N, 1 or 3, H, W) uint8 in [0, 255] or float in [0, 1]; grey is repeated to RGB, and the
    network resizes to 299x299 itself. Output: (N, num_features) float32.

    Args:
        weights_path: the `.pth` file; None looks in `$TORCH_HOME/hub/checkpoints/`.
        feature: 2048 (pool3, FID and KID), 768, 192, 64, or "logits_unbiased" (1008, for IS as in
            torch-fidelity and torchmetrics) / "logits".
        antialias: resize with antialiased bilinear (torchmetrics' default). False (default) is the
            original TensorFlow 1.x bilinear resize, which published FIDs use.
    """

    image_size = 299

    def __init__(self, weights_path: str | None = None, feature: int | str = 2048, antialias: bool = False) -> None:
        super().__init__()
        if feature not in INCEPTION_OUTPUTS:
            raise ConfigError(f"feature must be one of {list(INCEPTION_OUTPUTS)}, got {feature!r}")
        path = inception_weights_path(weights_path)
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
            from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
        except ImportError as error:  # pragma: no cover - torchmetrics is a dependency
            raise ImportError("InceptionFeatures needs torchmetrics") from error
        if not _TORCH_FIDELITY_AVAILABLE:
            raise ModuleNotFoundError("InceptionFeatures needs torch-fidelity: pip install torch-fidelity")
        self.feature, self.antialias, self.weights_file = feature, antialias, path.name
        self.weights_path = path.resolve()  # not in extra_repr: the cache key hashes the weights, wherever they lie
        self.num_features = INCEPTION_OUTPUTS[feature]
        self.network = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=[str(feature)],
            feature_extractor_weights_path=str(path),
            antialias=antialias,
        )
        self.requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        _check_images(images, type(self).__name__)
        if images.dtype != torch.uint8:  # the network takes uint8, as the TF graph took JPEG pixels
            images = _unit_float(images).mul(255).round().clamp(0, 255).to(torch.uint8)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return self.network(images).float()

    def extra_repr(self) -> str:
        return f"feature={self.feature!r}, antialias={self.antialias}, weights={self.weights_file}"

    def logits_from_pool(self, pool: Tensor) -> Tensor:
        """This extractor's output (`feature` "logits_unbiased" or "logits") from the 2048 pool features of
        the same images, by the network's last layer exactly as its own forward applies it: so the pool
        features of one forward serve FID / KID and IS alike (see `FeaturesAndLogits`)."""
        fc = self.network.fc
        if self.feature == "logits_unbiased":
            return pool.mm(fc.weight.T).float()
        if self.feature == "logits":
            return fc(pool).float()
        raise ConfigError(
            f"logits_from_pool is for feature 'logits_unbiased' or 'logits', this one gives {self.feature!r}"
        )


class ImageFeatures(nn.Module):
    """Adapter that makes any network on framework images a torchmetrics feature extractor.

    uint8 [0, 255] or float [0, 1] (N, C, H, W) -> float [-1, 1] -> grey repeated to RGB when
    `in_channels` is 3 -> resized to `image_size` (bilinear) -> `network` -> (N, num_features).

    Args:
        network: takes (N, in_channels, *image_size) float in [-1, 1]; any output flattens to
            (N, num_features). Kept in eval mode with gradients off.
        num_features: width of the flattened output (torchmetrics reads it as `num_features`).
        in_channels: channels the network needs; None passes images as they come.
        image_size: (H, W) or side the network needs; None passes images at their size.
        antialias: antialiased bilinear resize (only when resizing).
    """

    def __init__(
        self,
        network: nn.Module,
        num_features: int,
        in_channels: int | None = None,
        image_size: int | tuple[int, int] | None = None,
        antialias: bool = True,
    ) -> None:
        super().__init__()
        if num_features < 1 or in_channels not in (None, 1, 3):
            raise ConfigError(
                f"need num_features >= 1 and in_channels in (None, 1, 3), got {num_features}, {in_channels}"
            )
        self.network = network.eval().requires_grad_(False)
        self.num_features, self.in_channels, self.antialias = num_features, in_channels, antialias
        self.image_size = (
            (image_size, image_size)
            if isinstance(image_size, int)
            else (tuple(image_size) if image_size is not None else None)
        )

    def train(self, mode: bool = True) -> ImageFeatures:
        return super().train(False)  # a fixed measuring instrument: BatchNorm / dropout never train

    def forward(self, images: Tensor) -> Tensor:
        _check_images(images, type(self).__name__)
        x = _unit_float(images) * 2.0 - 1.0
        if self.in_channels is not None and x.shape[1] != self.in_channels:
            if (x.shape[1], self.in_channels) != (1, 3):
                raise ConfigError(f"the network takes {self.in_channels}-channel images, got {x.shape[1]} channels")
            x = x.expand(-1, 3, -1, -1)
        if self.image_size is not None and tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False, antialias=self.antialias)
        features = self.network(x).float().reshape(len(x), -1)
        if features.shape[1] != self.num_features:
            raise ConfigError(
                f"the network gives {features.shape[1]} features per image, num_features says {self.num_features}"
            )
        return features

    def extra_repr(self) -> str:
        return (
            f"network={type(self.network).__name__}, num_features={self.num_features}, "
            f"in_channels={self.in_channels}, image_size={self.image_size}, antialias={self.antialias}"
        )


def fingerprint(module: nn.Module) -> str:
    """sha256 of a module's structure and settings (its repr) and of every tensor in its state_dict:
    two extractors with equal fingerprints give equal features."""
    digest = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}\n{module!r}".encode())
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def shares_forward(feature: nn.Module | None, classifier: nn.Module | None) -> bool:
    """Whether one Inception forward serves both: `feature` gives the 2048 pool features and
    `classifier` logits of the same network (same weights file, same resize)."""
    return (
        isinstance(feature, InceptionFeatures)
        and isinstance(classifier, InceptionFeatures)
        and feature.feature == 2048
        and classifier.feature in ("logits_unbiased", "logits")
        and feature.weights_path == classifier.weights_path
        and feature.antialias == classifier.antialias
    )


class FeaturesAndLogits(nn.Module):
    """A metrics callback's two extractors as one: images -> (features, logits), each None when not
    asked for or when its extractor is None. When both are the same Inception (`shares_forward`), one
    forward gives both: the pool features, and the logits from them (`logits_from_pool`), equal to
    what the classifier alone gives.

    Args:
        feature: extractor of features for FID / KID (uint8 images in, (N, num_features) out), or None.
        classifier: extractor of class logits for IS, or None.
    """

    def __init__(self, feature: nn.Module | None, classifier: nn.Module | None) -> None:
        super().__init__()
        self.feature, self.classifier = feature, classifier
        self.shared = shares_forward(feature, classifier)

    def forward(
        self, images: Tensor, features: bool = True, logits: bool = True
    ) -> tuple[Tensor | None, Tensor | None]:
        want_features = features and self.feature is not None
        want_logits = logits and self.classifier is not None
        pooled = self.feature(images) if want_features or (want_logits and self.shared) else None
        if not want_logits:
            return (pooled if want_features else None), None
        scores = self.classifier.logits_from_pool(pooled) if self.shared else self.classifier(images)
        return (pooled if want_features else None), scores
