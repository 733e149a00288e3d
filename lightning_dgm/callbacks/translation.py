"""Translation systems at work: a grid of the same validation images after every N epochs and at the end."""

from __future__ import annotations

import lightning as L
import torch

from lightning_dgm.callbacks.images import EpochPictures, write_grid
from lightning_dgm.errors import ConfigError
from lightning_dgm.types import ImagePair


class TranslationGrid(EpochPictures):
    """Writes `<run folder>/translations/epoch_XXX.png` and logs it as `translations` (rank zero).

    One row per image of a fixed validation batch: the first `num_images` pairs of the
    datamodule's validation split, read through its `evaluation_batches` (deterministic crops, so
    every grid shows the same inputs).
    The columns are the system's `translation_columns`: input | output | target for Pix2Pix,
    A | G(A) | F(G(A)) | B | F(B) | G(F(B)) for CycleGAN.

    Args:
        num_images: rows of the grid.
        every_n_epochs: write a grid after every N-th training epoch (and after the last one).
    """

    def __init__(self, num_images: int = 4, every_n_epochs: int = 1) -> None:
        super().__init__(every_n_epochs)
        if num_images < 1:
            raise ConfigError(f"num_images must be at least 1, got {num_images}")
        self.num_images = num_images
        self._batch: ImagePair | None = None

    def fixed_batch(self, trainer: L.Trainer) -> ImagePair:
        """The first `num_images` validation pairs (fewer if the split is smaller), read once."""
        if self._batch is None:
            datamodule = trainer.datamodule
            if not hasattr(datamodule, "evaluation_batches"):
                raise ConfigError(
                    "TranslationGrid draws its inputs from the datamodule's evaluation_batches('val'): "
                    "train with a translation datamodule (PairedDataModule, UnpairedDataModule, ...)"
                )
            count = min(self.num_images, datamodule.split_size("val"))
            if count == 0:
                raise ConfigError(
                    "TranslationGrid: the validation split is empty; give the datamodule validation images"
                )
            self._batch = ImagePair(*next(datamodule.evaluation_batches("val", count, batch_size=count)))
        return self._batch

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        batch = ImagePair(*(images.to(pl_module.device) for images in self.fixed_batch(trainer)))
        columns = pl_module.translation_columns(batch)
        # Row i holds image i of every column: interleave columns image by image.
        images = torch.stack([column.float() for column in columns], dim=1).flatten(0, 1)
        write_grid(trainer, images, key="translations", nrow=len(columns), epoch=epoch)
