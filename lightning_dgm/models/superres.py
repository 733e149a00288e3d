"""Single-image super-resolution (Ledig et al. 2017): SRResNet, trained on a content loss alone
(pixel MSE: the paper's SRResNet-MSE, and SRGAN's starting point), and SRGAN, content loss plus
1e-3 x the adversarial loss on the shared D/G step."""

from __future__ import annotations

import torch
from jsonargparse import lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MeanMetric

from lightning_dgm.checkpoints import read_checkpoint
from lightning_dgm.datamodules.superres import bicubic_upscale
from lightning_dgm.errors import CheckpointError, ConfigError
from lightning_dgm.losses import AdversarialLoss, NonSaturating
from lightning_dgm.losses.content import ContentLoss, PixelMSE
from lightning_dgm.metrics.restoration import y_psnr_ssim
from lightning_dgm.models.base import AdversarialSystem
from lightning_dgm.models.translation import TranslationSystem
from lightning_dgm.types import ResolutionPair, ResolutionRequest, Samples

_SCORES = ("psnr", "ssim", "psnr_bicubic", "ssim_bicubic")
PROTOCOL = "Y of YCbCr (BT.601, MATLAB rgb2ycbcr) of 8-bit images, scale px shaved, per image, averaged; torchmetrics"


class SuperResolutionSystem(TranslationSystem):
    """What SR systems share: G (`generator`, LR (N, C, h, w) -> SR (N, C, h * scale, w * scale), both
    in [-1, 1]), evaluation on whole images, and predict with optional tiling.

    Validation and test log `<stage>/psnr` and `<stage>/ssim` of G's output and, beside them,
    `<stage>/psnr_bicubic` and `<stage>/ssim_bicubic` of bicubic upscaling, on the same images, by
    the protocol of `lightning_dgm.metrics.restoration` (Y channel, `scale` pixels shaved, per whole
    image, averaged over images across processes); the protocol is logged once per stage as the
    `sr_metrics` hyperparameter.

    predict upscales each LR image at its full size; with `tile` > 0, images are upscaled in tiles of
    `tile` x `tile` LR pixels, each run with `tile_overlap` LR pixels of context on every side that
    are discarded, so activations stay bounded. Outputs equal untiled ones wherever the context
    covers G's receptive field (see tests).
    """

    generator: nn.Module

    def _setup_evaluation(self, scale: int, tile: int, tile_overlap: int) -> None:
        if tile < 0 or tile_overlap < 0:
            raise ConfigError(f"tile and tile_overlap must be >= 0 (tile 0: no tiling), got {tile}, {tile_overlap}")
        self.scale, self.tile, self.tile_overlap = scale, tile, tile_overlap
        self.scores = nn.ModuleDict({f"{s}_{k}": MeanMetric() for s in ("val", "test") for k in _SCORES})
        self._protocol_logged: set[str] = set()

    def translate(self, source: Tensor) -> Tensor:
        return self.upscale(source)

    def upscale(self, low: Tensor) -> Tensor:
        """LR (N, C, h, w) -> SR (N, C, h * scale, w * scale) in [-1, 1], tiled when `tile` > 0."""
        t, pad, s = self.tile, self.tile_overlap, self.scale
        height, width = low.shape[-2:]
        if not t or (height <= t and width <= t):
            return self.generator(low)
        out = low.new_empty((*low.shape[:2], height * s, width * s))
        for top in range(0, height, t):
            for left in range(0, width, t):
                bottom, right = min(top + t, height), min(left + t, width)
                y0, x0 = max(top - pad, 0), max(left - pad, 0)
                sr = self.generator(low[..., y0 : min(bottom + pad, height), x0 : min(right + pad, width)])
                core = sr[..., (top - y0) * s : (bottom - y0) * s, (left - x0) * s : (right - x0) * s]
                out[..., top * s : bottom * s, left * s : right * s] = core
        return out

    def translation_columns(self, batch: ResolutionPair) -> list[Tensor]:
        """LR (nearest-upscaled) | bicubic | SR | HR, each (N, C, H, W)."""
        nearest = batch.low.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1)
        return [nearest, bicubic_upscale(batch.low, self.scale), self.upscale(batch.low), batch.high]

    # -- evaluation ---------------------------------------------------------------------------
    def _evaluate(self, batch: ResolutionPair, stage: str) -> None:
        sr, bicubic = self.upscale(batch.low), bicubic_upscale(batch.low, self.scale)
        values = dict(zip(_SCORES[:2], y_psnr_ssim(sr, batch.high, self.scale)))
        values |= dict(zip(_SCORES[2:], y_psnr_ssim(bicubic, batch.high, self.scale)))
        for name, value in values.items():
            metric = self.scores[f"{stage}_{name}"]
            metric.update(value.float())
            self.log(f"{stage}/{name}", metric, batch_size=len(value))
        if stage not in self._protocol_logged and self.logger is not None:
            self._protocol_logged.add(stage)
            self.logger.log_hyperparams({"sr_metrics": {"protocol": PROTOCOL, "shave": self.scale, "stage": stage}})

    def validation_step(self, batch: ResolutionPair, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: ResolutionPair, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: ResolutionRequest) -> Samples:
        """SR images of the LR images `batch.low`, written as `<output_dir>/<batch.name>.png` by the SampleWriter."""
        return Samples(batch.index, self.upscale(batch.low), None)


