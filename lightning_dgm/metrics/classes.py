"""Metrics read through the framework's own classifier (a `Classifier` checkpoint of
`fit --config configs/classifier_<data>.yaml`, loaded by the class path it records).

* **Class coverage** of generated samples: how many classes the classifier finds among them, and
  the share of the largest class (1 / num_classes for a perfectly balanced generator, 1 for total
  mode collapse). A class *appears* when at least `min_count` samples are classified as it; the
  default 1 is the usual convention for counting modes (Metz et al. 2017, unrolled GANs;
  Srivastava et al. 2017, VEEGAN, on stacked MNIST). Raise it to discount stray misclassified
  samples: the largest share is the more robust sign of collapse.
* **Conditional accuracy** of a conditional generator: the share of samples generated for label
  y that the classifier assigns to y (Odena et al. 2017 report it for AC-GAN samples).
* **Domain feature extractors**: the classifier's penultimate features for FID / KID
  (`ClassifierFeatures`) and its logits for the Inception Score (`ClassifierLogits`), in
  torchmetrics' custom-extractor contract, for `lightning_dgm.callbacks.SampleMetrics`.

`class_coverage` and `conditional_accuracy` are the pure cores; `ClassDistribution` is a
torchmetrics Metric around them that streams batches and sums its counts across DDP processes.
"""

from __future__ import annotations

import importlib
import io
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from lightning_dgm.checkpoints import read_checkpoint
from lightning_dgm.errors import ConfigError, MissingFileError
from lightning_dgm.metrics.features import ImageFeatures

_TRAIN_ONE = (
    "train one with `python -m lightning_dgm fit --config configs/classifier_mnist.yaml` (or "
    "classifier_cifar10.yaml) and pass the run folder's checkpoints/last.ckpt"
)


class ClassCoverage(NamedTuple):
    classes_present: Tensor  # () int64: classes predicted for at least min_count samples
    largest_share: Tensor  # () float: share of all samples in the most frequent class, in [1/K, 1]


def _check_predictions(predictions: Tensor, num_classes: int | None = None) -> None:
    if predictions.dim() != 1 or predictions.dtype.is_floating_point or predictions.dtype == torch.bool:
        raise ConfigError(
            f"expected integer class predictions of shape (N,), got {predictions.dtype} "
            f"{tuple(predictions.shape)} (take logits.argmax(dim=1))"
        )
    if num_classes is not None and len(predictions) and (predictions.min() < 0 or predictions.max() >= num_classes):
        raise ConfigError(
            f"predictions must lie in [0, {num_classes}), got values in "
            f"[{int(predictions.min())}, {int(predictions.max())}]"
        )


def class_counts(predictions: Tensor, num_classes: int) -> Tensor:
    """Samples per class (num_classes,) int64 from predicted classes (N,) in [0, num_classes)."""
    _check_predictions(predictions, num_classes)
    return torch.bincount(predictions.long(), minlength=num_classes)


def coverage_from_counts(counts: Tensor, min_count: int = 1) -> ClassCoverage:
    """Class coverage from samples per class (K,) (see the module docstring)."""
    total = counts.sum()
    if total == 0:
        raise ConfigError("class coverage needs at least one sample")
    return ClassCoverage((counts >= min_count).sum(), counts.max().double() / total)


def class_coverage(predictions: Tensor, num_classes: int, min_count: int = 1) -> ClassCoverage:
    """(classes present, largest class share) of predicted classes (N,) in [0, num_classes)."""
    if min_count < 1:
        raise ConfigError(f"min_count must be at least 1, got {min_count}")
    return coverage_from_counts(class_counts(predictions, num_classes), min_count)


def conditional_accuracy(predictions: Tensor, labels: Tensor) -> Tensor:
    """Share () float of samples classified as the label they were generated for; both (N,) int."""
    _check_predictions(predictions)
    if labels.shape != predictions.shape:
        raise ConfigError(
            f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} must have one shape"
        )
    if len(labels) == 0:
        raise ConfigError("conditional accuracy needs at least one sample")
    return (predictions == labels).double().mean()


class ClassDistribution(Metric):
    """Streaming class coverage and conditional accuracy: `update(predictions, labels=None)` with
    (N,) int batches; `compute()` -> dict of `class_coverage` (classes present, as a float),
    `largest_class_share` and, once any labels were given, `conditional_accuracy`. Counts are summed
    across processes, so under DDP each process can score its own share of the samples.

    Args:
        num_classes: number of classes the predictions range over.
        min_count: samples a class needs to count as present.
    """

    full_state_update = False

    def __init__(self, num_classes: int, min_count: int = 1) -> None:
        super().__init__()
        if num_classes < 2 or min_count < 1:
            raise ConfigError(f"need num_classes >= 2 and min_count >= 1, got {num_classes} and {min_count}")
        self.num_classes, self.min_count = num_classes, min_count
        self.add_state("counts", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("labelled", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predictions: Tensor, labels: Tensor | None = None) -> None:
        self.counts += class_counts(predictions, self.num_classes)
        if labels is not None:
            if labels.shape != predictions.shape:
                raise ConfigError(
                    f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} must have one shape"
                )
            self.correct += (predictions == labels).sum()
            self.labelled += len(labels)

    def compute(self) -> dict[str, Tensor]:
        coverage = coverage_from_counts(self.counts, self.min_count)
        values = {"class_coverage": coverage.classes_present.double(), "largest_class_share": coverage.largest_share}
        if self.labelled > 0:
            values["conditional_accuracy"] = self.correct.double() / self.labelled
        return values


