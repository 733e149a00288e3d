"""ImageFolderDataModule on tiny JPEG / PNG folders and .tar.gz archives written by the tests."""

import io
import multiprocessing
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch.testing import assert_close

from lightning_dgm.datamodules import ImageFolderDataModule
from lightning_dgm.types import ImageBatch
from tests.helpers import CIFAR10_CLASSES, REPO, SHARED_DATA, run_cli

CIFAR10_JPEG = SHARED_DATA / "cifar10-jpeg.tar.gz"


def random_image(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(path: Path, image: Image.Image | np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(image) if isinstance(image, np.ndarray) else image).save(path, **kwargs)
    return path


def chw(array: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) uint8 -> (C, H, W), as the datamodule stores images."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)


def pairs(images: torch.Tensor, labels: torch.Tensor) -> list[tuple[bytes, int]]:
    """(image bytes, label) in a canonical order: compares splits that were shuffled."""
    return sorted((image.numpy().tobytes(), int(label)) for image, label in zip(images, labels, strict=True))


def in_order(folder: Path, tmp_path: Path, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of `folder`, class by class and sorted by path (a test_dir split is served unshuffled)."""
    dm = ImageFolderDataModule(train_dir=str(folder), test_dir=str(folder), data_dir=str(tmp_path / "data"), **kwargs)
    return dm.load_test()


def one_line_error(error: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(error.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# -- layout and labels -----------------------------------------------------------------------------
def test_class_folders_are_labelled_by_sorted_name(tmp_path):
    written = []  # (image, label) with labels ant 0, moth 1, zebra 2
    for name, label, count in (("zebra", 2, 1), ("ant", 0, 2), ("moth", 1, 3)):  # created out of order
        for i in range(count):
            image = random_image(10 * label + i, (8, 8, 3))
            # nested folders belong to their class folder; sizes of 8 need no resizing, so pixels are exact
            save(tmp_path / "images" / name / ("deep/er" if i == 2 else "") / f"{i}.png", image)
            written.append((chw(image), label))
    (tmp_path / "images" / "ant" / "notes.txt").write_text("not an image")
    save(tmp_path / "images" / "ant" / ".hidden.png", random_image(99, (8, 8, 3)))  # e.g. macOS "._" files
    dm = ImageFolderDataModule(train_dir=str(tmp_path / "images"), data_dir=str(tmp_path / "data"), image_size=8)
    assert (dm.num_classes, dm.image_shape) == (3, (3, 8, 8))
    dm.setup("fit")
    assert len(dm.train_set) == 6
    expected_images, expected_labels = torch.stack([i for i, _ in written]), torch.tensor([lab for _, lab in written])
    assert pairs(dm.train_set.images, dm.train_set.labels) == pairs(expected_images, expected_labels)
    images, labels = in_order(tmp_path / "images", tmp_path, image_size=8)
    assert labels.tolist() == [0, 0, 1, 1, 1, 2]
    assert_close(images[4], written[5][0])  # moth/deep/er/2.png sorts after moth/0.png and moth/1.png


def test_class_less_folder_has_no_classes_and_labels_zero(tmp_path):
    for i in range(5):
        save(tmp_path / "faces" / f"{i}.jpg", random_image(i, (16, 16, 3)))
    dm = ImageFolderDataModule(train_dir=str(tmp_path / "faces"), data_dir=str(tmp_path / "data"), image_size=16)
    assert dm.num_classes is None
    dm.setup("fit")
    assert len(dm.train_set) == 5 and dm.train_set.labels.tolist() == [0] * 5
    with pytest.raises(ValueError) as error:
        dm.setup("test")
    one_line_error(error, "no test split", "data.test_dir", "data.test_size")


def test_held_out_test_split_is_fixed_and_disjoint(tmp_path):
    for i in range(12):
        save(tmp_path / "images" / ("a" if i % 2 else "b") / f"{i}.png", random_image(i, (4, 4, 3)))
    splits = []
    for seed in (0, 1):
        dm = ImageFolderDataModule(
            train_dir=str(tmp_path / "images"),
            data_dir=str(tmp_path / "data"),
            image_size=4,
            val_size=2,
            test_size=3,
            seed=seed,
        )
        dm.setup()
        assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (7, 2, 3)
        splits.append(dm)
    every = pairs(*in_order(tmp_path / "images", tmp_path, image_size=4))
    for dm in splits:
        sets = (dm.train_set, dm.val_set, dm.test_set)
        assert pairs(torch.cat([s.images for s in sets]), torch.cat([s.labels for s in sets])) == every
    # the test split does not depend on `seed` (test numbers compare across runs); validation does
    assert pairs(splits[0].test_set.images, splits[0].test_set.labels) == pairs(
        splits[1].test_set.images, splits[1].test_set.labels
    )
    assert not torch.equal(splits[0].val_set.images, splits[1].val_set.images)


def test_batches_are_image_batches_in_signed_unit_range(tmp_path):
    for i in range(10):
        save(tmp_path / "train" / ("cat" if i < 6 else "dog") / f"{i}.png", random_image(i, (6, 6, 3)))
        save(tmp_path / "test" / ("cat" if i < 5 else "dog") / f"{i}.png", random_image(100 + i, (6, 6, 3)))
    dm = ImageFolderDataModule(
        train_dir=str(tmp_path / "train"),
        test_dir=str(tmp_path / "test"),
        data_dir=str(tmp_path / "data"),
        image_size=6,
        batch_size=4,
    )
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    batches = list(dm.train_dataloader())
    assert len(batches) == 2  # 10 images, batches of 4, last partial batch dropped
    for batch in batches:
        assert isinstance(batch, ImageBatch)
        assert batch.image.shape == (4, *dm.image_shape) and batch.image.dtype == torch.float32
        assert batch.label.dtype == torch.int64 and set(batch.label.tolist()) <= {0, 1}
        assert -1 <= batch.image.min() and batch.image.max() <= 1
    test = next(iter(dm.test_dataloader()))
    assert_close(test.image[0], torch.from_numpy(random_image(100, (6, 6, 3))).permute(2, 0, 1).float() / 127.5 - 1)
    assert test.label.tolist() == [0, 0, 0, 0]


# -- decoding: modes, resize, crop ---------------------------------------------------------------------
def modes_folder(root: Path) -> dict[str, np.ndarray]:
    """One PNG per PIL mode; returns each file's pixels as RGB (alpha dropped, palette looked up)."""
    rgb = random_image(1, (5, 5, 3))
    gray = random_image(2, (5, 5))
    palette = random_image(3, (4, 3))  # 4 colours
    indices = random_image(4, (5, 5)) % 4
    paletted = Image.fromarray(indices, mode="P")
    paletted.putpalette(palette.flatten().tolist())
    sixteen = random_image(5, (5, 5)).astype(np.uint16) * 257 + 128  # ~8-bit values in a 16-bit file
    save(root / "a_rgb.png", rgb)
    save(root / "b_gray.png", gray)
    save(root / "c_rgba.png", np.dstack([rgb, random_image(6, (5, 5))]))
    save(root / "d_palette.png", paletted, transparency=0)  # a transparent entry: PIL makes this "P" + tRNS
    save(root / "e_gray16.png", sixteen)
    assert Image.open(root / "e_gray16.png").mode.startswith("I;16")
    return {
        "rgb": rgb,
        "gray": np.dstack([gray] * 3),
        "rgba": rgb,
        "palette": palette[indices],
        "gray16": np.dstack([np.round(sixteen / 257).astype(np.uint8)] * 3),
    }


def test_modes_converted_to_rgb(tmp_path):
    expected = modes_folder(tmp_path / "modes")
    images, labels = in_order(tmp_path / "modes", tmp_path, image_size=5, channels=3)
    assert images.shape == (5, 3, 5, 5) and labels.tolist() == [0] * 5
    for image, (name, pixels) in zip(images, expected.items(), strict=True):
        assert_close(image, chw(pixels), msg=name)


def test_modes_converted_to_grayscale(tmp_path):
    expected = modes_folder(tmp_path / "modes")
    images, _ = in_order(tmp_path / "modes", tmp_path, image_size=5, channels=1)
    assert images.shape == (5, 1, 5, 5)
    for image, (name, pixels) in zip(images, expected.items(), strict=True):
        luma = pixels.astype(float) @ np.array([0.299, 0.587, 0.114])  # ITU-R 601-2; PIL rounds in fixed point
        assert_close(image[0].float(), torch.from_numpy(luma).float(), atol=1, rtol=0, msg=name)
    assert_close(images[1, 0], torch.from_numpy(expected["gray"][..., 0]))  # gray stays exactly gray


def test_resize_shorter_side_then_center_crop(tmp_path):
    wide, tall, big = random_image(1, (8, 14, 3)), random_image(2, (14, 8, 3)), random_image(3, (12, 20, 3))
    save(tmp_path / "sizes" / "a_wide.png", wide)
    save(tmp_path / "sizes" / "b_tall.png", tall)
    save(tmp_path / "sizes" / "c_big.png", big)
    save(tmp_path / "sizes" / "d_flat.png", np.full((30, 17, 3), (7, 99, 201), dtype=np.uint8))
    images, _ = in_order(tmp_path / "sizes", tmp_path, image_size=8)
    assert images.shape == (4, 3, 8, 8)
    assert_close(images[0], chw(wide[:, 3:11]))  # shorter side already 8: a pure center crop
    assert_close(images[1], chw(tall[3:11]))
    reference = TF.center_crop(TF.resize(chw(big), [8], antialias=True), [8, 8])  # 12x20 -> 8x13 -> 8x8
    assert_close(images[2], reference)
    assert_close(images[3], chw(np.full((8, 8, 3), (7, 99, 201), dtype=np.uint8)))  # a flat image stays flat


def test_jpeg_decoded_as_pil_decodes_it(tmp_path):
    rows, cols = np.meshgrid(np.arange(32) * 8, np.arange(32) * 4, indexing="ij")
    smooth = np.dstack([rows, cols, np.full((32, 32), 90)])
    jpeg = save(tmp_path / "jpegs" / "a.jpg", smooth.astype(np.uint8), quality=75)
    gray = save(tmp_path / "jpegs" / "b.jpeg", random_image(7, (32, 32)), quality=90)
    images, _ = in_order(tmp_path / "jpegs", tmp_path, image_size=32)
    assert_close(images[0], chw(np.array(Image.open(jpeg).convert("RGB"))))
    assert (images[0].float() - chw(smooth).float()).abs().mean() < 3  # lossy, but the same picture
    assert_close(images[1], chw(np.array(Image.open(gray)))[[0, 0, 0]])


# -- decode cache ------------------------------------------------------------------------------------
def test_each_folder_is_decoded_once_into_a_cache(tmp_path):
    for i in range(4):
        save(tmp_path / "images" / "x" / f"{i}.png", random_image(i, (6, 6, 3)))

    def loaded(**kwargs) -> torch.Tensor:
        dm = ImageFolderDataModule(train_dir=str(tmp_path / "images"), data_dir=str(tmp_path / "data"), **kwargs)
        dm.prepare_data()
        dm.setup("fit")
        return dm.train_set.images

    first = loaded(image_size=6)
    caches = list((tmp_path / "data" / "decoded").glob("*.pt"))
    assert len(caches) == 1
    # Tamper with the cache: a datamodule that serves the tampered pixels read the cache, not the PNGs.
    entry = torch.load(caches[0], weights_only=True)
    torch.save({"images": 255 - entry["images"], "labels": entry["labels"]}, caches[0])
    assert_close(loaded(image_size=6), 255 - first)
    # A rewritten file changes the key: decoded afresh, into a second cache file.
    changed = tmp_path / "images" / "x" / "0.png"
    save(changed, np.zeros((6, 6, 3), dtype=np.uint8))
    os.utime(changed, ns=(1, 1))  # a distinct mtime, even on coarse-grained file systems
    again = loaded(image_size=6)
    assert len(list((tmp_path / "data" / "decoded").glob("*.pt"))) == 2
    assert (again == 0).flatten(1).all(1).sum() == 1 and (again == 255 - first).flatten(1).all(1).sum() == 0
    loaded(image_size=4)  # so does another image size
    assert len(list((tmp_path / "data" / "decoded").glob("*.pt"))) == 3


# -- archives ------------------------------------------------------------------------------------------
def write_archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def jpeg_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=75)
    return buffer.getvalue()


def cifar_like(classes: tuple[str, ...], per_class: int, seed: int = 0) -> dict[str, bytes]:
    """cifar10-jpeg/{train,test}/<class>/NNNN.jpg, as the shared CIFAR-10 JPEG copy is laid out."""
    return {
        f"cifar10-jpeg/{split}/{name}/{i:04d}.jpg": jpeg_bytes(random_image(seed + 100 * c + i, (32, 32, 3)))
        for split in ("train", "test")
        for c, name in enumerate(classes)
        for i in range(per_class)
    }


def archive_module(archive: Path, tmp_path: Path, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(
        train_dir="cifar10-jpeg/train",
        test_dir="cifar10-jpeg/test",
        archive=str(archive),
        data_dir=str(tmp_path / "data"),
        batch_size=2,
        **kwargs,
    )


def test_archive_is_extracted_once_and_again_when_it_changes(tmp_path):
    archive = write_archive(tmp_path / "cifar10-jpeg.tar.gz", cifar_like(("cat", "dog"), per_class=3))
    dm = archive_module(archive, tmp_path)
    assert dm.num_classes == 2
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.test_set)) == (6, 6)
    extracted = tmp_path / "data" / "extracted" / "cifar10-jpeg"
    assert (extracted / ".extracted").is_file()
    sentinel = extracted / "cifar10-jpeg" / "sentinel"
    sentinel.write_text("left by the test")
    # Same size and mtime (what the marker records) but unreadable: only a run that does not open it passes.
    stat, good = archive.stat(), archive.read_bytes()
    archive.write_bytes(b"\x1f\x8b" + b"x" * (stat.st_size - 2))  # a gzip header, then garbage
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    archive_module(archive, tmp_path).prepare_data()
    assert sentinel.exists()  # marker matches: not extracted again
    archive.write_bytes(good)
    write_archive(archive, cifar_like(("cat", "dog", "eel"), per_class=2, seed=7))
    os.utime(archive, ns=(1, 1))
    dm = archive_module(archive, tmp_path)
    assert dm.num_classes == 3 and not sentinel.exists()  # the archive changed: extracted afresh
    dm.setup("test")
    assert dm.test_set.labels.tolist() == [0, 0, 1, 1, 2, 2]
    (extracted / ".extracted").unlink()  # as an interrupted extraction leaves it
    sentinel.write_text("left by the test")
    archive_module(archive, tmp_path).prepare_data()
    assert not sentinel.exists() and (extracted / ".extracted").is_file()
    assert not [p for p in extracted.parent.iterdir() if p.is_dir() and p.name.startswith(".")]  # no partial folders


