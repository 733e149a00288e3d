"""pix2pix (Isola et al. 2017): a conditional GAN for paired image-to-image translation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from lightning_dgm.datamodules.base import ImagePair
from lightning_dgm.losses import AdversarialLoss, NonSaturating
from lightning_dgm.models.translation import TranslationSystem, to_unit


class Pix2Pix(TranslationSystem):
    """G translates x (domain A) into y (domain B); D judges (x, y) pairs, concatenated on channels.

    Per training batch of pairs (x, y), as the paper's eq. 4 with the official update order:
      1. D step: minimise 1/2 * loss.d_loss(D(x, y), D(x, G(x)))
         (the paper divides D's objective by 2 "to slow the rate at which D learns relative to G")
      2. G step: minimise loss.g_loss(D(x, G(x))) + l1_weight * ||y - G(x)||_1      (λ = 100)
    The one G forward serves both steps. G's dropout is its only noise (no z, sec. 2.2).

    Validation (and test) logs `l1` (mean |G(x) - y| in the [-1, 1] range the G loss sees) and
    per-image PSNR and SSIM on [0, 1] images (torchmetrics, averaged over images), plus D's view.
    Unlike the paper, which keeps dropout on at test time, G is evaluated in eval mode, so the
    numbers are deterministic.

    Args:
        generator: (N, C_a, H, W) -> (N, C_b, H, W), both in [-1, 1] (UNetGenerator).
        discriminator: (N, C_a + C_b, H, W) -> realness logits, one per image or per patch
            (PatchGANDiscriminator with in_channels = C_a + C_b).
        loss: adversarial objective by class (NonSaturating is the paper's cGAN loss).
        l1_weight: λ, the weight of the L1 term.
        g_optimizer, d_optimizer: optimizer factories (the paper: Adam, lr 2e-4, betas (0.5, 0.999)).
        g_lr_scheduler, d_lr_scheduler: optional, stepped once per epoch (LinearDecayLR).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: AdversarialLoss = lazy_instance(NonSaturating),
        l1_weight: float = 100.0,
        g_optimizer: OptimizerCallable = torch.optim.Adam,
        d_optimizer: OptimizerCallable = torch.optim.Adam,
        g_lr_scheduler: LRSchedulerCallable | None = None,
        d_lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.l1_weight = l1_weight
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.g_lr_scheduler, self.d_lr_scheduler = g_lr_scheduler, d_lr_scheduler
        # Per-image scores (dim): the mean over images, as image-restoration papers report them.
        self.psnr = nn.ModuleDict({s: PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)) for s in ("val", "test")})
        self.ssim = nn.ModuleDict({s: StructuralSimilarityIndexMeasure(data_range=1.0) for s in ("val", "test")})

    def configure_optimizers(self):
        return self.paired_optimizers(self.generator.parameters(), self.discriminator.parameters())

    def translate(self, source: Tensor) -> Tensor:
        return self.generator(source)

    def judge(self, source: Tensor, image: Tensor) -> Tensor:
        """D's logits for `image` as a translation of `source`."""
        return self.discriminator(torch.cat([source, image], dim=1))

    # -- training -----------------------------------------------------------------------------
    def training_step(self, batch: ImagePair, batch_idx: int) -> None:
        fake = self.generator(batch.source)
        self._discriminator_step(batch.source, batch.target, fake.detach())
        self._generator_step(batch.source, batch.target, fake)

    def _discriminator_step(self, source: Tensor, real: Tensor, fake: Tensor) -> None:
        g_opt, d_opt = self.optimizers()
        with self.toggled_optimizer(d_opt):
            real_logits, fake_logits = self.judge(source, real), self.judge(source, fake)
            d_loss = 0.5 * self.loss.d_loss(real_logits, fake_logits)
            self.optimizer_step_on(d_opt, d_loss)
        self.log_discriminator(d_loss, real_logits, fake_logits)

    def _generator_step(self, source: Tensor, real: Tensor, fake: Tensor) -> None:
        g_opt, d_opt = self.optimizers()
        with self.toggled_optimizer(g_opt):
            adversarial = self.loss.g_loss(self.judge(source, fake))
            l1 = F.l1_loss(fake.float(), real.float())
            g_loss = adversarial + self.l1_weight * l1
            self.optimizer_step_on(g_opt, g_loss)
        self.log_dict(
            {"g_loss": g_loss.detach(), "g_adversarial": adversarial.detach(), "g_l1": l1.detach()}, prog_bar=True
        )

    # -- evaluation ---------------------------------------------------------------------------
    def _evaluate(self, batch: ImagePair, stage: str) -> None:
        fake = self.generator(batch.source)
        real_logits, fake_logits = self.judge(batch.source, batch.target), self.judge(batch.source, fake)
        fake_unit, real_unit = to_unit(fake), to_unit(batch.target)
        self.psnr[stage].update(fake_unit, real_unit)
        self.ssim[stage].update(fake_unit, real_unit)
        self.log_dict(
            {
                f"{stage}/l1": F.l1_loss(fake.float(), batch.target.float()),
                f"{stage}/d_real": self.loss.output(real_logits).mean(),
                f"{stage}/d_fake": self.loss.output(fake_logits).mean(),
            },
            sync_dist=True,
        )
        self.log_dict({f"{stage}/psnr": self.psnr[stage], f"{stage}/ssim": self.ssim[stage]})

    def validation_step(self, batch: ImagePair, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: ImagePair, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def translation_columns(self, batch: ImagePair) -> list[Tensor]:
        """input | output | target, for the translation grid."""
        return [batch.source, self.translate(batch.source), batch.target]
