"""CIFAR-10 and SVHN datamodules on tiny files written in the real on-disk formats."""

import pickle

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets.cifar
import torchvision.datasets.svhn
from torch.testing import assert_close

from lightning_dgm.datamodules import CIFAR10DataModule, SVHNDataModule, cifar, svhn
from tests.helpers import write_cifar10, write_svhn


def pairs(images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> list[tuple[bytes, int]]:
    """(image bytes, label) pairs in a canonical order: compares splits that were shuffled."""
    return sorted((bytes(np.asarray(image)), int(label)) for image, label in zip(images, labels, strict=True))


def no_network(*args, **kwargs):
    raise RuntimeError("Error downloading: <urlopen error [Errno -3] Temporary failure in name resolution>")


# -- CIFAR-10 ------------------------------------------------------------------------------------
def test_cifar10_reads_pickled_batches_exactly(tmp_path):
    arrays = write_cifar10(tmp_path, n_train=53, n_test=12)  # 53: batches of unequal size
    dm = CIFAR10DataModule(data_dir=str(tmp_path), download=False, batch_size=8, val_size=10)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (43, 10, 12)
    assert dm.train_set.images.dtype == torch.uint8 and dm.train_set.images.shape[1:] == (3, 32, 32)
    assert_close(dm.test_set.images.numpy(), arrays["test_images"])
    assert_close(dm.test_set.labels.numpy(), arrays["test_labels"])
    # train + val together are exactly the five train batches, each image with its own label
    images = torch.cat([dm.train_set.images, dm.val_set.images])
    labels = torch.cat([dm.train_set.labels, dm.val_set.labels])
    assert pairs(images, labels) == pairs(arrays["train_images"], arrays["train_labels"])
    batch = next(iter(dm.test_dataloader()))
    assert batch.image.shape == (8, 3, 32, 32) and batch.image.dtype == torch.float32
    assert_close(batch.image, torch.from_numpy(arrays["test_images"][:8]).float() / 127.5 - 1)
    assert_close(batch.label, torch.from_numpy(arrays["test_labels"][:8]))
    assert (dm.image_shape, dm.num_classes) == ((3, 32, 32), 10)


def test_cifar10_fixture_is_what_torchvision_reads(tmp_path, monkeypatch):
    # torchvision checks the official md5s; with that check off, its own reader must agree with ours
    arrays = write_cifar10(tmp_path, n_train=20, n_test=5)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    reference = torchvision.datasets.CIFAR10(str(tmp_path), train=True)
    images, labels = CIFAR10DataModule(data_dir=str(tmp_path)).load_train()
    assert_close(images.permute(0, 2, 3, 1).numpy(), reference.data)  # torchvision keeps NHWC
    assert labels.tolist() == reference.targets == arrays["train_labels"].tolist()


def test_cifar10_reads_batches_repickled_by_python3(tmp_path):
    arrays = write_cifar10(tmp_path, n_test=6)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    entry = pickle.loads(path.read_bytes(), encoding="latin1")  # str keys, as torchvision loads them
    path.write_bytes(pickle.dumps(entry))
    images, labels = CIFAR10DataModule(data_dir=str(tmp_path)).load_test()
    assert_close(images.numpy(), arrays["test_images"])
    assert_close(labels.numpy(), arrays["test_labels"])


def test_cifar10_missing_files_give_one_clear_error(tmp_path):
    dm = CIFAR10DataModule(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(FileNotFoundError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "data_batch_5" in message and "test_batch" in message
    assert "network access" in message and "copy" in message
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found"):
        dm.setup("fit")


def test_cifar10_names_only_the_missing_batch(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"expected data_batch_3 in") as error:
        CIFAR10DataModule(data_dir=str(tmp_path), download=False).prepare_data()
    assert "data_batch_1" not in str(error.value)


def test_cifar10_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "CIFAR10", no_network)
    with pytest.raises(FileNotFoundError, match="could not be downloaded .*name resolution.*network access") as error:
        CIFAR10DataModule(data_dir=str(tmp_path), download=True).prepare_data()
    assert "\n" not in str(error.value)


def test_cifar10_present_files_are_not_downloaded_again(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    monkeypatch.setattr(cifar, "CIFAR10", no_network)
    CIFAR10DataModule(data_dir=str(tmp_path), download=True).prepare_data()


@pytest.mark.parametrize(
    "content",
    [b"not a pickle", pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4})],
    ids=["garbage", "wrong-shape"],
)
def test_cifar10_corrupt_batch_says_what_to_do(tmp_path, content):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(content)
    with pytest.raises(RuntimeError, match="delete the damaged file and download again") as error:
        CIFAR10DataModule(data_dir=str(tmp_path), download=False).setup("fit")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


# -- SVHN ----------------------------------------------------------------------------------------
def test_svhn_reads_mat_files_exactly_and_maps_10_to_0(tmp_path):
    arrays = write_svhn(tmp_path, n_train=40, n_test=12)
    assert (arrays["train_labels"] == 10).any()  # the file holds the digit 0 as 10
    dm = SVHNDataModule(data_dir=str(tmp_path), download=False, batch_size=8, val_size=10)
    dm.prepare_data()
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (30, 10, 12)
    assert dm.test_set.images.dtype == torch.uint8
    assert_close(dm.test_set.images.numpy(), arrays["test_images"])
    assert dm.test_set.labels.tolist() == [label % 10 for label in arrays["test_labels"].tolist()]
    images = torch.cat([dm.train_set.images, dm.val_set.images])
    labels = torch.cat([dm.train_set.labels, dm.val_set.labels])
    assert labels.min() == 0 and labels.max() <= 9
    assert pairs(images, labels) == pairs(arrays["train_images"], arrays["train_labels"] % 10)
    batch = next(iter(dm.test_dataloader()))
    assert batch.image.shape == (8, 3, 32, 32) and batch.image.dtype == torch.float32
    assert_close(batch.image, torch.from_numpy(arrays["test_images"][:8]).float() / 127.5 - 1)
    assert (dm.image_shape, dm.num_classes) == ((3, 32, 32), 10)


def test_svhn_fixture_is_what_torchvision_reads(tmp_path, monkeypatch):
    write_svhn(tmp_path, n_train=16)
    monkeypatch.setattr(torchvision.datasets.svhn, "check_integrity", lambda *args, **kwargs: True)
    reference = torchvision.datasets.SVHN(str(tmp_path), split="train")
    images, labels = SVHNDataModule(data_dir=str(tmp_path)).load_train()
    assert_close(images.numpy(), reference.data)
    assert_close(labels.numpy(), reference.labels)


def test_svhn_extra_joins_the_train_split_only_when_asked(tmp_path):
    arrays = write_svhn(tmp_path, n_train=20, n_test=6, n_extra=15)
    plain = SVHNDataModule(data_dir=str(tmp_path), download=False, val_size=5)
    plain.setup("fit")
    assert len(plain.train_set) + len(plain.val_set) == 20
    dm = SVHNDataModule(data_dir=str(tmp_path), download=False, val_size=5, use_extra=True)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (30, 5, 6)
    images = torch.cat([dm.train_set.images, dm.val_set.images])
    labels = torch.cat([dm.train_set.labels, dm.val_set.labels])
    expected_images = np.concatenate([arrays["train_images"], arrays["extra_images"]])
    expected_labels = np.concatenate([arrays["train_labels"], arrays["extra_labels"]]) % 10
    assert pairs(images, labels) == pairs(expected_images, expected_labels)


def test_svhn_missing_files_give_one_clear_error(tmp_path):
    dm = SVHNDataModule(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(FileNotFoundError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "nowhere") in message
    assert "train_32x32.mat" in message and "test_32x32.mat" in message and "extra" not in message
    assert "network access" in message and "copy" in message
    with pytest.raises(FileNotFoundError, match="SVHN not found"):
        dm.setup("fit")
    # the extra file is needed only with use_extra
    write_svhn(tmp_path)
    SVHNDataModule(data_dir=str(tmp_path), download=False).prepare_data()
    with pytest.raises(FileNotFoundError, match=r"expected extra_32x32\.mat in"):
        SVHNDataModule(data_dir=str(tmp_path), download=False, use_extra=True).prepare_data()


def test_svhn_downloads_only_missing_files_and_failure_is_one_clear_error(tmp_path, monkeypatch):
    write_svhn(tmp_path)
    fetched = []
    monkeypatch.setattr(svhn, "download_url", lambda url, root, filename, md5: fetched.append(filename))
    SVHNDataModule(data_dir=str(tmp_path), use_extra=True).prepare_data()
    assert fetched == ["extra_32x32.mat"]
    monkeypatch.setattr(svhn, "download_url", no_network)
    with pytest.raises(FileNotFoundError, match="could not be downloaded .*name resolution.*network access") as error:
        SVHNDataModule(data_dir=str(tmp_path), use_extra=True).prepare_data()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "split, damage",
    [
        ("train", lambda path: path.write_bytes(b"MATLAB 5.0 MAT-file, truncated")),
        ("test", lambda path: path.write_bytes(b"MATLAB 5.0 MAT-file, truncated")),
        ("test", lambda path: scipy.io.savemat(path, {"y": np.ones((3, 1), np.uint8)})),  # no X
    ],
    ids=["train-garbage", "test-garbage", "test-no-images"],
)
def test_svhn_corrupt_file_says_what_to_do(tmp_path, split, damage):
    write_svhn(tmp_path)
    path = tmp_path / f"{split}_32x32.mat"
    damage(path)
    with pytest.raises(RuntimeError, match="delete the damaged file and download again") as error:
        SVHNDataModule(data_dir=str(tmp_path), download=False, val_size=8).setup()
    assert str(path) in str(error.value) and "\n" not in str(error.value)
