"""Sample-quality metrics as small classes: each says which inputs it needs (features of the real
images, features of the generated ones, class logits of the generated ones) and computes its
numbers from them with the pure core (`lightning_dgm.metrics.distances`).

`SampleMetrics` and `TranslationMetrics` (in `lightning_dgm.callbacks`) take a list of them, so a
variant is a class with its settings, in Python or YAML:

    metrics:
      - class_path: lightning_dgm.metrics.FrechetDistance
      - class_path: lightning_dgm.metrics.KernelDistance
        init_args: {subsets: 100, subset_size: 1000}
      - class_path: lightning_dgm.metrics.InceptionScore
        init_args: {splits: 10}

A new metric (say precision / recall on k-nearest-neighbour balls of real and generated features)
is one more subclass of `SampleMetric`: `needs`, `outputs`, `compute`, `settings`; the callbacks
gather what it needs and log what it returns.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from lightning_dgm.errors import ConfigError
from lightning_dgm.metrics.distances import (
    GaussianStatistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
)


class Input(enum.Enum):
    """What a metric can be given."""

    REAL_FEATURES = "real features"  # (N, D) float32: features of every real image
    REAL_STATISTICS = "real statistics"  # GaussianStatistics of them
    GENERATED_FEATURES = "generated features"  # (M, D) float32: features of every generated image
    GENERATED_STATISTICS = "generated statistics"  # GaussianStatistics of them, streamed: no (M, D) set kept
    GENERATED_LOGITS = "generated logits"  # (M, K): class logits of every generated image


FEATURE_INPUTS = frozenset(
    {Input.REAL_FEATURES, Input.REAL_STATISTICS, Input.GENERATED_FEATURES, Input.GENERATED_STATISTICS}
)
REAL_INPUTS = frozenset({Input.REAL_FEATURES, Input.REAL_STATISTICS})


class MetricInputs(NamedTuple):
    """The inputs of one evaluation; those no metric asked for are None. Every process holds the
    same, all of them (generated sets are gathered across processes, in sample order)."""

    real_features: Tensor | None = None
    real_statistics: GaussianStatistics | None = None
    generated_features: Tensor | None = None
    generated_statistics: GaussianStatistics | None = None
    generated_logits: Tensor | None = None


class SampleMetric:
    """Base class of the metrics that `SampleMetrics` computes.

    A subclass sets `needs` (a frozenset of `Input`) and `outputs` (the names it logs, under
    `<stage>/`), and implements `compute(inputs, generator)`, returning one scalar tensor per output
    name. `generator` is a CPU generator seeded by the callback's seed, fresh for each metric: draw
    every random subset from it, so that every process computes the same value. `settings()` (the
    init arguments) is logged with the protocol; `check_set_size` refuses sets too small for it.
    """

    needs: ClassVar[frozenset[Input]] = frozenset()
    outputs: ClassVar[tuple[str, ...]] = ()

    def compute(self, inputs: MetricInputs, generator: torch.Generator) -> dict[str, Tensor]:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        return {}

    def check_set_size(self, count: int, what: str) -> None:
        """ValueError when a set of `count` images (`what`, e.g. "num_samples=100 generated images")
        is too small for this metric."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.settings().items())})"

    @staticmethod
    def _given(value, name: str):
        if value is None:
            raise ConfigError(f"no {name} given: the metric's `needs` must name {name}")
        return value


class FrechetDistance(SampleMetric):
    """FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to the real and the
    generated features, computed in float64. Logs `fid`. The generated features are streamed as
    running sums (no set of them is kept). Biased upwards for small sets: compare FIDs at equal
    sample counts only."""

    needs = frozenset({Input.REAL_STATISTICS, Input.GENERATED_STATISTICS})
    outputs = ("fid",)

    def compute(self, inputs: MetricInputs, generator: torch.Generator) -> dict[str, Tensor]:
        real = self._given(inputs.real_statistics, "real statistics")
        generated = self._given(inputs.generated_statistics, "generated statistics")
        return {"fid": frechet_distance(real.mean, real.cov, generated.mean, generated.cov)}

    def check_set_size(self, count: int, what: str) -> None:
        if count < 2:
            raise ConfigError(f"FrechetDistance fits a covariance: it needs at least 2 images, not {what}")


