"""Metrics: pure cores and torchmetrics wrappers, kept out of LightningModules (see callbacks)."""

from lightning_dgm.metrics.classes import (
    ClassCoverage,
    ClassDistribution,
    ClassifierFeatures,
    ClassifierLogits,
    class_coverage,
    conditional_accuracy,
    load_classifier,
)
from lightning_dgm.metrics.features import (
    INCEPTION_FILE,
    INCEPTION_URL,
    ImageFeatures,
    InceptionFeatures,
    fingerprint,
    inception_weights_path,
)
from lightning_dgm.metrics.modes import Coverage, ModeCounts, ModeCoverage, count_modes, mode_coverage

__all__ = [
    "ClassCoverage",
    "ClassDistribution",
    "ClassifierFeatures",
    "ClassifierLogits",
    "class_coverage",
    "conditional_accuracy",
    "load_classifier",
    "INCEPTION_FILE",
    "INCEPTION_URL",
    "Coverage",
    "ImageFeatures",
    "InceptionFeatures",
    "ModeCounts",
    "ModeCoverage",
    "count_modes",
    "fingerprint",
    "inception_weights_path",
    "mode_coverage",
]
