"""The evaluation-data API every framework datamodule has (`split_size`, `evaluation_batches`, and
`domain_sizes` for translation data), and the init arguments every one records in `hparams`."""

import inspect

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_dgm.datamodules import (
    CIFAR10DataModule,
    CSVPointDataModule,
    DigitsDataModule,
    GaussianMixtureDataModule,
    Grid,
    ImageFolderDataModule,
    MNISTDataModule,
    Ring,
    SideBySideDataModule,
    SVHNDataModule,
    UnpairedDataModule,
)
from lightning_dgm.types import ImageBatch, ImagePair
from tests.helpers import write_domain, write_side_by_side


def one_line(error: pytest.ExceptionInfo, *parts: str) -> None:
    text = str(error.value)
    assert "\n" not in text
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"


def cat(batches) -> list[torch.Tensor]:
    """A list of batches (named tuples) -> one tensor per field."""
    return [torch.cat(field) for field in zip(*batches, strict=True)]


# -- hparams ---------------------------------------------------------------------------------------
def write_folder(root) -> None:
    for label in ("ant", "moth"):
        for i in range(3):
            image = np.random.default_rng(i).integers(0, 256, (6, 6, 3), dtype=np.uint8)
            (root / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / label / f"{i}.png")


@pytest.mark.parametrize(
    "make, given",
    [
        (MNISTDataModule, {"data_dir": "mnist", "download": False, "val_size": 16, "binarize": True, "seed": 3}),
        (CIFAR10DataModule, {"data_dir": "cifar", "batch_size": 8}),
        (SVHNDataModule, {"use_extra": True, "num_workers": 2}),
        (DigitsDataModule, {"image_size": 16, "test_size": 100}),
        (ImageFolderDataModule, {"train_dir": "images", "image_size": 8, "channels": 1, "test_size": 2}),
        (SideBySideDataModule, {"root": "facades", "direction": "BtoA", "load_size": 300, "val_split": None}),
        (UnpairedDataModule, {"root": "horse2zebra", "crop_size": 4, "load_size": 5, "test_split": "val"}),
        (GaussianMixtureDataModule, {"layout": Grid(size=3), "std": 0.1, "num_val": 10, "seed": 7}),
        (GaussianMixtureDataModule, {"layout": Ring(num_modes=4, radius=1.5)}),
        (CSVPointDataModule, {"path": "points.csv", "num_val": 5}),
    ],
)
def test_hparams_hold_every_init_argument_and_nothing_else(make, given):
    # Recorded in the shared base's __init__: the subclass's own arguments must be there, with their
    # defaults, under their own names (num_val, not the val_size PointDataModule passes it on as).
    expected = inspect.signature(make).bind(**given)
    expected.apply_defaults()
    assert dict(make(**given).hparams) == expected.arguments


# -- evaluation_batches ----------------------------------------------------------------------------
def test_image_splits_are_served_as_the_loaders_serve_them_in_index_order():
    dm = DigitsDataModule(batch_size=32, val_size=100, test_size=70)
    assert [dm.split_size(split) for split in ("train", "val", "test")] == [1797 - 170, 100, 70]  # sets itself up
    for split, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        batches = list(dm.evaluation_batches(split, batch_size=32))
        assert all(isinstance(batch, ImageBatch) for batch in batches)
        assert [len(batch.image) for batch in batches] == [len(batch.image) for batch in loader]
        for field, expected in zip(cat(batches), cat(loader), strict=True):
            assert torch.equal(field, expected)
    first = list(dm.evaluation_batches("train", 45, batch_size=20))
    assert [len(batch.image) for batch in first] == [20, 20, 5]
    image, label = cat(first)
    assert torch.equal(image, dm.train_set.__getitems__(list(range(45))).image) and image.dtype == torch.float32
    assert torch.equal(label, dm.train_set.labels[:45]) and image.min() >= -1 and image.max() <= 1
    assert list(dm.evaluation_batches("val", 0)) == []


