"""Training and evaluation loaders shared by the datamodules: batches made by the dataset itself
(`__getitems__`), and the training sampler that shuffles by (seed, epoch), draws per-item randomness
per (seed, epoch) and, after a resume from a mid-epoch checkpoint, skips what the epoch already used.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lightning_dgm import seeding
from lightning_dgm.errors import ConfigError
from lightning_dgm.types import ImageBatch


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


class DeviceBatches:
    """Training batches cut from a copy of the data set on the accelerator, with no DataLoader: the
    batches `shuffled_train_loader`'s DataLoader would serve, in the same order (its EpochSampler, so
    the same shuffle per (seed, epoch), the same DDP shard and the same skip of the batches a resumed
    epoch already trained on), full batches only.

    The data set is moved to the trainer's root device once, at the first pass (`dataset.to(device)`);
    each batch is then one `__getitems__` on an index slice, on that device: no per-batch collation,
    worker or host-to-device copy. Lightning finds the sampler as `.sampler` and calls its set_epoch,
    as it does for a DataLoader's.
    """

    def __init__(self, dataset: Dataset, sampler: EpochSampler, batch_size: int) -> None:
        self.dataset, self.sampler, self.batch_size = dataset, sampler, batch_size
        self._moved: Dataset | None = None
        self._moved_to: torch.device | None = None

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def _device(self) -> torch.device:
        trainer = getattr(self.sampler.datamodule, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def __iter__(self) -> Iterator:
        device = self._device()
        if self._moved_to != device:
            self._moved, self._moved_to = self.dataset.to(device), device
        items = torch.as_tensor(list(iter(self.sampler)), dtype=torch.long).to(device)
        for start in range(0, len(items) - self.batch_size + 1, self.batch_size):
            yield self._moved.__getitems__(items[start : start + self.batch_size])


def shuffled_train_loader(datamodule: L.LightningDataModule, dataset: Dataset) -> DataLoader | DeviceBatches:
    """The training loader of a datamodule with `batch_size`, `num_workers` and `seed`: this rank's
    shard of `dataset`, reshuffled per (seed, epoch), full batches only.

    An EpochSampler (a DistributedSampler) even on one process: Lightning calls its set_epoch, which seeds the
    shuffle by (seed, epoch) instead of the global RNG, and leaves a user sampler in place. Data with
    per-item randomness (a `draw_jitter(generator)` method) get a JitterSampler, which draws it per
    (seed, epoch) too.

    With `datamodule.on_device` true, the same batches come from `DeviceBatches` instead of a DataLoader
    (data sets with a `to(device)` method and no per-item randomness only).
    """
    trainer = datamodule.trainer
    world_size, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
    if len(dataset) < datamodule.batch_size * world_size:
        raise ConfigError(
            f"{type(datamodule).__name__}: {len(dataset)} training items cannot fill one batch of "
            f"{datamodule.batch_size} on each of {world_size} process(es); lower data.batch_size"
        )
    jitter = hasattr(dataset, "draw_jitter")
    on_device = getattr(datamodule, "on_device", False)
    if on_device and (jitter or not hasattr(dataset, "to")):
        what = "draws fresh randomness per item (crops, binarized pixels)" if jitter else "is not a tensor data set"
        raise ConfigError(
            f"{type(datamodule).__name__}: data.on_device needs training data held as tensors, but "
            f"{type(dataset).__name__} {what}; set data.on_device false"
        )
    sampler_class = JitterSampler if jitter else EpochSampler
    sampler = sampler_class(
        dataset,
        num_replicas=world_size,
        rank=rank,
        shuffle=True,
        seed=datamodule.seed,
        datamodule=datamodule,
        batch_size=datamodule.batch_size,
    )
    if on_device:
        return DeviceBatches(dataset, sampler, datamodule.batch_size)
    return batch_loader(dataset, datamodule.batch_size, datamodule.num_workers, sampler=sampler, drop_last=True)
