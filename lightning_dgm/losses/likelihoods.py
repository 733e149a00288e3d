"""The probabilistic pieces of a VAE: the diagonal Gaussian posterior q(z | x) and the
likelihoods p(x | z), chosen by class.

All log-densities are in nats and summed over the event (latent dimensions, pixels), one value
per example, so a weight such as beta means the same at every latent size and image size.
Leading batch dimensions broadcast: with K samples per image, z is (K, N, D) and decoder
outputs are (K, N, C, H, W).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_dgm.errors import ConfigError

_LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last dimension: (..., D) -> (...)."""
    return -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)


class DiagonalGaussian:
    """q(z | x) = N(mean, diag(exp(log_var))), from an encoder output (N, 2D) = [mean, log_var]."""

    def __init__(self, params: Tensor) -> None:
        if params.dim() != 2 or params.shape[1] % 2:
            raise ConfigError(
                f"a diagonal Gaussian needs encoder outputs (N, 2 * latent_dim), got {tuple(params.shape)}; "
                "build the encoder with gaussian_posterior: true"
            )
        params = params.float()  # densities in fp32 even under mixed precision
        self.mean, log_var = params.chunk(2, dim=1)
        # exp(±30) keeps std finite and > 0 in fp32; a healthy posterior never gets near.
        self.log_var = log_var.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.log_var)

    def sample(self, shape: tuple[int, ...] = (), *, generator: torch.Generator | None = None) -> Tensor:
        """z = mean + std * eps, eps ~ N(0, I) (the reparameterization trick): (*shape, N, D)."""
        eps = torch.randn((*shape, *self.mean.shape), generator=generator, device=self.mean.device)
        return self.mean + self.std * eps

    def mode(self) -> Tensor:
        return self.mean

    def kl(self) -> Tensor:
        """KL(q || N(0, I)) in closed form (Kingma & Welling 2014, appendix B): (N,).

        -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)
        """
        return 0.5 * (self.mean.pow(2) + self.log_var.exp() - 1.0 - self.log_var).sum(-1)

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z | x), summed over latent dimensions: (..., N, D) -> (..., N)."""
        return -0.5 * (((z - self.mean) / self.std).pow(2) + self.log_var + _LOG_2PI).sum(-1)


class Likelihood:
    """p(x | z) given the decoder's output for z. Images x are in [-1, 1]."""

    def log_prob(self, output: Tensor, x: Tensor) -> Tensor:
        """log p(x | z) summed over pixels: output (..., N, C, H, W), x (N, C, H, W) -> (..., N)."""
        raise NotImplementedError

    def mean(self, output: Tensor) -> Tensor:
        """E[x | z] as an image in [-1, 1], for reconstructions and samples."""
        raise NotImplementedError


class BernoulliLikelihood(Likelihood):
    """Each pixel is on (x = 1) or off (x = -1) with probability sigmoid(logit): for binarized data
    (`MNISTDataModule(binarize=True)`), as in Kingma & Welling (2014) and the IWAE paper.
    """

    def log_prob(self, output: Tensor, x: Tensor) -> Tensor:
        target = (x + 1) / 2
        if not torch.all((target == 0) | (target == 1)):
            raise ConfigError(
                "BernoulliLikelihood needs binary images (every pixel -1 or 1): set data.binarize: true, "
                "or use GaussianLikelihood for grey levels"
            )
        target = target.expand_as(output).float()
        return -F.binary_cross_entropy_with_logits(output.float(), target, reduction="none").flatten(-3).sum(-1)

    def mean(self, output: Tensor) -> Tensor:
        return 2 * torch.sigmoid(output) - 1


class GaussianLikelihood(Likelihood):
    """N(x; output, std^2 I) with a fixed std: the "MSE" VAE. -log p = ||x - output||^2 / (2 std^2)
    + const, so std sets how much reconstruction weighs against the KL term (std is on the [-1, 1]
    scale: 0.1 there is 0.05 on [0, 1]).
    """

    def __init__(self, std: float = 0.1) -> None:
        if std <= 0:
            raise ConfigError(f"GaussianLikelihood std must be positive, got {std}")
        self.std = std

    def log_prob(self, output: Tensor, x: Tensor) -> Tensor:
        squared = ((x - output.float()) / self.std).pow(2)
        return -0.5 * (squared + _LOG_2PI + 2 * math.log(self.std)).flatten(-3).sum(-1)

    def mean(self, output: Tensor) -> Tensor:
        return output.clamp(-1, 1)


__all__ = ["BernoulliLikelihood", "DiagonalGaussian", "GaussianLikelihood", "Likelihood", "standard_normal_log_prob"]
