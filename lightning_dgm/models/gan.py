"""The GAN system (Goodfellow et al. 2014, Algorithm 1), with any adversarial loss."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from jsonargparse import lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lightning_dgm.datamodules.base import ImageBatch
from lightning_dgm.losses import AdversarialLoss, NonSaturating, Penalty
from lightning_dgm.models.base import AdversarialSystem
from lightning_dgm.nets.noise import GaussianNoise, Noise


class GAN(AdversarialSystem):
    """Unconditional GAN: G maps z ~ p(z) to images, D tells them from real ones.

    Per training batch (Algorithm 1, with k = d_steps):
      1. D step on this minibatch of m real images and m fresh fakes:
         minimise loss.d_loss(D(x), D(G(z)))  (+ penalty, if any)
      2. every k-th batch, G step on g_batch_size fresh fakes: minimise loss.g_loss(D(G(z))).
    So G is updated once per k D updates, each D update on its own minibatch.

    Args:
        generator: maps (N, generator.latent_dim) noise to (N, C, H, W) images in [-1, 1].
        discriminator: maps images to logits, (N, 1) or (N, 2) (see `lightning_dgm.losses`).
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
        super().__init__()
        if d_steps < 1:
            raise ValueError(f"d_steps must be at least 1, got {d_steps}")
        self.save_hyperparameters()
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.noise = noise
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.g_lr_scheduler, self.d_lr_scheduler = g_lr_scheduler, d_lr_scheduler
        self.d_steps = d_steps
        self.g_batch_size = g_batch_size
        self.penalty = penalty

    def configure_optimizers(self):
        return self.paired_optimizers(self.generator.parameters(), self.discriminator.parameters())

    def _noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self.noise.sample((n, self.generator.latent_dim), generator=generator, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        if labels is not None:
            raise ValueError("GAN is unconditional: call sample() without labels (ConditionalGAN takes them)")
        return self.generator(self._noise(n, generator))

    # -- training: Algorithm 1 ----------------------------------------------------------------
    def training_step(self, batch: ImageBatch, batch_idx: int) -> None:
        real = batch.image
        rng = self.noise_generator()
        train_g = (batch_idx + 1) % self.d_steps == 0
        g_batch = self.g_batch_size or len(real)
        # When G trains on as many fakes as D sees, one G forward serves both steps.
        reuse = train_g and g_batch == len(real)
        with nullcontext() if reuse else torch.no_grad():
            fake = self.generator(self._noise(len(real), rng))
        self._discriminator_step(real, fake.detach(), rng)
        if train_g:
            self._generator_step(fake if reuse else self.generator(self._noise(g_batch, rng)))

    def _discriminator_step(self, real: Tensor, fake: Tensor, rng: torch.Generator) -> None:
        g_opt, d_opt = self.optimizers()
        with self.toggled_optimizer(d_opt):
            real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
            d_loss = self.loss.d_loss(real_logits, fake_logits)
            if self.penalty is not None:
                d_loss = d_loss + self.penalty(self.discriminator, real, fake, generator=rng)
            self.optimizer_step_on(d_opt, d_loss)
        self.log_discriminator(d_loss, real_logits, fake_logits)

    def _generator_step(self, fake: Tensor) -> None:
        g_opt, d_opt = self.optimizers()
        # D is re-run after its update: reusing D's pre-step outputs would break autograd.
        with self.toggled_optimizer(g_opt):
            g_loss = self.loss.g_loss(self.discriminator(fake))
            self.optimizer_step_on(g_opt, g_loss)
        self.log("g_loss", g_loss.detach(), prog_bar=True)

    # -- evaluation: how D judges held-out real images and fresh fakes -------------------------
    def _evaluate(self, batch: ImageBatch, batch_idx: int, prefix: str) -> None:
        rng = self.noise_generator(-1, batch_idx)  # the same fakes at every evaluation
        real_logits = self.discriminator(batch.image)
        fake_logits = self.discriminator(self.generator(self._noise(len(batch.image), rng)))
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
