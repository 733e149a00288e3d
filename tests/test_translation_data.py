"""Translation datamodules (pix2pix pairs, CycleGAN domains) on tiny PNG / JPEG files written by the tests.

Fixture pairs are built so that B is a known function of A that survives resizing exactly: B is A
with its colour channels reversed. Any crop or flip applied to one image of a pair and not the
other breaks b == a[:, [2, 1, 0]].
"""

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch.testing import assert_close

from lightning_dgm import seeding
from lightning_dgm.datamodules import FolderPairsDataModule, SideBySideDataModule, UnpairedDataModule
from lightning_dgm.types import ImagePair
from tests.helpers import SHARED_DATA, SWAP, chw, random_image, save, write_domain, write_side_by_side

TRAIN_ONLY = {"val_split": None, "test_split": None}


def write_folder_pairs(root: Path, split: str, names: list[str], size: int = 4) -> torch.Tensor:
    images = [random_image(100 + i, size) for i in range(len(names))]
    for name, a in zip(names, images):
        save(root / f"{split}A" / name, a)
        save(root / f"{split}B" / name, a[..., SWAP])
    return torch.stack([chw(a) for a in images])


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images + 1) * 127.5).round().to(torch.uint8)


def epoch(dm, index: int) -> list[ImagePair]:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(index)  # what Lightning does at the start of every epoch
    return list(loader)


def jitter_of(image: torch.Tensor, sources: torch.Tensor, crop: int) -> tuple[int, int, int, bool]:
    """(source index, top, left, mirrored) of a uint8 crop, found by trying every one."""
    load = sources.shape[-1]
    found = [
        (i, top, left, mirror)
        for i in range(len(sources))
        for top in range(load - crop + 1)
        for left in range(load - crop + 1)
        for mirror in (False, True)
        if torch.equal(image, sources[i, :, top : top + crop, left : left + crop].flip([-1] if mirror else []))
    ]
    assert len(found) == 1, f"not exactly one crop matches: {found}"
    return found[0]


def message(error: pytest.ExceptionInfo, *parts: str) -> None:
    text = str(error.value)
    assert "\n" not in text
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"


# -- pix2pix pairs ----------------------------------------------------------------------------------
def test_train_pairs_share_one_random_crop_and_flip(tmp_path):
    images = write_side_by_side(tmp_path, "train", 6)
    dm = SideBySideDataModule(str(tmp_path), load_size=4, crop_size=3, **TRAIN_ONLY, batch_size=3)
    assert (dm.image_shape, dm.num_classes) == ((3, 3, 3), None)
    dm.setup("fit")
    seen = []
    for index in range(4):
        batches = epoch(dm, index)
        assert len(batches) == 2
        for batch in batches:
            assert batch.source.shape == batch.target.shape == (3, 3, 3, 3) and batch.source.dtype == torch.float32
            a, b = to_uint8(batch.source), to_uint8(batch.target)
            assert_close(batch.source, a.float() / 127.5 - 1)  # exactly the uint8 pixels, in [-1, 1]
            assert torch.equal(b, a[:, SWAP])  # same crop and flip on both sides
            seen += [jitter_of(image, images, 3) for image in a]
    sources, tops, lefts, mirrors = zip(*seen)
    for start in range(0, 24, 6):  # every image once per epoch
        assert sorted(sources[start : start + 6]) == list(range(6))
    assert set(tops) == set(lefts) == {0, 1} and set(mirrors) == {False, True}


def test_training_images_are_resized_to_load_size_before_cropping(tmp_path):
    write_side_by_side(tmp_path, "train", 2, size=8)
    files = [np.array(Image.open(tmp_path / "train" / f"{i}.png")) for i in range(2)]
    dm = SideBySideDataModule(str(tmp_path), load_size=6, crop_size=5, **TRAIN_ONLY)
    dm.setup("fit")
    for i, pixels in enumerate(files):
        whole = chw(pixels)
        assert_close(dm.train_set.source[i], TF.resize(whole[..., :8], [6, 6], antialias=True), rtol=0, atol=0)
        assert_close(dm.train_set.target[i], TF.resize(whole[..., 8:], [6, 6], antialias=True), rtol=0, atol=0)
    for batch in epoch(dm, 0):
        assert torch.equal(to_uint8(batch.target), to_uint8(batch.source)[:, SWAP])


