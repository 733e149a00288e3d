"""FID / KID of a translation system's translations against the target domain."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.image import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance

from lightning_dgm.callbacks.sample_metrics import SampleMetrics
from lightning_dgm.types import ImagePair, Samples


class TranslationMetrics(SampleMetrics):
    """FID / KID between translated images and the target domain: the system's translations of
    every source image of a split (`translate(source)`, e.g. G(horse)) against every target image
    of that split (the zebras), after every N-th validation epoch (the validation split) and at
    test (the test split). Logged as `<stage>/fid`, `<stage>/kid_mean`, `<stage>/kid_std`. The
    split's dataset holds the two domains as `source` and `target` image tensors (the
    translation datamodules' evaluation datasets do), each image scored once.

    Everything else is SampleMetrics': the extractor (`feature`), the on-disk cache of the real
    (target) features, DDP (each rank translates its share; every rank logs the same value), the
    protocol logged beside the values. The splits of translation data sets are small (horse2zebra
    tests 120 horses against 140 zebras), so KID's default subset size is 50 and FID from so few
    images is biased upwards: compare FIDs only at equal counts.

    Args:
        feature: extractor for FID and KID: uint8 images in, (N, num_features) out.
        metrics: FrechetInceptionDistance and/or KernelInceptionDistance.
        every_n_epochs, kid_subset_size, kid_subsets, batch_size, seed, cache_dir: as SampleMetrics.
    """

    validation_split = "val"

    def __init__(
        self,
        feature: nn.Module,
        metrics: Sequence[type[Metric]] = (FrechetInceptionDistance, KernelInceptionDistance),
        every_n_epochs: int = 1,
        kid_subset_size: int = 50,
        kid_subsets: int = 100,
        batch_size: int = 50,
        seed: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        if any(issubclass(m, InceptionScore) for m in metrics):
            raise ValueError("TranslationMetrics compares translations with the target domain: use FID and KID")
        # num_samples is set per split, to its number of source images, in measure().
        super().__init__(
            feature=feature,
            metrics=metrics,
            num_samples=kid_subset_size,
            every_n_epochs=every_n_epochs,
            kid_subset_size=kid_subset_size,
            kid_subsets=kid_subsets,
            batch_size=batch_size,
            seed=seed,
            cache_dir=cache_dir,
        )

    def real_images(self, batch: ImagePair) -> Tensor:
        return batch.target

    def _num_real(self, dataset) -> int:
        return len(dataset.target)  # each target image once (unpaired splits wrap the smaller domain)

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> dict[str, Tensor]:
        self.num_samples = len(self._dataset(trainer, split).source)
        if KernelInceptionDistance in self.metrics and self.num_samples < self.kid_subset_size:
            raise ValueError(
                f"KID draws subsets of kid_subset_size={self.kid_subset_size}, but the {split} split "
                f"has {self.num_samples} source images: lower kid_subset_size"
            )
        return super().measure(trainer, pl_module, split)

    def generated_batches(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> Iterator[Samples]:
        """Translations of this rank's share of the split's source images, in index order."""
        dataset = self._dataset(trainer, split)
        indices = torch.arange(len(dataset.source)).tensor_split(trainer.world_size)[trainer.global_rank]
        was_training = pl_module.training
        pl_module.eval()
        try:
            for index in indices.split(self.batch_size):
                source = dataset.__getitems__(index.tolist()).source.to(pl_module.device)
                with torch.no_grad():
                    yield Samples(index, pl_module.translate(source), None)
        finally:
            pl_module.train(was_training)
