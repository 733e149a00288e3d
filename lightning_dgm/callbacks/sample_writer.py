"""`predict`: generated samples out of a trained system, as PNG files and one `samples.pt`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision.utils import save_image

from lightning_dgm.errors import ConfigError
from lightning_dgm.types import SampleRequest, Samples


class SampleRequestDataset(Dataset):
    """num_samples requests; labels cycle through the classes so conditional samples are balanced.
    `truncation` (None: none) travels with every request to `sample()`."""

    def __init__(self, num_samples: int, num_classes: int | None, seed: int, truncation: float | None = None) -> None:
        self.num_samples = num_samples
        self.num_classes = num_classes or 1
        self.seed = seed
        self.truncation = torch.tensor(math.inf if truncation is None else float(truncation))

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> SampleRequest:
        return SampleRequest(
            torch.tensor(index),
            torch.tensor(index % self.num_classes),
            torch.tensor(self.seed + index),
            self.truncation,
        )


class WholeBatches(DistributedSampler):
    """Deals out whole batches of `batch_size` consecutive indices, batch b to rank b % world_size, so
    every batch is the one a single process would make. A batch is drawn with a generator seeded by
    its first request, so the samples are the same whatever the number of processes. Being a
    DistributedSampler, Lightning keeps it instead of injecting its own."""

    def __init__(self, dataset: Dataset, batch_size: int, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.batch_size = batch_size
        starts = range(rank * batch_size, len(dataset), num_replicas * batch_size)
        self.indices = [i for start in starts for i in range(start, min(start + batch_size, len(dataset)))]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class SampleWriter(BasePredictionWriter):
    """Writes `<output_dir>/00000.png ...` and `<output_dir>/samples.pt`.

    `samples.pt` holds {"images": float32 (N, C, H, W) in [-1, 1], "labels": int64 (N,)}, with
    "labels" only for conditional systems, ordered by sample number. For data that are not
    images, such as 2-D points, "images" holds the samples as drawn, (N, 2), and no PNGs are
    written. Under DDP each rank makes whole batches of the single-process run (`WholeBatches`), and
    the results travel to rank zero through the process group, which alone writes: no shared folder
    is needed, and every file is written once, the same files as a single process writes.

    Predict batches that carry names (`ResolutionRequest`: super-resolution, whose images differ in
    size) are written at once as `<output_dir>/<name>.png`, with no `samples.pt`; under DDP each rank
    writes its own images.

    Args:
        num_samples: how many samples `predict` makes.
        output_dir: where to write; None means `<run folder>/predictions`.
        batch_size: samples per predict batch.
        seed: sample i of a batch starting at j is drawn with a generator seeded by seed + j.
        write_png: also write one PNG per sample.
        truncation: truncation trick (BigGAN): every |z_i| > truncation redrawn; None: plain p(z).
            Only for systems whose `sample()` takes `truncation`.
    """

    def __init__(
        self,
        num_samples: int = 1000,
        output_dir: str | None = None,
        batch_size: int = 250,
        seed: int = 0,
        write_png: bool = True,
        truncation: float | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        if num_samples < 1:
            raise ConfigError(f"num_samples must be at least 1, got {num_samples}")
        if truncation is not None and truncation <= 0:
            raise ConfigError(f"sample_writer.truncation must be positive (or unset), got {truncation}")
        self.truncation = truncation
        self.num_samples, self.output_dir = num_samples, output_dir
        self.batch_size, self.seed, self.write_png = batch_size, seed, write_png
        self._parts: list[Samples] = []

    def dataloader(self, num_classes: int | None = None, *, rank: int = 0, world_size: int = 1) -> DataLoader:
        """The predict dataloader of process `rank` of `world_size`: pass it to
        `trainer.predict(model, dataloaders=...)`."""
        dataset = SampleRequestDataset(self.num_samples, num_classes, self.seed, self.truncation)
        sampler = WholeBatches(dataset, self.batch_size, world_size, rank)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler)

    def directory(self, trainer: L.Trainer) -> Path:
        return Path(self.output_dir) if self.output_dir else Path(trainer.default_root_dir) / "predictions"

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._parts = []

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Samples,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        names = getattr(batch, "name", None)
        if names is not None:  # images of their own sizes, under their own names
            directory = self.directory(trainer)
            for name, image in zip(names, prediction.image.detach().float().clamp(-1, 1).cpu()):
                (directory / name).parent.mkdir(parents=True, exist_ok=True)
                save_image(image, directory / f"{name}.png", normalize=True, value_range=(-1, 1))
            return
        labels = None if prediction.label is None else prediction.label.cpu()
        self._parts.append(Samples(prediction.index.cpu(), prediction.image.detach().float().cpu(), labels))

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        parts = self._parts
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [None] * torch.distributed.get_world_size() if trainer.is_global_zero else None
            torch.distributed.gather_object(parts, gathered, dst=0)
            parts = [part for rank_parts in gathered or [] for part in rank_parts]
        if trainer.is_global_zero and parts:
            self._write(self.directory(trainer), parts)
        self._parts = []

    def _write(self, directory: Path, parts: list[Samples]) -> None:
        index = torch.cat([p.index for p in parts])
        # Keep the first copy of each sample number, should a sampler have padded with repeats.
        order = torch.argsort(index, stable=True)
        keep = torch.ones(len(index), dtype=torch.bool)
        keep[1:] = index[order][1:] != index[order][:-1]
        order = order[keep]
        images = torch.cat([p.image for p in parts])[order]
        is_image = images.dim() == 4  # 2-D points and other vectors are neither clamped nor drawn
        images = images.clamp(-1, 1) if is_image else images
        directory.mkdir(parents=True, exist_ok=True)
        if self.write_png and is_image:
            for i, image in zip(index[order].tolist(), images):
                save_image(image, directory / f"{i:05d}.png", normalize=True, value_range=(-1, 1))
        result = {"images": images}
        if parts[0].label is not None:
            result["labels"] = torch.cat([p.label for p in parts])[order].long()
        torch.save(result, directory / "samples.pt")