def test_validation_is_the_center_crop_every_epoch_and_btoa_swaps(tmp_path):
    written_train = write_side_by_side(tmp_path, "train", 2)[:, :, 1:3, 1:3]
    images = write_side_by_side(tmp_path, "val", 3, seed=10)
    write_side_by_side(tmp_path, "test", 1, seed=20)
    for direction, a, b in (("AtoB", images, images[:, SWAP]), ("BtoA", images[:, SWAP], images)):
        dm = SideBySideDataModule(str(tmp_path), direction=direction, load_size=4, crop_size=2, batch_size=2)
        dm.setup("fit")
        first, second = list(dm.val_dataloader()), list(dm.val_dataloader())
        for one, two in zip(first, second, strict=True):
            assert torch.equal(one.source, two.source) and torch.equal(one.target, two.target)
        assert torch.equal(to_uint8(torch.cat([batch.source for batch in first])), a[:, :, 1:3, 1:3])
        assert torch.equal(to_uint8(torch.cat([batch.target for batch in first])), b[:, :, 1:3, 1:3])
        train = epoch(dm, 0)[0]
        assert torch.equal(to_uint8(train.source), to_uint8(train.target)[:, SWAP])  # SWAP is its own inverse
        stored = written_train if direction == "AtoB" else written_train[:, SWAP]
        assert torch.equal(dm.train_set.source[:, :, 1:3, 1:3], stored)
        dm.setup("test")
        assert len(dm.test_dataloader()) == 1


def test_train_crops_are_reproducible_by_seed_and_new_each_epoch(tmp_path):
    images = write_side_by_side(tmp_path, "train", 8, size=6)

    def crops(seed: int, index: int) -> tuple[torch.Tensor, list]:
        """The epoch's batches, and each image's (top, left, mirrored) in image order (shuffling aside)."""
        dm = SideBySideDataModule(str(tmp_path), load_size=6, crop_size=4, **TRAIN_ONLY, seed=seed)
        dm.setup("fit")
        batches = torch.cat([batch.source for batch in epoch(dm, index)])
        return batches, sorted(jitter_of(image, images, 4) for image in to_uint8(batches))

    torch.manual_seed(123)  # the global RNG plays no part
    batches, first = crops(0, 0)
    torch.manual_seed(456)
    again, same = crops(0, 0)
    assert torch.equal(batches, again) and first == same
    assert [source for source, *_ in first] == list(range(8))
    assert first != crops(0, 1)[1]  # a new epoch: new crops, not only a new order
    assert first != crops(1, 0)[1]


def test_an_epochs_jitter_is_drawn_by_the_seeding_rule(tmp_path):
    write_side_by_side(tmp_path, "train", 8, size=6)
    dm = SideBySideDataModule(str(tmp_path), load_size=6, crop_size=4, **TRAIN_ONLY, seed=3)
    dm.setup("fit")
    sampler = dm.train_dataloader().sampler
    sampler.set_epoch(2)
    torch.manual_seed(123)  # the global RNG plays no part
    items = list(sampler)
    # the one rule of lightning_dgm.seeding: the table of (seed, JITTER, epoch), row i for item i
    table = dm.train_set.draw_jitter(seeding.generator(3, seeding.JITTER, 2)).tolist()
    assert sorted(index for index, _ in items) == list(range(8))
    assert all(row == table[index] for index, row in items)


def test_worker_processes_serve_the_same_batches(tmp_path):
    write_domain(tmp_path, "trainA", 3, seed=0), write_domain(tmp_path, "trainB", 5, seed=10)
    write_domain(tmp_path, "testA", 1, seed=20), write_domain(tmp_path, "testB", 1, seed=30)
    served = []
    for workers in (0, 2):
        dm = UnpairedDataModule(str(tmp_path), load_size=4, crop_size=3, num_workers=workers)
        dm.setup("fit")
        served.append([torch.cat(batch) for index in (0, 1) for batch in epoch(dm, index)])
    assert len(served[0]) == 10 and all(torch.equal(x, y) for x, y in zip(*served, strict=True))