class SRResNet(SuperResolutionSystem):
    """SRResNet: minimise content(G(x_LR), x_HR) (pixel MSE in the paper; a VGG loss by class).

    Args:
        generator: SRResNetGenerator (scale linked from the data).
        scale: upscaling factor; linked from the datamodule.
        content: the content loss, by class (PixelMSE: SRResNet-MSE).
        optimizer: the paper's Adam, lr 1e-4, betas (0.9, 0.999).
        lr_scheduler: optional, stepped once per epoch.
        tile, tile_overlap: predict in tiles of LR pixels (0: whole images); see SuperResolutionSystem.
    """

    def __init__(
        self,
        generator: nn.Module,
        scale: int = 4,
        content: ContentLoss = lazy_instance(PixelMSE),
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        tile: int = 0,
        tile_overlap: int = 16,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["generator", "content"])  # VGGFeatures' network never enters a checkpoint
        self.generator, self.content, self.optimizer, self.lr_scheduler = generator, content, optimizer, lr_scheduler
        self._setup_evaluation(scale, tile, tile_overlap)

    def training_step(self, batch: ResolutionPair, batch_idx: int) -> Tensor:
        loss = self.content(self.generator(batch.low), batch.high)
        self.log_training({"content": loss})
        return loss

    def configure_optimizers(self):
        optimizer = self.optimizer(self.generator.parameters())
        return [optimizer], [self.lr_scheduler(optimizer)] if self.lr_scheduler else []


class SRGAN(SuperResolutionSystem, AdversarialSystem):
    """SRGAN (Ledig et al. 2017, eq. 3): per batch of (x_LR, x_HR) pairs,
      1. D step: minimise loss.d_loss(D(x_HR), D(G(x_LR)))
      2. G step: minimise content(G(x_LR), x_HR) + adversarial_weight * loss.g_loss(D(G(x_LR)))
         (the paper: VGG54 content loss, 10^-3 x -log D(G(x_LR)))
    G starts from a trained SRResNet (`generator_checkpoint`), "to avoid undesired local optima".

    Args:
        generator, discriminator: SRResNetGenerator, SRGANDiscriminator (image_shape linked: the HR crop).
        scale: upscaling factor; linked from the datamodule.
        content: the content loss, by class: VGGFeatures(layer="relu5_4") for the paper's SRGAN-VGG54,
            PixelMSE for SRGAN-MSE.
        loss: adversarial objective (NonSaturating: the paper's -log D(G(x))).
        adversarial_weight: 1e-3.
        generator_checkpoint: an SRResNet checkpoint whose G weights G starts from, loaded when a fit
            starts (not when it resumes from a checkpoint of this system). None: G as initialised.
        g_optimizer, d_optimizer: the paper's Adam, lr 1e-4 (then 1e-5 for as many steps), betas (0.9, 0.999).
        g_lr_scheduler, d_lr_scheduler: optional, stepped once per epoch.
        tile, tile_overlap: predict in tiles of LR pixels (0: whole images).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        scale: int = 4,
        content: ContentLoss = lazy_instance(PixelMSE),
        loss: AdversarialLoss = lazy_instance(NonSaturating),
        adversarial_weight: float = 1e-3,
        generator_checkpoint: str | None = None,
        g_optimizer: OptimizerCallable = torch.optim.Adam,
        d_optimizer: OptimizerCallable = torch.optim.Adam,
        g_lr_scheduler: LRSchedulerCallable | None = None,
        d_lr_scheduler: LRSchedulerCallable | None = None,
        tile: int = 0,
        tile_overlap: int = 16,
    ) -> None:
        super().__init__(loss, g_optimizer, d_optimizer, g_lr_scheduler, d_lr_scheduler)
        self.save_hyperparameters(ignore=["generator", "discriminator", "content"])
        self.generator, self.discriminator, self.content = generator, discriminator, content
        self.adversarial_weight, self.generator_checkpoint = adversarial_weight, generator_checkpoint
        self._setup_evaluation(scale, tile, tile_overlap)

    def load_generator(self, path: str) -> None:
        """G's weights from the `generator.*` entries of the checkpoint at `path` (an SRResNet's)."""
        state = read_checkpoint(path)["state_dict"]
        weights = {k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")}
        try:
            self.generator.load_state_dict(weights)  # in place: optimizers keep pointing at the same tensors
        except RuntimeError as error:
            raise CheckpointError(
                f"{path} holds no generator of this shape ({' '.join(str(error).split())[:200]}); "
                f"pass the checkpoint of an SRResNet run with the same generator settings"
            ) from error
        rank_zero_info(f"SRGAN: G initialised from {path}")

    def on_fit_start(self) -> None:
        if self.trainer.ckpt_path is not None:  # a resumed run has its own G
            return
        if self.generator_checkpoint:
            self.load_generator(self.generator_checkpoint)
        else:
            rank_zero_warn("SRGAN: no generator_checkpoint, G starts untrained (the paper starts from an SRResNet)")

    def training_step(self, batch: ResolutionPair, batch_idx: int) -> None:
        low, real = batch
        fake = self.generator(low)  # one G forward serves both steps
        self.discriminator_step(real, fake.detach())
        content = self.content(fake, real)
        self.generator_step(fake, terms={"content": (1.0, content)}, adversarial_weight=self.adversarial_weight)
