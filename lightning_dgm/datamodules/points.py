"""2-D point data for GAN-dynamics studies: the standard Gaussian mixtures (VEEGAN, PacGAN: a ring
or a grid of modes) and a user's CSV of points.

Points travel in `ImageBatch.image` as float32 (N, 2), so every system that reads `batch.image`
trains on them unchanged; `label` is the index of the mixture component a point came from
(0 for CSV data). `image_shape` is (2,), linked into networks like any image shape.

With `pack=m` (PacGAN) an item of the data set is m independent points, and a batch of
`batch_size` items arrives as (batch_size * m, 2) points, consecutive m to a pack: the epoch keeps
its number of batches whatever m is, as in PacGAN's code, whose data set holds 100,000 packed
examples and whose batch of 100 is 100 packs (github.com/fjxmlzn/PacGAN,
synthetic_data_experiments/PacGAN/pacgan/datasets.py, GaussianPackingMixture).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from jsonargparse import lazy_instance
from torch import Tensor
from torch.utils.data import Dataset

from lightning_dgm import seeding
from lightning_dgm.datamodules.base import ImageDataModule
from lightning_dgm.errors import ConfigError, MissingFileError
from lightning_dgm.types import ImageBatch


class PointDataset(Dataset):
    """Points (N * pack, D) float32 and labels (N * pack,) as N items of `pack` consecutive points,
    fetched a batch at a time like `TensorImageDataset`: items i, j, ... come back as the points
    (pack * len(indices), D) of pack i, then pack j, ... (with pack 1, an item is one point (D,))."""

    def __init__(self, points: Tensor, labels: Tensor, pack: int = 1) -> None:
        if pack < 1 or len(points) % pack or len(points) != len(labels):
            raise ConfigError(f"need pack >= 1 dividing {len(points)} points with as many labels, got {pack}")
        self.points, self.labels, self.pack = points.float(), labels.long(), pack

    def __len__(self) -> int:
        return len(self.points) // self.pack

    def _rows(self, index: Tensor) -> Tensor:
        """Item indices (n,) -> point indices (n * pack,), pack by pack."""
        return (index[:, None] * self.pack + torch.arange(self.pack, device=index.device)).reshape(-1)

    def __getitem__(self, index: int) -> ImageBatch:
        if self.pack == 1:
            return ImageBatch(self.points[index], self.labels[index])
        rows = self._rows(torch.tensor([index]))
        return ImageBatch(self.points[rows], self.labels[rows])

    def __getitems__(self, indices: list[int] | Tensor) -> ImageBatch:
        rows = self._rows(torch.as_tensor(indices, dtype=torch.long))
        return ImageBatch(self.points[rows], self.labels[rows])

    def to(self, device: torch.device | str) -> PointDataset:
        """These points and labels on `device`."""
        return PointDataset(self.points.to(device), self.labels.to(device), self.pack)


class PointDataModule(ImageDataModule):
    """Base of 2-D data: subclasses draw the train / val / test points.

    Args:
        num_train, num_val, num_test: items per split, each drawn once from a generator seeded by
            (seed, TOY_DATA, split name), so every split is reproducible and independent of the others.
        batch_size: items per batch.
        pack: points per item (m of PacGAN; 1: an item is a point). A batch holds batch_size * pack
            points, so a packed discriminator (`PointDiscriminator(pack=m)`) gets batch_size decisions.
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
        pack: int = 1,
        on_device: bool = False,
    ) -> None:
        super().__init__(
            batch_size=batch_size, val_size=num_val, num_workers=num_workers, seed=seed, on_device=on_device
        )
        if pack < 1:
            raise ConfigError(f"pack must be at least 1, got {pack}")
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.pack = pack
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
                setattr(self, f"{split}_set", PointDataset(*self.draw(split, n * self.pack, generator), self.pack))


class MixtureLayout:
    """Where the components of a 2-D Gaussian mixture sit, chosen by class (`Ring`, `Grid`)."""

    def centres(self) -> Tensor:
        """(K, 2) float32 centres of the K components."""
        raise NotImplementedError


class Ring(MixtureLayout):
    """`num_modes` centres evenly spaced on a circle of `radius`, the first at (radius, 0) (8 and 2.0
    by default, as in VEEGAN's ring)."""

    def __init__(self, num_modes: int = 8, radius: float = 2.0) -> None:
        if num_modes < 1 or radius <= 0:
            raise ConfigError(f"need num_modes >= 1 and radius > 0, got {num_modes} and {radius}")
        self.num_modes, self.radius = num_modes, radius

    def __repr__(self) -> str:  # its settings, not an address: hparams-keyed caches (RealFeatureCache) read it
        return f"Ring(num_modes={self.num_modes!r}, radius={self.radius!r})"

    def centres(self) -> Tensor:
        angle = torch.arange(self.num_modes, dtype=torch.float64) * (2 * math.pi / self.num_modes)
        return (self.radius * torch.stack([angle.cos(), angle.sin()], dim=1)).float()


