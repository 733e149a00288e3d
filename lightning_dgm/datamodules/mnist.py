"""MNIST (LeCun et al. 1998) through torchvision's loader and on-disk IDX format."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import MNIST

from lightning_dgm import seeding
from lightning_dgm.datamodules.base import TensorImageDataset, jitter_items
from lightning_dgm.datamodules.downloaded import DownloadedImageDataModule
from lightning_dgm.errors import DataError
from lightning_dgm.types import ImageBatch

_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _check_idx_header(path: Path) -> None:
    """One line naming the file when an IDX file does not start with its magic number (2051 for
    images, 2049 for labels; big-endian), which torchvision reports as a bare AssertionError."""
    expected = 2051 if "images" in path.name else 2049
    with open(path, "rb") as file:
        header = file.read(4)
    found = int.from_bytes(header, "big") if len(header) == 4 else None
    if found != expected:
        raise DataError(
            f"{path} is not an MNIST IDX file (magic number {found}, expected {expected}); delete it and download "
            "again (--data.download true)"
        )


class DynamicallyBinarized(TensorImageDataset):
    """Each epoch, every pixel is drawn anew: on (255) with probability intensity / 255, else off (0);
    served as float32 (n, 1, 28, 28) in {-1, 1}.

    What an item is drawn with is its seed in the epoch's table, `draw_jitter(generator)`, which the
    training loader's JitterSampler draws from a generator seeded by (seed, BINARIZATION, epoch): an
    image's pixels depend on (seed, epoch, item) only, not on the batch it lands in, the workers, the
    world size, nor the model's use of the global RNG, so a resumed run sees an uninterrupted run's
    pixels. Plain indices (Lightning's sampler for overfit_batches, evaluation without a generator)
    get the fixed table `draw_jitter(None)`, seeded by `seed`.
    """

    jitter_purpose = seeding.BINARIZATION

    def __init__(self, images: Tensor, labels: Tensor, seed: int) -> None:
        super().__init__(images, labels)
        self.seed = seed
        self._fixed: Tensor | None = None

    def draw_jitter(self, generator: torch.Generator | None) -> Tensor:
        """(len(self),) int64 seeds in [0, 2**63 - 1), one per item, from `generator` (None: the fixed draw)."""
        if generator is None:
            if self._fixed is None:
                self._fixed = self.draw_jitter(seeding.generator(self.seed, seeding.BINARIZATION, "fixed"))
            return self._fixed
        return torch.randint(0, 2**63 - 1, (len(self),), generator=generator)

    def __getitems__(self, items: list) -> ImageBatch:
        index, seeds = jitter_items(self, items)
        probability = self.images[index].float() / 255
        uniform = torch.empty_like(probability)
        # One generator per batch, re-seeded per image: an image's pixels depend on its own seed only.
        # Measured at 0.35 ms per batch of 64 (0.17 ms for one draw seeded once per batch).
        generator = torch.Generator()
        for row, seed in zip(uniform, seeds.tolist()):
            row.uniform_(generator=generator.manual_seed(seed))
        return ImageBatch((uniform < probability).float() * 2 - 1, self.labels[index])

    def __getitem__(self, index: int) -> ImageBatch:
        batch = self.__getitems__([index])
        return ImageBatch(batch.image[0], batch.label[0])


def binarize(images: Tensor, seed: int) -> Tensor:
    """One fixed stochastic binarization (uint8 0 or 255) of uint8 images, seeded."""
    probability = images.float() / 255
    on = torch.rand(probability.shape, generator=torch.Generator().manual_seed(seed)) < probability
    return on.to(torch.uint8) * 255


class MNISTDataModule(DownloadedImageDataModule):
    """28x28 grayscale digits, 60,000 train (minus `val_size` for validation) and 10,000 test.

    Files live in `<data_dir>/MNIST/raw/` (torchvision's layout). `prepare_data` downloads them
    when they are missing and `download` is true; offline and missing is one clear error.
    Each split is read once into a uint8 tensor.

    `binarize=True` serves binary images (pixels -1 or 1), as likelihood papers use MNIST (Kingma
    & Welling 2014; Burda et al. 2016): training images are binarized dynamically (new pixels
    every epoch, so the model never fits one fixed draw; seeded per (seed, epoch), see
    DynamicallyBinarized); validation and test images once, with a fixed seed, so evaluations compare.
    """

    dataset_name = "MNIST"
    file_description = "the IDX files"
    image_shape = (1, 28, 28)
    num_classes = 10

    def __init__(
        self,
        data_dir: str = "./data",
        download: bool = True,
        batch_size: int = 64,
        val_size: int = 5000,
        num_workers: int = 0,
        seed: int = 0,
        binarize: bool = False,
        on_device: bool = False,
    ) -> None:
        super().__init__(data_dir, download, batch_size, val_size, num_workers, seed, on_device)
        self.binarize = binarize

    @property
    def files_dir(self) -> Path:
        return Path(self.data_dir).expanduser().resolve() / "MNIST" / "raw"

    def expected_files(self) -> tuple[str, ...]:
        return _FILES

    def fetch(self, missing: list[str]) -> None:
        for train in (True, False):
            MNIST(self.data_dir, train=train, download=True)

    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        self.check_files()
        for name in _FILES[:2] if train else _FILES[2:]:
            _check_idx_header(self.files_dir / name)
        try:
            dataset = MNIST(self.data_dir, train=train, download=False)
        except Exception as error:
            raise DataError(
                f"could not read MNIST from {self.files_dir} ({error}); delete the damaged files and download again"
            ) from error
        return dataset.data.unsqueeze(1), dataset.targets

    def setup(self, stage: str | None = None) -> None:
        fresh = self.train_set is None, self.test_set is None
        super().setup(stage)
        if not self.binarize:
            return
        if fresh[0] and self.train_set is not None:
            self.train_set = DynamicallyBinarized(self.train_set.images, self.train_set.labels, self.seed)
            self.val_set = TensorImageDataset(binarize(self.val_set.images, self.seed + 1), self.val_set.labels)
        if fresh[1] and self.test_set is not None:
            # Independent of `seed`, so test numbers compare across runs.
            self.test_set = TensorImageDataset(binarize(self.test_set.images, 2024), self.test_set.labels)

    def load_train(self) -> tuple[Tensor, Tensor]:
        return self._load(train=True)

    def load_test(self) -> tuple[Tensor, Tensor]:
        return self._load(train=False)
