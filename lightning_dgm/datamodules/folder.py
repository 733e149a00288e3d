"""Images in folders (torchvision's ImageFolder layout, or one folder of images), optionally inside a .tar.gz."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image
from torch import Tensor
from torchvision.datasets.folder import IMG_EXTENSIONS

from lightning_dgm.datamodules.archive import ARCHIVE_SUFFIXES, extract
from lightning_dgm.datamodules.base import ImageDataModule, one_line
from lightning_dgm.errors import ConfigError, DataError, MissingFileError

IMAGE_EXTENSIONS = IMG_EXTENSIONS  # torchvision's: .jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp
_CACHE_VERSION = 1  # part of every cache key: bump it when decoding changes, so old caches are not served
LOOKED_FOR = ", ".join(f"*{extension}" for extension in IMAGE_EXTENSIONS)  # for "no images (...)" errors


def _visible(name: str) -> bool:
    # Hidden entries are skipped: macOS "._name.jpg" forks and ".ipynb_checkpoints" are not data.
    return not name.startswith(".")


def _is_image(name: str) -> bool:
    return _visible(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def images_below(top: str) -> list[str]:
    """Paths of the visible images in folder `top` and its visible subfolders, relative to `top`
    ("a.png", "sub/b.png"), unsorted."""
    # Plain strings, not Paths: pathlib's parsing and comparisons cost seconds on 60,000 files.
    found = []
    for parent, folders, files in os.walk(top, followlinks=True):
        folders[:] = [child for child in folders if _visible(child)]
        prefix = parent[len(top) :].lstrip(os.sep)  # "" at top, else "<subfolders>"
        found += [os.path.join(prefix, file) for file in files if _is_image(file)]
    return found


def find_classes(folder: Path) -> list[str] | None:
    """Sorted names of the class subfolders of `folder` (label i = i-th name), or None when the
    images lie directly in `folder`. Reads folder names only."""
    if not folder.is_dir():
        raise MissingFileError(f"image folder {folder} not found; check data.train_dir / data.test_dir")
    entries = list(os.scandir(folder))
    classes = sorted(entry.name for entry in entries if entry.is_dir() and _visible(entry.name))
    loose = sorted(entry.name for entry in entries if entry.is_file() and _is_image(entry.name))
    if classes and loose:
        raise ConfigError(
            f"{folder} holds both class folders ({', '.join(classes[:3])}, ...) and images ({loose[0]}, ...); "
            f"move the images into class folders, or keep only images there"
        )
    if not classes and not loose:
        raise MissingFileError(f"no images ({LOOKED_FOR}) found in {folder}; add images or class folders of images")
    return classes or None


def find_images(folder: Path, classes: list[str] | None) -> list[tuple[str, int]]:
    """(path relative to `folder`, label) pairs in a fixed order: class by class, sorted by path within each."""
    if classes is None:
        return [(name, 0) for name in sorted(e.name for e in os.scandir(folder) if e.is_file() and _is_image(e.name))]
    images = []
    for label, name in enumerate(classes):
        found = [os.path.join(name, path) for path in images_below(os.path.join(folder, name))]
        if not found:
            raise MissingFileError(
                f"no images ({LOOKED_FOR}) found in class folder {folder / name}; add images or remove the folder"
            )
        images += [(path, label) for path in sorted(found)]
    return images


def read_image(path: str, channels: int = 3) -> Tensor:
    """One image file -> uint8 (channels, H, W) at the file's own size: RGB for channels=3 (grayscale
    is repeated), ITU-R 601-2 luma for channels=1 (as PIL's "L"); palettes are looked up, 16-bit
    grayscale is scaled to 8 bits, alpha is dropped. Raises a one-line RuntimeError naming the file
    when it cannot be read.
    """
    try:
        with Image.open(path) as image:
            if image.mode in ("P", "PA"):  # via RGBA: PIL warns on palettes with a transparent entry
                image = image.convert("RGBA")
            elif image.mode.startswith("I"):  # 16-bit grayscale: PIL's convert clips at 255 instead of scaling
                image = Image.fromarray((np.asarray(image, float).clip(0, 65535) / 257).round().astype(np.uint8))
            pixels = np.array(image.convert("L" if channels == 1 else "RGB"))
    except Exception as error:  # PIL raises OSError, ValueError, SyntaxError... per format
        message = f"could not read image {path} ({one_line(error)}); delete or replace the file"
        raise DataError(message) from error
    return torch.from_numpy(pixels).unsqueeze(0) if pixels.ndim == 2 else torch.from_numpy(pixels).permute(2, 0, 1)


def read_cache(cache: Path) -> dict | None:
    """A decoded-image cache written by `write_cache`, or None if there is none yet."""
    if not cache.is_file():
        return None
    try:
        return torch.load(cache, weights_only=True)
    except Exception as error:
        message = f"could not read decoded-image cache {cache} ({one_line(error)}); delete it to decode again"
        raise DataError(message) from error


def write_cache(cache: Path, entry: dict) -> None:
    """Saves `entry` (tensors, lists of str) as `cache`, whole or not at all: readers never see half of it."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.{os.getpid()}")
    torch.save(entry, partial)
    os.replace(partial, cache)


