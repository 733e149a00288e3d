"""Super-resolution at work: LR | bicubic | SR | HR crops of the same validation images every N epochs
and at the end of training."""

from __future__ import annotations

import lightning as L
import torch

from lightning_dgm.callbacks.images import EpochPictures, write_grid
from lightning_dgm.errors import ConfigError
from lightning_dgm.types import ResolutionPair


class SuperResolutionGrid(EpochPictures):
    """Writes `<run folder>/super_resolution/epoch_XXX.png` and logs it as `super_resolution` (rank zero).

    One row per image of the first `num_images` validation images (whole images, read through the
    datamodule's `evaluation_batches`): the centre `crop` x `crop` HR pixels (less for smaller images)
    and the matching LR pixels; columns are the system's `translation_columns`: LR (nearest-upscaled)
    | bicubic | SR | HR. G sees the LR crop alone, so the SR column is what G makes of those pixels.

    Args:
        num_images: rows of the grid.
        crop: side of the HR crops shown, in pixels (rounded down to a multiple of the scale).
        every_n_epochs: write a grid after every N-th training epoch (and after the last one).
    """

    def __init__(self, num_images: int = 4, crop: int = 128, every_n_epochs: int = 1) -> None:
        super().__init__(every_n_epochs)
        if min(num_images, crop) < 1:
            raise ConfigError("num_images and crop must be at least 1")
        self.num_images, self.crop = num_images, crop
        self._batch: ResolutionPair | None = None

    def fixed_batch(self, trainer: L.Trainer, scale: int) -> ResolutionPair:
        """The centre crops of the first `num_images` validation images, read once."""
        if self._batch is None:
            datamodule = trainer.datamodule
            count = min(self.num_images, datamodule.split_size("val")) if datamodule is not None else 0
            if count == 0:
                raise ConfigError("SuperResolutionGrid shows validation images: set data.val_dir")
            pairs = [ResolutionPair(*b) for b in datamodule.evaluation_batches("val", count, batch_size=1)]
            side = min([self.crop // scale] + [min(p.low.shape[-2:]) for p in pairs])
            lows, highs = [], []
            for low, high in pairs:
                top, left = (low.shape[-2] - side) // 2, (low.shape[-1] - side) // 2
                lows.append(low[..., top : top + side, left : left + side])
                highs.append(high[..., top * scale : (top + side) * scale, left * scale : (left + side) * scale])
            self._batch = ResolutionPair(torch.cat(lows), torch.cat(highs))
        return self._batch

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        batch = ResolutionPair(*(x.to(pl_module.device) for x in self.fixed_batch(trainer, pl_module.scale)))
        columns = pl_module.translation_columns(batch)
        images = torch.stack([column.float() for column in columns], dim=1).flatten(0, 1)
        write_grid(trainer, images, key="super_resolution", nrow=len(columns), epoch=epoch)
