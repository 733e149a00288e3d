"""The conditional GAN (Mirza & Osindero 2014): G and D both see the class label y. The training
step is the GAN's (`GAN.training_step`), with the batch's labels as the condition; how the labels
of fakes are drawn is a small strategy chosen by class (`DataLabels`, `UniformLabels`)."""

from __future__ import annotations

import torch
from jsonargparse import lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lightning_dgm.errors import ConfigError
from lightning_dgm.losses import AdversarialLoss, NonSaturating, Penalty
from lightning_dgm.models.gan import GAN
from lightning_dgm.nets.noise import GaussianNoise, Noise
from lightning_dgm.types import ImageBatch, check_label_range, check_labels


class FakeLabels:
    """How a training step labels its fakes: `draw(data labels (m,), n, num_classes, rng) -> (n,) int64`."""

    def draw(self, data_labels: Tensor, n: int, num_classes: int, rng: torch.Generator) -> Tensor:
        raise NotImplementedError


class DataLabels(FakeLabels):
    """The real batch's labels, in order (resampled with replacement when n differs from the batch):
    fake labels follow the data's class prior p(y), and D's real and fake halves hold the same
    labels, so the only cue left to D is whether x matches y. With uniform fake labels on an
    unbalanced data set (SVHN), frequent classes would more often be real, a cue D could learn
    from y alone."""

    def draw(self, data_labels: Tensor, n: int, num_classes: int, rng: torch.Generator) -> Tensor:
        if n == len(data_labels):
            return data_labels
        return data_labels[torch.randint(len(data_labels), (n,), generator=rng, device=rng.device)]


class UniformLabels(FakeLabels):
    """Labels uniform over the classes, independent of the batch (BigGAN; StudioGAN's default)."""

    def draw(self, data_labels: Tensor, n: int, num_classes: int, rng: torch.Generator) -> Tensor:
        return torch.randint(num_classes, (n,), generator=rng, device=rng.device).to(data_labels.device)


class ConditionalGAN(GAN):
    """Class-conditional GAN: G maps (z, y) to images of class y, D judges (x, y) pairs.

    The minimax game of eq. 2, min_G max_D E[log D(x|y)] + E[log(1 - D(G(z|y)|y))], trained as
    Algorithm 1 of the GAN (k = d_steps) with c = the batch's labels and c' = `fake_labels`:
      1. D step on m real pairs (x, y) from the batch and m fakes (G(z, y'), y'):
         minimise loss.d_loss(D(x, y), D(G(z, y'), y'))  (+ penalty, with the real labels)
      2. every k-th batch, G step on g_batch_size fakes: minimise loss.g_loss(D(G(z, y'), y')).
    Validation fakes take the batch's own labels.

    Args:
        generator: maps (z (N, generator.latent_dim), labels (N,)) to (N, C, H, W) images in [-1, 1].
        discriminator: maps (images, labels (N,)) to logits, (N, 1) or (N, 2).
        num_classes: number of classes, labels in [0, num_classes); linked from the datamodule by
            the CLI (None is an error: the data must have classes). Sample grids get one row per class.
        fake_labels: how fakes are labelled in training, by class: DataLabels (the batch's) or UniformLabels.
        loss, noise, g_optimizer, d_optimizer, g_lr_scheduler, d_lr_scheduler, d_steps,
        g_batch_size, penalty: as in `GAN`.
    """

    conditional = True

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        num_classes: int | None = None,
        fake_labels: FakeLabels = lazy_instance(DataLabels),
        loss: AdversarialLoss = lazy_instance(NonSaturating),
        noise: Noise = lazy_instance(GaussianNoise),
        g_optimizer: OptimizerCallable = torch.optim.Adam,
        d_optimizer: OptimizerCallable = torch.optim.Adam,
        g_lr_scheduler: LRSchedulerCallable | None = None,
        d_lr_scheduler: LRSchedulerCallable | None = None,
        d_steps: int = 1,
        g_batch_size: int | None = None,
        penalty: Penalty | None = None,
    ) -> None:
        if num_classes is None or num_classes < 1:
            raise ConfigError(
                f"{type(self).__name__} needs num_classes >= 1, got {num_classes}: use a datamodule with classes "
                "(the CLI links its num_classes) or set model.num_classes"
            )
        for name, net in (("generator", generator), ("discriminator", discriminator)):
            if getattr(net, "num_classes", num_classes) != num_classes:
                raise ConfigError(f"the {name} was built for {net.num_classes} classes but the model has {num_classes}")
        super().__init__(
            generator=generator,
            discriminator=discriminator,
            loss=loss,
            noise=noise,
            g_optimizer=g_optimizer,
            d_optimizer=d_optimizer,
            g_lr_scheduler=g_lr_scheduler,
            d_lr_scheduler=d_lr_scheduler,
            d_steps=d_steps,
            g_batch_size=g_batch_size,
            penalty=penalty,
        )
        self.num_classes, self.fake_labels = num_classes, fake_labels
        self._labels_checked = False

    def condition_of(self, batch: ImageBatch) -> Tensor:
        if not self._labels_checked:  # the first batch only: the check is a host sync
            check_label_range(
                batch.label,
                self.num_classes,
                f"{type(self).__name__} with num_classes={self.num_classes} got data labels in",
                ": set model.num_classes to the data set's number of classes",
            )
            self._labels_checked = True
        return batch.label

    def fake_condition(self, condition: Tensor, n: int, rng: torch.Generator) -> Tensor:
        return self.fake_labels.draw(condition, n, self.num_classes, rng)

    def check_sample_condition(self, labels: Tensor | None, n: int) -> None:
        """Labels for `sample`: int (n,) in [0, num_classes), image i of class labels[i]."""
        check_labels(labels, n, self.num_classes, f"{type(self).__name__}.sample")
