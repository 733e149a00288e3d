"""CIFAR-10 (Krizhevsky 2009) in torchvision's on-disk format: the pickled python batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import CIFAR10

from lightning_dgm.datamodules.base import one_line
from lightning_dgm.datamodules.downloaded import DownloadedImageDataModule
from lightning_dgm.errors import ConfigError, DataError

_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILES = ("test_batch",)


class CIFAR10DataModule(DownloadedImageDataModule):
    """32x32 colour images of 10 classes, 50,000 train (minus `val_size` for validation) and 10,000 test.

    Files live in `<data_dir>/cifar-10-batches-py/` (torchvision's layout): `data_batch_1` ..
    `data_batch_5` and `test_batch`, each a pickled dict with b"data" (N, 3072) uint8, channel-major
    (R plane, G plane, B plane), and b"labels" (N,). `prepare_data` downloads them when they are
    missing and `download` is true; offline and missing is one clear error. The batches are read
    here rather than by torchvision, whose loader rejects any file whose md5 is not the official
    one, so genuine-format files of any size load. Each split is read once into a uint8 tensor.
    """

    dataset_name = "CIFAR-10"
    file_description = "the pickled python batches"
    image_shape = (3, 32, 32)
    num_classes = 10

    @property
    def files_dir(self) -> Path:
        return Path(self.data_dir).expanduser().resolve() / "cifar-10-batches-py"

    def expected_files(self) -> tuple[str, ...]:
        return _TRAIN_FILES + _TEST_FILES

    def fetch(self, missing: list[str]) -> None:
        # One archive holds both splits; the test split is the cheaper one to load afterwards.
        CIFAR10(self.data_dir, train=False, download=True)

    def _read_batch(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        path = self.files_dir / name
        try:
            with open(path, "rb") as file:
                entry = pickle.load(file, encoding="bytes")
            # The official batches are Python 2 pickles, whose keys load as bytes; one re-pickled
            # by Python 3 has str keys. Both are the same format.
            entry = {key.decode() if isinstance(key, bytes) else key: value for key, value in entry.items()}
            data = np.asarray(entry["data"])
            labels = np.asarray(entry["labels"], dtype=np.int64)
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise ConfigError(f"'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
            if labels.shape != (len(data),):
                raise ConfigError(f"{len(data)} images but 'labels' has shape {labels.shape}")
            if len(labels) and not (labels.min() >= 0 and labels.max() < 10):
                raise ConfigError(f"labels outside [0, 10): {labels.min()}..{labels.max()}")
        except Exception as error:
            raise DataError(
                f"could not read CIFAR-10 batch {path} ({one_line(error)}); delete the damaged file and download again"
            ) from error
        return data, labels

    def _load(self, names: tuple[str, ...]) -> tuple[Tensor, Tensor]:
        self.check_files()
        batches = [self._read_batch(name) for name in names]
        images = np.concatenate([data for data, _ in batches]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([labels for _, labels in batches])
        return torch.from_numpy(images), torch.from_numpy(labels)

    def load_train(self) -> tuple[Tensor, Tensor]:
        return self._load(_TRAIN_FILES)

    def load_test(self) -> tuple[Tensor, Tensor]:
        return self._load(_TEST_FILES)
