"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation with cycle consistency."""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lightning_dgm import seeding
from lightning_dgm.errors import ConfigError
from lightning_dgm.losses import AdversarialLoss, LeastSquares
from lightning_dgm.models.base import AdversarialSystem, frozen, optimized_parameters
from lightning_dgm.models.translation import TranslationSystem
from lightning_dgm.types import ImagePair


class ImagePool:
    """The history of generated images that D trains on (Shrivastava et al. 2017; CycleGAN sec. 4).

    `query(images)` returns a batch of the same size: while fewer than `size` images are stored,
    each new image is stored and returned; afterwards each new image, with probability 1/2, is
    returned as is, or else swapped with a random stored one, which is returned in its place.
    size 0 turns the pool off. Images are stored detached, as float32, on their device.
    """

    def __init__(self, size: int = 50) -> None:
        if size < 0:
            raise ConfigError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[Tensor] = []

    def query(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.size == 0:
            return images.detach()
        if self.images and self.images[0].device != images.device:  # e.g. restored from a checkpoint
            self.images = [image.to(images.device) for image in self.images]
        out = []
        for image in images.detach().float():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
                continue
            swap, index = torch.rand((), generator=generator, device=generator.device) < 0.5, None
            if swap:
                index = int(torch.randint(self.size, (), generator=generator, device=generator.device))
                out.append(self.images[index])
                self.images[index] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        return {"images": [image.cpu() for image in self.images]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images = list(state["images"])


class CycleGAN(TranslationSystem, AdversarialSystem):
    """Two translators and two discriminators trained against each other and for cycle consistency.

    Code to paper: `generator_ab` is G: X -> Y, `generator_ba` is F: Y -> X, `discriminator_a` is
    D_X (judges domain A = X), `discriminator_b` is D_Y. A batch holds a ~ X and b ~ Y, unpaired.

    Per training batch (the official update order: G first, then D on pooled fakes):
      1. G step, both generators, one optimizer; with λ = cycle_weight:
           loss.g_loss(D_Y(G(a))) + loss.g_loss(D_X(F(b)))
         + λ * (||F(G(a)) - a||_1 + ||G(F(b)) - b||_1)                        (eq. 2, cycle loss)
         + identity_weight * λ * (||G(b) - b||_1 + ||F(a) - a||_1)        (sec. 5.2, identity loss)
      2. D step, both discriminators, one optimizer:
           loss.d_loss(D_X(a), D_X(pool_a(F(b)))) + loss.d_loss(D_Y(b), D_Y(pool_b(G(a))))
    The default loss is the official code's least squares: D minimises 1/2 E[(D(y) - 1)^2] +
    1/2 E[D(G(x))^2] and G the paper's E[(D(G(x)) - 1)^2], i.e. `LeastSquares(d_scale=0.5, g_scale=1)`
    (Mao et al. halve G's term too: `LeastSquares()`). Each loss states its own scale.

    Validation (and test) logs the cycle and identity errors (mean absolute error, [-1, 1] range)
    per direction and how each D judges real and translated images.

    Args:
        generator_ab, generator_ba: (N, 3, H, W) -> (N, 3, H, W) in [-1, 1] (ResNetGenerator).
        discriminator_a, discriminator_b: images -> realness logits per patch (PatchGANDiscriminator).
        loss: adversarial objective by class (least squares in the paper, at the scale above).
        cycle_weight: λ of the cycle loss (10).
        identity_weight: the identity loss's weight as a fraction of λ (0.5; 0 turns it off).
        pool_size: generated images kept per domain for the discriminators (50; 0: no pool).
        g_optimizer, d_optimizer: optimizer factories (the paper: Adam, lr 2e-4, betas (0.5, 0.999)).
        g_lr_scheduler, d_lr_scheduler: optional, stepped once per epoch (LinearDecayLR).
    """

    def __init__(
        self,
        generator_ab: nn.Module,
        generator_ba: nn.Module,
        discriminator_a: nn.Module,
        discriminator_b: nn.Module,
        loss: AdversarialLoss = lazy_instance(LeastSquares, d_scale=0.5, g_scale=1.0),
        cycle_weight: float = 10.0,
        identity_weight: float = 0.5,
        pool_size: int = 50,
        g_optimizer: OptimizerCallable = torch.optim.Adam,
        d_optimizer: OptimizerCallable = torch.optim.Adam,
        g_lr_scheduler: LRSchedulerCallable | None = None,
        d_lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(loss, g_optimizer, d_optimizer, g_lr_scheduler, d_lr_scheduler)
        self.save_hyperparameters(ignore=["generator_ab", "generator_ba", "discriminator_a", "discriminator_b"])
        self.generator_ab, self.generator_ba = generator_ab, generator_ba
        self.discriminator_a, self.discriminator_b = discriminator_a, discriminator_b
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)

    def generator_parameters(self):
        return itertools.chain(self.generator_ab.parameters(), self.generator_ba.parameters())

    def discriminator_parameters(self):
        return itertools.chain(self.discriminator_a.parameters(), self.discriminator_b.parameters())

    def translate(self, source: Tensor) -> Tensor:
        return self.generator_ab(source)

    # -- training -----------------------------------------------------------------------------
    def training_step(self, batch: ImagePair, batch_idx: int) -> None:
        fake_b, fake_a = self._generator_step(batch.source, batch.target)
        rng = self.random_stream(seeding.IMAGE_POOL)
        self._discriminator_step(
            batch.source, batch.target, self.pool_a.query(fake_a, rng), self.pool_b.query(fake_b, rng)
        )

    def _generator_step(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        g_opt, d_opt = self.optimizers()
        with frozen(optimized_parameters(d_opt)):  # no weight gradients for the Ds in G's update
            fake_b, fake_a = self.generator_ab(a), self.generator_ba(b)
            adversarial = self.loss.g_loss(self.discriminator_b(fake_b)) + self.loss.g_loss(
                self.discriminator_a(fake_a)
            )
            cycle_a = F.l1_loss(self.generator_ba(fake_b).float(), a.float())
            cycle_b = F.l1_loss(self.generator_ab(fake_a).float(), b.float())
            g_loss = adversarial + self.cycle_weight * (cycle_a + cycle_b)
            logs = {"g_adversarial": adversarial, "cycle_a": cycle_a, "cycle_b": cycle_b}
            if self.identity_weight > 0:
                identity_a = F.l1_loss(self.generator_ba(a).float(), a.float())
                identity_b = F.l1_loss(self.generator_ab(b).float(), b.float())
                g_loss = g_loss + self.identity_weight * self.cycle_weight * (identity_a + identity_b)
                logs |= {"identity_a": identity_a, "identity_b": identity_b}
            self.optimizer_step_on(g_opt, g_loss)
        self.on_generator_step_end()
        self.log_training({"g_loss": g_loss} | logs)
        return fake_b.detach(), fake_a.detach()

    def _discriminator_step(self, a: Tensor, b: Tensor, fake_a: Tensor, fake_b: Tensor) -> None:
        g_opt, d_opt = self.optimizers()
        # The pooled fakes are detached: nothing reaches the generators, which need no freezing.
        real_a, pooled_a = self.discriminator_a(a), self.discriminator_a(fake_a)
        real_b, pooled_b = self.discriminator_b(b), self.discriminator_b(fake_b)
        d_loss_a, d_loss_b = self.loss.d_loss(real_a, pooled_a), self.loss.d_loss(real_b, pooled_b)
        self.optimizer_step_on(d_opt, d_loss_a + d_loss_b)
        self.log_training({"d_loss_a": d_loss_a, "d_loss_b": d_loss_b})

    # -- evaluation ---------------------------------------------------------------------------
    def _evaluate(self, batch: ImagePair, stage: str) -> None:
        a, b = batch.source, batch.target
        fake_b, fake_a = self.generator_ab(a), self.generator_ba(b)
        errors = {
            "cycle_a": F.l1_loss(self.generator_ba(fake_b).float(), a.float()),
            "cycle_b": F.l1_loss(self.generator_ab(fake_a).float(), b.float()),
            "identity_a": F.l1_loss(self.generator_ba(a).float(), a.float()),
            "identity_b": F.l1_loss(self.generator_ab(b).float(), b.float()),
            "d_a_real": self.loss.output(self.discriminator_a(a)).mean(),
            "d_a_fake": self.loss.output(self.discriminator_a(fake_a)).mean(),
            "d_b_real": self.loss.output(self.discriminator_b(b)).mean(),
            "d_b_fake": self.loss.output(self.discriminator_b(fake_b)).mean(),
        }
        self.log_dict({f"{stage}/{name}": value for name, value in errors.items()}, sync_dist=True)

    def validation_step(self, batch: ImagePair, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: ImagePair, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def translation_columns(self, batch: ImagePair) -> list[Tensor]:
        """A -> G(A) -> F(G(A)) | B -> F(B) -> G(F(B)), for the translation grid."""
        fake_b, fake_a = self.generator_ab(batch.source), self.generator_ba(batch.target)
        return [batch.source, fake_b, self.generator_ba(fake_b), batch.target, fake_a, self.generator_ab(fake_a)]

    # The pools are training state, one per DDP rank: every rank's goes into the checkpoint (which
    # rank 0 alone writes), and each rank takes its own back, so a resumed run continues with the
    # same histories. on_save_checkpoint runs on every rank, so the gather is a valid collective.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = {"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()}
        states = [state]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            states = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(states, state)
        checkpoint["image_pools"] = states  # index: rank

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("image_pools")
        if states is None:
            return
        # Another world size than the checkpoint's: each rank takes some rank's history.
        state = states[self.global_rank % len(states)]
        self.pool_a.load_state_dict(state["a"])
        self.pool_b.load_state_dict(state["b"])
