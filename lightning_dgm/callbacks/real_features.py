"""Features of real images, extracted once per (data, split, count, extractor) and cached on disk.

The key (`RealFeatureCache.key`) holds everything that changes the features: the datamodule's class
and its init arguments (`datamodule.hparams`, from Lightning's `save_hyperparameters()`) less the
loader settings, paths resolved to where they point; the split, the field of its batches, the image
shape, the count and the seed of the images' draws; the extractor's class and settings and a hash of
its weights. So later runs, of any project of the user,
never pass over the same real data again, and a change of data or extractor never reads stale
features.

Real images come from the datamodule's `evaluation_batches(split, count, batch_size=..., generator=...)`
(the first `count` items of the split, in index order), with a generator seeded by the callback's
seed for data served with fresh randomness (dynamically binarized MNIST).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics.utilities.distributed import gather_all_tensors

from lightning_dgm.errors import ConfigError
from lightning_dgm.metrics.features import fingerprint
from lightning_dgm.types import signed_unit_to_uint8

#: Init arguments that change how data is served, not what it is: left out of the key.
LOADER_SETTINGS = frozenset(
    {"batch_size", "num_workers", "pin_memory", "persistent_workers", "download", "prefetch_factor"}
)


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/lightning_dgm/real_features` (default `~/.cache/...`)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lightning_dgm" / "real_features"


def describe(module: nn.Module | None) -> str | None:
    """`Class(settings)` of an extractor: its class name and extra_repr."""
    return None if module is None else f"{type(module).__name__}({module.extra_repr()})"


def data_settings(datamodule: L.LightningDataModule) -> dict[str, str]:
    """The datamodule's init arguments that shape its images, from `hparams`, as reprs; an existing
    path is keyed by where it points (a relative one names other data in another working directory)."""
    hparams = dict(getattr(datamodule, "hparams", None) or {})
    if not hparams:
        raise ConfigError(
            f"the real-feature cache is keyed by the datamodule's init arguments, but {type(datamodule).__name__} "
            "records none in `hparams`: call `self.save_hyperparameters()` in its __init__"
        )
    settings = {}
    for name, value in sorted(hparams.items()):
        if name in LOADER_SETTINGS:
            continue
        if isinstance(value, (str, os.PathLike)) and str(value) and Path(value).expanduser().exists():
            value = Path(value).expanduser().resolve()
        settings[name] = repr(value)
    return settings


def _shard(batches: Iterator[Tensor], start: int, stop: int) -> Iterator[Tensor]:
    """Items [start, stop) of a stream of batches (item 0 first)."""
    offset = 0
    for batch in batches:
        low, high = max(start - offset, 0), min(stop - offset, len(batch))
        if low < high:
            yield batch[low:high]
        offset += len(batch)
        if offset >= stop:
            return


def rank_share(count: int, trainer: L.Trainer) -> tuple[int, int]:
    """[start, stop) of this rank's consecutive share of `count` items (rank 0 first, sizes within one)."""
    bounds = torch.arange(count).tensor_split(trainer.world_size)[trainer.global_rank]
    start = int(bounds[0]) if len(bounds) else count
    return start, start + len(bounds)


def shard_of_split(
    trainer: L.Trainer, split: str, count: int, field: str, batch_size: int, seed: int
) -> Iterator[Tensor]:
    """This rank's share of the images in `field` ("image" of an ImageBatch, "source" or "target" of an
    ImagePair) of the first `count` items of the datamodule's `split`, in batches: every rank walks the
    same seeded stream and keeps its block, so the shares make up the one-process set."""
    batches = trainer.datamodule.evaluation_batches(
        split, count, batch_size=batch_size, generator=torch.Generator().manual_seed(seed)
    )
    return _shard((getattr(batch, field) for batch in batches), *rank_share(count, trainer))


class RealFeatureCache:
    """Real features (count, D) float32 of a split, from the cache file or extracted (and written).

    Args:
        extractor: maps uint8 images to (N, num_features) features.
        cache_dir: folder of the cache files (None: `default_cache_dir()`).
        batch_size: images per extractor call.
        seed: seeds the generator of the real images' draws (data served with fresh randomness).
    """

    def __init__(self, extractor: nn.Module, cache_dir: str | os.PathLike | None, batch_size: int, seed: int) -> None:
        self.extractor, self.batch_size, self.seed = extractor, batch_size, seed
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """sha256 of the extractor's structure and weights (computed once)."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.extractor)
        return self._fingerprint

    def key(self, datamodule: L.LightningDataModule, split: str, count: int, field: str = "image") -> dict[str, Any]:
        """Everything that changes the features of the images in `field` of the split's first `count` items."""
        return {
            "datamodule": f"{type(datamodule).__module__}.{type(datamodule).__qualname__}",
            "data_hparams": data_settings(datamodule),
            "split": split,
            "field": field,
            "image_shape": list(getattr(datamodule, "image_shape", ())),
            "num_real_samples": count,
            "draw_seed": self.seed,  # what data served with fresh randomness (binarized MNIST) draws from
            "extractor": describe(self.extractor),
            "extractor_sha256": self.fingerprint,
            "input": "uint8",
        }

    def path(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        name = key["datamodule"].rsplit(".", 1)[-1]
        return self.cache_dir / f"{name}-{key['split']}-{key['num_real_samples']}-{digest}.pt"

    @torch.no_grad()
    def features(self, trainer: L.Trainer, split: str, count: int, field: str = "image") -> Tensor:
        """Features (count, D) of the images in `field` of the split's first `count` items, on the CPU. A collective
        under DDP (call it on every rank): on a miss each rank extracts its share, all are gathered,
        and one process per machine writes the file (atomically: write, then rename)."""
        key = self.key(trainer.datamodule, split, count, field)
        path = self.path(key)
        # Every rank must take the same branch: the miss branch is a collective.
        if trainer.strategy.reduce_boolean_decision(path.is_file(), all=True):
            cached = torch.load(path, map_location="cpu", weights_only=True)
            if cached.get("key") != key:
                raise ConfigError(f"real-feature cache {path} was made for another setting: delete it")
            rank_zero_info(f"real {split} features loaded from {path}")
            return cached["features"]
        device = trainer.lightning_module.device
        self.extractor.to(device)
        parts = [
            self.extractor(signed_unit_to_uint8(images.to(device)))
            for images in shard_of_split(trainer, split, count, field, self.batch_size, self.seed)
        ]
        features = torch.cat(parts) if parts else torch.empty(0, self.extractor.num_features, device=device)
        if trainer.world_size > 1:
            features = torch.cat(gather_all_tensors(features.contiguous()))  # rank order = index order
        features = features.float().cpu()
        if trainer.local_rank == 0:  # one writer per machine; the rename is atomic
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            torch.save({"key": key, "features": features}, partial)
            os.replace(partial, path)
        rank_zero_info(f"real {split} features extracted and cached in {path}")
        return features
