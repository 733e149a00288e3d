"""Metrics: pure cores (`distances`, `classes`, `modes`, `manifolds`), the sample-quality metric classes that
`SampleMetrics` takes (`scores`), their streamed state (`generated`) and the feature extractors;
kept out of LightningModules (see callbacks). Nothing here imports `lightning_dgm.models`."""

from lightning_dgm.metrics.classes import (
    ClassCoverage,
    ClassDistribution,
    ClassifierFeatures,
    ClassifierLogits,
    class_coverage,
    conditional_accuracy,
    load_classifier,
)
from lightning_dgm.metrics.distances import (
    GaussianStatistics,
    MeanStd,
    feature_sums,
    frechet_distance,
    gaussian_statistics,
    inception_score,
    kernel_inception_distance,
    polynomial_kernel,
    statistics_from_sums,
    unbiased_mmd,
)
from lightning_dgm.metrics.features import (
    INCEPTION_FILE,
    INCEPTION_URL,
    FeaturesAndLogits,
    ImageFeatures,
    InceptionFeatures,
    fingerprint,
    inception_weights_path,
    shares_forward,
)
from lightning_dgm.metrics.generated import GeneratedSet
from lightning_dgm.metrics.judges import CIFAR10ResNet20, ResNet20Features, ResNet20Logits
from lightning_dgm.metrics.manifolds import (
    Fidelity,
    PrecisionRecall,
    neighbour_radii,
    precision_recall_density_coverage,
)
from lightning_dgm.metrics.modes import Coverage, ModeCounts, ModeCoverage, count_modes, mode_coverage
from lightning_dgm.metrics.scores import (
    FrechetDistance,
    InceptionScore,
    Input,
    KernelDistance,
    MetricInputs,
    SampleMetric,
)

__all__ = [
    "CIFAR10ResNet20",
    "ResNet20Features",
    "ResNet20Logits",
    "Fidelity",
    "PrecisionRecall",
    "neighbour_radii",
    "precision_recall_density_coverage",
    "FeaturesAndLogits",
    "FrechetDistance",
    "GaussianStatistics",
    "GeneratedSet",
    "InceptionScore",
    "Input",
    "KernelDistance",
    "MeanStd",
    "MetricInputs",
    "SampleMetric",
    "feature_sums",
    "frechet_distance",
    "gaussian_statistics",
    "inception_score",
    "kernel_inception_distance",
    "polynomial_kernel",
    "shares_forward",
    "statistics_from_sums",
    "unbiased_mmd",
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
