"""Base of the data sets that torchvision downloads (MNIST, CIFAR-10, SVHN): a known set of files
in one folder, fetched when missing, one clear error when they cannot be."""

from __future__ import annotations

from pathlib import Path

from lightning_dgm.datamodules.base import ImageDataModule
from lightning_dgm.errors import MissingFileError


class DownloadedImageDataModule(ImageDataModule):
    """Base for data sets that torchvision downloads: a known set of files in one folder.

    `prepare_data` fetches the missing files when `download` is true. Offline, or with download
    off, it (and `check_files`, which loaders call first) raises one FileNotFoundError naming the
    folder and the files expected there. Subclasses say where (`files_dir`), what
    (`expected_files`) and how to fetch (`fetch`).
    """

    #: Names for the error message: "MNIST not found ... copy the IDX files there".
    dataset_name = ""
    file_description = "the files"

    def __init__(
        self,
        data_dir: str = "./data",
        download: bool = True,
        batch_size: int = 64,
        val_size: int = 5000,
        num_workers: int = 0,
        seed: int = 0,
        on_device: bool = False,
    ) -> None:
        super().__init__(
            batch_size=batch_size, val_size=val_size, num_workers=num_workers, seed=seed, on_device=on_device
        )
        self.data_dir = data_dir
        self.download = download

    @property
    def files_dir(self) -> Path:
        raise NotImplementedError

    def expected_files(self) -> tuple[str, ...]:
        raise NotImplementedError

    def fetch(self, missing: list[str]) -> None:
        """Download the `missing` files into `files_dir`."""
        raise NotImplementedError

    def missing_files(self) -> list[str]:
        return [name for name in self.expected_files() if not (self.files_dir / name).is_file()]

    def _missing_error(self, why: str) -> MissingFileError:
        return MissingFileError(
            f"{self.dataset_name} {why}: expected {', '.join(self.missing_files())} in {self.files_dir}. "
            f"Run once with network access (data.download: true) or copy {self.file_description} there."
        )

    def check_files(self) -> None:
        if self.missing_files():
            raise self._missing_error("not found")

    def prepare_data(self) -> None:
        missing = self.missing_files()
        if not missing:
            return
        if not self.download:
            raise self._missing_error("not found and data.download is false")
        try:
            self.fetch(missing)
        except Exception as error:  # torchvision raises RuntimeError/URLError variants when offline
            lines = [line.strip() for line in str(error).splitlines() if "error" in line.lower()] or [repr(error)]
            raise self._missing_error(f"could not be downloaded ({lines[-1]})") from error
