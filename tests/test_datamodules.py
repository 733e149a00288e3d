"""Datamodules: real on-disk formats written by the tests, clear errors, seeded order."""

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from lightning_dgm import seeding
from lightning_dgm.datamodules import DigitsDataModule, MNISTDataModule
from tests.helpers import SHARED_DATA, write_mnist


def test_mnist_reads_idx_files_exactly(tmp_path):
    arrays = write_mnist(tmp_path, n_train=40, n_test=12)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False, batch_size=8, val_size=10)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (30, 10, 12)
    assert dm.train_set.images.dtype == torch.uint8  # held as uint8, decoded per batch
    assert_close(dm.test_set.images[:, 0].numpy(), arrays["test_images"])
    assert_close(dm.test_set.labels.numpy(), arrays["test_labels"].astype(np.int64))
    # train + val together are exactly the train file, split by a seeded permutation
    both = torch.cat([dm.train_set.images, dm.val_set.images])[:, 0].numpy()
    assert sorted(map(bytes, both)) == sorted(map(bytes, arrays["train_images"]))
    batch = next(iter(dm.test_dataloader()))
    assert batch.image.shape == (8, 1, 28, 28) and batch.image.dtype == torch.float32
    assert_close(batch.image, torch.from_numpy(arrays["test_images"][:8]).float()[:, None] / 127.5 - 1)
    assert (dm.image_shape, dm.num_classes) == ((1, 28, 28), 10)


def test_mnist_split_depends_on_seed_only(tmp_path):
    write_mnist(tmp_path, n_train=40)
    splits = []
    for seed in (0, 0, 1):
        dm = MNISTDataModule(data_dir=str(tmp_path), download=False, val_size=10, seed=seed)
        dm.setup("fit")
        splits.append(dm.val_set.images)
    assert torch.equal(splits[0], splits[1]) and not torch.equal(splits[0], splits[2])


def test_mnist_missing_files_give_one_clear_error(tmp_path):
    dm = MNISTDataModule(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(FileNotFoundError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    with pytest.raises(FileNotFoundError, match="MNIST not found"):
        dm.setup("fit")


def test_mnist_corrupt_file_says_what_to_do(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"not an idx file")
    damaged = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    with pytest.raises(RuntimeError, match=f"{damaged} is not an MNIST IDX file .* delete it and download again"):
        MNISTDataModule(data_dir=str(tmp_path), download=False).setup("fit")


def test_digits_are_real_upscaled_and_in_range():
    dm = DigitsDataModule(image_size=16, batch_size=32, val_size=100, test_size=100)
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == 1797
    batch = next(iter(dm.train_dataloader()))
    assert batch.image.shape == (32, 1, 16, 16) and batch.label.shape == (32,)
    assert batch.image.min() == -1 and batch.image.max() == 1
    assert dm.image_shape == (1, 16, 16)
    with pytest.raises(ValueError, match="at least 8"):
        DigitsDataModule(image_size=4)


def test_training_order_is_seeded_by_epoch():
    dm = DigitsDataModule(batch_size=16)
    dm.setup("fit")
    loader = dm.train_dataloader()

    def first_labels(epoch):
        loader.sampler.set_epoch(epoch)  # what Lightning calls at each epoch start
        return next(iter(loader)).label

    assert torch.equal(first_labels(3), first_labels(3))
    assert not torch.equal(first_labels(3), first_labels(4))
    # a new datamodule (as in a resumed run) gives the same order for the same epoch
    fresh = DigitsDataModule(batch_size=16)
    fresh.setup("fit")
    fresh_loader = fresh.train_dataloader()
    fresh_loader.sampler.set_epoch(3)
    assert torch.equal(first_labels(3), next(iter(fresh_loader)).label)


def test_batch_larger_than_the_data_is_a_clear_error(tmp_path):
    write_mnist(tmp_path, n_train=20)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False, batch_size=64, val_size=4)
    dm.setup("fit")
    with pytest.raises(ValueError, match="lower data.batch_size"):
        dm.train_dataloader()


def binarized_epoch(epoch: int, data_dir, **options) -> dict[int, torch.Tensor]:
    """Training images of binarized MNIST as a fresh datamodule's loader serves them in `epoch`, by item."""
    dm = MNISTDataModule(data_dir=str(data_dir), download=False, val_size=16, binarize=True, **options)
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)  # what Lightning calls at each epoch start
    order = [index for index, _ in loader.sampler]  # the sampler's items carry their seeds
    return dict(zip(order, torch.cat([batch.image for batch in loader])))  # zip: drop_last's batches only


def differing(one: dict[int, torch.Tensor], two: dict[int, torch.Tensor]) -> int:
    """Items served in both whose pixels differ."""
    return sum(not torch.equal(one[item], two[item]) for item in one.keys() & two.keys())


def test_binarized_mnist_draws_new_pixels_each_epoch(mnist_root):
    first, second = binarized_epoch(0, mnist_root, batch_size=16), binarized_epoch(1, mnist_root, batch_size=16)
    assert len(first) == len(second) == 80
    assert set(torch.stack(list(first.values())).unique().tolist()) == {-1.0, 1.0}
    assert differing(first, second) == 80


def test_binarized_pixels_depend_on_seed_epoch_and_item_only(mnist_root):
    # A resumed run builds a fresh datamodule, maybe with other workers, after the model has drawn
    # from the global RNG for hours: the same (seed, epoch) must serve the same pixels.
    torch.manual_seed(0)
    served = binarized_epoch(3, mnist_root, batch_size=16)
    torch.manual_seed(1)
    assert differing(served, binarized_epoch(3, mnist_root, batch_size=16)) == 0
    torch.manual_seed(2)
    in_a_worker = binarized_epoch(3, mnist_root, batch_size=16, num_workers=1)
    assert len(in_a_worker) == 80 and differing(served, in_a_worker) == 0
    # another batch size (as another world size gives) puts items in other batches, not other pixels
    other_batches = binarized_epoch(3, mnist_root, batch_size=10)
    assert len(other_batches) == 80 and differing(served, other_batches) == 0
    # drawn by lightning_dgm.seeding's rule: item i's seed is row i of the table of (seed, BINARIZATION, epoch)
    dm = MNISTDataModule(data_dir=str(mnist_root), download=False, val_size=16, binarize=True, seed=5)
    dm.setup("fit")
    table = dm.train_set.draw_jitter(seeding.generator(5, seeding.BINARIZATION, 3)).tolist()
    by_rule = {i: dm.train_set.__getitems__([(i, table[i])]).image[0] for i in range(80)}
    assert differing(by_rule, binarized_epoch(3, mnist_root, batch_size=16, seed=5)) == 0


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="shared real MNIST not present")
def test_real_mnist_from_shared_data():
    dm = MNISTDataModule(data_dir=str(SHARED_DATA), download=False, val_size=5000)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (55000, 5000, 10000)
    counts = torch.bincount(dm.test_set.labels, minlength=10)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # the official test split
    assert dm.test_set.images.float().mean().item() == pytest.approx(33.79, abs=0.05)
