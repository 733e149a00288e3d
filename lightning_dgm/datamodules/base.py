"""What every image datamodule shares: batches with named fields, in-memory uint8 splits,
a seeded train/val split, and epoch-seeded shuffling that survives a resume.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lightning_dgm.types import ImageBatch, to_signed_unit


def one_line(error: BaseException) -> str:
    """An exception as one line, for error messages that quote it."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


class TensorImageDataset(Dataset):
    """A split held in memory as uint8 (N, C, H, W) plus labels (N,).

    `__getitems__` lets the DataLoader fetch a whole batch by indexing once, so there is no
    per-image decode or collate; conversion to [-1, 1] happens per batch.
    """

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected uint8 images of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> ImageBatch:
        return ImageBatch(to_signed_unit(self.images[index]), self.labels[index])

    def __getitems__(self, indices: list[int]) -> ImageBatch:
        index = torch.as_tensor(indices)
        return ImageBatch(to_signed_unit(self.images[index]), self.labels[index])


def keep_batch(batch: ImageBatch) -> ImageBatch:
    """collate_fn for datasets whose `__getitems__` already returns a batch."""
    return batch


def batch_loader(dataset: Dataset, batch_size: int, num_workers: int, **kwargs) -> DataLoader:
    """A DataLoader over a dataset whose `__getitems__` returns whole batches."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        collate_fn=keep_batch,
        **kwargs,
    )


def shuffled_train_loader(
    datamodule: L.LightningDataModule, dataset: Dataset, sampler_class: type[DistributedSampler] = DistributedSampler
) -> DataLoader:
    """The training loader of a datamodule with `batch_size`, `num_workers` and `seed`: this rank's
    shard of `dataset`, reshuffled per (seed, epoch), full batches only.

    A DistributedSampler even on one process: Lightning calls its set_epoch, which seeds the
    shuffle by (seed, epoch) instead of the global RNG, and leaves a user sampler in place.
    """
    trainer = datamodule.trainer
    world_size, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
    if len(dataset) < datamodule.batch_size * world_size:
        raise ValueError(
            f"{type(datamodule).__name__}: {len(dataset)} training items cannot fill one batch of "
            f"{datamodule.batch_size} on each of {world_size} process(es); lower data.batch_size"
        )
    sampler = sampler_class(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=datamodule.seed)
    return batch_loader(dataset, datamodule.batch_size, datamodule.num_workers, sampler=sampler, drop_last=True)


class ImageDataModule(L.LightningDataModule):
    """Base for image data held in memory: subclasses say how to load the train and test splits.

    Validation images are a seeded random subset of the train split (`val_size` of them).
    Training order is shuffled with a permutation seeded by (seed, epoch), so a resumed run
    sees the same batches as an uninterrupted one; under DDP each rank gets its own shard.
    """

    def __init__(self, batch_size: int = 64, val_size: int = 0, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.val_size = val_size
        self.num_workers = num_workers
        self.seed = seed
        self.train_set: TensorImageDataset | None = None
        self.val_set: TensorImageDataset | None = None
        self.test_set: TensorImageDataset | None = None

    # -- what subclasses provide --------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images served; known before any file is read."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int | None:
        return None

    def load_train(self) -> tuple[Tensor, Tensor]:
        """uint8 images (N, C, H, W) and int64 labels (N,) of the train split."""
        raise NotImplementedError

    def load_test(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    # -- shared mechanics ---------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None) and self.train_set is None:
            images, labels = self.load_train()
            if not 0 <= self.val_size < len(images):
                raise ValueError(
                    f"val_size must be in [0, {len(images)}) for {len(images)} train images, got {self.val_size}"
                )
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.seed))
            val, train = order[: self.val_size], order[self.val_size :]
            self.train_set = TensorImageDataset(images[train], labels[train])
            self.val_set = TensorImageDataset(images[val], labels[val])
        if stage in ("test", None) and self.test_set is None:
            self.test_set = TensorImageDataset(*self.load_test())

    def _loader(self, dataset: TensorImageDataset) -> DataLoader:
        return batch_loader(dataset, self.batch_size, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup('fit') first"
        return shuffled_train_loader(self, self.train_set)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup('fit') first"
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        assert self.test_set is not None, "call setup('test') first"
        return self._loader(self.test_set)


class DownloadedImageDataModule(ImageDataModule):
    """Base for data sets that torchvision downloads: a known set of files in one folder.

    `prepare_data` fetches the missing files when `download` is true. Offline, or with download
    off, it (and `check_files`, which loaders call first) raises one FileNotFoundError naming the
    folder and the files expected there. Subclasses say where (`files_dir`), what
    (`expected_files`) and how to fetch (`fetch`).
    """

    #: Names for the error message: "MNIST not found ... copy the IDX files there".
    dataset_name = ""
    file_description = "the files"

    def __init__(
        self,
        data_dir: str = "./data",
        download: bool = True,
        batch_size: int = 64,
        val_size: int = 5000,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, val_size=val_size, num_workers=num_workers, seed=seed)
        self.data_dir = data_dir
        self.download = download

    @property
    def files_dir(self) -> Path:
        raise NotImplementedError

    def expected_files(self) -> tuple[str, ...]:
        raise NotImplementedError

    def fetch(self, missing: list[str]) -> None:
        """Download the `missing` files into `files_dir`."""
        raise NotImplementedError

    def missing_files(self) -> list[str]:
        return [name for name in self.expected_files() if not (self.files_dir / name).is_file()]

    def _missing_error(self, why: str) -> FileNotFoundError:
        return FileNotFoundError(
            f"{self.dataset_name} {why}: expected {', '.join(self.missing_files())} in {self.files_dir}. "
            f"Run once with network access (data.download: true) or copy {self.file_description} there."
        )

    def check_files(self) -> None:
        if self.missing_files():
            raise self._missing_error("not found")

    def prepare_data(self) -> None:
        missing = self.missing_files()
        if not missing:
            return
        if not self.download:
            raise self._missing_error("not found and data.download is false")
        try:
            self.fetch(missing)
        except Exception as error:  # torchvision raises RuntimeError/URLError variants when offline
            lines = [line.strip() for line in str(error).splitlines() if "error" in line.lower()] or [repr(error)]
            raise self._missing_error(f"could not be downloaded ({lines[-1]})") from error