def _classes_of(archive: str, data_dir: str) -> int:
    return ImageFolderDataModule(train_dir="cifar10-jpeg/train", archive=archive, data_dir=data_dir).num_classes


def test_concurrent_runs_replace_a_stale_extraction_once(tmp_path):
    # Two runs started together after the archive changed (every DDP process reads num_classes)
    # both used to delete the stale folder at once, and one crashed on a file the other removed.
    archive = write_archive(tmp_path / "cifar10-jpeg.tar.gz", cifar_like(("cat", "dog"), per_class=2))
    data_dir = str(tmp_path / "data")
    assert _classes_of(str(archive), data_dir) == 2
    stale = tmp_path / "data" / "extracted" / "cifar10-jpeg" / "cifar10-jpeg" / "train"
    for i in range(5000):  # a stale folder as big as a real data set takes a while to delete
        (stale / "cat" / f"{i}.txt").touch()
    write_archive(archive, cifar_like(("cat", "dog", "eel"), per_class=2, seed=3))
    with multiprocessing.get_context("fork").Pool(4) as pool:
        assert pool.starmap(_classes_of, [(str(archive), data_dir)] * 4) == [3, 3, 3, 3]
    assert sorted(os.listdir(stale)) == ["cat", "dog", "eel"] and len(os.listdir(stale / "cat")) == 2