class Grid(MixtureLayout):
    """A `size` x `size` grid of centres `spacing` apart, centred on the origin (5 x 5, spacing 2, so
    centres at -4, -2, 0, 2, 4 by default, as in VEEGAN's grid)."""

    def __init__(self, size: int = 5, spacing: float = 2.0) -> None:
        if size < 1 or spacing <= 0:
            raise ConfigError(f"need size >= 1 and spacing > 0, got {size} and {spacing}")
        self.size, self.spacing = size, spacing

    def __repr__(self) -> str:
        return f"Grid(size={self.size!r}, spacing={self.spacing!r})"

    def centres(self) -> Tensor:
        ticks = (torch.arange(self.size, dtype=torch.float64) - (self.size - 1) / 2) * self.spacing
        return torch.cartesian_prod(ticks, ticks).float()


class GaussianMixtureDataModule(PointDataModule):
    """Equal-weight mixture of isotropic Gaussians, each with standard deviation `std` (0.02 by
    default, VEEGAN's), around the centres of `layout` (`Ring` or `Grid`, by class).

        data:
          class_path: lightning_dgm.datamodules.GaussianMixtureDataModule
          init_args:
            layout:
              class_path: lightning_dgm.datamodules.Grid
              init_args: {size: 5, spacing: 2.0}

    PacGAN's official mixtures are options, written out in configs/pacgan_{ring,grid}.yaml:
    its ring is `Ring(num_modes=8, radius=1.0)` with std 0.01, its grid `Grid(size=5, spacing=2.0)`
    with std 0.05 (github.com/fjxmlzn/PacGAN, synthetic_data_experiments/2DRing_GAN&PacGAN/config.py
    and 2DGrid_GAN&PacGAN/config.py); VEEGAN's, the defaults, have std 0.02 and a ring of radius 2.

    Args:
        layout: where the components sit (default: VEEGAN's ring of 8 with radius 2).
        std: standard deviation of every component, per coordinate.
        num_train, num_val, num_test, batch_size, pack: as in `PointDataModule`.
    """

    def __init__(
        self,
        layout: MixtureLayout = lazy_instance(Ring),
        std: float = 0.02,
        num_train: int = 100_000,
        num_val: int = 2_500,
        num_test: int = 2_500,
        batch_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        pack: int = 1,
        on_device: bool = False,
    ) -> None:
        super().__init__(num_train, num_val, num_test, batch_size, num_workers, seed, pack, on_device)
        if std <= 0:
            raise ConfigError(f"std must be positive, got {std}")
        centres = layout.centres()  # checked now, so a bad layout fails here rather than in setup
        if centres.dim() != 2 or centres.shape[1] != 2 or len(centres) < 1:
            raise ConfigError(f"{layout!r}.centres() must be (K, 2) with K >= 1, got {tuple(centres.shape)}")
        self.layout, self.std = layout, std

    @property
    def modes(self) -> Tensor:
        return self.layout.centres()

    def draw(self, split: str, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        modes = self.modes
        labels = torch.randint(len(modes), (n,), generator=generator)
        return modes[labels] + self.std * torch.randn(n, 2, generator=generator), labels


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
        on_device: bool = False,
    ) -> None:
        super().__init__(
            num_train=0,
            num_val=num_val,
            num_test=num_test,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            on_device=on_device,
        )
        self.path = Path(path)
        self._split: dict[str, Tensor] | None = None

    def _read(self) -> Tensor:
        if not self.path.is_file():
            raise MissingFileError(f"CSVPointDataModule: no file at {self.path}; set data.path to a CSV of x,y rows")
        try:
            values = np.loadtxt(self.path, delimiter=",", ndmin=2, dtype=np.float64)
        except ValueError:  # a header row, or text in the data: retry past the first line only
            try:
                values = np.loadtxt(self.path, delimiter=",", ndmin=2, dtype=np.float64, skiprows=1)
            except ValueError as error:
                raise ConfigError(f"CSVPointDataModule: {self.path} is not numeric x,y rows ({error})") from None
        if values.shape[1:] != (2,) or not np.isfinite(values).all():
            raise ConfigError(
                f"CSVPointDataModule: {self.path} must hold two finite numbers per row (x,y); "
                f"got {values.shape[1] if values.size else 0} column(s) or non-finite values"
            )
        held_out = self.sizes["val"] + self.sizes["test"]
        if len(values) <= held_out:
            raise ConfigError(
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
    "GaussianMixtureDataModule",
    "Grid",
    "MixtureLayout",
    "PointDataModule",
    "PointDataset",
    "Ring",
]
