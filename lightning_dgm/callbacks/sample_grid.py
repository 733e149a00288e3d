"""A grid of samples from the same fixed noise after every N epochs and at the end of training."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from lightning_dgm.callbacks.images import EpochPictures, write_grid
from lightning_dgm.errors import ConfigError


class SampleGrid(EpochPictures):
    """Writes `<run folder>/samples/epoch_XXX.png` and logs it as `samples` (rank zero only).

    The noise is fixed by `seed`: every grid calls `sample(n, generator=torch.Generator().
    manual_seed(seed))`, so grids differ only because the model changed. The seed is saved in
    checkpoints, so a resumed run keeps drawing the same z. Conditional systems get one row per
    class.

    Args:
        num_samples: images per grid.
        every_n_epochs: write a grid after every N-th training epoch (and after the last one).
        seed: seed of the fixed noise.
    """

    def __init__(self, num_samples: int = 64, every_n_epochs: int = 1, seed: int = 0) -> None:
        super().__init__(every_n_epochs)
        if num_samples < 1:
            raise ConfigError(f"num_samples must be at least 1, got {num_samples}")
        self.num_samples = num_samples
        self.seed = seed

    def _labels_and_nrow(self, pl_module: L.LightningModule) -> tuple[torch.Tensor | None, int]:
        num_classes = getattr(pl_module, "num_classes", None)
        if getattr(pl_module, "conditional", False) and num_classes:
            per_class = max(1, self.num_samples // num_classes)
            return torch.arange(num_classes, device=pl_module.device).repeat_interleave(per_class), per_class
        return None, math.ceil(math.sqrt(self.num_samples))

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        labels, nrow = self._labels_and_nrow(pl_module)
        n = self.num_samples if labels is None else len(labels)
        images = pl_module.sample(n, labels=labels, generator=torch.Generator().manual_seed(self.seed))
        write_grid(trainer, images, key="samples", nrow=nrow, epoch=epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seed = state_dict["seed"]
