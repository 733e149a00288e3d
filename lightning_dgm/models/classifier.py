"""The framework's own image classifier: trained on a data set's labels, then used as a measuring
instrument for generative models of that data set (see `lightning_dgm.metrics.classes`):

* its penultimate features are a domain FID / KID extractor (`lightning_dgm.metrics.ClassifierFeatures`),
  and its logits a domain Inception Score classifier (`lightning_dgm.metrics.ClassifierLogits`);
* its predictions on samples give class coverage and, for conditional systems, conditional
  accuracy (`lightning_dgm.callbacks.ClassMetrics`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from lightning_dgm.errors import ConfigError
from lightning_dgm.models.base import System
from lightning_dgm.types import ImageBatch, check_label_range


class Classifier(System):
    """Supervised classification with cross-entropy (automatic optimisation).

    Per batch: loss = CE(network(x), y), averaged over the batch. Logs `train/loss` and `train/acc`;
    `val/loss` and `val/acc`; `test/loss` and `test/acc` (accuracy = share of images whose top logit
    is their label, torchmetrics' micro-averaged MulticlassAccuracy, synced across DDP processes).

    Args:
        network: images (N, C, H, W) in [-1, 1] -> logits (N, num_classes), with `features(x)` ->
            (N, num_features) for the extractor uses (e.g. `lightning_dgm.nets.ConvClassifier`).
        num_classes: number of classes; linked from the datamodule by the CLI. None takes the
            network's `num_classes`.
        optimizer: optimizer factory for all parameters.
        lr_scheduler: optional scheduler, stepped after every optimizer step (so lengths are in steps:
            e.g. OneCycleLR's total_steps = max_epochs * batches per epoch).
    """

    def __init__(
        self,
        network: nn.Module,
        num_classes: int | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        built_for = getattr(network, "num_classes", None)
        num_classes = num_classes if num_classes is not None else built_for
        if num_classes is None or num_classes < 2:
            raise ConfigError(
                f"Classifier needs num_classes >= 2, got {num_classes}: use a datamodule with classes (the CLI links "
                "its num_classes) or set model.num_classes"
            )
        if built_for is not None and built_for != num_classes:
            raise ConfigError(f"the network was built for {built_for} classes but the model has {num_classes}")
        self.save_hyperparameters()
        self.network = network
        self._labels_checked = False
        self.num_classes = num_classes
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        # One metric object per stage: their states must not mix.
        self.train_acc, self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes, average="micro") for _ in range(3)
        )

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        """(C, H, W) the network takes, when it says."""
        shape = getattr(self.network, "image_shape", None)
        return tuple(shape) if shape is not None else None

    @property
    def num_features(self) -> int:
        """Width of the penultimate features."""
        return self.network.num_features

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters())
        if self.lr_scheduler is None:
            return optimizer
        # Per step, not per epoch: one-cycle and warm-up schedules, the usual ones for classifiers, expect it.
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer), "interval": "step"}}

    # -- the model ----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, num_classes) of images (N, C, H, W) in [-1, 1]."""
        return self.network(x)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (N, num_features) of images (N, C, H, W) in [-1, 1]."""
        return self.network.features(x)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Predicted class (N,) int64 of images (N, C, H, W) in [-1, 1]."""
        return self.network(x).argmax(dim=1)

    # -- training and evaluation ----------------------------------------------------------------
    def _loss(self, batch: ImageBatch, accuracy: MulticlassAccuracy) -> Tensor:
        """Cross-entropy of the batch; `accuracy` is updated with its predictions."""
        labels = batch.label
        if not self._labels_checked:  # the first batch only: the check is a host sync
            check_label_range(
                labels,
                self.num_classes,
                f"Classifier with num_classes={self.num_classes} got labels in",
                ": set model.num_classes to the data set's number of classes",
            )
            self._labels_checked = True
        logits = self.network(batch.image)
        accuracy(logits.detach(), labels)
        return F.cross_entropy(logits, labels)

    def training_step(self, batch: ImageBatch, batch_idx: int) -> Tensor:
        loss = self._loss(batch, self.train_acc)
        self.log_training({"train/loss": loss})
        return loss

    def on_train_epoch_end(self) -> None:
        # Once per epoch, not per step: the metric accumulates every batch either way (and syncs under DDP).
        self.log("train/acc", self.train_acc.compute(), prog_bar=True)
        self.train_acc.reset()

    def _evaluate(self, batch: ImageBatch, prefix: str, accuracy: MulticlassAccuracy) -> None:
        loss = self._loss(batch, accuracy)
        # batch_size: epoch means must weight each batch by its size (the last one is short).
        self.log(f"{prefix}/loss", loss, sync_dist=True, batch_size=len(batch.label))
        self.log(f"{prefix}/acc", accuracy, prog_bar=True, on_step=False, on_epoch=True)

    def validation_step(self, batch: ImageBatch, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch: ImageBatch, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_acc)
