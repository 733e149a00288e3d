"""2-D point data for GAN-dynamics studies: the standard Gaussian mixtures (VEEGAN, PacGAN) and
a user's CSV of points.

Points travel in `ImageBatch.image` as float32 (N, 2), so every system that reads `batch.image`
trains on them unchanged; `label` is the index of the mixture component a point came from
(0 for CSV data). `image_shape` is (2,), linked into networks like any image shape.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_dgm import seeding
from lightning_dgm.datamodules.base import ImageDataModule
from lightning_dgm.types import ImageBatch


class PointDataset(Dataset):
    """Points (N, D) float32 and labels (N,), fetched a batch at a time like `TensorImageDataset`."""

    def __init__(self, points: Tensor, labels: Tensor) -> None:
        self.points, self.labels = points.float(), labels.long()

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> ImageBatch:
        return ImageBatch(self.points[index], self.labels[index])

    def __getitems__(self, indices: list[int]) -> ImageBatch:
        index = torch.as_tensor(indices)
        return ImageBatch(self.points[index], self.labels[index])


class PointDataModule(ImageDataModule):
    """Base of 2-D data: subclasses draw the train / val / test points.

    Args:
        num_train, num_val, num_test: points per split, each drawn once from a generator seeded by
            (seed, TOY_DATA, split name), so every split is reproducible and independent of the others.
        batch_size: points per batch.
    """

    split_settings = {"train": "data.num_train", "val": "data.num_val", "test": "data.num_test"}

    def __init__(
        self,
        num_train: int = 100_000,
        num_val: int = 2_500,
        num_test: int = 2_500,
        batch_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, val_size=num_val, num_workers=num_workers, seed=seed)
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        #: standard deviation of every mixture component (per coordinate); None without modes
        self.std: float | None = None

    @property
    def image_shape(self) -> tuple[int]:
        return (2,)

    @property
    def modes(self) -> Tensor | None:
        """(K, 2) centres of the mixture components, or None when the data has no known modes."""
        return None

    def draw(self, split: str, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """`n` points (n, 2) and their component labels (n,) for `split`."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        for split, n in self.sizes.items():
            if getattr(self, f"{split}_set") is None:
                generator = seeding.generator(self.seed, seeding.TOY_DATA, split)
                setattr(self, f"{split}_set", PointDataset(*self.draw(split, n, generator)))


class GaussianMixtureDataModule(PointDataModule):
    """Equal-weight mixture of isotropic Gaussians around `modes`, each with standard deviation `std`."""

    def _set_std(self, std: float) -> None:
        if std <= 0:
            raise ValueError(f"std must be positive, got {std}")
        self.std = std

    def draw(self, split: str, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        modes = self.modes
        labels = torch.randint(len(modes), (n,), generator=generator)
        return modes[labels] + self.std * torch.randn(n, 2, generator=generator), labels


class GaussianRingDataModule(GaussianMixtureDataModule):
    """`num_modes` Gaussians evenly spaced on a circle of `radius` (8, 2.0 and std 0.02 by default,
    as in VEEGAN's ring)."""

    def __init__(
        self,
        num_modes: int = 8,
        radius: float = 2.0,
        std: float = 0.02,
        num_train: int = 100_000,
        num_val: int = 2_500,
        num_test: int = 2_500,
        batch_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(
            num_train=num_train,
            num_val=num_val,
            num_test=num_test,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
        )
        self._set_std(std)
        if num_modes < 1 or radius <= 0:
            raise ValueError(f"need num_modes >= 1 and radius > 0, got {num_modes} and {radius}")
        self.num_modes, self.radius = num_modes, radius

    @property
    def modes(self) -> Tensor:
        angle = torch.arange(self.num_modes, dtype=torch.float64) * (2 * math.pi / self.num_modes)
        return (self.radius * torch.stack([angle.cos(), angle.sin()], dim=1)).float()


class GaussianGridDataModule(GaussianMixtureDataModule):
    """A `grid_size` x `grid_size` grid of Gaussians `spacing` apart, centred on the origin (5 x 5,
    spacing 2, so centres at -4, -2, 0, 2, 4, and std 0.02 by default, as in VEEGAN's grid)."""

    def __init__(
        self,
        grid_size: int = 5,
        spacing: float = 2.0,
        std: float = 0.02,
        num_train: int = 100_000,
        num_val: int = 2_500,
        num_test: int = 2_500,
        batch_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(
            num_train=num_train,
            num_val=num_val,
            num_test=num_test,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
        )
        self._set_std(std)
        if grid_size < 1 or spacing <= 0:
            raise ValueError(f"need grid_size >= 1 and spacing > 0, got {grid_size} and {spacing}")
        self.grid_size, self.spacing = grid_size, spacing

    @property
    def modes(self) -> Tensor:
        ticks = (torch.arange(self.grid_size, dtype=torch.float64) - (self.grid_size - 1) / 2) * self.spacing
        return torch.cartesian_prod(ticks, ticks).float()


class CSVPointDataModule(PointDataModule):
    """Points from a CSV file with two numeric columns (x, y), one point per row; a header row is
    skipped. A seeded random `num_val` and `num_test` points are held out; the rest train.

    The density is whatever the file holds, so there are no known modes: mode coverage needs a
    mixture datamodule.
    """

    split_settings = {"val": "data.num_val", "test": "data.num_test"}

    def __init__(
        self,
        path: str,
        num_val: int = 500,
        num_test: int = 500,
        batch_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(
            num_train=0, num_val=num_val, num_test=num_test, batch_size=batch_size, num_workers=num_workers, seed=seed
        )
        self.path = Path(path)
        self._split: dict[str, Tensor] | None = None

    def _read(self) -> Tensor:
        if not self.path.is_file():
            raise FileNotFoundError(f"CSVPointDataModule: no file at {self.path}; set data.path to a CSV of x,y rows")
        try:
            values = np.loadtxt(self.path, delimiter=",", ndmin=2, dtype=np.float64)
        except ValueError:  # a header row, or text in the data: retry past the first line only
            try:
                values = np.loadtxt(self.path, delimiter=",", ndmin=2, dtype=np.float64, skiprows=1)
            except ValueError as error:
                raise ValueError(f"CSVPointDataModule: {self.path} is not numeric x,y rows ({error})") from None
        if values.shape[1:] != (2,) or not np.isfinite(values).all():
            raise ValueError(
                f"CSVPointDataModule: {self.path} must hold two finite numbers per row (x,y); "
                f"got {values.shape[1] if values.size else 0} column(s) or non-finite values"
            )
        held_out = self.sizes["val"] + self.sizes["test"]
        if len(values) <= held_out:
            raise ValueError(
                f"CSVPointDataModule: {self.path} has {len(values)} points, not more than the "
                f"{held_out} held out (num_val + num_test); add points or lower them"
            )
        return torch.from_numpy(values).float()

    def draw(self, split: str, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if self._split is None:
            points = self._read()
            order = torch.randperm(len(points), generator=torch.Generator().manual_seed(self.seed))
            val, test = self.sizes["val"], self.sizes["test"]
            self._split = {
                "val": points[order[:val]],
                "test": points[order[val : val + test]],
                "train": points[order[val + test :]],
            }
        points = self._split[split]
        return points, torch.zeros(len(points), dtype=torch.long)


__all__ = [
    "CSVPointDataModule",
    "GaussianGridDataModule",
    "GaussianMixtureDataModule",
    "GaussianRingDataModule",
    "PointDataModule",
    "PointDataset",
]
