"""LightningDataModules. Each owns its data facts: `image_shape` and `num_classes`."""

from lightning_dgm.datamodules.base import ImageBatch, ImageDataModule, TensorImageDataset
from lightning_dgm.datamodules.digits import DigitsDataModule
from lightning_dgm.datamodules.mnist import MNISTDataModule

__all__ = ["DigitsDataModule", "ImageBatch", "ImageDataModule", "MNISTDataModule", "TensorImageDataset"]
