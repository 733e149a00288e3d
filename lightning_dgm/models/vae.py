"""The variational autoencoder (Kingma & Welling 2014), with beta (Higgins et al. 2017) and the
importance-weighted likelihood estimate of Burda et al. (2016).
"""

from __future__ import annotations

import math

import torch
from jsonargparse import lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lightning_dgm import seeding
from lightning_dgm.errors import ConfigError
from lightning_dgm.losses.likelihoods import BernoulliLikelihood, DiagonalGaussian, Likelihood, standard_normal_log_prob
from lightning_dgm.models.base import GenerativeSystem
from lightning_dgm.types import ImageBatch

#: decoder evaluations per chunk of the importance-weighted estimate (bounds its memory)
_IW_CHUNK = 50_000


class VAE(GenerativeSystem):
    """p(z) = N(0, I), p(x | z) = `likelihood`(decoder(z)), q(z | x) = N(encoder(x)) diagonal.

    Per training batch (Auto-Encoding Variational Bayes, Algorithm 1 with L = 1):
      q = q(z | x);  z = mean + std * eps,  eps ~ N(0, I)        (reparameterization)
      loss = mean over x of  -log p(x | z) + beta * KL(q || N(0, I))   (KL in closed form)
    With beta = 1 the loss is the negative ELBO. KL and log p(x | z) are summed over latent
    dimensions and pixels, so beta means the same at every latent size.

    Validation and test log, in nats per image: `elbo` (beta = 1, one z per image; the same z at
    every evaluation), `recon_nll` (-log p(x | z)), `kl`, and `mse` (per-pixel squared error of the
    mean reconstruction, [-1, 1] scale). With `iw_samples` = k > 0, test also logs `nll_iw`:
    -log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x) (Burda et al. 2016, eq. 8), an
    estimate of -log p(x) that tightens as k grows (k = 5,000 in the paper).

    Args:
        encoder: images (N, C, H, W) -> (N, 2 * latent_dim) = [mean, log-variance] of q(z | x).
        decoder: codes (N, latent_dim) -> (N, C, H, W), read by the likelihood.
        likelihood: p(x | z) by class: BernoulliLikelihood (binarized data) or GaussianLikelihood.
        beta: weight of the KL term in the training loss (1 is the VAE).
        optimizer: optimizer factory for all parameters.
        lr_scheduler: optional epoch-based scheduler.
        iw_samples: k of the test-time importance-weighted estimate; 0 skips it.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood = lazy_instance(BernoulliLikelihood),
        beta: float = 1.0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        iw_samples: int = 0,
    ) -> None:
        super().__init__()
        latent = getattr(decoder, "latent_dim", None), getattr(encoder, "latent_dim", None)
        if latent[0] is None or latent[0] != latent[1]:
            raise ConfigError(f"encoder and decoder must have the same latent_dim, got {latent[1]} and {latent[0]}")
        if not getattr(encoder, "gaussian_posterior", True):
            raise ConfigError("the VAE's encoder must output a Gaussian posterior: set gaussian_posterior: true")
        if beta < 0 or iw_samples < 0:
            raise ConfigError(f"beta and iw_samples must be non-negative, got {beta} and {iw_samples}")
        self.save_hyperparameters()
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.latent_dim: int = latent[0]
        self.beta = beta
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.iw_samples = iw_samples

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters())
        return [optimizer], [self.lr_scheduler(optimizer)] if self.lr_scheduler else []

    # -- the model ----------------------------------------------------------------------------
    def posterior(self, x: Tensor) -> DiagonalGaussian:
        """q(z | x) for images (N, C, H, W) in [-1, 1]."""
        return DiagonalGaussian(self.encoder(x))

    def encode(self, x: Tensor) -> Tensor:
        """The code of each image: the posterior mean, (N, latent_dim)."""
        return self.posterior(x).mode()

    def decode(self, z: Tensor) -> Tensor:
        """E[x | z] as images (N, C, H, W) in [-1, 1]."""
        return self.likelihood.mean(self.decoder(z))

    @torch.no_grad()
    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        if labels is not None:
            raise ConfigError("VAE is unconditional: call sample() without labels")
        device = generator.device if generator is not None else self.device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device).to(self.device)
        return self.decode(z)

    def _terms(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """-log p(x | z) (N,), KL (N,) and decoder output for one z ~ q(z | x) per image."""
        q = self.posterior(x)
        output = self.decoder(q.sample(generator=generator))
        return -self.likelihood.log_prob(output, x), q.kl(), output

    # -- training -----------------------------------------------------------------------------
    def training_step(self, batch: ImageBatch, batch_idx: int) -> Tensor:
        recon_nll, kl, _ = self._terms(batch.image, self.random_stream(seeding.REPARAMETERIZATION))
        loss = (recon_nll + self.beta * kl).mean()
        if self.logging_due():
            self.log_training({"loss": loss, "elbo": -(recon_nll + kl).mean(), "kl": kl.mean()})
        return loss

    # -- evaluation ---------------------------------------------------------------------------
    def _evaluate(self, batch: ImageBatch, batch_idx: int, prefix: str, iw_samples: int = 0) -> None:
        x = batch.image
        generator = self.random_stream(seeding.EVALUATION, batch_idx, per_step=False)  # the same z every time
        recon_nll, kl, output = self._terms(x, generator)
        metrics = {
            "elbo": -(recon_nll + kl).mean(),
            "recon_nll": recon_nll.mean(),
            "kl": kl.mean(),
            "mse": (self.likelihood.mean(output).float() - x).pow(2).mean(),
        }
        if iw_samples:
            metrics["nll_iw"] = -self.importance_weighted_log_likelihood(x, iw_samples, generator).mean()
        # batch_size: the mean over images must weight each batch by its size (the last is short).
        self.log_dict({f"{prefix}/{k}": v for k, v in metrics.items()}, sync_dist=True, batch_size=len(x))

    @torch.no_grad()
    def importance_weighted_log_likelihood(self, x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """log p(x) ~ logsumexp_i [log p(x | z_i) + log p(z_i) - log q(z_i | x)] - log k: (N,)."""
        q = self.posterior(x)
        chunk = max(1, _IW_CHUNK // len(x))
        log_w = []
        for start in range(0, k, chunk):
            z = q.sample((min(chunk, k - start),), generator=generator)  # (K, N, D)
            output = self.decoder(z.flatten(0, 1)).unflatten(0, z.shape[:2])
            log_w.append(self.likelihood.log_prob(output, x) + standard_normal_log_prob(z) - q.log_prob(z))
        return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)

    def validation_step(self, batch: ImageBatch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: ImageBatch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test", self.iw_samples)
