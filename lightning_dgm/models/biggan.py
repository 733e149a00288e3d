"""BigGAN's training recipe (Brock et al. 2019) on the conditional GAN step: `ConditionalGAN`'s
Algorithm 1 unchanged (hinge loss, `d_steps` D updates per G update, fake labels drawn uniformly),
plus what BigGAN adds around it, each through a hook of `AdversarialSystem`:

* G-EMA: a moving average of G's weights, updated after every G step (`on_generator_step_end`),
  which `sample()`, and so sample grids, metrics and `predict`, use unless `sample_ema` is false;
* orthogonal regularisation of G (`g_regularization`), optional;
* the truncation trick at sampling: `sample(n, labels=..., truncation=t)`.

The networks are `lightning_dgm.nets.BigGANGenerator` / `BigGANDiscriminator` (any conditional pair works).
"""

from __future__ import annotations

import torch
from jsonargparse import lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lightning_dgm.errors import ConfigError
from lightning_dgm.losses import AdversarialLoss, Hinge, Penalty, orthogonal_regularization
from lightning_dgm.models.cgan import ConditionalGAN, FakeLabels, UniformLabels
from lightning_dgm.models.ema import GeneratorEMA
from lightning_dgm.nets.noise import GaussianNoise, Noise


class BigGAN(ConditionalGAN):
    """Class-conditional GAN with BigGAN's additions (see the module docstring). Training is
    `ConditionalGAN`'s: per batch one D step on (x, y) against (G(z, y'), y'), y' uniform over the
    classes, and every `d_steps`-th batch one G step minimising the hinge G loss
    (+ orthogonal_regularization * sum ||W W^T * (1 - I)||_F^2 over G's weights, when set); after
    each G step the EMA copy of G moves towards G (`GeneratorEMA`).

    Args:
        ema_decay: decay of G-EMA per G step (0.9999 in BigGAN); None: no EMA, sample from G.
        ema_start: G steps during which the EMA copy equals G (1000 in BigGAN's CIFAR-10 config).
        sample_ema: `sample()` uses the EMA G (true) or the raw G (false); a knob of evaluation, e.g.
            `predict ... --model.init_args.sample_ema false`.
        orthogonal_regularization: beta of BigGAN's orthogonal regularisation of G (1e-4 in the
            paper's ImageNet runs); 0: off.
        generator, discriminator, num_classes, fake_labels, loss, noise, g_optimizer, d_optimizer,
        g_lr_scheduler, d_lr_scheduler, d_steps, g_batch_size, penalty: as in `ConditionalGAN`
        (defaults here: uniform fake labels, hinge loss).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        num_classes: int | None = None,
        fake_labels: FakeLabels = lazy_instance(UniformLabels),
        loss: AdversarialLoss = lazy_instance(Hinge),
        noise: Noise = lazy_instance(GaussianNoise),
        g_optimizer: OptimizerCallable = torch.optim.Adam,
        d_optimizer: OptimizerCallable = torch.optim.Adam,
        g_lr_scheduler: LRSchedulerCallable | None = None,
        d_lr_scheduler: LRSchedulerCallable | None = None,
        d_steps: int = 1,
        g_batch_size: int | None = None,
        penalty: Penalty | None = None,
        ema_decay: float | None = 0.9999,
        ema_start: int = 1000,
        sample_ema: bool = True,
        orthogonal_regularization: float = 0.0,
    ) -> None:
        super().__init__(
            generator=generator,
            discriminator=discriminator,
            num_classes=num_classes,
            fake_labels=fake_labels,
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
        if orthogonal_regularization < 0:
            raise ConfigError(f"orthogonal_regularization must be >= 0, got {orthogonal_regularization}")
        self.generator_ema = None if ema_decay is None else GeneratorEMA(generator, ema_decay, ema_start)
        self.sample_ema, self.orthogonal_beta = sample_ema, orthogonal_regularization

    # -- BigGAN's additions, through AdversarialSystem's hooks ------------------------------------
    def g_regularization(self) -> Tensor | None:
        if not self.orthogonal_beta:
            return None
        return orthogonal_regularization(self.generator, self.orthogonal_beta)

    def on_generator_step_end(self) -> None:
        if self.generator_ema is not None:
            self.generator_ema.update(self.generator)

    # -- sampling ---------------------------------------------------------------------------------
    @property
    def sampling_generator(self) -> nn.Module:
        """The G that `sample()` uses: the EMA copy unless `sample_ema` is false or there is none."""
        return self.generator_ema.module if self.generator_ema is not None and self.sample_ema else self.generator

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
        truncation: float | None = None,
    ) -> Tensor:
        """n images (n, C, H, W) in [-1, 1] of classes `labels` (n,); with `truncation` t, z is drawn
        from p(z) restricted to [-t, t]^d (every |z_i| > t redrawn): the truncation trick, which
        trades variety for fidelity as t falls."""
        self.check_sample_condition(labels, n)
        z = self.noise.sample(
            (n, self.generator.latent_dim), generator=generator, device=self.device, truncation=truncation
        )
        return self.sampling_generator(z, labels.to(self.device))

    @torch.no_grad()
    def interpolate_classes(
        self, first: int, second: int, steps: int, n: int, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """(n * steps, C, H, W) in [-1, 1]: row i keeps one z and moves the shared class embedding in
        `steps` equal steps from class `first`'s row of G's embedding to class `second`'s (both ends
        included), so a row shows what the class alone changes (BigGAN, Figure 8)."""
        g = self.sampling_generator
        for label in (first, second):
            if not 0 <= label < g.num_classes:
                raise ConfigError(f"class {label} is outside 0..{g.num_classes - 1}")
        z = self.noise.sample((n, g.latent_dim), generator=generator, device=self.device)
        ends = g.embed(torch.tensor([first, second], device=self.device))
        weights = torch.linspace(0, 1, steps, device=self.device)[:, None]
        path = (1 - weights) * ends[0] + weights * ends[1]  # (steps, embedding_dim)
        return g(z.repeat_interleave(steps, dim=0), None, shared=path.repeat(n, 1))


__all__ = ["BigGAN"]
