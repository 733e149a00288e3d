"""Fidelity and variety of samples as k-nearest-neighbour manifolds of feature sets:

* **precision** (Kynkäänniemi et al. 2019): the share of generated features inside the real manifold,
  the union of balls around each real feature reaching its k-th nearest real neighbour;
* **recall**: the share of real features inside the generated manifold (balls around generated features);
* **density** (Naeem et al. 2020): (1 / kM) sum_j #{real balls holding generated feature j}, about 1
  when the two sets come from one distribution, above 1 when samples crowd dense real regions;
* **coverage** (Naeem et al. 2020): the share of real features whose ball holds at least one
  generated feature.

A point is inside a ball when its distance is strictly below the radius, as in Naeem et al.'s
reference code (`prdc`), k = 5 as there. Distances are Euclidean, computed in float64 block by block,
so 10,000 x 10,000 sets never hold their whole distance matrix. `PrecisionRecall` is the
`SampleMetric` that `SampleMetrics` logs them with (features from any extractor).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from lightning_dgm.errors import ConfigError
from lightning_dgm.metrics.scores import Input, MetricInputs, SampleMetric


class Fidelity(NamedTuple):
    precision: Tensor  # () in [0, 1]
    recall: Tensor  # () in [0, 1]
    density: Tensor  # () >= 0
    coverage: Tensor  # () in [0, 1]


def _distances(x: Tensor, y: Tensor) -> Tensor:
    """Euclidean distances (len(x), len(y)) in float64, via |x|^2 + |y|^2 - 2 x.y."""
    x, y = x.double(), y.double()
    squared = x.square().sum(1, keepdim=True) + y.square().sum(1) - 2 * x @ y.T
    return squared.clamp_min(0).sqrt()


def neighbour_radii(features: Tensor, k: int = 5, block: int = 1024) -> Tensor:
    """(N,) float64: each feature's distance to its k-th nearest other feature of the set (N, D)."""
    if features.dim() != 2 or not 1 <= k < len(features):
        raise ConfigError(f"k-nearest-neighbour radii need features (N, D) with N > k={k}, got {tuple(features.shape)}")
    radii = [_distances(part, features).kthvalue(k + 1, dim=1).values for part in features.split(block)]
    return torch.cat(radii)  # k + 1: each feature's nearest is itself, at distance 0


def _inside_counts(points: Tensor, centres: Tensor, radii: Tensor, block: int) -> Tensor:
    """(len(points),) int64: how many balls (centres, radii) hold each point."""
    counts = [(_distances(part, centres) < radii).sum(dim=1) for part in points.split(block)]
    return torch.cat(counts)


def precision_recall_density_coverage(real: Tensor, generated: Tensor, k: int = 5, block: int = 1024) -> Fidelity:
    """Precision, recall, density and coverage (float64 scalars) of `generated` (M, D) against
    `real` (N, D) features, with k-nearest-neighbour balls (see the module docstring)."""
    if real.dim() != 2 or generated.dim() != 2 or real.shape[1] != generated.shape[1]:
        shapes = f"{tuple(real.shape)}, {tuple(generated.shape)}"
        raise ConfigError(f"need real (N, D) and generated (M, D) features of one D, got {shapes}")
    real_radii, generated_radii = neighbour_radii(real, k, block), neighbour_radii(generated, k, block)
    in_real = _inside_counts(generated, real, real_radii, block)  # (M,) real balls holding each sample
    in_generated = _inside_counts(real, generated, generated_radii, block)  # (N,)
    nearest_sample = torch.cat([_distances(part, generated).min(dim=1).values for part in real.split(block)])
    return Fidelity(
        precision=(in_real > 0).double().mean(),
        recall=(in_generated > 0).double().mean(),
        density=in_real.double().mean() / k,
        coverage=(nearest_sample < real_radii).double().mean(),
    )


class PrecisionRecall(SampleMetric):
    """Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) of
    the generated features against the real ones, with k-nearest-neighbour balls. Logs `precision`,
    `recall`, `density`, `coverage`. Keeps every feature vector of both sets (each process gets the
    whole generated set, gathered in sample order, so every rank logs the same values); the papers
    use 10,000 (Naeem) to 50,000 (Kynkäänniemi) of each. Works with any extractor: Inception, or
    the domain classifier's features (`ClassifierFeatures`).

    Args:
        k: the neighbour whose distance is a ball's radius (5 in Naeem et al.; 3 in Kynkäänniemi et al.).
    """

    needs = frozenset({Input.REAL_FEATURES, Input.GENERATED_FEATURES})
    outputs = ("precision", "recall", "density", "coverage")

    def __init__(self, k: int = 5) -> None:
        if k < 1:
            raise ConfigError(f"PrecisionRecall needs k >= 1, got {k}")
        self.k = k

    def compute(self, inputs: MetricInputs, generator: torch.Generator) -> dict[str, Tensor]:
        real = self._given(inputs.real_features, "real features")
        generated = self._given(inputs.generated_features, "generated features")
        return dict(precision_recall_density_coverage(real, generated, self.k)._asdict())

    def settings(self) -> dict[str, Any]:
        return {"k": self.k}

    def check_set_size(self, count: int, what: str) -> None:
        if count <= self.k:
            raise ConfigError(f"PrecisionRecall with k={self.k} needs more than k images, not {what}: lower k")


__all__ = ["Fidelity", "PrecisionRecall", "neighbour_radii", "precision_recall_density_coverage"]