class KernelDistance(SampleMetric):
    """KID (Bińkowski et al. 2018): the unbiased MMD^2 between real and generated features under the
    polynomial kernel (gamma x.y + coef)^degree, over `subsets` random pairs of subsets of
    `subset_size` images. Logs `kid_mean` and `kid_std` (over subsets). Keeps every feature vector.

    Args:
        subsets: number of subset pairs (torchmetrics' default 100).
        subset_size: images per subset (1000 in the paper and torchmetrics); both sets need as many.
        degree, gamma, coef: the kernel's (3, None meaning 1 / feature width, 1.0).
    """

    needs = frozenset({Input.REAL_FEATURES, Input.GENERATED_FEATURES})
    outputs = ("kid_mean", "kid_std")

    def __init__(
        self,
        subsets: int = 100,
        subset_size: int = 1000,
        degree: int = 3,
        gamma: float | None = None,
        coef: float = 1.0,
    ) -> None:
        if subsets < 1 or subset_size < 2 or degree < 1 or (gamma is not None and gamma <= 0):
            raise ConfigError(
                f"KernelDistance needs subsets >= 1, subset_size >= 2, degree >= 1 and gamma None or > 0, got "
                f"{subsets}, {subset_size}, {degree}, {gamma}"
            )
        self.subsets, self.subset_size, self.degree, self.gamma, self.coef = subsets, subset_size, degree, gamma, coef

    def compute(self, inputs: MetricInputs, generator: torch.Generator) -> dict[str, Tensor]:
        real = self._given(inputs.real_features, "real features")
        generated = self._given(inputs.generated_features, "generated features")
        kid = kernel_inception_distance(
            real, generated, self.subsets, self.subset_size, generator, self.degree, self.gamma, self.coef
        )
        return {"kid_mean": kid.mean, "kid_std": kid.std}

    def settings(self) -> dict[str, Any]:
        return {
            "subsets": self.subsets,
            "subset_size": self.subset_size,
            "degree": self.degree,
            "gamma": self.gamma,
            "coef": self.coef,
        }

    def check_set_size(self, count: int, what: str) -> None:
        if count < self.subset_size:
            raise ConfigError(
                f"KernelDistance draws subsets of subset_size={self.subset_size} images, more than {what}: "
                "lower subset_size"
            )


class InceptionScore(SampleMetric):
    """IS (Salimans et al. 2016) of the generated images' class logits: exp E KL(p(y|x) || p(y)) per
    split of the shuffled set. Logs `is_mean` and `is_std` (over splits). Needs a classifier (the
    Inception logits, `InceptionFeatures(feature="logits_unbiased")`, for published numbers).

    Args:
        splits: number of splits (10, as in the paper).
    """

    needs = frozenset({Input.GENERATED_LOGITS})
    outputs = ("is_mean", "is_std")

    def __init__(self, splits: int = 10) -> None:
        if splits < 1:
            raise ConfigError(f"InceptionScore needs splits >= 1, got {splits}")
        self.splits = splits

    def compute(self, inputs: MetricInputs, generator: torch.Generator) -> dict[str, Tensor]:
        score = inception_score(self._given(inputs.generated_logits, "generated logits"), self.splits, generator)
        return {"is_mean": score.mean, "is_std": score.std}

    def settings(self) -> dict[str, Any]:
        return {"splits": self.splits}


__all__ = [
    "FEATURE_INPUTS",
    "REAL_INPUTS",
    "FrechetDistance",
    "InceptionScore",
    "Input",
    "KernelDistance",
    "MetricInputs",
    "SampleMetric",
]
