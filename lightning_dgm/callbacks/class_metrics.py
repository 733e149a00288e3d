"""Class coverage and conditional accuracy of a system's samples, read by a trained classifier."""

from __future__ import annotations

import os

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn

from lightning_dgm.callbacks.images import epoch_due
from lightning_dgm.callbacks.sources import this_ranks_samples
from lightning_dgm.errors import ConfigError
from lightning_dgm.metrics.classes import ClassDistribution, load_classifier


class ClassMetrics(L.Callback):
    """Logs `<stage>/class_coverage` (classes the classifier finds among the samples),
    `<stage>/largest_class_share` and, for conditional systems, `<stage>/conditional_accuracy`
    (share of samples classified as the label they were generated for), after every N-th
    validation epoch (never in the sanity check) and after every test epoch. See
    `lightning_dgm.metrics.classes` for the definitions.

    Protocol: `num_samples` images from `pl_module.sample()` (eval mode, no grad, seeded). A
    conditional system (`conditional = True`) is asked for balanced labels: sample i gets label
    i mod num_classes. Under DDP each process generates its share, with seed `seed + rank`; the
    class counts are summed across processes, so every rank logs the same values.

    The classifier lives here, not in the LightningModule: it is never in the system's
    `parameters()` or checkpoints, and this callback saves no state.

    Args:
        classifier: a `Classifier` checkpoint path (from `fit --config configs/classifier_<data>.yaml`),
            or a module mapping images (N, C, H, W) in [-1, 1] to logits (N, num_classes) with an
            int `num_classes` attribute (a `Classifier`, a `ConvClassifier`).
        num_samples: generated images per evaluation, over all processes.
        every_n_epochs: score after every N-th validation epoch.
        batch_size: images per `sample()` call and per classifier call.
        seed: seed of the sampling noise (+ rank); the same noise at every evaluation.
        min_count: samples a class needs to count as present.
    """

    def __init__(
        self,
        classifier: str | nn.Module,
        num_samples: int = 1000,
        every_n_epochs: int = 1,
        batch_size: int = 200,
        seed: int = 0,
        min_count: int = 1,
    ) -> None:
        if min(num_samples, every_n_epochs, batch_size, min_count) < 1:
            raise ConfigError("num_samples, every_n_epochs, batch_size and min_count must be at least 1")
        if isinstance(classifier, (str, os.PathLike)):
            classifier = load_classifier(classifier)
        num_classes = getattr(classifier, "num_classes", None)
        if not isinstance(num_classes, int):
            raise ConfigError(
                f"ClassMetrics needs a classifier with an int `num_classes`, got "
                f"{type(classifier).__name__}: pass a Classifier checkpoint path"
            )
        self.classifier = classifier.eval().requires_grad_(False)
        self.num_classes = num_classes
        self.image_shape = getattr(classifier, "image_shape", None)
        self.num_samples, self.every_n_epochs = num_samples, every_n_epochs
        self.batch_size, self.seed = batch_size, seed
        self.metric = ClassDistribution(num_classes, min_count)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "predict":  # nothing is scored while predicting
            return
        datamodule = trainer.datamodule
        for source, owner in (("model", pl_module), ("data", datamodule)):
            classes = getattr(owner, "num_classes", None)
            if classes is not None and classes != self.num_classes:
                raise ConfigError(
                    f"ClassMetrics: the classifier has {self.num_classes} classes but the {source} has "
                    f"{classes}: use a classifier trained on the model's data set"
                )
        self._check_shape(getattr(datamodule, "image_shape", None), "the data has images of shape")
        if getattr(pl_module, "conditional", False) and getattr(pl_module, "num_classes", None) is None:
            raise ConfigError("ClassMetrics: a conditional system needs a `num_classes` attribute to be given labels")
        self.classifier.to(pl_module.device)

    def _check_shape(self, shape: tuple[int, ...] | None, what: str) -> None:
        if shape is not None and self.image_shape is not None and tuple(shape) != tuple(self.image_shape):
            raise ConfigError(
                f"ClassMetrics: the classifier takes images of shape {tuple(self.image_shape)}, but "
                f"{what} {tuple(shape)}: use a classifier trained on the model's data set"
            )

    @torch.no_grad()
    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Tensor]:
        """Classify this process's share of samples; every rank returns the totals over all ranks."""
        self.classifier.to(pl_module.device)
        self.metric.to(pl_module.device).reset()
        for batch in this_ranks_samples(trainer, pl_module, self.num_samples, self.batch_size, self.seed):
            self._check_shape(batch.image.shape[1:], "the model samples images of shape")
            self.metric.update(self.classifier(batch.image.float()).argmax(dim=1), batch.label)
        return self.metric.compute()  # a collective under DDP: every rank gets here

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for name, value in self.measure(trainer, pl_module).items():
            pl_module.log(f"{stage}/{name}", value.float())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.state.fn == TrainerFn.FITTING and not epoch_due(trainer, self.every_n_epochs):
            return
        self._log(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, "test")
