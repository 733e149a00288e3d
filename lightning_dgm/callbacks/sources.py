"""Where the sample-quality callbacks get the two image sets they compare, per split: the real
images (a field of the datamodule's `evaluation_batches`) and the generated ones (this process's
share, in [-1, 1]).

* `SampledImages`: `num_samples` images from `pl_module.sample()` against the first real images of
  the split (`SampleMetrics`).
* `Translations`: the translation of every source image of the split against every target image of
  it, each once (`TranslationMetrics`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from torch import Tensor

from lightning_dgm.callbacks.images import evaluating
from lightning_dgm.callbacks.real_features import shard_of_split
from lightning_dgm.errors import ConfigError
from lightning_dgm.types import Samples


def generated_samples(
    pl_module: L.LightningModule,
    num_samples: int,
    *,
    batch_size: int,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    truncation: float | None = None,
) -> Iterator[Samples]:
    """This process's share of `num_samples` samples, as `Samples(index, image, label)` batches of
    at most `batch_size`: `index` (n,) the global sample numbers (ranks take consecutive blocks,
    rank 0 first), `image` (n, C, H, W) float in [-1, 1] on the module's device, `label` (n,) int64
    for conditional systems (sample i gets class i % num_classes: every class equally often, to
    within one) or None.

    Drawn under no_grad in eval mode (train mode comes back when the iterator ends or is closed)
    with a CPU generator seeded by `seed + rank`, so a run is repeatable for a given world size.
    `truncation` (None: none) goes to `sample()`, for systems with the truncation trick (BigGAN).
    """
    conditional = getattr(pl_module, "conditional", False)
    num_classes = getattr(pl_module, "num_classes", None)
    if conditional and not (isinstance(num_classes, int) and num_classes >= 1):
        raise ConfigError(
            f"{type(pl_module).__name__} is conditional but has no int `num_classes` >= 1 "
            f"(got {num_classes!r}): set it so that samples can be drawn class by class"
        )
    options = {} if truncation is None else {"truncation": truncation}
    indices = torch.arange(num_samples).tensor_split(world_size)[rank]
    generator = torch.Generator().manual_seed(seed + rank)
    with evaluating(pl_module):
        for index in indices.split(batch_size):
            labels = (index % num_classes).to(pl_module.device) if conditional else None
            with torch.no_grad():  # not around the yield: the consumer's grad mode is its own
                images = pl_module.sample(len(index), labels=labels, generator=generator, **options)
            yield Samples(index, images, labels)


def this_ranks_samples(
    trainer: L.Trainer,
    pl_module: L.LightningModule,
    num_samples: int,
    batch_size: int,
    seed: int,
    truncation: float | None = None,
) -> Iterator[Samples]:
    """`generated_samples` for the process `trainer` runs in: its share of `num_samples`."""
    return generated_samples(
        pl_module,
        num_samples,
        batch_size=batch_size,
        seed=seed,
        rank=trainer.global_rank,
        world_size=trainer.world_size,
        truncation=truncation,
    )


class ImageSource:
    """The two image sets of one evaluation of `split`. `real_field` names the field of the
    datamodule's evaluation batches that holds the real images."""

    real_field = "image"

    def num_real(self, datamodule: L.LightningDataModule, split: str) -> int:
        raise NotImplementedError

    def num_generated(self, datamodule: L.LightningDataModule, split: str) -> int:
        raise NotImplementedError

    def generated(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> Iterator[Tensor]:
        """This rank's share of the generated images, (n, C, H, W) batches in [-1, 1]."""
        raise NotImplementedError

    def describe_real(self, split: str, count: int) -> str:
        return f"the {split} split's {count} real images"

    def describe_generated(self, split: str | None, count: int) -> str:
        return f"{count} generated images"

    def protocol(self, stage: str, split: str, num_real: int | None, num_generated: int) -> dict[str, Any]:
        raise NotImplementedError


class SampledImages(ImageSource):
    """`num_samples` images of `pl_module.sample()` (see `generated_samples`, seeded by `seed + rank`)
    against the first `num_real_samples` images of the split (None: all). `truncation` (None: none)
    goes to `sample()`."""

    truncation: float | None = None

    def __init__(self, num_samples: int, num_real_samples: int | None, batch_size: int, seed: int) -> None:
        if num_samples < 1 or batch_size < 1:
            raise ConfigError(f"num_samples and batch_size must be at least 1, got {num_samples} and {batch_size}")
        if num_real_samples is not None and num_real_samples < 2:
            raise ConfigError(f"num_real_samples must be at least 2 (None: the whole split), got {num_real_samples}")
        self.num_samples, self.num_real_samples = num_samples, num_real_samples
        self.batch_size, self.seed = batch_size, seed

    def num_real(self, datamodule: L.LightningDataModule, split: str) -> int:
        size = datamodule.split_size(split)
        if self.num_real_samples is not None and self.num_real_samples > size:
            raise ConfigError(f"num_real_samples={self.num_real_samples}, but the {split} split has {size} images")
        return self.num_real_samples or size

    def num_generated(self, datamodule: L.LightningDataModule, split: str) -> int:
        return self.num_samples

    def generated(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> Iterator[Tensor]:
        batches = this_ranks_samples(trainer, pl_module, self.num_samples, self.batch_size, self.seed, self.truncation)
        return (batch.image for batch in batches)

    def describe_generated(self, split: str | None, count: int) -> str:
        return f"num_samples={count} generated images"

    def protocol(self, stage: str, split: str, num_real: int | None, num_generated: int) -> dict[str, Any]:
        return {
            "num_generated": num_generated,
            "truncation": self.truncation,
            f"{stage}_real": None if num_real is None else f"{split} split, first {num_real} images",
        }


class Translations(ImageSource):
    """`pl_module.translate(source)` of every source image of the split (in eval mode, without grad)
    against every target image of it (`datamodule.domain_sizes(split)` of each)."""

    real_field = "target"

    def __init__(self, batch_size: int, seed: int) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size, self.seed = batch_size, seed

    @staticmethod
    def domain_sizes(datamodule: L.LightningDataModule, split: str) -> tuple[int, int]:
        if not hasattr(datamodule, "domain_sizes"):
            raise ConfigError(
                "TranslationMetrics scores translations of a split's source images against its target images: "
                f"use a translation datamodule (with domain_sizes(split)), got {type(datamodule).__name__}"
            )
        return datamodule.domain_sizes(split)

    def num_real(self, datamodule: L.LightningDataModule, split: str) -> int:
        return self.domain_sizes(datamodule, split)[1]

    def num_generated(self, datamodule: L.LightningDataModule, split: str) -> int:
        return self.domain_sizes(datamodule, split)[0]

    def generated(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> Iterator[Tensor]:
        count = self.num_generated(trainer.datamodule, split)
        sources = shard_of_split(trainer, split, count, "source", self.batch_size, self.seed)
        with evaluating(pl_module):
            for source in sources:
                with torch.no_grad():
                    translated = pl_module.translate(source.to(pl_module.device))
                yield translated

    def describe_real(self, split: str, count: int) -> str:
        return f"the {split} split's {count} target images"

    def describe_generated(self, split: str | None, count: int) -> str:
        return f"the translations of the {split} split's {count} source images"

    def protocol(self, stage: str, split: str, num_real: int | None, num_generated: int) -> dict[str, Any]:
        return {
            "num_generated": num_generated,
            "generated": f"translations of the {split} split's {num_generated} source images, each once",
            f"{stage}_real": None if num_real is None else f"{split} split, its {num_real} target images, each once",
        }
