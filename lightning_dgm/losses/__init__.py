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
from lightning_dgm.losses.penalties import GradientPenalty, Penalty, R1Penalty

__all__ = [
    "AdversarialLoss",
    "GradientPenalty",
    "Hinge",
    "LeastSquares",
    "Minimax",
    "NonSaturating",
    "Penalty",
    "R1Penalty",
    "Wasserstein",
    "realness",
]
