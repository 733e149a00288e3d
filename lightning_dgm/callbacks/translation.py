"""Translation systems at work: a grid of the same validation images after every N epochs, and
FID / KID of translated images against the target domain."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.image import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance

from lightning_dgm.callbacks.images import write_grid
from lightning_dgm.callbacks.sample_metrics import SampleMetrics
from lightning_dgm.types import ImagePair, Samples


class TranslationGrid(L.Callback):
    """Writes `<run folder>/translations/epoch_XXX.png` and logs it as `translations` (rank zero).

    One row per image of a fixed validation batch: the first `num_images` pairs of the
    datamodule's validation loader (deterministic crops, so every grid shows the same inputs).
    The columns are the system's `translation_columns`: input | output | target for Pix2Pix,
    A | G(A) | F(G(A)) | B | F(B) | G(F(B)) for CycleGAN.

    Args:
        num_images: rows of the grid.
        every_n_epochs: write a grid after every N-th training epoch.
    """

    def __init__(self, num_images: int = 4, every_n_epochs: int = 1) -> None:
        if num_images < 1 or every_n_epochs < 1:
            raise ValueError("num_images and every_n_epochs must be at least 1")
        self.num_images = num_images
        self.every_n_epochs = every_n_epochs
        self._batch: ImagePair | None = None

    def fixed_batch(self, trainer: L.Trainer) -> ImagePair:
        """The first `num_images` validation pairs (fewer if the split is smaller), read once."""
        if self._batch is None:
            datamodule = trainer.datamodule
            if datamodule is None or not hasattr(datamodule, "val_dataloader"):
                raise ValueError(
                    "TranslationGrid draws its inputs from the datamodule's val_dataloader(): "
                    "train with a datamodule that has a validation split"
                )
            sources, targets, count = [], [], 0
            for batch in datamodule.val_dataloader():
                sources.append(batch.source)
                targets.append(batch.target)
                count += len(batch.source)
                if count >= self.num_images:
                    break
            if not sources:
                raise ValueError(
                    "TranslationGrid: the validation split is empty; give the datamodule validation images"
                )
            self._batch = ImagePair(torch.cat(sources)[: self.num_images], torch.cat(targets)[: self.num_images])
        return self._batch

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every_n_epochs or not trainer.is_global_zero:
            return
        batch = ImagePair(*(images.to(pl_module.device) for images in self.fixed_batch(trainer)))
        was_training = pl_module.training
        pl_module.eval()
        columns = pl_module.translation_columns(batch)
        pl_module.train(was_training)
        # Row i holds image i of every column: interleave columns image by image.
        images = torch.stack([column.float() for column in columns], dim=1).flatten(0, 1)
        path = Path(trainer.default_root_dir) / "translations" / f"epoch_{epoch:03d}.png"
        write_grid(trainer, images, key="translations", path=path, nrow=len(columns), caption=f"epoch {epoch}")


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
