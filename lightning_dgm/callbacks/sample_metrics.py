"""FID, KID and IS of a system's samples, every N epochs and at test time.

Protocol: `num_samples` images from `pl_module.sample()` (eval mode, no grad, seeded) are
quantised to uint8 like saved PNGs and scored against real images from the datamodule's
`evaluation_batches`: the **train split** (without the validation images) at validation, the
**test split** at test. Real features are extracted once per split and cached on disk, keyed by
everything that changes them (`lightning_dgm.callbacks.real_features`), so later runs never pass
over real data again. The numbers are torchmetrics' on the same features (`lightning_dgm.metrics.distances`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lightning_dgm.callbacks.distribution_metrics import DistributionMetrics
from lightning_dgm.callbacks.sources import SampledImages, generated_samples
from lightning_dgm.metrics.scores import FrechetDistance, InceptionScore, KernelDistance, SampleMetric


class SampleMetrics(DistributionMetrics):
    """Logs the chosen `metrics` of a system's samples, e.g. `<stage>/fid`, `<stage>/kid_mean`,
    `<stage>/kid_std`, `<stage>/is_mean`, `<stage>/is_std`, after every N-th validation epoch (never
    in the sanity check) and after every test epoch; and, once per stage, the protocol (extractor,
    metric settings, sample counts, resize, versions) as logger hyperparameters under `sample_metrics`.

    Samples come from `generated_samples`: conditional systems (`pl_module.conditional`) get labels
    cycling over `pl_module.num_classes`, so every class is drawn equally often. Under DDP each
    process generates its share of `num_samples` with seed `seed + rank`; the generated features are
    gathered and the metrics' random subsets seeded, so every rank gets the same value.

    Args:
        feature: extractor for FID and KID (`InceptionFeatures()` for published numbers,
            `ImageFeatures(...)` / `ClassifierFeatures(...)` for a domain network): uint8 images in,
            (N, num_features) out; required when a metric needs features.
        classifier: extractor giving class logits, for IS (`InceptionFeatures(feature="logits_unbiased")`);
            required when a metric needs logits. With `feature` the same Inception (same weights file
            and antialias), one forward per batch serves both.
        metrics: the metrics, `lightning_dgm.metrics.SampleMetric`s; None: `FrechetDistance()`,
            `KernelDistance()` (100 subsets of 1000) and `InceptionScore()` (10 splits).
        num_samples: generated images per evaluation, over all processes (10k or 50k in papers).
        num_real_samples: real images scored, the first ones of the split; None takes the whole split.
        every_n_epochs: score after every N-th validation epoch.
        batch_size: images per `sample()` call and per extractor call.
        seed: seed of the sampling noise (+ rank), of the real images' draws (data served with
            fresh randomness) and of the metrics' random subsets.
        cache_dir: folder of real-feature caches; None: `$XDG_CACHE_HOME/lightning_dgm/real_features`
            (default `~/.cache/...`).
        max_time_share: during fit, keep the evaluations within this share of the run's wall time
            (0.1: a tenth), on any device: a due evaluation that would exceed it waits for a later
            due epoch, with one info line (`lightning_dgm.callbacks.budget.TimeShare`). The first real
            features' extraction, cached on disk, is not counted. None: every due epoch.
    """

    validation_split = "train"

    def __init__(
        self,
        feature: nn.Module | None = None,
        classifier: nn.Module | None = None,
        metrics: Sequence[SampleMetric] | None = None,
        num_samples: int = 10_000,
        num_real_samples: int | None = None,
        every_n_epochs: int = 1,
        batch_size: int = 200,
        seed: int = 0,
        cache_dir: str | None = None,
        max_time_share: float | None = None,
    ) -> None:
        if metrics is None:
            metrics = (FrechetDistance(), KernelDistance(), InceptionScore())
        source = SampledImages(num_samples, num_real_samples, batch_size, seed)
        super().__init__(
            source, metrics, feature, classifier, every_n_epochs, batch_size, seed, cache_dir, max_time_share
        )
        self.num_samples, self.num_real_samples = num_samples, num_real_samples
        for metric in self.metrics:
            metric.check_set_size(num_samples, source.describe_generated(None, num_samples))


__all__ = ["SampleMetrics", "generated_samples"]
