"""LightningDataModules. Each owns its data facts (`image_shape` and `num_classes`), records its init
arguments in `hparams`, and serves its splits for evaluation through `split_size` / `evaluation_batches`
(see BaseDataModule)."""

from lightning_dgm.datamodules.base import BaseDataModule, ImageDataModule, TensorImageDataset
from lightning_dgm.datamodules.cifar import CIFAR10DataModule
from lightning_dgm.datamodules.digits import DigitsDataModule
from lightning_dgm.datamodules.folder import ImageFolderDataModule
from lightning_dgm.datamodules.mnist import MNISTDataModule
from lightning_dgm.datamodules.paired import FolderPairsDataModule, PairedDataModule, SideBySideDataModule
from lightning_dgm.datamodules.points import (
    CSVPointDataModule,
    GaussianMixtureDataModule,
    Grid,
    MixtureLayout,
    PointDataModule,
    Ring,
)
from lightning_dgm.datamodules.superres import SuperResolutionDataModule
from lightning_dgm.datamodules.svhn import SVHNDataModule
from lightning_dgm.datamodules.unpaired import UnpairedDataModule

__all__ = [
    "BaseDataModule",
    "CIFAR10DataModule",
    "CSVPointDataModule",
    "DigitsDataModule",
    "GaussianMixtureDataModule",
    "Grid",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MixtureLayout",
    "MNISTDataModule",
    "PointDataModule",
    "Ring",
    "SVHNDataModule",
    "SuperResolutionDataModule",
    "TensorImageDataset",
    "FolderPairsDataModule",
    "PairedDataModule",
    "SideBySideDataModule",
    "UnpairedDataModule",
]
