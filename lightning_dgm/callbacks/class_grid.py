"""A per-class grid of a conditional system's samples: one row per class, one column per z, the same
z down each column, so a column shows what the class alone changes (BigGAN's class-conditional grids)."""

from __future__ import annotations

import lightning as L
import torch

from lightning_dgm.callbacks.images import EpochPictures, evaluating, write_grid
from lightning_dgm.errors import ConfigError


class ClassGrid(EpochPictures):
    """Writes `<run folder>/class_grid/epoch_XXX.png` and logs it as `class_grid` (rank zero only),
    after every N-th training epoch and after the last one.

    Row c holds `sample(columns, labels=[c] * columns, generator=Generator().manual_seed(seed))`:
    every row draws from a generator seeded alike, so column j has the same z in every row (for a
    system that draws z first, as the GANs do). The samples are made in eval mode, so BatchNorm uses
    its running statistics and the rows do not influence each other.

    Args:
        columns: samples per class (distinct z).
        every_n_epochs: write a grid after every N-th training epoch (and after the last one).
        seed: seed of the fixed noise.
        truncation: passed to `sample()` when set (systems whose `sample()` takes it: `BigGAN`).
    """

    def __init__(self, columns: int = 10, every_n_epochs: int = 1, seed: int = 0, truncation: float | None = None):
        super().__init__(every_n_epochs)
        if columns < 1:
            raise ConfigError(f"ClassGrid needs columns of at least 1, got {columns}")
        self.columns, self.seed, self.truncation = columns, seed, truncation

    def grid(self, pl_module: L.LightningModule) -> torch.Tensor:
        """(num_classes * columns, C, H, W) in [-1, 1], row by row."""
        num_classes = getattr(pl_module, "num_classes", None)
        if not getattr(pl_module, "conditional", False) or not num_classes:
            raise ConfigError(f"ClassGrid needs a conditional system with num_classes, got {type(pl_module).__name__}")
        extra = {} if self.truncation is None else {"truncation": self.truncation}
        rows = []
        with evaluating(pl_module), torch.no_grad():
            for c in range(num_classes):
                labels = torch.full((self.columns,), c, dtype=torch.long, device=pl_module.device)
                generator = torch.Generator().manual_seed(self.seed)
                rows.append(pl_module.sample(self.columns, labels=labels, generator=generator, **extra))
        return torch.cat(rows)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        write_grid(trainer, self.grid(pl_module), key="class_grid", nrow=self.columns, epoch=epoch)


class ClassInterpolation(EpochPictures):
    """Writes `<run folder>/class_interpolation/epoch_XXX.png` and logs it as `class_interpolation`
    (rank zero only), after every N-th training epoch and after the last one: for each pair of
    classes, `rows` strips of `steps` images, each strip one fixed z with G's shared class embedding
    moving from the first class to the second (`interpolate_classes` of a system that has it:
    `BigGAN`). The same z (seeded by `seed`) every time, in eval mode.

    Args:
        pairs: (first, second) class pairs, one block of rows each.
        steps: images per strip, both classes included.
        rows: strips (distinct z) per pair.
        every_n_epochs: write after every N-th training epoch (and after the last one).
        seed: seed of the fixed noise.
    """

    def __init__(
        self,
        pairs: list[tuple[int, int]] = ((0, 1),),
        steps: int = 8,
        rows: int = 2,
        every_n_epochs: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs)
        if steps < 2 or rows < 1 or not pairs:
            raise ConfigError(
                f"ClassInterpolation needs steps >= 2, rows >= 1 and a pair, got {steps}, {rows}, {pairs}"
            )
        self.pairs, self.steps, self.rows, self.seed = [tuple(p) for p in pairs], steps, rows, seed

    def strips(self, pl_module: L.LightningModule) -> torch.Tensor:
        """(len(pairs) * rows * steps, C, H, W) in [-1, 1], strip by strip."""
        if not callable(getattr(pl_module, "interpolate_classes", None)):
            raise ConfigError(
                f"ClassInterpolation needs a system with interpolate_classes (BigGAN), got {type(pl_module).__name__}"
            )
        with evaluating(pl_module), torch.no_grad():
            return torch.cat(
                [
                    pl_module.interpolate_classes(
                        first, second, self.steps, self.rows, generator=torch.Generator().manual_seed(self.seed)
                    )
                    for first, second in self.pairs
                ]
            )

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        write_grid(trainer, self.strips(pl_module), key="class_interpolation", nrow=self.steps, epoch=epoch)
