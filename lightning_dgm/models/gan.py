"""The GAN system (Goodfellow et al. 2014, Algorithm 1), with any adversarial loss, unconditional
or conditioned on an input that travels with the batch (class labels: `ConditionalGAN`)."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from jsonargparse import lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lightning_dgm import seeding
from lightning_dgm.errors import ConfigError
from lightning_dgm.losses import AdversarialLoss, NonSaturating, Penalty
from lightning_dgm.models.base import AdversarialSystem
from lightning_dgm.nets.noise import GaussianNoise, Noise
from lightning_dgm.types import ImageBatch


class GAN(AdversarialSystem):
    """G maps z ~ p(z) (and a condition c, if any) to images, D tells them from real ones.

    Per training batch (Algorithm 1, with k = d_steps), c being what the batch conditions on
    (`condition_of`; nothing for this class) and c' the fakes' conditions (`fake_condition`):
      1. D step on this minibatch of m real images and m fresh fakes:
         minimise loss.d_loss(D(x | c), D(G(z | c') | c'))  (+ penalty, if any)
      2. every k-th batch, G step on g_batch_size fresh fakes: minimise loss.g_loss(D(G(z | c') | c')).
    So G is updated once per k D updates, each D update on its own minibatch.

    Args:
        generator: maps (N, generator.latent_dim) noise (and the condition) to (N, C, H, W) images in [-1, 1].
        discriminator: maps images (and the condition) to logits, (N, 1) or (N, 2) (see `lightning_dgm.losses`).
        loss: the adversarial objective, by class (NonSaturating, Minimax, Hinge, ...).
        noise: p(z), by class (GaussianNoise, UniformNoise).
        g_optimizer, d_optimizer: optimizer factories for G's and D's parameters.
        g_lr_scheduler, d_lr_scheduler: optional epoch-based schedulers, stepped once per epoch.
        d_steps: D updates per G update (k in Algorithm 1).
        g_batch_size: fakes per G step; None uses the real batch size. The lecture recipe's
            "batch 32, D on 16 real + 16 fake, G on 32" is batch_size 16 with g_batch_size 32.
        penalty: optional D regulariser (GradientPenalty, R1Penalty).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
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
        super().__init__(loss, g_optimizer, d_optimizer, g_lr_scheduler, d_lr_scheduler)
        if d_steps < 1:
            raise ConfigError(f"d_steps must be at least 1, got {d_steps}")
        self.save_hyperparameters()
        self.generator, self.discriminator, self.noise = generator, discriminator, noise
        self.d_steps, self.g_batch_size, self.penalty = d_steps, g_batch_size, penalty

    # -- conditioning: none here; ConditionalGAN conditions on class labels ----------------------
    def condition_of(self, batch: ImageBatch) -> Tensor | None:
        """What G and D are conditioned on for the real images of `batch` (None: nothing)."""
        return None

    def fake_condition(self, condition: Tensor | None, n: int, rng: torch.Generator) -> Tensor | None:
        """The conditions of n fakes in a training step, given the real batch's `condition`."""
        return None

    def check_sample_condition(self, labels: Tensor | None, n: int) -> None:
        if labels is not None:
            raise ConfigError(f"{type(self).__name__} is unconditional: call sample() without labels")

    # -- the model ----------------------------------------------------------------------------
    def generate(self, n: int, condition: Tensor | None, rng: torch.Generator | None) -> Tensor:
        """n images G(z | condition), z ~ p(z) drawn from `rng`."""
        z = self.noise.sample((n, self.generator.latent_dim), generator=rng, device=self.device)
        return self.generator(z) if condition is None else self.generator(z, condition)

    @torch.no_grad()
    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        self.check_sample_condition(labels, n)
        return self.generate(n, None if labels is None else labels.to(self.device), generator)

    def d_regularization(self, real, fake, condition, rng):
        if self.penalty is None:
            return None
        # Real and fake image i are judged under the real condition, so interpolates (WGAN-GP) keep it.
        return self.penalty(lambda x: self.judge(x, condition), real, fake, generator=rng)

    # -- training: Algorithm 1 ----------------------------------------------------------------
    def training_step(self, batch: ImageBatch, batch_idx: int) -> None:
        real, condition = batch.image, self.condition_of(batch)
        rng = self.random_stream(seeding.NOISE)
        train_g = (batch_idx + 1) % self.d_steps == 0
        g_batch = self.g_batch_size or len(real)
        fake_condition = self.fake_condition(condition, len(real), rng)
        # When G trains on as many fakes as D sees, one G forward serves both steps.
        reuse = train_g and g_batch == len(real)
        with nullcontext() if reuse else torch.no_grad():
            fake = self.generate(len(real), fake_condition, rng)
        self.discriminator_step(real, fake.detach(), real_condition=condition, fake_condition=fake_condition, rng=rng)
        if train_g:
            if not reuse:
                fake_condition = self.fake_condition(condition, g_batch, rng)
                fake = self.generate(g_batch, fake_condition, rng)
            self.generator_step(fake, condition=fake_condition)

    # -- evaluation: how D judges held-out real images and fakes under the same conditions -----
    def _evaluate(self, batch: ImageBatch, batch_idx: int, prefix: str) -> None:
        # Seeded by the batch alone, not the step: the same fakes at every evaluation.
        rng = self.random_stream(seeding.EVALUATION, batch_idx, per_step=False)
        real, condition = batch.image, self.condition_of(batch)
        real_logits = self.judge(real, condition)
        fake_logits = self.judge(self.generate(len(real), condition, rng), condition)
        self.log_dict(
            {
                f"{prefix}/d_loss": self.loss.d_loss(real_logits, fake_logits),
                f"{prefix}/g_loss": self.loss.g_loss(fake_logits),
                f"{prefix}/d_real": self.loss.output(real_logits).mean(),
                f"{prefix}/d_fake": self.loss.output(fake_logits).mean(),
            },
            sync_dist=True,
        )

    def validation_step(self, batch: ImageBatch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: ImageBatch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")
