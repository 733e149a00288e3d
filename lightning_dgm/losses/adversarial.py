"""Adversarial objectives, each split into its discriminator half and its generator half.

Every loss works on D's raw outputs (logits), never on probabilities, and returns a scalar mean:

* a tensor of shape (N, 2) is read as [fake, real] class logits of a 2-way softmax D, trained
  with cross-entropy (the lecture recipe's D);
* any other shape (N, ...) holds realness logits, one per sample or per patch (PatchGAN),
  averaged over every element.

For the BCE-based losses a 2-way softmax and a single logit are the same model:
softmax([a, b])[1] = sigmoid(b - a). `output()` returns what D "says" per element, for logging:
the probability of "real" for BCE-based losses, the raw score otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_dgm.errors import ConfigError


def _is_two_class(logits: Tensor) -> bool:
    return logits.dim() == 2 and logits.shape[1] == 2


def realness(logits: Tensor) -> Tensor:
    """D's score that a sample is real, in float32: b - a for [fake=a, real=b] logits, else the logits."""
    logits = logits.float()
    return logits[:, 1] - logits[:, 0] if _is_two_class(logits) else logits


def _bce(logits: Tensor, real: bool) -> Tensor:
    """-log D(x) when real, -log(1 - D(x)) when fake, averaged."""
    logits = logits.float()
    if _is_two_class(logits):
        target = torch.full((len(logits),), int(real), dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, target)
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


class AdversarialLoss:
    """Base: one D half and one G half on logits."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def output(self, logits: Tensor) -> Tensor:
        return realness(logits)


class Minimax(AdversarialLoss):
    """Goodfellow et al. 2014, eq. 1, as written (the saturating G loss).

    D: -[log D(x) + log(1 - D(G(z)))]      G: log(1 - D(G(z)))  (minimised)
    """

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return _bce(real_logits, True) + _bce(fake_logits, False)

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return -_bce(fake_logits, False)

    def output(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(realness(logits))


class NonSaturating(Minimax):
    """Goodfellow et al. 2014, sec. 3: G maximises log D(G(z)), i.e. is trained with flipped labels.

    D: -[log D(x) + log(1 - D(G(z)))]      G: -log D(G(z))
    """

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return _bce(fake_logits, True)


class Hinge(AdversarialLoss):
    """Lim & Ye 2017; Miyato et al. 2018 (SN-GAN), BigGAN.

    D: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]      G: -E[D(G(z))]
    """

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1 - realness(real_logits)).mean() + F.relu(1 + realness(fake_logits)).mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return -realness(fake_logits).mean()


class LeastSquares(AdversarialLoss):
    """Mao et al. 2017 (LSGAN, eq. 2 with a=0, b=1, c=1), as used by CycleGAN.

    D: d_scale * (E[(D(x) - 1)^2] + E[D(G(z))^2])      G: g_scale * E[(D(G(z)) - 1)^2]

    The scales say where the objective's constant factor is chosen: Mao et al. halve both (the
    defaults, 1/2); CycleGAN's official code halves D's and not G's (g_scale 1).
    """

    def __init__(self, d_scale: float = 0.5, g_scale: float = 0.5) -> None:
        if d_scale <= 0 or g_scale <= 0:
            raise ConfigError(f"LeastSquares scales must be positive, got d_scale={d_scale}, g_scale={g_scale}")
        self.d_scale, self.g_scale = d_scale, g_scale

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        real, fake = realness(real_logits), realness(fake_logits)
        return self.d_scale * (real - 1).pow(2).mean() + self.d_scale * fake.pow(2).mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return self.g_scale * (realness(fake_logits) - 1).pow(2).mean()


class Wasserstein(AdversarialLoss):
    """Arjovsky et al. 2017 (WGAN); pair it with `GradientPenalty` (WGAN-GP) or weight clipping.

    D (critic): E[D(G(z))] - E[D(x)]      G: -E[D(G(z))]
    """

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return realness(fake_logits).mean() - realness(real_logits).mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return -realness(fake_logits).mean()
