"""FID / KID of a translation system's translations against the target domain."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lightning_dgm.callbacks.distribution_metrics import DistributionMetrics
from lightning_dgm.callbacks.sources import Translations
from lightning_dgm.errors import ConfigError
from lightning_dgm.metrics.scores import FrechetDistance, Input, KernelDistance, SampleMetric


class TranslationMetrics(DistributionMetrics):
    """FID / KID between translated images and the target domain: the system's translations of
    every source image of a split (`translate(source)`, e.g. G(horse)) against every target image
    of that split (the zebras), each image once, after every N-th validation epoch (the validation
    split) and at test (the test split). Logged as `<stage>/fid`, `<stage>/kid_mean`,
    `<stage>/kid_std` (those of the chosen metrics). The datamodule says how many images each
    domain of a split has (`domain_sizes(split)`) and serves them (`evaluation_batches`).

    Everything else is SampleMetrics': the extractor (`feature`), the on-disk cache of the real
    (target) features, DDP (each rank translates its share; every rank logs the same value), the
    protocol logged beside the values. The splits of translation data sets are small (horse2zebra
    tests 120 horses against 140 zebras), so KID's default subset size here is 50 and FID from so
    few images is biased upwards: compare FIDs only at equal counts.

    Args:
        feature: extractor for FID and KID: uint8 images in, (N, num_features) out.
        metrics: `lightning_dgm.metrics.SampleMetric`s on features; None: `FrechetDistance()` and
            `KernelDistance(subset_size=50)`.
        every_n_epochs, batch_size, seed, cache_dir: as SampleMetrics.
    """

    validation_split = "val"

    def __init__(
        self,
        feature: nn.Module,
        metrics: Sequence[SampleMetric] | None = None,
        every_n_epochs: int = 1,
        batch_size: int = 50,
        seed: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        if metrics is None:
            metrics = (FrechetDistance(), KernelDistance(subset_size=50))
        if any(Input.GENERATED_LOGITS in getattr(metric, "needs", ()) for metric in metrics):
            raise ConfigError(
                "TranslationMetrics compares translations with the target domain: use metrics on features "
                "(FrechetDistance, KernelDistance)"
            )
        source = Translations(batch_size, seed)
        super().__init__(source, metrics, feature, None, every_n_epochs, batch_size, seed, cache_dir)