# -- the trained classifier as a measuring instrument ------------------------------------------
#: What a loaded classifier system must have: the metrics read these.
_NEEDED = ("network", "num_classes", "num_features", "image_shape")


def load_classifier(checkpoint_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """A classifier system from a Lightning checkpoint, in eval mode with gradients off.

    The class is the one the checkpoint names (`_class_path` in its hyperparameters, written by
    LightningCLI runs such as `fit --config configs/classifier_mnist.yaml`), imported and rebuilt by
    its `load_from_checkpoint`; it must have a `network` with `features(x)`, an int `num_classes`,
    `num_features` and `image_shape` (as `lightning_dgm.models.Classifier` does). Raises
    FileNotFoundError for a missing file and ValueError for a checkpoint of another system."""
    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise MissingFileError(f"classifier checkpoint not found: {path}; {_TRAIN_ONE}")
    data = path.read_bytes()
    # weights_only=True: the hyperparameters of a CLI run rebuild the network from class paths; a
    # checkpoint that needs arbitrary unpickling (pickled modules) could run code, and is refused.
    checkpoint = read_checkpoint(path)
    system_class, holds, note = _system_class(checkpoint)
    if system_class is None:
        raise ConfigError(f"{path} is not a Classifier checkpoint (it holds {holds}){note}; {_TRAIN_ONE}")
    with warnings.catch_warnings():  # rebuilding the injected network is what loading is for
        warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module` and is already saved.*")
        model = system_class.load_from_checkpoint(io.BytesIO(data), map_location=map_location, weights_only=True)
    lacking = [name for name in _NEEDED if not hasattr(model, name)]
    if not lacking and not callable(getattr(model.network, "features", None)):
        lacking = ["network.features"]
    if lacking or not isinstance(model.num_classes, int):
        raise ConfigError(
            f"{path} is not a Classifier checkpoint (it holds {holds}, which has no int num_classes or no "
            f"{', '.join(lacking) or 'num_classes'}); {_TRAIN_ONE}"
        )
    return model.eval().requires_grad_(False)


def _system_class(checkpoint: object) -> tuple[type | None, str, str]:
    """(the system class the checkpoint names, or None; what it holds; a note on why it is not loaded)."""
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        return None, f"a {type(checkpoint).__name__}, not a Lightning checkpoint", ""
    hparams = checkpoint.get("hyper_parameters") or {}
    class_path = hparams.get("_class_path")
    if not isinstance(class_path, str):
        weights = sorted({k.split(".")[0] for k in checkpoint["state_dict"]})
        note = ", and names no class (`_class_path`, which `python -m lightning_dgm fit` records)"
        return None, f"a system with weights {weights}", note
    module, _, name = class_path.rpartition(".")
    try:
        system_class = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None, class_path, ", which cannot be imported"
    if not (isinstance(system_class, type) and hasattr(system_class, "load_from_checkpoint")):
        return None, class_path, ", not a LightningModule"
    return system_class, class_path, ""


class Penultimate(nn.Module):
    """A classifier network's `features(x)` (its penultimate layer) as its forward."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        return self.network.features(x)


class ClassifierFeatures(ImageFeatures):
    """A trained `Classifier`'s penultimate features as a torchmetrics feature extractor, for a
    domain FID / KID: `SampleMetrics(feature=ClassifierFeatures("classifier.ckpt"))`.

    Input: (N, C, H, W) uint8 in [0, 255] or float in [0, 1], at exactly the classifier's image
    shape (no resizing: a classifier is only a fair judge of images like those it was trained on).
    Output: (N, num_features) float32. Frozen, always in eval mode.

    Args:
        checkpoint_path: a checkpoint of `fit --config configs/classifier_<data>.yaml`.
    """

    def __init__(self, checkpoint_path: str) -> None:
        classifier = load_classifier(checkpoint_path)
        super().__init__(self._network(classifier.network), self._width(classifier))
        self.checkpoint_path = str(checkpoint_path)
        self.classifier_image_shape = classifier.image_shape
        self.num_classes = classifier.num_classes
        self.eval()

    @staticmethod
    def _network(network: nn.Module) -> nn.Module:
        return Penultimate(network)

    @staticmethod
    def _width(classifier: nn.Module) -> int:
        return classifier.num_features

    def forward(self, images: Tensor) -> Tensor:
        shape = self.classifier_image_shape
        if shape is not None and tuple(images.shape[1:]) != shape:
            raise ConfigError(
                f"the classifier in {self.checkpoint_path} takes images of shape {shape}, got "
                f"{tuple(images.shape[1:])}: use a classifier trained on this data set"
            )
        return super().forward(images)

    def extra_repr(self) -> str:
        # No checkpoint path: the cache key of real features hashes the weights, wherever the file lies.
        network = self.network.network if isinstance(self.network, Penultimate) else self.network
        return (
            f"network={type(network).__name__}, num_features={self.num_features}, "
            f"image_shape={self.classifier_image_shape}"
        )


class ClassifierLogits(ClassifierFeatures):
    """A trained `Classifier`'s logits (N, num_classes) as a torchmetrics extractor, for a domain
    Inception Score: `SampleMetrics(classifier=ClassifierLogits("classifier.ckpt"), ...)`.
    Input as `ClassifierFeatures`."""

    @staticmethod
    def _network(network: nn.Module) -> nn.Module:
        return network

    @staticmethod
    def _width(classifier: nn.Module) -> int:
        return classifier.num_classes