def _describe(classes: list[str] | None) -> str:
    return "no class folders" if classes is None else f"class folders {', '.join(classes)}"


class ImageFolderDataModule(ImageDataModule):
    """Images from folders: `<dir>/<class>/**/<image>` (labels 0..K-1 by sorted folder name, as
    torchvision's ImageFolder) or `<dir>/<image>` (no classes: every label 0, `num_classes` None),
    images being JPEG, PNG and the other files torchvision's ImageFolder reads (IMAGE_EXTENSIONS).
    Hidden files and folders are skipped.

    Splits: `train_dir` (minus `val_size` for validation) and `test_dir`. Without `test_dir`,
    `test_size` images of `train_dir` are held out as the test split by a fixed permutation
    (seeded independently of `seed`, so test numbers compare across runs).

    Every image is converted to RGB (`channels=3`) or grayscale (`channels=1`, ITU-R 601-2 luma,
    as PIL's "L") - alpha is dropped, palettes are looked up, 16-bit grayscale is scaled to 8 bits -
    then resized so its shorter side is `image_size` (bilinear, antialiased) and center-cropped to
    `image_size` x `image_size`. Batches are `ImageBatch` of float (N, C, S, S) in [-1, 1].

    Archives: with `archive` set (a .tar.gz, .tgz, .tar.bz2, .tar.xz or .tar file), it is
    extracted once to `<data_dir>/extracted/<archive name without suffix>/`, and `train_dir` and
    `test_dir` are paths inside it. A marker file written after the last member records the
    archive's path, size and modification time; a missing or different marker extracts again.
    E.g. archive `cifar10-jpeg.tar.gz`, train_dir `cifar10-jpeg/train`, test_dir `cifar10-jpeg/test`.

    Caches: each folder is decoded once, into `<data_dir>/decoded/<...>-<hash>.pt` (uint8 images
    and int64 labels), the hash covering the folder, `image_size`, `channels` and every file's
    path, size and modification time; later runs load that file instead of decoding. A changed
    file gets a new cache file (old ones can be deleted at any time). `prepare_data` extracts and
    decodes, so under DDP one process per node does the work and the others load the cache.
    """

    split_settings = {"val": "data.val_size", "test": "data.test_dir or data.test_size"}

    def __init__(
        self,
        train_dir: str,
        test_dir: str | None = None,
        archive: str | None = None,
        data_dir: str = "./data",
        image_size: int = 32,
        channels: int = 3,
        batch_size: int = 64,
        val_size: int = 0,
        test_size: int = 0,
        num_workers: int = 0,
        seed: int = 0,
        on_device: bool = False,
    ) -> None:
        super().__init__(
            batch_size=batch_size, val_size=val_size, num_workers=num_workers, seed=seed, on_device=on_device
        )
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if image_size < 1:
            raise ConfigError(f"image_size must be at least 1, got {image_size}")
        if test_size < 0 or (test_dir is not None and test_size != 0):
            raise ConfigError(
                f"test_size ({test_size}) is how many train_dir images to hold out when there is no test_dir: "
                f"set test_dir or test_size, not both, and never below 0"
            )
        if archive is not None and not archive.endswith(ARCHIVE_SUFFIXES):
            raise ConfigError(
                f"archive {archive} is not a {'/'.join(ARCHIVE_SUFFIXES)} file; unpack it yourself and set "
                f"data.train_dir to the folder instead"
            )
        if archive is not None and any(Path(d).is_absolute() for d in (train_dir, test_dir) if d is not None):
            raise ConfigError("with data.archive set, train_dir and test_dir are paths inside it: make them relative")
        self.train_dir, self.test_dir, self.archive, self.data_dir = train_dir, test_dir, archive, data_dir
        self.image_size, self.channels, self.test_size = image_size, channels, test_size

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int | None:
        classes = find_classes(self._folder(self.train_dir))
        return None if classes is None else len(classes)

    # -- where the files are ----------------------------------------------------------------
    @property
    def cache_dir(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    def _folder(self, name: str) -> Path:
        if self.archive is None:
            return Path(name).expanduser().resolve()
        root = extract(Path(self.archive), self.cache_dir / "extracted")
        folder = (root / name).resolve()
        if not folder.is_relative_to(root):
            raise ConfigError(f"{name} points outside archive {self.archive}; make it a path inside the archive")
        if not folder.is_dir():
            inside = ", ".join(sorted(filter(_visible, os.listdir(root)))) or "nothing"
            raise MissingFileError(
                f"{name} not found in archive {self.archive} (its top level holds {inside}); "
                f"fix data.train_dir / data.test_dir"
            )
        return folder

    # -- decoding ---------------------------------------------------------------------------
    def _decode(self, path: str) -> Tensor:
        """One file -> uint8 (C, image_size, image_size)."""
        image = read_image(path, self.channels)
        image = TF.resize(image, [self.image_size], antialias=True)  # shorter side -> image_size
        return TF.center_crop(image, [self.image_size, self.image_size])

    def _cache_file(self, folder: Path, files: list[tuple[str, int]]) -> Path:
        key = hashlib.sha256(f"{_CACHE_VERSION} {folder}\n{self.image_size} {self.channels}\n".encode())
        for path, label in files:
            stat = os.stat(os.path.join(folder, path))
            key.update(f"{path}\t{label}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        name = f"{folder.parent.name}-{folder.name}-{self.image_size}px-{self.channels}ch-{key.hexdigest()[:16]}.pt"
        return self.cache_dir / "decoded" / name

    def _decoded(self, folder: Path) -> tuple[Tensor, Tensor]:
        """uint8 images (N, C, S, S) and int64 labels (N,) of every image in `folder`, from the cache if any."""
        files = find_images(folder, find_classes(folder))
        cache = self._cache_file(folder, files)
        if (entry := read_cache(cache)) is not None:
            return entry["images"], entry["labels"]
        rank_zero_info(f"Decoding {len(files)} images from {folder} (once; cached in {cache})")
        images = torch.empty((len(files), *self.image_shape), dtype=torch.uint8)
        # A plain loop: for small images PIL's per-file Python work holds the GIL, and a thread
        # pool measured no faster on 2 cores (60,000 32x32 JPEGs: about 10 s).
        for i, (path, _) in enumerate(files):
            images[i] = self._decode(os.path.join(folder, path))
        labels = torch.tensor([label for _, label in files], dtype=torch.int64)
        write_cache(cache, {"images": images, "labels": labels})
        return images, labels

    # -- splits -----------------------------------------------------------------------------
    def _check_classes(self) -> None:
        train, test = self._folder(self.train_dir), self._folder(self.test_dir)
        train_classes, test_classes = find_classes(train), find_classes(test)
        if train_classes != test_classes:
            raise ConfigError(
                f"class folders differ between train_dir {train} ({_describe(train_classes)}) and test_dir {test} "
                f"({_describe(test_classes)}); give both the same class folders"
            )

    def _held_out(self) -> tuple[Tensor, Tensor, int]:
        images, labels = self._decoded(self._folder(self.train_dir))
        if not 0 <= self.test_size < len(images):
            raise ConfigError(
                f"test_size must be in [0, {len(images)}) for {len(images)} images in train_dir, got {self.test_size}"
            )
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(2024))
        return images[order], labels[order], self.test_size

    def prepare_data(self) -> None:
        if self.test_dir is not None:
            self._check_classes()
            self._decoded(self._folder(self.test_dir))
        self._decoded(self._folder(self.train_dir))

    def load_train(self) -> tuple[Tensor, Tensor]:
        if self.test_dir is not None:
            self._check_classes()
            return self._decoded(self._folder(self.train_dir))
        images, labels, n_test = self._held_out()
        return images[n_test:], labels[n_test:]

    def load_test(self) -> tuple[Tensor, Tensor]:
        if self.test_dir is not None:
            self._check_classes()
            return self._decoded(self._folder(self.test_dir))
        if self.test_size == 0:
            raise ConfigError("no test split: set data.test_dir, or data.test_size to hold out images of train_dir")
        images, labels, n_test = self._held_out()
        return images[:n_test], labels[:n_test]