@pytest.mark.skipif(not CIFAR10_JPEG.is_file(), reason="shared CIFAR-10 JPEG copy not present")
def test_real_cifar10_jpeg_archive(tmp_path):
    # Extracting and decoding all 60,000 files takes about a minute on 2 cores, so this keeps the real
    # archive's layout and real JPEG files but repacks 5 test images per class, a few hundred ms.
    wanted, layout = {}, set()
    with tarfile.open(CIFAR10_JPEG) as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile():
                layout.add((parts[0], parts[1], len(parts), parts[3][4:]))
                if parts[1] == "test" and int(parts[3][:4]) < 5:
                    wanted[member.name] = tar.extractfile(member).read()
            if parts[1:2] == ["train"]:  # the test split comes first in the archive
                break
    assert layout == {("cifar10-jpeg", "test", 4, ".jpg")} and len(wanted) == 50
    # images 0000-0002 of each class become the train split, 0003-0004 the test split
    split = {name: "/train/" if int(name[-8:-4]) < 3 else "/test/" for name in wanted}
    files = {name.replace("/test/", split[name]): data for name, data in wanted.items()}
    dm = archive_module(write_archive(tmp_path / "cifar10-jpeg.tar.gz", files), tmp_path)
    assert dm.num_classes == 10
    extracted = tmp_path / "data" / "extracted" / "cifar10-jpeg" / "cifar10-jpeg"
    assert sorted(os.listdir(extracted / "train")) == sorted(os.listdir(extracted / "test")) == list(CIFAR10_CLASSES)
    dm.setup("test")
    assert dm.test_set.images.shape == (20, 3, 32, 32) and dm.test_set.labels.tolist() == [i // 2 for i in range(20)]
    truck = np.array(Image.open(io.BytesIO(wanted["cifar10-jpeg/test/truck/0004.jpg"])).convert("RGB"))
    assert_close(dm.test_set.images[-1], chw(truck))


def test_dcgan_config_trains_on_an_archive_through_the_cli(tmp_path):
    archive = write_archive(tmp_path / "cifar10-jpeg.tar.gz", cifar_like(("cat", "dog"), per_class=4))
    cli = run_cli(
        "fit",
        f"--config={REPO / 'configs/dcgan_cifar10.yaml'}",
        "--data=lightning_dgm.datamodules.ImageFolderDataModule",
        f"--data.archive={archive}",
        "--data.train_dir=cifar10-jpeg/train",
        "--data.test_dir=cifar10-jpeg/test",
        f"--data.data_dir={tmp_path / 'data'}",
        "--data.batch_size=4",
        "--trainer.max_epochs=1",
        "--trainer.limit_val_batches=0",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        "--trainer.callbacks=[]",
    )
    assert cli.trainer.fit_loop.epoch_loop.batch_progress.total.completed == 2  # 8 images, batches of 4
    assert cli.model.sample(3).shape == (3, 3, 32, 32)
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())


