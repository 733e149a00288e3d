"""What every framework datamodule shares: init arguments recorded in `hparams`, the evaluation-data
API (`split_size`, `evaluation_batches`), in-memory uint8 splits with a seeded train/val split, and
epoch-seeded shuffling and data randomness that survive a resume.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lightning_dgm import seeding
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


class EpochSampler(DistributedSampler):
    """The training sampler: a DistributedSampler (each rank its own shard, shuffled by (seed, epoch)
    through Lightning's set_epoch) that starts each pass after the batches the epoch already trained
    on. That count is 0 at an epoch's start; after a resume from a mid-epoch checkpoint it is the
    checkpoint's, so the resumed epoch serves exactly the batches an uninterrupted run would have.

    Args:
        datamodule: whose trainer's progress is read when a pass begins.
        batch_size: items per batch, to turn batches into items.
    """

    def __init__(self, dataset: Dataset, *args, datamodule: L.LightningDataModule, batch_size: int, **kwargs) -> None:
        super().__init__(dataset, *args, **kwargs)
        self.datamodule, self.batch_size = datamodule, batch_size

    def items(self) -> Iterator:
        return super().__iter__()

    def consumed_batches(self) -> int:
        trainer = getattr(self.datamodule, "trainer", None)
        if trainer is None or not trainer.training:
            return 0
        consumed = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        return consumed if consumed < len(self) // self.batch_size else 0

    def __iter__(self) -> Iterator:
        return itertools.islice(self.items(), self.consumed_batches() * self.batch_size, None)


class JitterSampler(EpochSampler):
    """An EpochSampler for data with per-item randomness, whose items carry it: `(index, row)`, row
    being item `index`'s row of `dataset.draw_jitter(generator)`, `generator` seeded by (seed,
    `dataset.jitter_purpose`, epoch).

    The table is the same on every rank and in every worker, so what an item is served with (a crop and
    flip, binarized pixels) depends on (seed, epoch, item) only: not on the world size, the workers, nor
    the model's use of the global RNG. The same seed gives the same batches, a new epoch new draws, and a
    resumed run (Lightning restores the epoch) the draws of an uninterrupted one.
    """

    def items(self) -> Iterator:
        generator = seeding.generator(self.seed, self.dataset.jitter_purpose, self.epoch)
        table = self.dataset.draw_jitter(generator).tolist()
        return ((index, table[index]) for index in super().items())


def jitter_items(dataset: Dataset, items: list) -> tuple[Tensor, Tensor]:
    """A batch's sampler items -> item indices (n,) int64 and their rows of the jitter table (n, ...).

    Items are `(index, row)` pairs from a JitterSampler, or plain indices (a sampler Lightning put in
    place, e.g. for `overfit_batches`, or `evaluation_batches` without a generator), which get the fixed
    draw `dataset.draw_jitter(None)`: the same items every time.
    """
    if isinstance(items[0], tuple):
        return torch.tensor([index for index, _ in items]), torch.tensor([row for _, row in items])
    index = torch.as_tensor(items)
    return index, dataset.draw_jitter(None)[index]


def shuffled_train_loader(datamodule: L.LightningDataModule, dataset: Dataset) -> DataLoader:
    """The training loader of a datamodule with `batch_size`, `num_workers` and `seed`: this rank's
    shard of `dataset`, reshuffled per (seed, epoch), full batches only.

    An EpochSampler (a DistributedSampler) even on one process: Lightning calls its set_epoch, which seeds the
    shuffle by (seed, epoch) instead of the global RNG, and leaves a user sampler in place. Data with
    per-item randomness (a `draw_jitter(generator)` method) get a JitterSampler, which draws it per
    (seed, epoch) too.
    """
    trainer = datamodule.trainer
    world_size, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
    if len(dataset) < datamodule.batch_size * world_size:
        raise ConfigError(
            f"{type(datamodule).__name__}: {len(dataset)} training items cannot fill one batch of "
            f"{datamodule.batch_size} on each of {world_size} process(es); lower data.batch_size"
        )
    sampler_class = JitterSampler if hasattr(dataset, "draw_jitter") else EpochSampler
    sampler = sampler_class(
        dataset,
        num_replicas=world_size,
        rank=rank,
        shuffle=True,
        seed=datamodule.seed,
        datamodule=datamodule,
        batch_size=datamodule.batch_size,
    )
    return batch_loader(dataset, datamodule.batch_size, datamodule.num_workers, sampler=sampler, drop_last=True)


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
    """

    split_settings = {"val": "data.val_size"}

    def __init__(self, batch_size: int = 64, val_size: int = 0, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self._set_loading(batch_size, num_workers, seed)
        self.val_size = val_size
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
