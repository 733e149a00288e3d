"""Tar archives of image folders, extracted once into a cache folder, safely under concurrent runs."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from filelock import FileLock
from lightning.pytorch.utilities import rank_zero_info

from lightning_dgm.datamodules.base import one_line
from lightning_dgm.errors import ConfigError, DataError, MissingFileError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")
_MARKER = ".extracted"  # written into an extracted archive's folder once every file is out


def extract(archive: Path, into: Path) -> Path:
    """The folder `into/<archive name without suffix>` holding `archive`'s files, extracted now unless
    an earlier extraction of this very archive is complete.

    A marker file written after the last member records the archive's path, size and modification
    time; a missing or different marker extracts again. One clear error when the archive is missing
    or broken.
    """
    archive = archive.expanduser().resolve()
    if not archive.is_file():
        raise MissingFileError(
            f"archive {archive} not found; set data.archive to an existing .tar.gz of image folders, "
            f"or leave it unset and point data.train_dir at an unpacked folder"
        )
    suffix = next((suffix for suffix in ARCHIVE_SUFFIXES if archive.name.endswith(suffix)), None)
    if suffix is None:
        raise ConfigError(f"archive {archive} is not a {'/'.join(ARCHIVE_SUFFIXES)} file")
    target = into / archive.name[: -len(suffix)]  # cifar10-jpeg.tar.gz -> cifar10-jpeg
    stat = archive.stat()
    stamp = f"{archive} {stat.st_size} {stat.st_mtime_ns}\n"
    marker = target / _MARKER

    def done() -> bool:
        return marker.is_file() and marker.read_text() == stamp

    if done():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # One extraction at a time (every DDP process and every concurrent run reads num_classes):
    # the others wait here, then find the marker and return.
    with FileLock(target.parent / f".{target.name}.lock"):
        if done():
            return target
        rank_zero_info(f"Extracting {archive} to {target}")
        # Extract beside the target and rename into place: an interrupted extraction never
        # leaves a half-full folder under the target's name.
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        partial.chmod(0o755)  # mkdtemp makes it private; the extracted folder is ordinary data
        try:
            try:
                with tarfile.open(archive) as tar:
                    # "data" refuses members that escape the folder; Pythons before 3.10.12 / 3.11.4 lack filters
                    tar.extractall(partial, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
            except (tarfile.TarError, OSError, EOFError) as error:
                message = f"could not extract {archive} ({one_line(error)}); replace it with a complete archive"
                raise DataError(message) from error
            (partial / _MARKER).write_text(stamp)
            if target.exists():  # extracted from an older version of the archive
                shutil.rmtree(target)
            os.rename(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return target
