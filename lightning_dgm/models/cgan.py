"""The conditional GAN (Mirza & Osindero 2014): G and D both see the class label y."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from jsonargparse import lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lightning_dgm.datamodules.base import ImageBatch
from lightning_dgm.losses import AdversarialLoss, NonSaturating, Penalty
from lightning_dgm.models.gan import GAN
from lightning_dgm.nets.conditional import check_labels
from lightning_dgm.nets.noise import GaussianNoise, Noise


class ConditionalGAN(GAN):
    """Class-conditional GAN: G maps (z, y) to images of class y, D judges (x, y) pairs.

    The minimax game of eq. 2, min_G max_D E[log D(x|y)] + E[log(1 - D(G(z|y)|y))], trained as
    Algorithm 1 of the GAN (k = d_steps):
      1. D step on m real pairs (x, y) from the batch and m fakes (G(z, y), y):
         minimise loss.d_loss(D(x, y), D(G(z, y), y))  (+ penalty, with the same labels)
      2. every k-th batch, G step on g_batch_size fakes: minimise loss.g_loss(D(G(z, y), y)).
    The fakes take their labels from the real batch (resampled with replacement when G trains on
    more or fewer than m), so fake labels follow the data's class prior p(y): D's real and fake
    halves hold the same labels, and the only cue left to it is whether x matches y. With uniform
    fake labels on an unbalanced data set (SVHN), frequent classes would be more often real, a cue
    D could learn from y alone.

    Args:
        generator: maps (z (N, generator.latent_dim), labels (N,)) to (N, C, H, W) images in [-1, 1].
        discriminator: maps (images, labels (N,)) to logits, (N, 1) or (N, 2).
        num_classes: number of classes, labels in [0, num_classes); linked from the datamodule by
            the CLI (None is an error: the data must have classes). Sample grids get one row per class.
        loss, noise, g_optimizer, d_optimizer, g_lr_scheduler, d_lr_scheduler, d_steps,
        g_batch_size, penalty: as in `GAN`.
    """

    conditional = True

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        num_classes: int | None = None,
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
            raise ValueError(
                f"ConditionalGAN needs num_classes >= 1, got {num_classes}: use a datamodule with classes "
                "(the CLI links its num_classes) or set model.num_classes"
            )
        for name, net in (("generator", generator), ("discriminator", discriminator)):
            if getattr(net, "num_classes", num_classes) != num_classes:
                raise ValueError(f"the {name} was built for {net.num_classes} classes but the model has {num_classes}")
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
        self.num_classes = num_classes

    @torch.no_grad()
    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images (n, C, H, W) in [-1, 1], image i of class labels[i] (int (n,) in [0, num_classes))."""
        check_labels(labels, n, self.num_classes, "ConditionalGAN.sample")
        return self.generator(self._noise(n, generator), labels.to(self.device))

    def _data_labels(self, batch: ImageBatch) -> Tensor:
        labels = batch.label
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"ConditionalGAN with num_classes={self.num_classes} got data labels in "
                f"[{int(labels.min())}, {int(labels.max())}]: set model.num_classes to the data set's number of classes"
            )
        return labels

    # -- training: Algorithm 1 with labels ------------------------------------------------------
    def training_step(self, batch: ImageBatch, batch_idx: int) -> None:
        real, labels = batch.image, self._data_labels(batch)
        rng = self.noise_generator()
        train_g = (batch_idx + 1) % self.d_steps == 0
        g_batch = self.g_batch_size or len(real)
        # When G trains on as many fakes as D sees, one G forward (with the batch's labels) serves both steps.
        reuse = train_g and g_batch == len(real)
        with nullcontext() if reuse else torch.no_grad():
            fake = self.generator(self._noise(len(real), rng), labels)
        self._discriminator_step(real, fake.detach(), labels, rng)
        if train_g:
            if reuse:
                self._generator_step(fake, labels)
            else:
                g_labels = labels[torch.randint(len(labels), (g_batch,), generator=rng, device=rng.device)]
                self._generator_step(self.generator(self._noise(g_batch, rng), g_labels), g_labels)

    def _discriminator_step(self, real: Tensor, fake: Tensor, labels: Tensor, rng: torch.Generator) -> None:
        g_opt, d_opt = self.optimizers()
        with self.toggled_optimizer(d_opt):
            real_logits, fake_logits = self.discriminator(real, labels), self.discriminator(fake, labels)
            d_loss = self.loss.d_loss(real_logits, fake_logits)
            if self.penalty is not None:
                # Real and fake image i share label i, so interpolates (WGAN-GP) keep that label.
                d_loss = d_loss + self.penalty(lambda x: self.discriminator(x, labels), real, fake, generator=rng)
            self.optimizer_step_on(d_opt, d_loss)
        self.log_discriminator(d_loss, real_logits, fake_logits)

    def _generator_step(self, fake: Tensor, labels: Tensor) -> None:
        g_opt, d_opt = self.optimizers()
        # D is re-run after its update: reusing D's pre-step outputs would break autograd.
        with self.toggled_optimizer(g_opt):
            g_loss = self.loss.g_loss(self.discriminator(fake, labels))
            self.optimizer_step_on(g_opt, g_loss)
        self.log("g_loss", g_loss.detach(), prog_bar=True)

    # -- evaluation: how D judges held-out real pairs and fresh fakes with the same labels -------
    def _evaluate(self, batch: ImageBatch, batch_idx: int, prefix: str) -> None:
        rng = self.noise_generator(-1, batch_idx)  # the same fakes at every evaluation
        real, labels = batch.image, self._data_labels(batch)
        real_logits = self.discriminator(real, labels)
        fake_logits = self.discriminator(self.generator(self._noise(len(real), rng), labels), labels)
        self.log_dict(
            {
                f"{prefix}/d_loss": self.loss.d_loss(real_logits, fake_logits),
                f"{prefix}/g_loss": self.loss.g_loss(fake_logits),
                f"{prefix}/d_real": self.loss.output(real_logits).mean(),
                f"{prefix}/d_fake": self.loss.output(fake_logits).mean(),
            },
            sync_dist=True,
        )
