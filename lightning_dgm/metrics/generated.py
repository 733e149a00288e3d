"""The generated side of an evaluation, streamed batch by batch and synced across processes.

`GeneratedSet` keeps what the metrics asked for (`lightning_dgm.metrics.scores.Input`): every
feature vector, the running sums of the features (for FID: no set kept), every logit vector. It is a
torchmetrics `Metric` built on its public `add_state` only, so that under DDP `compute()` sums the
running sums and concatenates the sets over processes, in rank order (ranks generate consecutive
blocks of samples, so that is sample order); every process then holds the same inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from lightning_dgm.errors import ConfigError
from lightning_dgm.metrics.distances import feature_sums, statistics_from_sums
from lightning_dgm.metrics.scores import Input, MetricInputs


class GeneratedSet(Metric):
    """Streamed features / logits of generated images: `update(features, logits)` per batch,
    `compute()` -> `MetricInputs` with the generated fields that `needs` names (the others None).

    Args:
        needs: the `Input`s wanted (real ones are ignored).
        num_features: width of the features, when any feature input is wanted.
    """

    full_state_update = False

    def __init__(self, needs: frozenset[Input], num_features: int | None = None) -> None:
        super().__init__()
        self.keep_features = Input.GENERATED_FEATURES in needs
        self.keep_sums = Input.GENERATED_STATISTICS in needs
        self.keep_logits = Input.GENERATED_LOGITS in needs
        if (self.keep_features or self.keep_sums) and not num_features:
            raise ConfigError("GeneratedSet needs num_features to keep features")
        if self.keep_sums:
            self.add_state("feature_count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
            self.add_state("feature_sum", torch.zeros(num_features, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(
                "feature_outer", torch.zeros(num_features, num_features, dtype=torch.float64), dist_reduce_fx="sum"
            )
        if self.keep_features:
            self.add_state("features", [], dist_reduce_fx="cat")
        if self.keep_logits:
            self.add_state("logits", [], dist_reduce_fx="cat")

    @property
    def wants_features(self) -> bool:
        return self.keep_features or self.keep_sums

    def update(self, features: Tensor | None = None, logits: Tensor | None = None) -> None:
        if self.wants_features:
            if features is None:
                raise ConfigError("GeneratedSet keeps features: pass them")
            if self.keep_sums:
                total, outer = feature_sums(features)
                self.feature_count += len(features)
                self.feature_sum += total
                self.feature_outer += outer
            if self.keep_features:
                self.features.append(features)
        if self.keep_logits:
            if logits is None:
                raise ConfigError("GeneratedSet keeps logits: pass them")
            self.logits.append(logits)

    def compute(self) -> MetricInputs:
        return MetricInputs(
            generated_features=dim_zero_cat(self.features) if self.keep_features else None,
            generated_statistics=(
                statistics_from_sums(int(self.feature_count), self.feature_sum, self.feature_outer)
                if self.keep_sums
                else None
            ),
            generated_logits=dim_zero_cat(self.logits) if self.keep_logits else None,
        )
