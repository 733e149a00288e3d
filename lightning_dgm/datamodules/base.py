"""What every framework datamodule shares: init arguments recorded in `hparams`, the evaluation-data
API (`split_size`, `evaluation_batches`), in-memory uint8 splits with a seeded train/val split, and
epoch-seeded shuffling and data randomness that survive a resume.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightning_dgm.datamodules.loaders import (  # noqa: F401 (re-exported: the datamodules import them from here)
    EpochSampler,
    JitterSampler,
    batch_loader,
    jitter_items,
    keep_batch,
    shuffled_train_loader,
)
from lightning_dgm.errors import ConfigError
from lightning_dgm.types import ImageBatch, ImagePair, to_signed_unit

SPLITS = ("train", "val", "test")
_STAGE = {"train": "fit", "val": "validate", "test": "test"}  # the setup() stage that makes each split


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
            raise ConfigError(f"expected uint8 images of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ConfigError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> ImageBatch:
        return ImageBatch(to_signed_unit(self.images[index]), self.labels[index])

    def __getitems__(self, indices: list[int] | Tensor) -> ImageBatch:
        index = torch.as_tensor(indices)
        return ImageBatch(to_signed_unit(self.images[index]), self.labels[index])

    def to(self, device: torch.device | str) -> TensorImageDataset:
        """This split with images and labels on `device` (itself when they are there already)."""
        return TensorImageDataset(self.images.to(device), self.labels.to(device))


class BaseDataModule(L.LightningDataModule):
    """What every framework datamodule has: its init arguments in `hparams`, and the evaluation-data
    API that callbacks and metrics read splits through (instead of the datasets and loaders).

    Subclasses keep their splits as `train_set`, `val_set` and `test_set` (None until `setup` makes
    them, and after it when the split does not exist), each a Dataset whose `__getitems__` returns a
    whole batch, and a `seed`. `split_settings` names, per split, the setting that makes it larger or
    makes it exist, for error messages.
    """

    split_settings: dict[str, str] = {}
    train_set: Dataset | None
    val_set: Dataset | None
    test_set: Dataset | None
    seed: int

    def __init__(self) -> None:
        super().__init__()
        # Lightning's collect_init_args walks the __init__ frames from here out to the concrete class's,
        # so hparams hold its arguments as given, whatever attribute names it keeps them under. Arguments
        # only a base class takes (PointDataModule passes num_val on as val_size) are not the concrete
        # class's: drop them, so hparams are exactly what rebuilds the datamodule.
        own = set(inspect.signature(type(self).__init__).parameters)
        inherited = {
            name
            for klass in type(self).__mro__
            if issubclass(klass, BaseDataModule) and "__init__" in vars(klass)
            for name in inspect.signature(klass.__init__).parameters
        }
        self.save_hyperparameters(ignore=sorted(inherited - own))

    def _set_loading(self, batch_size: int, num_workers: int, seed: int) -> None:
        """Check and keep what the loaders and the seeded draws read: batch size, workers, seed."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed

    def _split(self, split: str) -> Dataset:
        """The dataset of `split`, set up if needed; one ValueError for an unknown or absent split."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}: ask for one of {', '.join(map(repr, SPLITS))}")
        if getattr(self, f"{split}_set") is None:
            self.setup(_STAGE[split])
        dataset = getattr(self, f"{split}_set")
        if dataset is None:
            setting = self.split_settings.get(split)
            advice = f"set {setting}" if setting else "use a datamodule that has one"
            raise ConfigError(f"{type(self).__name__} has no {split} split: {advice}")
        return dataset

    def split_size(self, split: str) -> int:
        """Items in split "train", "val" or "test"; sets the split up (self.setup(...)) if needed."""
        return len(self._split(split))

    def evaluation_batches(
        self,
        split: str,
        count: int | None = None,
        *,
        batch_size: int = 256,
        generator: torch.Generator | None = None,
    ) -> Iterator[ImageBatch | ImagePair]:
        """The first `count` items of `split` (all when None), in index order, as batches of at most
        batch_size, on the CPU, converted to [-1, 1] exactly as the loaders serve them. Data served with
        fresh randomness every time (dynamically binarized MNIST's train split) draws it from `generator`
        (None: a fixed draw seeded from the datamodule's seed). Sets the split up if needed. A count larger
        than the split, or an unknown/absent split, is one clear ValueError saying what to set.

        Images are float32 (n, C, H, W) in [-1, 1] (ImageBatch.image, ImagePair.source / target); point
        data are (n, D), unbounded.
        """
        dataset = self._split(split)
        size = len(dataset)
        count = size if count is None else count
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= count <= size:
            setting = self.split_settings.get(split)
            raise ConfigError(
                f"{type(self).__name__}'s {split} split holds {size} items, but {count} were asked for: "
                f"ask for at most {size}" + (f", or set {setting} for more" if setting else "")
            )
        table = None
        if generator is not None and hasattr(dataset, "draw_jitter"):
            table = dataset.draw_jitter(generator).tolist()
        # Batches come from a separate generator function, so the checks above raise at this call
        # rather than at the first next().
        return self._batches(dataset, count, batch_size, table)

    @staticmethod
    def _batches(dataset: Dataset, count: int, batch_size: int, table: list | None) -> Iterator:
        for start in range(0, count, batch_size):
            indices = range(start, min(start + batch_size, count))
            yield dataset.__getitems__([(i, table[i]) for i in indices] if table is not None else list(indices))


class ImageDataModule(BaseDataModule):
    """Base for image data held in memory: subclasses say how to load the train and test splits.

    Validation images are a seeded random subset of the train split (`val_size` of them).
    Training order is shuffled with a permutation seeded by (seed, epoch), so a resumed run
    sees the same batches as an uninterrupted one; under DDP each rank gets its own shard.

    `on_device=True` moves the training split to the accelerator once and cuts the same batches
    there (`loaders.DeviceBatches`): no DataLoader, workers (`num_workers` is unused) or per-batch
    copies. For data that fits in the accelerator's memory; on a CPU it saves the DataLoader's cost.
    """

    split_settings = {"val": "data.val_size"}

    def __init__(
        self, batch_size: int = 64, val_size: int = 0, num_workers: int = 0, seed: int = 0, on_device: bool = False
    ) -> None:
        super().__init__()
        self._set_loading(batch_size, num_workers, seed)
        self.val_size, self.on_device = val_size, on_device
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
                raise ConfigError(
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
