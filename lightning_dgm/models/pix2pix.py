"""pix2pix (Isola et al. 2017): a conditional GAN for paired image-to-image translation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from lightning_dgm.losses import AdversarialLoss, NonSaturating
from lightning_dgm.models.base import AdversarialSystem
from lightning_dgm.models.translation import TranslationSystem
from lightning_dgm.types import ImagePair, signed_unit_to_unit


class Pix2Pix(TranslationSystem, AdversarialSystem):
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
        super().__init__(loss, g_optimizer, d_optimizer, g_lr_scheduler, d_lr_scheduler)
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.generator, self.discriminator, self.l1_weight = generator, discriminator, l1_weight
        # Per-image scores (dim): the mean over images, as image-restoration papers report them.
        self.psnr = nn.ModuleDict({s: PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)) for s in ("val", "test")})
        self.ssim = nn.ModuleDict({s: StructuralSimilarityIndexMeasure(data_range=1.0) for s in ("val", "test")})

    def translate(self, source: Tensor) -> Tensor:
        return self.generator(source)

    def judge(self, images: Tensor, condition: Tensor | None = None) -> Tensor:
        """D's logits for `images` as translations of the sources `condition`."""
        return self.discriminator(torch.cat([condition, images], dim=1))

    # -- training -----------------------------------------------------------------------------
    def training_step(self, batch: ImagePair, batch_idx: int) -> None:
        source, real = batch.source, batch.target
        fake = self.generator(source)  # one G forward serves both steps
        self.discriminator_step(real, fake.detach(), real_condition=source, fake_condition=source, weight=0.5)
        l1 = F.l1_loss(fake.float(), real.float())
        self.generator_step(fake, condition=source, terms={"l1": (self.l1_weight, l1)})

    # -- evaluation ---------------------------------------------------------------------------
    def _evaluate(self, batch: ImagePair, stage: str) -> None:
        fake = self.generator(batch.source)
        real_logits, fake_logits = self.judge(batch.target, batch.source), self.judge(fake, batch.source)
        fake_unit, real_unit = signed_unit_to_unit(fake), signed_unit_to_unit(batch.target)
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
