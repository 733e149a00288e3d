"""What picture and metric callbacks share: when they are due, eval mode around the model, and
writing a picture (a grid of images or a matplotlib figure) as a PNG in the run folder and to
every logger that takes images. Images arrive in the framework's range, [-1, 1].

Every picture has one name and one caption, whichever callback draws it: `<run folder>/<key>/epoch_XXX.png`
and the caption `epoch N` after training epoch N (counted from 0), `<run folder>/<key>/test.png` and
`test` at test end. `EpochPictures` draws after every N-th training epoch and after the last one.
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

from lightning_dgm.errors import ConfigError


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


class EpochPictures(L.Callback):
    """Mechanics of a picture callback: `draw(trainer, pl_module, epoch)` runs on rank zero, in eval
    mode under no_grad, after every `every_n_epochs`-th training epoch and once more when training
    ends (max_epochs, max_steps, max_time, early stopping) on weights no picture shows yet, so every
    run ends with pictures of its final model, whatever `every_n_epochs` is."""

    def __init__(self, every_n_epochs: int) -> None:
        if every_n_epochs < 1:
            raise ConfigError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self._undrawn_batches, self._epoch = 0, 0

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        raise NotImplementedError

    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        self._undrawn_batches = 0
        if trainer.is_global_zero:
            with evaluating(pl_module), torch.no_grad():
                self.draw(trainer, pl_module, epoch)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._undrawn_batches = 0  # a resumed run that has nothing left to train draws nothing

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        self._undrawn_batches, self._epoch = self._undrawn_batches + 1, trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if epoch_due(trainer, self.every_n_epochs):
            self._draw(trainer, pl_module, trainer.current_epoch)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._undrawn_batches:  # the last epoch was not due, or training stopped inside an epoch
            self._draw(trainer, pl_module, self._epoch)


def picture_file(trainer: L.Trainer, key: str, epoch: int | None) -> tuple[Path, str]:
    """The PNG path and caption of picture `key` after training epoch `epoch` (None: at test end)."""
    name, caption = ("test", "test") if epoch is None else (f"epoch_{epoch:03d}", f"epoch {epoch}")
    return Path(trainer.default_root_dir) / key / f"{name}.png", caption


def new_figure() -> Figure:
    """A matplotlib figure drawn by Agg: no display needed, and the pyplot backend is ignored."""
    figure = Figure(figsize=(6, 5.4), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> one (3, H', W') grid in [0, 1]."""
    return make_grid(images.detach().float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1), padding=2)


def write_grid(trainer: L.Trainer, images: Tensor, *, key: str, nrow: int, epoch: int | None) -> None:
    """Save the grid as `picture_file(trainer, key, epoch)` and send it to the trainer's loggers
    (call on rank zero)."""
    grid = image_grid(images, nrow)
    path, caption = picture_file(trainer, key, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    log_image(trainer, grid, key=key, caption=caption, epoch=epoch)


def write_figure(trainer: L.Trainer, figure: Figure, *, key: str, epoch: int | None) -> None:
    """Save a figure as `picture_file(trainer, key, epoch)` and send it to the trainer's loggers
    (call on rank zero)."""
    path, caption = picture_file(trainer, key, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    figure.canvas.draw()
    pixels = torch.from_numpy(np.asarray(figure.canvas.buffer_rgba())[..., :3].copy())
    log_image(trainer, pixels.permute(2, 0, 1).float() / 255, key=key, caption=caption, epoch=epoch)


def log_image(trainer: L.Trainer, image: Tensor, *, key: str, caption: str, epoch: int | None = None) -> None:
    """Send one (3, H, W) picture in [0, 1] to every logger of the trainer that takes images;
    TensorBoard's step is `epoch` (default: the trainer's current epoch)."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            step = trainer.current_epoch if epoch is None else epoch
            logger.experiment.add_image(key, image, global_step=step)
        elif hasattr(logger, "log_image"):  # W&B, Neptune, Comet
            # No step: loggers count batches, and global_step counts optimizer steps.
            pixels = image.mul(255).round().byte().permute(1, 2, 0).numpy()
            logger.log_image(key=key, images=[pixels], caption=[caption])
