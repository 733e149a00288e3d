"""What picture and metric callbacks share: when they are due, eval mode around the model, and
writing a picture (a grid of images or a matplotlib figure) as a PNG in the run folder and to
every logger that takes images. Images arrive in the framework's range, [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (BatchNorm running statistics, no dropout) inside, the module's previous mode after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def epoch_due(trainer: L.Trainer, every_n_epochs: int) -> bool:
    """Whether the epoch that is ending is an every_n_epochs-th one (epochs count from 1 here)."""
    return (trainer.current_epoch + 1) % every_n_epochs == 0


def new_figure() -> Figure:
    """A matplotlib figure drawn by Agg: no display needed, and the pyplot backend is ignored."""
    figure = Figure(figsize=(6, 5.4), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> one (3, H', W') grid in [0, 1]."""
    return make_grid(images.detach().float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1), padding=2)


def write_grid(trainer: L.Trainer, images: Tensor, *, key: str, path: Path, nrow: int, caption: str) -> None:
    """Save the grid as PNG at `path` and send it to the trainer's loggers (call on rank zero)."""
    grid = image_grid(images, nrow)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    log_image(trainer, grid, key=key, caption=caption)


def write_figure(trainer: L.Trainer, figure: Figure, *, key: str, path: Path, caption: str) -> None:
    """Save a figure as PNG at `path` and send it to the trainer's loggers (call on rank zero)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    figure.canvas.draw()
    pixels = torch.from_numpy(np.asarray(figure.canvas.buffer_rgba())[..., :3].copy())
    log_image(trainer, pixels.permute(2, 0, 1).float() / 255, key=key, caption=caption)


def log_image(trainer: L.Trainer, image: Tensor, *, key: str, caption: str) -> None:
    """Send one (3, H, W) picture in [0, 1] to every logger of the trainer that takes images."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=trainer.current_epoch)
        elif hasattr(logger, "log_image"):  # W&B, Neptune, Comet
            # No step: loggers count batches, and global_step counts optimizer steps.
            pixels = image.mul(255).round().byte().permute(1, 2, 0).numpy()
            logger.log_image(key=key, images=[pixels], caption=[caption])
