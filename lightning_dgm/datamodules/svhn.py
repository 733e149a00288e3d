"""SVHN (Netzer et al. 2011), cropped digits, in torchvision's on-disk format: MATLAB .mat files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torch
from torch import Tensor
from torchvision.datasets import SVHN
from torchvision.datasets.utils import download_url

from lightning_dgm.datamodules.base import one_line
from lightning_dgm.datamodules.downloaded import DownloadedImageDataModule
from lightning_dgm.errors import ConfigError, DataError

_FILES = {split: SVHN.split_list[split][1] for split in ("train", "test", "extra")}  # train_32x32.mat, ...


class SVHNDataModule(DownloadedImageDataModule):
    """32x32 colour house-number digits: 73,257 train (minus `val_size` for validation), 26,032 test,
    and with `use_extra` the 531,131 "extra" images added to the train split.

    Files live directly in `<data_dir>` (torchvision's layout): `train_32x32.mat`, `test_32x32.mat`,
    `extra_32x32.mat`, each with X (32, 32, 3, N) uint8 and y (N, 1), where label 10 means the
    digit 0; labels are served as 0-9. `prepare_data` downloads missing files when `download` is
    true; offline and missing is one clear error. The files are read here rather than by
    torchvision, whose loader rejects any file whose md5 is not the official one, so genuine-format
    files of any size load. Each split is read once into a uint8 tensor.
    """

    dataset_name = "SVHN"
    file_description = "the .mat files"
    image_shape = (3, 32, 32)
    num_classes = 10

    def __init__(
        self,
        data_dir: str = "./data",
        download: bool = True,
        batch_size: int = 64,
        val_size: int = 5000,
        use_extra: bool = False,
        num_workers: int = 0,
        seed: int = 0,
        on_device: bool = False,
    ) -> None:
        super().__init__(data_dir, download, batch_size, val_size, num_workers, seed, on_device)
        self.use_extra = use_extra

    @property
    def files_dir(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def _train_splits(self) -> tuple[str, ...]:
        return ("train", "extra") if self.use_extra else ("train",)

    def expected_files(self) -> tuple[str, ...]:
        return tuple(_FILES[split] for split in (*self._train_splits, "test"))

    def fetch(self, missing: list[str]) -> None:
        # torchvision's own URLs and checksums, without `SVHN(...)` decoding each file after
        # download (extra_32x32.mat is 1.3 GB); setup() reads them once.
        for url, filename, md5 in SVHN.split_list.values():
            if filename in missing:
                download_url(url, str(self.files_dir), filename=filename, md5=md5)

    def _read_split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        path = self.files_dir / _FILES[split]
        try:
            mat = scipy.io.loadmat(path, variable_names=("X", "y"))
            data, labels = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
            if data.dtype != np.uint8 or data.ndim != 4 or data.shape[:3] != (32, 32, 3):
                raise ConfigError(f"X is {data.dtype} {data.shape}, expected uint8 (32, 32, 3, N)")
            if labels.shape != (data.shape[3],):
                raise ConfigError(f"{data.shape[3]} images but y has {labels.size} labels")
            if len(labels) and not (labels.min() >= 1 and labels.max() <= 10):
                raise ConfigError(f"labels outside [1, 10]: {labels.min()}..{labels.max()}")
        except Exception as error:
            raise DataError(
                f"could not read SVHN file {path} ({one_line(error)}); delete the damaged file and download again"
            ) from error
        labels[labels == 10] = 0  # SVHN writes the digit 0 as class 10
        return data.transpose(3, 2, 0, 1), labels  # (H, W, C, N) -> (N, C, H, W), a view: _load copies once

    def _load(self, splits: tuple[str, ...]) -> tuple[Tensor, Tensor]:
        self.check_files()
        parts = [self._read_split(split) for split in splits]
        images = np.concatenate([data for data, _ in parts])  # contiguous (N, C, H, W)
        labels = np.concatenate([labels for _, labels in parts])
        return torch.from_numpy(images), torch.from_numpy(labels)

    def load_train(self) -> tuple[Tensor, Tensor]:
        return self._load(self._train_splits)

    def load_test(self) -> tuple[Tensor, Tensor]:
        return self._load(("test",))
