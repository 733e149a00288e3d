"""Deterministic autoencoders: the plain AE and the denoising AE (Vincent et al. 2008).

An autoencoder has no prior to sample from. To keep the sampling protocol, each training epoch
fits a full-covariance Gaussian to the codes it produced (ex-post density estimation, as in
Ghosh et al. 2020) and `sample()` decodes draws from it.
"""

from __future__ import annotations

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lightning_dgm import seeding
from lightning_dgm.errors import ConfigError
from lightning_dgm.models.base import GenerativeSystem
from lightning_dgm.types import ImageBatch


class Corruption:
    """What a denoising autoencoder does to its input: images in [-1, 1] -> corrupted images,
    drawing its noise from `generator` (on the images' device)."""

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError


class GaussianCorruption(Corruption):
    """x + N(0, std^2), additive isotropic Gaussian noise ([-1, 1] scale)."""

    def __init__(self, std: float = 0.5) -> None:
        if std <= 0:
            raise ConfigError(f"GaussianCorruption std must be positive, got {std}")
        self.std = std

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return x + self.std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class MaskingCorruption(Corruption):
    """Masking noise (Vincent et al. 2008): each pixel is set to black (-1) with probability p."""

    def __init__(self, p: float = 0.25) -> None:
        if not 0 < p < 1:
            raise ConfigError(f"MaskingCorruption p must be in (0, 1), got {p}")
        self.p = p

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        masked = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) < self.p
        return torch.where(masked, torch.full_like(x, -1.0), x)


class AutoEncoder(GenerativeSystem):
    """x -> z = encoder(x) -> x_hat = decoder(z); loss = mean over x of ||x - x_hat||^2 (summed over pixels).

    Validation and test log `loss` and `mse` (per-pixel squared error, [-1, 1] scale).

    Args:
        encoder: images (N, C, H, W) in [-1, 1] -> codes (N, latent_dim).
        decoder: codes (N, latent_dim) -> reconstructions (N, C, H, W) (unbounded; clamped to
            [-1, 1] only when shown or sampled).
        optimizer: optimizer factory for all parameters.
        lr_scheduler: optional epoch-based scheduler.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        latent = getattr(decoder, "latent_dim", None), getattr(encoder, "latent_dim", None)
        if latent[0] is None or latent[0] != latent[1]:
            raise ConfigError(f"encoder and decoder must have the same latent_dim, got {latent[1]} and {latent[0]}")
        if getattr(encoder, "gaussian_posterior", False):
            raise ConfigError("an autoencoder's encoder outputs one code per image: set gaussian_posterior: false")
        self.save_hyperparameters()
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim: int = latent[0]
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        # The Gaussian that sample() draws from, refit to the codes of every training epoch
        # (N(0, I) before the first). Buffers, so checkpoints keep it.
        self.register_buffer("code_mean", torch.zeros(self.latent_dim))
        self.register_buffer("code_scale_tril", torch.eye(self.latent_dim))
        self._code_sums: list[Tensor] | None = None

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters())
        return [optimizer], [self.lr_scheduler(optimizer)] if self.lr_scheduler else []

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z).clamp(-1, 1)

    @torch.no_grad()
    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        if labels is not None:
            raise ConfigError(f"{type(self).__name__} is unconditional: call sample() without labels")
        device = generator.device if generator is not None else self.device
        eps = torch.randn(n, self.latent_dim, generator=generator, device=device).to(self.device)
        return self.decode(self.code_mean + eps @ self.code_scale_tril.T)

    def corrupt(self, x: Tensor) -> Tensor:
        """The input the encoder sees in training; the plain autoencoder sees x itself."""
        return x

    # -- training -----------------------------------------------------------------------------
    def training_step(self, batch: ImageBatch, batch_idx: int) -> Tensor:
        x = batch.image
        seen = self.corrupt(x)
        z = self.encoder(seen)
        loss = (self.decoder(z).float() - x).pow(2).flatten(1).sum(1).mean()
        self.log_training({"loss": loss})
        with torch.no_grad():  # sample() decodes codes of clean images, so fit the Gaussian to those
            self._accumulate_codes((z if seen is x else self.encoder(x)).detach().float())
        return loss

    def on_train_epoch_start(self) -> None:
        self._code_sums = None

    def _accumulate_codes(self, z: Tensor) -> None:
        sums = [z.new_tensor(float(len(z))), z.sum(0), z.T @ z]
        self._code_sums = sums if self._code_sums is None else [a + b for a, b in zip(self._code_sums, sums)]

    def on_train_epoch_end(self) -> None:
        if self._code_sums is None:
            return
        # Every rank saw its own shard: add the sums up so all ranks fit the same Gaussian.
        count, total, outer = (self.trainer.strategy.reduce(s, reduce_op="sum") for s in self._code_sums)
        mean = total / count
        cov = outer / count - torch.outer(mean, mean)
        jitter = 1e-5 * torch.eye(self.latent_dim, device=cov.device)  # a flat direction must not break Cholesky
        self.code_mean.copy_(mean)
        self.code_scale_tril.copy_(torch.linalg.cholesky(cov + jitter))
        self._code_sums = None

    # -- evaluation ---------------------------------------------------------------------------
    def _evaluate(self, batch: ImageBatch, prefix: str) -> None:
        x = batch.image
        error = (self.decoder(self.encoder(x)).float() - x).pow(2)
        metrics = {"loss": error.flatten(1).sum(1).mean(), "mse": error.mean()}
        self.log_dict({f"{prefix}/{k}": v for k, v in metrics.items()}, sync_dist=True, batch_size=len(x))

    def validation_step(self, batch: ImageBatch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: ImageBatch, batch_idx: int) -> None:
        self._evaluate(batch, "test")


class DenoisingAutoEncoder(AutoEncoder):
    """Denoising AE (Vincent et al. 2008): loss = ||x - decoder(encoder(corruption(x)))||^2, the
    target being the clean x. Evaluation reconstructs clean inputs, like the plain AE.

    Args:
        corruption: by class, GaussianCorruption or MaskingCorruption.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        corruption: Corruption,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(encoder, decoder, optimizer, lr_scheduler)
        self.corruption = corruption

    def corrupt(self, x: Tensor) -> Tensor:
        return self.corruption(x, self.random_stream(seeding.CORRUPTION))
