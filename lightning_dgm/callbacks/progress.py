"""The progress bar every CLI run gets unless its config chooses one: Lightning's TQDM bar, redrawn
by the clock instead of after every batch.

Lightning's `TQDMProgressBar` redraws after every `refresh_rate`-th batch (1 by default), bypassing
tqdm's own rate limit, and formats the logged metrics each time. On a small model that costs more
than the rest of Lightning's loop: 400-650 µs a batch on bench/overhead.py's tiny GAN (about 2 ms a batch
without a bar), while a terminal shows no more than a few redraws a second anyway.
"""

from __future__ import annotations

import time

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from lightning_dgm.errors import ConfigError


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDM progress bar, redrawn at most every `refresh_seconds` and at each loop's last
    batch (what it shows when drawn is unchanged). Each batch in between costs one clock read.

    Choose Lightning's own bar, or any other, in `trainer.callbacks` and it is used instead;
    `trainer.enable_progress_bar: false` turns bars off.

    Args:
        refresh_seconds: the least time between two redraws of a bar.
        refresh_rate, process_position, leave: as Lightning's TQDMProgressBar (a bar is also redrawn
            no more often than every `refresh_rate` batches).
    """

    def __init__(
        self, refresh_seconds: float = 0.5, refresh_rate: int = 1, process_position: int = 0, leave: bool = False
    ) -> None:
        if not refresh_seconds >= 0:
            raise ConfigError(f"refresh_seconds must be 0 or more, got {refresh_seconds}")
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        self.refresh_seconds = refresh_seconds
        self._drawn: dict[str, float] = {}  # loop -> clock of its bar's last redraw

    def _due(self, loop: str, bar, batch_idx: int) -> bool:
        if bar is None:
            return False
        now = time.monotonic()
        if batch_idx + 1 == bar.total or now - self._drawn.get(loop, -float("inf")) >= self.refresh_seconds:
            self._drawn[loop] = now
            return True
        return False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int):
        if self._due("train", self.train_progress_bar, batch_idx):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        if self._due("validation", self.val_progress_bar, batch_idx):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        if self._due("test", self.test_progress_bar, batch_idx):
            super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        if self._due("predict", self.predict_progress_bar, batch_idx):
            super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
