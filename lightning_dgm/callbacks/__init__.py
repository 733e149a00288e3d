"""Callbacks: everything a run writes besides checkpoints (sample grids, predictions, ...)."""

from lightning_dgm.callbacks.class_grid import ClassGrid, ClassInterpolation
from lightning_dgm.callbacks.class_metrics import ClassMetrics
from lightning_dgm.callbacks.distribution_metrics import DistributionMetrics
from lightning_dgm.callbacks.images import image_grid, log_image, write_grid
from lightning_dgm.callbacks.latents import (
    LatentClassifier,
    LatentInterpolation,
    LatentManifold,
    Reconstructions,
    manifold_latents,
)
from lightning_dgm.callbacks.points import ModeCoverageMonitor, PointsPlot
from lightning_dgm.callbacks.progress import ProgressBar
from lightning_dgm.callbacks.real_features import RealFeatureCache
from lightning_dgm.callbacks.safety import NonFiniteGuard, ResumeCheckpoint
from lightning_dgm.callbacks.sample_grid import SampleGrid
from lightning_dgm.callbacks.sample_metrics import SampleMetrics
from lightning_dgm.callbacks.sample_writer import SampleRequestDataset, SampleWriter
from lightning_dgm.callbacks.sources import (
    ImageSource,
    SampledImages,
    Translations,
    generated_samples,
    this_ranks_samples,
)
from lightning_dgm.callbacks.speed import ChannelsLast, CompileNetworks, MatmulPrecision, RetainFreedMemory
from lightning_dgm.callbacks.superres import SuperResolutionGrid
from lightning_dgm.callbacks.translation import TranslationGrid
from lightning_dgm.callbacks.translation_metrics import TranslationMetrics
from lightning_dgm.callbacks.truncation import TruncationSweep

__all__ = [
    "ChannelsLast",
    "ClassGrid",
    "ClassInterpolation",
    "ClassMetrics",
    "CompileNetworks",
    "DistributionMetrics",
    "ImageSource",
    "LatentClassifier",
    "LatentInterpolation",
    "LatentManifold",
    "MatmulPrecision",
    "ModeCoverageMonitor",
    "NonFiniteGuard",
    "PointsPlot",
    "ProgressBar",
    "RealFeatureCache",
    "Reconstructions",
    "ResumeCheckpoint",
    "RetainFreedMemory",
    "SampledImages",
    "SampleGrid",
    "SampleMetrics",
    "TruncationSweep",
    "SampleRequestDataset",
    "SampleWriter",
    "SuperResolutionGrid",
    "TranslationGrid",
    "TranslationMetrics",
    "Translations",
    "generated_samples",
    "image_grid",
    "log_image",
    "manifold_latents",
    "this_ranks_samples",
    "write_grid",
]
