"""Super-resolution at work: LR | bicubic | SR | HR crops of the same validation images every N epochs."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from lightning_dgm.callbacks.images import epoch_due, evaluating, write_grid
from lightning_dgm.errors import ConfigError
from lightning_dgm.types import ResolutionPair


class SuperResolutionGrid(L.Callback):
    """Writes `<run folder>/super_resolution/epoch_XXX.png` and logs it as `super_resolution` (rank zero).

    One row per image of the first `num_images` validation images (whole images, read through the
    datamodule's `evaluation_batches`): the centre `crop` x `crop` HR pixels (less for smaller images)
    and the matching LR pixels; columns are the system's `translation_columns`: LR (nearest-upscaled)
    | bicubic | SR | HR. G sees the LR crop alone, so the SR column is what G makes of those pixels.

    Args:
        num_images: rows of the grid.
        crop: side of the HR crops shown, in pixels (rounded down to a multiple of the scale).
        every_n_epochs: write a grid after every N-th training epoch.
    """

    def __init__(self, num_images: int = 4, crop: int = 128, every_n_epochs: int = 1) -> None:
        if min(num_images, crop, every_n_epochs) < 1:
            raise ConfigError("num_images, crop and every_n_epochs must be at least 1")
        self.num_images, self.crop, self.every_n_epochs = num_images, crop, every_n_epochs
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

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not epoch_due(trainer, self.every_n_epochs) or not trainer.is_global_zero:
            return
        batch = ResolutionPair(*(x.to(pl_module.device) for x in self.fixed_batch(trainer, pl_module.scale)))
        with evaluating(pl_module):
            columns = pl_module.translation_columns(batch)
        images = torch.stack([column.float() for column in columns], dim=1).flatten(0, 1)
        path = Path(trainer.default_root_dir) / "super_resolution" / f"epoch_{epoch:03d}.png"
        write_grid(trainer, images, key="super_resolution", path=path, nrow=len(columns), caption=f"epoch {epoch}")
