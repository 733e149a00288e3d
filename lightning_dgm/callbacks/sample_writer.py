"""`predict`: generated samples out of a trained system, as PNG files and one `samples.pt`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset
from torchvision.utils import save_image

from lightning_dgm.types import SampleRequest, Samples


class SampleRequestDataset(Dataset):
    """num_samples requests; labels cycle through the classes so conditional samples are balanced."""

    def __init__(self, num_samples: int, num_classes: int | None, seed: int) -> None:
        self.num_samples = num_samples
        self.num_classes = num_classes or 1
        self.seed = seed

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> SampleRequest:
        return SampleRequest(
            torch.tensor(index), torch.tensor(index % self.num_classes), torch.tensor(self.seed + index)
        )


class SampleWriter(BasePredictionWriter):
    """Writes `<output_dir>/00000.png ...` and `<output_dir>/samples.pt`.

    `samples.pt` holds {"images": float32 (N, C, H, W) in [-1, 1], "labels": int64 (N,)}, with
    "labels" only for conditional systems, ordered by sample number. For data that are not
    images, such as 2-D points, "images" holds the samples as drawn, (N, 2), and no PNGs are
    written. Under DDP each rank makes its share and rank zero merges them.

    Args:
        num_samples: how many samples `predict` makes.
        output_dir: where to write; None means `<run folder>/predictions`.
        batch_size: samples per predict batch.
        seed: sample i of a batch starting at j is drawn with a generator seeded by seed + j.
        write_png: also write one PNG per sample.
    """

    def __init__(
        self,
        num_samples: int = 1000,
        output_dir: str | None = None,
        batch_size: int = 250,
        seed: int = 0,
        write_png: bool = True,
    ) -> None:
        super().__init__(write_interval="batch")
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        self.num_samples = num_samples
        self.output_dir = output_dir
        self.batch_size = batch_size
        self.seed = seed
        self.write_png = write_png
        self._parts: list[Samples] = []

    def dataloader(self, num_classes: int | None = None) -> DataLoader:
        """The predict dataloader: pass it to `trainer.predict(model, dataloaders=...)`."""
        return DataLoader(SampleRequestDataset(self.num_samples, num_classes, self.seed), batch_size=self.batch_size)

    def directory(self, trainer: L.Trainer) -> Path:
        return Path(self.output_dir) if self.output_dir else Path(trainer.default_root_dir) / "predictions"

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._parts = []
        self.directory(trainer).mkdir(parents=True, exist_ok=True)

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
        images = prediction.image.detach().float().cpu()
        is_image = images.dim() == 4  # 2-D points and other vectors are neither clamped nor drawn
        images = images.clamp(-1, 1) if is_image else images
        labels = None if prediction.label is None else prediction.label.cpu()
        index = prediction.index.cpu()
        self._parts.append(Samples(index, images, labels))
        if self.write_png and is_image:
            for i, image in zip(index.tolist(), images):
                save_image(image, self.directory(trainer) / f"{i:05d}.png", normalize=True, value_range=(-1, 1))

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        directory = self.directory(trainer)
        part = directory / f".samples_rank{trainer.global_rank}.pt"
        torch.save(self._parts, part)
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            self._merge(directory, trainer.world_size)
        trainer.strategy.barrier()

    def _merge(self, directory: Path, world_size: int) -> None:
        parts: list[Samples] = []
        for rank in range(world_size):
            path = directory / f".samples_rank{rank}.pt"
            parts += torch.load(path, weights_only=False)
            path.unlink()
        index = torch.cat([p.index for p in parts])
        # DDP samplers may pad with repeats: keep the first copy of each sample number.
        order = torch.argsort(index, stable=True)
        keep = torch.ones(len(index), dtype=torch.bool)
        keep[1:] = index[order][1:] != index[order][:-1]
        order = order[keep]
        result = {"images": torch.cat([p.image for p in parts])[order]}
        if parts[0].label is not None:
            result["labels"] = torch.cat([p.label for p in parts])[order].long()
        torch.save(result, directory / "samples.pt")