# -- errors: one line that says what to do -------------------------------------------------------------
def test_missing_and_empty_folders(tmp_path):
    dm = ImageFolderDataModule(train_dir=str(tmp_path / "nowhere"), data_dir=str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError) as error:
        dm.prepare_data()
    one_line_error(error, str(tmp_path / "nowhere"), "not found", "data.train_dir")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(FileNotFoundError) as error:
        ImageFolderDataModule(train_dir=str(tmp_path / "empty")).setup("fit")
    one_line_error(error, "no images", "*.jpg", "*.png", str(tmp_path / "empty"))
    save(tmp_path / "classes" / "cat" / "0.png", random_image(0, (4, 4, 3)))
    (tmp_path / "classes" / "dog" / "sub").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as error:
        ImageFolderDataModule(train_dir=str(tmp_path / "classes")).setup("fit")
    one_line_error(error, "class folder", str(tmp_path / "classes" / "dog"), "remove the folder")
    save(tmp_path / "mixed" / "cat" / "0.png", random_image(0, (4, 4, 3)))
    save(tmp_path / "mixed" / "loose.png", random_image(0, (4, 4, 3)))
    with pytest.raises(ValueError) as error:
        _ = ImageFolderDataModule(train_dir=str(tmp_path / "mixed")).num_classes
    one_line_error(error, "loose.png", "class folders")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_image_names_the_file(tmp_path, damage):
    save(tmp_path / "images" / "cat" / "0000.jpg", random_image(0, (8, 8, 3)))
    data = jpeg_bytes(random_image(1, (8, 8, 3)))
    bad = tmp_path / "images" / "cat" / "0001.jpg"
    bad.write_bytes(b"this is not a JPEG" if damage == "garbage" else data[: len(data) // 2])
    dm = ImageFolderDataModule(train_dir=str(tmp_path / "images"), data_dir=str(tmp_path / "data"), image_size=8)
    with pytest.raises(RuntimeError) as error:
        dm.prepare_data()
    one_line_error(error, str(bad), "delete or replace")
    assert not list((tmp_path / "data").rglob("*.pt"))  # nothing half-decoded was cached


def test_train_and_test_class_folders_must_match(tmp_path):
    for split, names in (("train", ("cat", "dog")), ("test", ("cat", "cow"))):
        for name in names:
            save(tmp_path / split / name / "0.png", random_image(0, (4, 4, 3)))
    dm = ImageFolderDataModule(train_dir=str(tmp_path / "train"), test_dir=str(tmp_path / "test"), image_size=4)
    with pytest.raises(ValueError) as error:
        dm.setup("fit")
    one_line_error(error, "class folders differ", "cat, dog", "cat, cow", "same class folders")


@pytest.mark.parametrize(
    ("kwargs", "parts"),
    [
        ({"test_dir": "t", "test_size": 5}, ("test_dir or test_size, not both",)),
        ({"test_size": -1}, ("never below 0",)),
        ({"channels": 4}, ("channels must be 1", "got 4")),
        ({"image_size": 0}, ("image_size must be at least 1",)),
        ({"archive": "data.zip"}, ("not a .tar.gz", "unpack it")),
        ({"archive": "a.tar.gz", "train_dir": "/abs/train"}, ("make them relative",)),
    ],
)
def test_bad_arguments_are_refused_at_construction(kwargs, parts):
    with pytest.raises(ValueError) as error:
        ImageFolderDataModule(**{"train_dir": "train", **kwargs})
    one_line_error(error, *parts)


def test_too_large_test_size_is_refused(tmp_path):
    for i in range(3):
        save(tmp_path / "images" / f"{i}.png", random_image(i, (4, 4, 3)))
    dm = ImageFolderDataModule(train_dir=str(tmp_path / "images"), data_dir=str(tmp_path / "data"), test_size=3)
    with pytest.raises(ValueError) as error:
        dm.setup("test")
    one_line_error(error, "test_size must be in [0, 3)", "got 3")


def test_archive_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        archive_module(tmp_path / "cifar10-jpeg.tar.gz", tmp_path).prepare_data()
    one_line_error(error, str(tmp_path / "cifar10-jpeg.tar.gz"), "not found", "data.archive")
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b\x08 truncated gzip")
    with pytest.raises(RuntimeError) as error:
        _ = archive_module(tmp_path / "broken.tar.gz", tmp_path).num_classes
    one_line_error(error, "could not extract", "broken.tar.gz", "complete archive")
    assert not [p for p in (tmp_path / "data" / "extracted").iterdir() if p.is_dir()]  # no half-extracted folder
    archive = write_archive(tmp_path / "photos.tgz", {"photos/a/0.jpg": jpeg_bytes(random_image(0, (4, 4, 3)))})
    with pytest.raises(FileNotFoundError) as error:
        _ = archive_module(archive, tmp_path).num_classes
    one_line_error(error, "cifar10-jpeg/train not found in archive", "holds photos", "data.train_dir")
    dm = ImageFolderDataModule(train_dir="../../../..", archive=str(archive), data_dir=str(tmp_path / "data"))
    with pytest.raises(ValueError) as error:
        _ = dm.num_classes
    one_line_error(error, "outside archive")
