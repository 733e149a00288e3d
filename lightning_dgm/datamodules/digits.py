"""scikit-learn's bundled 8x8 handwritten digits: real data that needs no download."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor

from lightning_dgm.datamodules.base import ImageDataModule
from lightning_dgm.errors import ConfigError


class DigitsDataModule(ImageDataModule):
    """The UCI optical digits (1,797 images, 8x8, 17 grey levels) that ship inside scikit-learn.

    There is no `data_dir`: the data is part of the installed scikit-learn package. Images are
    upscaled bilinearly to `image_size` (8 keeps them as they are). There is no official test
    split: `test_size` images are held out by a fixed seeded permutation, `val_size` more are
    drawn from the rest.
    """

    split_settings = {"val": "data.val_size", "test": "data.test_size"}

    def __init__(
        self,
        image_size: int = 8,
        batch_size: int = 32,
        val_size: int = 150,
        test_size: int = 150,
        num_workers: int = 0,
        seed: int = 0,
        on_device: bool = False,
    ) -> None:
        super().__init__(
            batch_size=batch_size, val_size=val_size, num_workers=num_workers, seed=seed, on_device=on_device
        )
        if image_size < 8:
            raise ConfigError(f"image_size must be at least 8 (the digits are 8x8), got {image_size}")
        self.image_size = image_size
        self.test_size = test_size

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int:
        return 10

    def _all(self) -> tuple[Tensor, Tensor]:
        digits = load_digits()
        images = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0  # (1797, 1, 8, 8) in [0, 1]
        if self.image_size != 8:
            images = F.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False)
        images = images.clamp(0, 1).mul(255).round().to(torch.uint8)
        # Held-out test images never depend on `seed`, so test numbers compare across runs.
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(2024))
        return images[order], torch.from_numpy(digits.target).long()[order]

    def load_train(self) -> tuple[Tensor, Tensor]:
        images, labels = self._all()
        return images[self.test_size :], labels[self.test_size :]

    def load_test(self) -> tuple[Tensor, Tensor]:
        images, labels = self._all()
        return images[: self.test_size], labels[: self.test_size]
