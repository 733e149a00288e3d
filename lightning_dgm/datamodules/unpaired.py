"""Unpaired image-to-image translation data (CycleGAN): two domains of images with no
correspondence between them."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_dgm.datamodules.translation import Direction, FixedPairs, JitteredDomains, TranslationDataModule


class UnpairedDataModule(TranslationDataModule):
    """CycleGAN's layout: `root/trainA`, `root/trainB`, `root/testA`, `root/testB` (names of the
    two splits set by `train_split` and `test_split`), any number of images each; grayscale images
    are repeated to RGB. Batches are `ImagePair(source, target)`, float (N, 3, crop_size, crop_size)
    in [-1, 1], `source` from the input domain under `direction`, `target` from the other.

    Training: the domains are drawn independently, as CycleGAN does. An epoch is max(|A|, |B|)
    items (A and B after `direction`); item i is A[i % |A|] with a B image drawn at random, each with
    its own random crop and flip (pix2pix's jitter: resize to load_size, crop to crop_size, mirror).

    Validation and test both serve the test split (CycleGAN data sets have no validation split):
    resized and center-cropped, never mirrored, the same batches every epoch. Item i is
    A[i % |A|] with B[i % |B|], max(|A|, |B|) items: every test image of both domains is shown,
    paired by position only for display (the pairs mean nothing).
    """

    layout = "trainA/, trainB/, testA/ and testB/ folders of images of the two domains"
    split_settings = {
        "train": "data.train_split (the name of a split's folders, without A/B)",
        "val": "data.test_split (validation serves the test split)",
        "test": "data.test_split (the name of a split's folders, without A/B)",
    }

    def __init__(
        self,
        root: str,
        direction: Direction = "AtoB",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train_split: str = "train",
        test_split: str = "test",
        batch_size: int = 1,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(root, direction, load_size, crop_size, flip, batch_size, num_workers, seed)
        self.train_split = train_split
        self.test_split = test_split

    def load_domain(self, split: str, side: str) -> Tensor:
        """uint8 (N, 3, load_size, load_size): every image in root/<split><side>, in sorted path order."""
        name = split + side
        names = self.image_files(name, f"the {split} images of domain {side}")
        folder = self.folder(name)
        self.log_decoding(len(names), folder)
        images = torch.empty((len(names), 3, self.load_size, self.load_size), dtype=torch.uint8)
        for i, file in enumerate(names):
            images[i] = self.read(folder / file)
        return images

    def _inputs_first(self, split: str) -> tuple[Tensor, Tensor]:
        return self.inputs_first(self.load_domain(split, "A"), self.load_domain(split, "B"))

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", None) and self.train_set is None:
            self.train_set = JitteredDomains(*self._inputs_first(self.train_split), self.crop_size, self.flip)
        if stage in ("fit", "validate", "test", "predict", None) and self.test_set is None:
            self.test_set = FixedPairs(*map(self.centered, self._inputs_first(self.test_split)))
            self.val_set = self.test_set

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup('fit') or setup('validate') first"
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        assert self.test_set is not None, "call setup('test') first"
        return self._loader(self.test_set)
