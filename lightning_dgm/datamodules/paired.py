"""Paired image-to-image translation data (pix2pix): every image of domain A comes with its true
translation in domain B. Two layouts on disk, one class each."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_dgm.datamodules.folder import read_image
from lightning_dgm.datamodules.translation import Direction, FixedPairs, JitteredPairs, TranslationDataModule
from lightning_dgm.errors import ConfigError, MissingFileError


class PairedDataModule(TranslationDataModule):
    """Pairs for pix2pix: batches are `ImagePair(source, target)`, float (N, 3, crop_size, crop_size)
    in [-1, 1], target[i] the translation of source[i] (the source is domain A for "AtoB", B for
    "BtoA").

    Training (`train_split`): pix2pix's jitter - resize to load_size x load_size, random crop to
    crop_size, random horizontal flip (when `flip`) - with the same crop and flip for both images of
    a pair. Validation (`val_split`) and test (`test_split`): resize then center crop, no flip, the
    same batches every epoch; None for no such split. Subclasses read a split (`load_split`).
    """

    split_settings = {
        "train": "data.train_split (the name of a split's folder)",
        "val": "data.val_split (the name of a split's folder)",
        "test": "data.test_split (the name of a split's folder)",
    }

    def __init__(
        self,
        root: str,
        direction: Direction = "AtoB",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train_split: str = "train",
        val_split: str | None = "val",
        test_split: str | None = "test",
        batch_size: int = 1,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(root, direction, load_size, crop_size, flip, batch_size, num_workers, seed)
        self.train_split = train_split
        self.val_split = val_split
        self.test_split = test_split

    def load_split(self, split: str) -> tuple[Tensor, Tensor]:
        """uint8 (N, 3, load_size, load_size) images of domain A and of domain B, pair i at index i."""
        raise NotImplementedError

    def _inputs_first(self, split: str) -> tuple[Tensor, Tensor]:
        return self.inputs_first(*self.load_split(split))

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", None) and self.train_set is None:
            self.train_set = JitteredPairs(*self._inputs_first(self.train_split), self.crop_size, self.flip)
        if stage in ("fit", "validate", None) and self.val_split is not None and self.val_set is None:
            self.val_set = FixedPairs(*map(self.centered, self._inputs_first(self.val_split)))
        if stage in ("test", "predict", None) and self.test_split is not None and self.test_set is None:
            self.test_set = FixedPairs(*map(self.centered, self._inputs_first(self.test_split)))

    def val_dataloader(self) -> DataLoader | list:
        if self.val_split is None:
            return []  # Lightning runs no validation
        assert self.val_set is not None, "call setup('fit') or setup('validate') first"
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        if self.test_split is None:
            raise ConfigError("no test split: set data.test_split to the name of the test split's folder")
        assert self.test_set is not None, "call setup('test') first"
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        if self.test_split is None:
            raise ConfigError("predict translates the test split: set data.test_split to the name of its folder")
        return super().predict_dataloader()


class SideBySideDataModule(PairedDataModule):
    """pix2pix's own layout: `root/<split>/<name>` (JPEG, PNG, ...), each file one pair with A in
    the left half and B in the right half, exactly twice as wide as high (e.g. 512x256). The
    facades data set holds the photo on the left and the label map on the right: use
    `direction="BtoA"` for labels -> photo.
    """

    layout = "train/, val/ and test/ folders of images with A on the left half and B on the right"

    def load_split(self, split: str) -> tuple[Tensor, Tensor]:
        folder = self.folder(split)
        names = self.image_files(split, f"the {split} pairs as images with A on the left half and B on the right")
        self.log_decoding(len(names), folder)
        a = torch.empty((len(names), 3, self.load_size, self.load_size), dtype=torch.uint8)
        b = torch.empty_like(a)
        for i, name in enumerate(names):
            image = read_image(str(folder / name), 3)
            height, width = image.shape[1:]
            if width != 2 * height:
                raise ConfigError(
                    f"{folder / name} is {width}x{height} pixels (width x height); a side-by-side pair must be "
                    f"exactly twice as wide as high, A on the left half and B on the right: fix or remove the file"
                )
            a[i], b[i] = self.resized(image[..., :height]), self.resized(image[..., height:])
        return a, b


class FolderPairsDataModule(PairedDataModule):
    """Pairs in two folders per split: `root/<split>A/<name>` and `root/<split>B/<name>`, the same
    file name (path below the folder) in both being one pair (CycleGAN's folder names). The two
    images of a pair must have the same size.
    """

    layout = "trainA/ + trainB/, valA/ + valB/ and testA/ + testB/ folders whose files pair up by name"

    def load_split(self, split: str) -> tuple[Tensor, Tensor]:
        names = {
            side: self.image_files(
                split + side, f"the {split} split's domain {side} images, named as their pairs in {split}{other}"
            )
            for side, other in (("A", "B"), ("B", "A"))
        }
        lacking = []
        for side, other in (("B", "A"), ("A", "B")):
            missing = sorted(set(names[other]) - set(names[side]))
            if missing:
                listed = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
                lacking.append(f"{self.folder(split + side)} lacks {len(missing)} file(s) of {split}{other}: {listed}")
        if lacking:
            raise MissingFileError(
                f"unpaired images: {'; '.join(lacking)}. Give every image its pair under the same name in the "
                f"other folder, or remove it"
            )
        folder_a, folder_b = self.folder(split + "A"), self.folder(split + "B")
        self.log_decoding(2 * len(names["A"]), folder_a.parent)
        a = torch.empty((len(names["A"]), 3, self.load_size, self.load_size), dtype=torch.uint8)
        b = torch.empty_like(a)
        for i, name in enumerate(names["A"]):
            image_a, image_b = read_image(str(folder_a / name), 3), read_image(str(folder_b / name), 3)
            if image_a.shape != image_b.shape:
                raise ConfigError(
                    f"the images of a pair differ in size: {folder_a / name} is {image_a.shape[2]}x{image_a.shape[1]} "
                    f"but {folder_b / name} is {image_b.shape[2]}x{image_b.shape[1]} (width x height); "
                    f"give both the same size"
                )
            a[i], b[i] = self.resized(image_a), self.resized(image_b)
        return a, b
