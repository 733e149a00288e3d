"""Writing image grids: a PNG in the run folder and the same picture to every logger that
takes images. Images arrive in the framework's range, [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torchvision.utils import make_grid, save_image


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> one (3, H', W') grid in [0, 1]."""
    return make_grid(images.detach().float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1), padding=2)


def write_grid(trainer: L.Trainer, images: Tensor, *, key: str, path: Path, nrow: int, caption: str) -> None:
    """Save the grid as PNG at `path` and send it to the trainer's loggers (call on rank zero)."""
    grid = image_grid(images, nrow)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    log_image(trainer, grid, key=key, caption=caption)


def log_image(trainer: L.Trainer, image: Tensor, *, key: str, caption: str) -> None:
    """Send one (3, H, W) picture in [0, 1] to every logger of the trainer that takes images."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=trainer.current_epoch)
        elif hasattr(logger, "log_image"):  # W&B, Neptune, Comet
            # No step: loggers count batches, and global_step counts optimizer steps.
            pixels = image.mul(255).round().byte().permute(1, 2, 0).numpy()
            logger.log_image(key=key, images=[pixels], caption=[caption])
