"""Super-resolution data: high-resolution (HR) images from folders, their low-resolution (LR)
inputs made by bicubic downscaling, as in SRCNN, SRGAN and the SR benchmarks (Set5, Set14, BSD100,
DIV2K's "bicubic" track)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_dgm.datamodules.base import BaseDataModule, batch_loader, shuffled_train_loader
from lightning_dgm.datamodules.folder import LOOKED_FOR, images_below, read_cache, read_image, write_cache
from lightning_dgm.datamodules.resolution import (  # noqa: F401 (bicubic_* re-exported for the systems)
    HRCrops,
    LowImages,
    WholeImages,
    bicubic_downscale,
    bicubic_upscale,
)
from lightning_dgm.errors import ConfigError, DataError, MissingFileError

_CACHE_VERSION = 1  # part of every cache key: bump it when decoding changes
SCALES = (2, 3, 4)


class SuperResolutionDataModule(BaseDataModule):
    """HR images from folders (any folder of images, searched recursively; DIV2K's
    `DIV2K_train_HR/` and `DIV2K_valid_HR/` as they are), LR inputs made by `bicubic_downscale`.

    * train (`train_dir`, one folder or a list): per image and epoch one random `crop_size` HR crop,
      flipped and turned by a multiple of 90 degrees at random (`augment`), the LR crop being its
      downscale (aligned exactly). Every image must be at least `crop_size` on each side.
    * val (`val_dir`), test (`test_dir`): whole images, cropped to a multiple of `scale`, one per
      batch (sizes differ).
    * predict: the LR images of `predict_dir` at their own sizes (grayscale and RGBA converted to
      RGB), one per batch, named by file stem; without `predict_dir`, the test split's LR images.

    Batches are `ResolutionPair(low, high)` in [-1, 1] (predict: `ResolutionRequest`). Data facts
    linked into the system and networks: `scale`, and `image_shape`, the HR training crop
    (3, crop_size, crop_size) that a discriminator is built for.

    `side_by_side_dirs` names folders (among the above) whose files are pix2pix-style pairs, twice
    as wide as high; only their left half is read (facades: the photo).

    Caches: each HR folder is decoded once, at full size, into `<data_dir>/decoded/sr-...-<hash>.pt`,
    the hash covering the folder and every file's path, size and modification time; later runs
    load it. All HR images are held in memory as uint8 (DIV2K's 800 training images: about 6.6 GB).
    """

    split_settings = {"train": "data.train_dir", "val": "data.val_dir", "test": "data.test_dir"}

    def __init__(
        self,
        train_dir: str | list[str] | None = None,
        val_dir: str | None = None,
        test_dir: str | None = None,
        predict_dir: str | None = None,
        scale: int = 4,
        crop_size: int = 96,
        augment: bool = True,
        side_by_side_dirs: list[str] | None = None,
        data_dir: str = "./data",
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ConfigError(f"scale must be one of {SCALES}, got {scale}")
        if crop_size < scale or crop_size % scale:
            raise ConfigError(f"crop_size must be a positive multiple of scale ({scale}), got {crop_size}")
        self._set_loading(batch_size, num_workers, seed)
        self.train_dirs = [train_dir] if isinstance(train_dir, str) else list(train_dir or [])
        self.val_dir, self.test_dir, self.predict_dir = val_dir, test_dir, predict_dir
        self._scale, self.crop_size, self.augment, self.data_dir = scale, crop_size, augment, data_dir
        self.side_by_side = {self._path(d) for d in side_by_side_dirs or []}
        self.train_set: HRCrops | None = None
        self.val_set: WholeImages | None = None
        self.test_set: WholeImages | None = None
        self.predict_set: LowImages | None = None

    # -- data facts -------------------------------------------------------------------------
    @property
    def scale(self) -> int:
        """The upscaling factor: HR side = scale x LR side."""
        return self._scale

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the HR training crops."""
        return (3, self.crop_size, self.crop_size)

    # -- files ------------------------------------------------------------------------------
    @staticmethod
    def _path(folder: str) -> Path:
        return Path(folder).expanduser().resolve()

    def _files(self, folder: Path, setting: str) -> list[str]:
        if not folder.is_dir():
            raise MissingFileError(f"image folder {folder} not found; check {setting}")
        files = sorted(images_below(str(folder)))
        if not files:
            raise MissingFileError(f"no images ({LOOKED_FOR}) found in {folder}; put images there or fix {setting}")
        return files

    def _read(self, path: str, left_half: bool) -> Tensor:
        try:
            image = read_image(path, 3)
        except RuntimeError as error:
            raise DataError(str(error)) from error
        if left_half:
            height, width = image.shape[-2:]
            if width != 2 * height:
                raise DataError(
                    f"{path} is {width}x{height} (width x height), not a side-by-side pair twice as wide as high; "
                    f"remove it, or its folder from data.side_by_side_dirs"
                )
            image = image[..., :height].contiguous()
        return image

    def _decoded(self, folder: Path, setting: str) -> tuple[list[Tensor], list[str]]:
        """Full-size uint8 (3, H, W) HR images of `folder` and their paths relative to it, from the cache if any."""
        files = self._files(folder, setting)
        left_half = folder in self.side_by_side
        key = hashlib.sha256(f"{_CACHE_VERSION} {folder} {left_half}\n".encode())
        for path in files:
            stat = os.stat(folder / path)
            key.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        cache = self._path(self.data_dir) / "decoded" / f"sr-{folder.name}-{key.hexdigest()[:16]}.pt"
        if (entry := read_cache(cache)) is not None:
            return entry["images"], entry["names"]
        rank_zero_info(f"Decoding {len(files)} images from {folder} (once; cached in {cache})")
        images = [self._read(str(folder / path), left_half) for path in files]
        write_cache(cache, {"images": images, "names": files})
        return images, files

    def _whole_images(self, folder: str, setting: str) -> WholeImages:
        path = self._path(folder)
        images, names = self._decoded(path, setting)
        for image, name in zip(images, names):
            if min(image.shape[-2:]) < self.scale:
                raise DataError(f"{path / name} is smaller than scale ({self.scale}) pixels; remove it")
        return WholeImages(images, [Path(name).stem for name in names], self.scale)

    # -- splits -----------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Decodes (and caches) the folders the running command reads: fit train and val, validate
        val, test test, predict test when there is no predict_dir."""
        trainer = self.trainer
        stage = str(getattr(trainer.state.fn, "value", trainer.state.fn)) if trainer is not None else None
        folders = {
            "fit": [(d, "data.train_dir") for d in self.train_dirs] + [(self.val_dir, "data.val_dir")],
            "validate": [(self.val_dir, "data.val_dir")],
            "test": [(self.test_dir, "data.test_dir")],
            "predict": [(self.test_dir if self.predict_dir is None else None, "data.test_dir")],
        }
        chosen = folders.get(stage) or [entry for entries in folders.values() for entry in entries]
        for folder, setting in chosen:
            if folder is not None:
                self._decoded(self._path(folder), setting)

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", None) and self.train_set is None:
            if not self.train_dirs:
                raise ConfigError("fit needs HR training images: set data.train_dir to a folder of images")
            images = []
            for folder in map(self._path, self.train_dirs):
                decoded, names = self._decoded(folder, "data.train_dir")
                for image, name in zip(decoded, names):
                    if min(image.shape[-2:]) < self.crop_size:
                        height, width = image.shape[-2:]
                        raise DataError(
                            f"{folder / name} is {width}x{height} (width x height), smaller than crop_size "
                            f"{self.crop_size}; remove it or lower data.crop_size"
                        )
                images += decoded
            self.train_set = HRCrops(images, self.crop_size, self.scale, self.augment)
        if stage in ("fit", "validate", None) and self.val_dir is not None and self.val_set is None:
            self.val_set = self._whole_images(self.val_dir, "data.val_dir")
        if stage in ("test", None) and self.test_dir is not None and self.test_set is None:
            self.test_set = self._whole_images(self.test_dir, "data.test_dir")
        if stage in ("predict", None) and self.predict_set is None:
            self.predict_set = self._predict_set()

    def _predict_set(self) -> LowImages | None:
        if self.predict_dir is None:
            if self.test_dir is None:
                return None
            self.test_set = self.test_set or self._whole_images(self.test_dir, "data.test_dir")
            return self.test_set.requests()
        folder = self._path(self.predict_dir)
        files = self._files(folder, "data.predict_dir")
        stems = [str(Path(name).with_suffix("")) for name in files]  # keeps subfolders: a/x.png -> a/x
        if len(set(stems)) < len(stems):
            clash = sorted({s for s in stems if stems.count(s) > 1})[0]
            raise DataError(f"two images in {folder} are named {clash}.*: outputs would overwrite; rename one")
        return LowImages([self._read(str(folder / name), False) for name in files], stems)

    # -- loaders ----------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup('fit') first"
        return shuffled_train_loader(self, self.train_set)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []  # no val_dir: Lightning runs no validation
        return batch_loader(self.val_set, 1, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise ConfigError("no test split: set data.test_dir to a folder of HR images")
        return batch_loader(self.test_set, 1, self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        if self.predict_set is None:
            raise ConfigError("predict needs data.predict_dir (a folder of LR images) or data.test_dir")
        return batch_loader(self.predict_set, 1, self.num_workers)
