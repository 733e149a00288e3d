"""Mechanics shared by systems: the sampling protocol, the predict step, and, for adversarial
systems, manual optimisation with stateless, per-rank noise seeds. Mechanics only: the
algorithm of each model lives in its own file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn


class SampleRequest(NamedTuple):
    """A predict batch: which samples to make. Labels matter only to conditional systems."""

    index: Tensor  # (N,) int64 sample number in [0, num_samples)
    label: Tensor  # (N,) int64 class to condition on
    seed: Tensor  # (N,) int64; the batch is drawn with a generator seeded by seed[0]


class Samples(NamedTuple):
    """What `predict_step` returns: images in [-1, 1], and labels for conditional systems."""

    index: Tensor  # (N,)
    image: Tensor  # (N, C, H, W)
    label: Tensor | None  # (N,) or None


class GenerativeSystem(L.LightningModule):
    """Base of every generative system: `sample()` is the one method callbacks, metrics and
    `predict` rely on.
    """

    #: Whether `sample()` takes class labels (conditional GANs and the like).
    conditional: bool = False

    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Draw `n` images (n, C, H, W) in [-1, 1]; `generator` makes the draw reproducible."""
        raise NotImplementedError

    def predict_step(self, batch: SampleRequest) -> Samples:
        generator = torch.Generator().manual_seed(int(batch.seed[0]))
        labels = batch.label.to(self.device) if self.conditional else None
        images = self.sample(len(batch.index), labels=labels, generator=generator)
        return Samples(batch.index, images, labels)


class AdversarialSystem(GenerativeSystem):
    """Thin base for systems with alternating D/G updates under manual optimisation.

    `trainer.global_step` counts optimizer steps, not batches: a batch with one D step and one
    G step advances it by 2. Epoch-based settings (max_epochs, every_n_epochs) are unaffected.

    Noise comes from `noise_generator()`, re-seeded from (seed_everything's seed, rank,
    global_step) at each call: a resumed run draws exactly the z of an uninterrupted one, and
    DDP ranks draw different z, with no RNG state to checkpoint.
    """

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self._rng: torch.Generator | None = None

    def noise_generator(self, *salt: int) -> torch.Generator:
        """A generator on this module's device, seeded by (global seed, rank, global_step, *salt)."""
        if self._rng is None or self._rng.device != self.device:
            self._rng = torch.Generator(device=self.device)
        base = int(os.environ.get("PL_GLOBAL_SEED", 0))
        step = self.trainer.global_step if self._trainer is not None else 0
        rank = self.global_rank if self._trainer is not None else 0
        self._rng.manual_seed(hash((base, rank, step, *salt)) & 0x7FFF_FFFF_FFFF_FFFF)
        return self._rng

    def paired_optimizers(self, g_params: Iterable[nn.Parameter], d_params: Iterable[nn.Parameter]):
        """[G's optimizer, D's optimizer] and their schedulers, from the factories the system keeps
        as `g_optimizer`, `d_optimizer`, `g_lr_scheduler`, `d_lr_scheduler` (the last two optional)."""
        g_opt, d_opt = self.g_optimizer(g_params), self.d_optimizer(d_params)
        schedulers = [make(opt) for make, opt in ((self.g_lr_scheduler, g_opt), (self.d_lr_scheduler, d_opt)) if make]
        return [g_opt, d_opt], schedulers

    def log_discriminator(self, d_loss: Tensor, real_logits: Tensor, fake_logits: Tensor) -> None:
        """Logs a D step: `d_loss` and what D says of real and fake images on average (`d_real`,
        `d_fake`: probabilities for BCE losses, raw scores otherwise; see the system's `loss`)."""
        self.log_dict(
            {
                "d_loss": d_loss.detach(),
                "d_real": self.loss.output(real_logits.detach()).mean(),
                "d_fake": self.loss.output(fake_logits.detach()).mean(),
            },
            prog_bar=True,
        )

    def optimizer_step_on(self, optimizer: LightningOptimizer, loss: Tensor) -> None:
        """zero_grad -> backward (AMP-scaled) -> step, on Lightning's optimizer wrapper."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()

    def on_train_epoch_end(self) -> None:
        # Under manual optimisation Lightning never steps schedulers: step them once per epoch.
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()