def test_bad_requests_are_one_clear_error(tmp_path):
    dm = DigitsDataModule(val_size=10)
    with pytest.raises(ValueError) as error:
        dm.evaluation_batches("val", 11)  # raised at the call, not at the first next()
    one_line(error, "val split holds 10 items, but 11 were asked for", "at most 10", "data.val_size")
    with pytest.raises(ValueError) as error:
        dm.split_size("validation")
    one_line(error, "unknown split 'validation'", "'train', 'val', 'test'")
    write_side_by_side(tmp_path, "train", 2)
    pairs = SideBySideDataModule(str(tmp_path), load_size=4, crop_size=2, val_split=None, test_split=None)
    with pytest.raises(ValueError) as error:
        pairs.evaluation_batches("val")
    one_line(error, "SideBySideDataModule has no val split", "set data.val_split")
    with pytest.raises(ValueError) as error:
        ImageFolderDataModule(train_dir=str(tmp_path / "train")).split_size("test")
    one_line(error, "no test split", "data.test_dir")


def test_binarized_training_images_draw_from_the_generator(mnist_root):
    dm = MNISTDataModule(data_dir=str(mnist_root), download=False, val_size=16, binarize=True)

    def images(generator=None) -> torch.Tensor:
        return cat(dm.evaluation_batches("train", 50, batch_size=16, generator=generator))[0]

    fixed = images()
    assert set(fixed.unique().tolist()) == {-1.0, 1.0}
    torch.manual_seed(1)
    assert torch.equal(fixed, images())  # no generator: a fixed draw, whatever the global RNG
    drawn = images(torch.Generator().manual_seed(5))
    assert torch.equal(drawn, images(torch.Generator().manual_seed(5)))
    assert not torch.equal(drawn, fixed) and not torch.equal(drawn, images(torch.Generator().manual_seed(6)))
    # the same draws in other batch sizes: an image's pixels depend on its own seed only
    again = cat(dm.evaluation_batches("train", 50, batch_size=7, generator=torch.Generator().manual_seed(5)))[0]
    assert torch.equal(drawn, again)
    # validation images are binarized once: the generator plays no part
    val = cat(dm.evaluation_batches("val", generator=torch.Generator().manual_seed(5)))[0]
    assert torch.equal(val, dm.val_set.images.float() / 127.5 - 1)


def test_points_are_served_as_stored():
    dm = GaussianMixtureDataModule(num_train=300, num_val=40, num_test=30)
    assert [dm.split_size(split) for split in ("train", "val", "test")] == [300, 40, 30]
    points, labels = cat(dm.evaluation_batches("train", batch_size=128))
    assert points.shape == (300, 2) and torch.equal(points, dm.train_set.points)
    assert torch.equal(labels, dm.train_set.labels)


def test_unpaired_items_pair_the_domains_by_position(tmp_path):
    write_domain(tmp_path, "trainA", 2, seed=0), write_domain(tmp_path, "trainB", 4, seed=10)
    horses, zebras = write_domain(tmp_path, "testA", 3, seed=20), write_domain(tmp_path, "testB", 5, seed=30)
    dm = UnpairedDataModule(str(tmp_path), load_size=4, crop_size=4, batch_size=2)
    assert dm.domain_sizes("test") == dm.domain_sizes("val") == (3, 5) and dm.split_size("test") == 5
    batches = list(dm.evaluation_batches("val", batch_size=2))
    assert all(isinstance(batch, ImagePair) for batch in batches) and len(batches) == 3
    source, target = cat(batches)
    for i in range(5):
        assert torch.equal(source[i], horses[i % 3].float() / 127.5 - 1)
        assert torch.equal(target[i], zebras[i % 5].float() / 127.5 - 1)
    for field, expected in zip((source, target), cat(dm.val_dataloader()), strict=True):
        assert torch.equal(field, expected)
    assert dm.domain_sizes("train") == (2, 4) and dm.split_size("train") == 4
    # without a generator the training split is the evaluation view: centre crops, paired by position
    source, target = cat(dm.evaluation_batches("train"))
    assert torch.equal(source, dm.train_set.source[[0, 1, 0, 1]].float() / 127.5 - 1)
    assert torch.equal(target, dm.train_set.target.float() / 127.5 - 1)