class Recorder(L.LightningModule):
    """Keeps every batch it is given; trains one dummy weight."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.train_batches, self.val_batches = [], []

    def training_step(self, batch, batch_idx):
        self.train_batches.append((self.current_epoch, batch.source.clone(), batch.target.clone()))
        return self.weight**2

    def validation_step(self, batch, batch_idx):
        self.val_batches.append((self.current_epoch, batch.source.clone()))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_trainer_gets_new_crops_each_epoch_and_fixed_validation(tmp_path):
    write_folder_pairs(tmp_path / "data", "train", [f"{i}.png" for i in range(4)], size=6)
    write_folder_pairs(tmp_path / "data", "val", ["x.png", "y.png"], size=6)

    def fit() -> Recorder:
        dm = FolderPairsDataModule(str(tmp_path / "data"), load_size=6, crop_size=4, test_split=None, batch_size=2)
        model = Recorder()
        trainer = L.Trainer(
            max_epochs=2,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=tmp_path,
        )
        trainer.fit(model, datamodule=dm)
        return model

    one, two = fit(), fit()
    assert [e for e, _, _ in one.train_batches] == [0, 0, 1, 1]
    for (_, a, b), (_, a2, _) in zip(one.train_batches, two.train_batches, strict=True):
        assert torch.equal(a, a2) and torch.equal(to_uint8(b), to_uint8(a)[:, SWAP])
    by_epoch = [torch.cat([a for e, a, _ in one.train_batches if e == index]) for index in (0, 1)]
    assert not torch.equal(*by_epoch)
    assert [e for e, _ in one.val_batches] == [0, 1]
    assert torch.equal(one.val_batches[0][1], one.val_batches[1][1])


def test_overfit_batches_gets_fixed_centered_crops_and_no_val_split_means_no_validation(tmp_path):
    images = write_side_by_side(tmp_path, "train", 4, size=6)
    dm = SideBySideDataModule(str(tmp_path), load_size=6, crop_size=4, batch_size=2, **TRAIN_ONLY)
    model = Recorder()
    # overfit_batches makes Lightning replace the sampler by a SequentialSampler: plain indices
    trainer = L.Trainer(
        max_epochs=2,
        overfit_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert len(model.train_batches) == 2 and model.val_batches == []
    for _, a, b in model.train_batches:
        assert torch.equal(to_uint8(a), images[:2, :, 1:5, 1:5])
        assert torch.equal(to_uint8(b), images[:2, SWAP, 1:5, 1:5])


def test_each_ddp_rank_gets_its_own_shard(tmp_path):
    images = write_side_by_side(tmp_path, "train", 8)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False)
    shards = []
    try:
        for rank in (0, 1):
            trainer.strategy.cluster_environment.set_global_rank(rank)  # what DDP's set-up does in process `rank`
            dm = SideBySideDataModule(str(tmp_path), load_size=4, crop_size=3, batch_size=2, **TRAIN_ONLY)
            dm.trainer = trainer
            dm.setup("fit")
            batches = epoch(dm, 0)
            assert len(batches) == 2
            shards.append({jitter_of(image, images, 3)[0] for batch in batches for image in to_uint8(batch.source)})
    finally:  # set_global_rank also sets Lightning's process-wide rank_zero_only.rank: later tests need 0
        trainer.strategy.cluster_environment.set_global_rank(0)
    assert shards[0].isdisjoint(shards[1]) and shards[0] | shards[1] == set(range(8))
    dm.batch_size = 5
    with pytest.raises(ValueError) as error:
        dm.train_dataloader()
    message(error, "8 training items cannot fill one batch of 5 on each of 2 process(es)", "lower data.batch_size")


def test_folder_pairs_match_by_name(tmp_path):
    names = ["b.png", "a.png", "sub/c.png"]
    images = write_folder_pairs(tmp_path, "train", names)
    dm = FolderPairsDataModule(str(tmp_path), "BtoA", load_size=4, crop_size=4, **TRAIN_ONLY)
    dm.setup("fit")
    order = [names.index(name) for name in sorted(names)]
    assert torch.equal(dm.train_set.source, images[order][:, SWAP]) and torch.equal(dm.train_set.target, images[order])
    for batch in epoch(dm, 0):  # only flips: crop_size == load_size
        assert torch.equal(to_uint8(batch.source), to_uint8(batch.target)[:, SWAP])


# -- errors ---------------------------------------------------------------------------------------
def test_a_side_by_side_file_must_be_twice_as_wide_as_high(tmp_path):
    write_side_by_side(tmp_path, "train", 2)
    save(tmp_path / "train" / "wide.jpg", np.zeros((4, 9, 3), np.uint8))
    with pytest.raises(ValueError) as error:
        SideBySideDataModule(str(tmp_path), load_size=4, crop_size=4).setup("fit")
    message(error, str(tmp_path / "train" / "wide.jpg"), "9x4 pixels", "exactly twice as wide as high")


def test_folder_pair_errors_name_the_unmatched_and_the_mismatched_files(tmp_path):
    write_folder_pairs(tmp_path, "train", ["same.png"] + [f"only_a{i}.png" for i in range(5)])
    for i in range(5):
        (tmp_path / "trainB" / f"only_a{i}.png").unlink()
    save(tmp_path / "trainB" / "only_b.png", random_image(0, 4))
    with pytest.raises(FileNotFoundError) as error:
        FolderPairsDataModule(str(tmp_path), load_size=4, crop_size=4).setup("fit")
    message(
        error,
        f"{tmp_path / 'trainB'} lacks 5 file(s) of trainA: only_a0.png, only_a1.png, only_a2.png and 2 more",
        f"{tmp_path / 'trainA'} lacks 1 file(s) of trainB: only_b.png",
        "same name in the other folder",
    )
    (tmp_path / "trainB" / "only_b.png").unlink()
    for i in range(5):
        save(tmp_path / "trainB" / f"only_a{i}.png", np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError) as error:
        FolderPairsDataModule(str(tmp_path), load_size=4, crop_size=4).setup("fit")
    message(error, f"{tmp_path / 'trainA' / 'only_a0.png'} is 4x4", f"{tmp_path / 'trainB' / 'only_a0.png'} is 5x4")


def test_missing_empty_and_corrupt_data_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        SideBySideDataModule(str(tmp_path / "nowhere")).setup("fit")
    message(error, f"data.root {tmp_path / 'nowhere'} not found", "train/, val/ and test/")
    write_side_by_side(tmp_path, "train", 2)
    with pytest.raises(FileNotFoundError) as error:
        SideBySideDataModule(str(tmp_path), load_size=4, crop_size=4).setup("fit")
    message(error, f"{tmp_path / 'val'} not found (data.root holds train)", "put the val pairs")
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "notes.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError) as error:
        SideBySideDataModule(str(tmp_path), load_size=4, crop_size=4).setup("fit")
    message(error, "no images (*.jpg", f"in {tmp_path / 'val'}; put the val pairs")
    (tmp_path / "train" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(RuntimeError) as error:
        SideBySideDataModule(str(tmp_path), load_size=4, crop_size=4).setup("fit")
    message(error, f"could not read image {tmp_path / 'train' / 'broken.png'}", "delete or replace the file")
    with pytest.raises(ValueError) as error:
        SideBySideDataModule(str(tmp_path), load_size=4, crop_size=4, test_split=None).test_dataloader()
    message(error, "no test split", "data.test_split")


def test_bad_options_fail_at_construction(tmp_path):
    with pytest.raises(ValueError) as error:
        SideBySideDataModule(str(tmp_path), load_size=128, crop_size=256)
    message(error, "crop_size <= load_size", "load_size=128, crop_size=256")
    with pytest.raises(ValueError) as error:
        UnpairedDataModule(str(tmp_path), direction="A2B")
    message(error, "'AtoB' or 'BtoA'", "'A2B'")


# -- CycleGAN domains -----------------------------------------------------------------------------
def test_unpaired_epoch_is_the_larger_domain_drawn_independently(tmp_path):
    horses, zebras = write_domain(tmp_path, "trainA", 3, seed=0), write_domain(tmp_path, "trainB", 5, seed=50)
    write_domain(tmp_path, "testA", 1, seed=90), write_domain(tmp_path, "testB", 1, seed=95)
    for direction, a_images, b_images in (("AtoB", horses, zebras), ("BtoA", zebras, horses)):
        dm = UnpairedDataModule(str(tmp_path), direction=direction, load_size=4, crop_size=3, batch_size=1)
        dm.setup("fit")
        assert len(dm.train_set) == 5
        draws = []
        for index in range(6):
            batches = epoch(dm, index)
            assert len(batches) == 5
            a = [jitter_of(image, a_images, 3) for batch in batches for image in to_uint8(batch.source)]
            b = [jitter_of(image, b_images, 3) for batch in batches for image in to_uint8(batch.target)]
            if len(a_images) == 3:  # item i is A[i % 3]: images 0 and 1 twice, 2 once per epoch
                assert sorted(source for source, *_ in a) == [0, 0, 1, 1, 2]
            else:
                assert sorted(source for source, *_ in a) == [0, 1, 2, 3, 4]
            draws += list(zip(a, b))
        assert {b[0] for _, b in draws} == set(range(len(b_images)))
        # B is drawn at random, not tied to A's position: over 6 epochs an A image meets several B images
        assert len({(a[0], b[0]) for a, b in draws}) > 10
        assert any(a[1:] != b[1:] for a, b in draws)  # each domain its own crop and flip


def test_unpaired_validation_is_the_test_split_paired_by_position(tmp_path):
    write_domain(tmp_path, "trainA", 2, seed=0), write_domain(tmp_path, "trainB", 2, seed=10)
    horses, zebras = write_domain(tmp_path, "testA", 2, seed=20), write_domain(tmp_path, "testB", 3, seed=30)
    dm = UnpairedDataModule(str(tmp_path), load_size=4, crop_size=2, batch_size=2)
    dm.setup("validate")
    assert dm.val_set is dm.test_set and len(dm.val_set) == 3
    first, second = list(dm.val_dataloader()), list(dm.val_dataloader())
    a, b = (to_uint8(torch.cat([getattr(batch, side) for batch in first])) for side in ("source", "target"))
    assert torch.equal(a, horses[[0, 1, 0]][:, :, 1:3, 1:3]) and torch.equal(b, zebras[:, :, 1:3, 1:3])
    assert all(
        torch.equal(x.source, y.source) and torch.equal(x.target, y.target) for x, y in zip(first, second, strict=True)
    )


def test_unpaired_grayscale_images_become_rgb_and_empty_domains_fail(tmp_path):
    write_domain(tmp_path, "trainA", 2, seed=0)
    gray = np.random.default_rng(7).integers(0, 256, (4, 4), dtype=np.uint8)
    (tmp_path / "trainB").mkdir()
    Image.fromarray(gray, mode="L").save(tmp_path / "trainB" / "gray.jpg", quality=100)
    dm = UnpairedDataModule(str(tmp_path), load_size=4, crop_size=4)
    assert (dm.image_shape, dm.num_classes) == ((3, 4, 4), None)
    with pytest.raises(FileNotFoundError) as error:
        dm.setup("fit")
    message(error, f"{tmp_path / 'testA'} not found (data.root holds trainA, trainB)", "test images of domain A")
    write_domain(tmp_path, "testA", 1, seed=5)
    (tmp_path / "testB").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        dm.setup("fit")
    message(error, "no images (*.jpg", f"in {tmp_path / 'testB'}; put the test images of domain B there")
    write_domain(tmp_path, "testB", 1, seed=6)
    dm.setup("fit")
    decoded = np.array(Image.open(tmp_path / "trainB" / "gray.jpg"))
    assert torch.equal(dm.train_set.target[0], torch.from_numpy(decoded).expand(3, 4, 4))


# -- real data --------------------------------------------------------------------------------------
@pytest.mark.skipif(not (SHARED_DATA / "facades").is_dir(), reason="no facades in ../shared/data")
def test_real_facades_labels_to_photo():
    dm = SideBySideDataModule(str(SHARED_DATA / "facades"), "BtoA", load_size=143, crop_size=128, batch_size=8)
    dm.setup("validate")  # the 100 val pairs only
    batch = next(iter(dm.val_dataloader()))
    assert batch.source.shape == batch.target.shape == (8, 3, 128, 128)
    assert -1 <= batch.source.min() and batch.source.max() <= 1
    # Label maps are flat fields of saturated colours; photos of facades are mostly grey-ish:
    # per-pixel max - min over RGB averages 1.4 to 1.9 on every val label map, at most 0.73 on every photo.
    saturation = (
        (batch.source.amax(1) - batch.source.amin(1)).mean((1, 2)),
        (batch.target.amax(1) - batch.target.amin(1)).mean((1, 2)),
    )
    assert (saturation[0] > 1.2).all() and (saturation[1] < 1.0).all()


@pytest.mark.skipif(not (SHARED_DATA / "horse2zebra").is_dir(), reason="no horse2zebra in ../shared/data")
def test_real_horse2zebra_test_split():
    dm = UnpairedDataModule(str(SHARED_DATA / "horse2zebra"), load_size=143, crop_size=128, batch_size=10)
    dm.setup("validate")  # the test split only: 120 horses, 140 zebras
    assert (len(dm.val_set.source), len(dm.val_set.target), len(dm.val_set)) == (120, 140, 140)
    batches = list(dm.val_dataloader())
    assert len(batches) == 14 and batches[0].source.shape == (10, 3, 128, 128)
