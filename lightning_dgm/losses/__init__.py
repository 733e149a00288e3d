"""Losses: small, documented objects on logits. Choose one by class in YAML."""

from lightning_dgm.losses.adversarial import (
    AdversarialLoss,
    Hinge,
    LeastSquares,
    Minimax,
    NonSaturating,
    Wasserstein,
    realness,
)
from lightning_dgm.losses.content import ContentLoss, PixelMSE, VGGFeatures
from lightning_dgm.losses.likelihoods import (
    BernoulliLikelihood,
    DiagonalGaussian,
    GaussianLikelihood,
    Likelihood,
    standard_normal_log_prob,
)
from lightning_dgm.losses.penalties import GradientPenalty, Penalty, R1Penalty, orthogonal_regularization

__all__ = [
    "AdversarialLoss",
    "BernoulliLikelihood",
    "ContentLoss",
    "DiagonalGaussian",
    "GaussianLikelihood",
    "GradientPenalty",
    "Hinge",
    "LeastSquares",
    "Likelihood",
    "Minimax",
    "NonSaturating",
    "Penalty",
    "PixelMSE",
    "R1Penalty",
    "VGGFeatures",
    "Wasserstein",
    "realness",
    "orthogonal_regularization",
    "standard_normal_log_prob",
]
