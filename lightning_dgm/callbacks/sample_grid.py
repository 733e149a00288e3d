"""A grid of samples from the same fixed noise after every N epochs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lightning_dgm.callbacks.images import epoch_due, evaluating, write_grid
from lightning_dgm.errors import ConfigError


class SampleGrid(L.Callback):
    """Writes `<run folder>/samples/epoch_XXX.png` and logs it as `samples` (rank zero only).

    The noise is fixed by `seed`: every grid calls `sample(n, generator=torch.Generator().
    manual_seed(seed))`, so grids differ only because the model changed. The seed is saved in
    checkpoints, so a resumed run keeps drawing the same z. Conditional systems get one row per
    class.

    Args:
        num_samples: images per grid.
        every_n_epochs: write a grid after every N-th training epoch.
        seed: seed of the fixed noise.
    """

    def __init__(self, num_samples: int = 64, every_n_epochs: int = 1, seed: int = 0) -> None:
        if num_samples < 1 or every_n_epochs < 1:
            raise ConfigError("num_samples and every_n_epochs must be at least 1")
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.seed = seed

    def _labels_and_nrow(self, pl_module: L.LightningModule) -> tuple[torch.Tensor | None, int]:
        num_classes = getattr(pl_module, "num_classes", None)
        if getattr(pl_module, "conditional", False) and num_classes:
            per_class = max(1, self.num_samples // num_classes)
            return torch.arange(num_classes, device=pl_module.device).repeat_interleave(per_class), per_class
        return None, math.ceil(math.sqrt(self.num_samples))

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not epoch_due(trainer, self.every_n_epochs) or not trainer.is_global_zero:
            return
        labels, nrow = self._labels_and_nrow(pl_module)
        n = self.num_samples if labels is None else len(labels)
        with evaluating(pl_module):
            images = pl_module.sample(n, labels=labels, generator=torch.Generator().manual_seed(self.seed))
        path = Path(trainer.default_root_dir) / "samples" / f"epoch_{epoch:03d}.png"
        write_grid(trainer, images, key="samples", path=path, nrow=nrow, caption=f"epoch {epoch}")

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seed = state_dict["seed"]
