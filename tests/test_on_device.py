"""`data.on_device`: the training split moved to the accelerator once and cut into the batches the
DataLoader would serve, in the same order (shuffle, DDP shard, resumed-epoch skip), so training is
bit-identical to the DataLoader path."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.testing import assert_close

from lightning_dgm.datamodules import DigitsDataModule, GaussianMixtureDataModule
from lightning_dgm.datamodules.loaders import DeviceBatches
from lightning_dgm.errors import ConfigError
from tests.helpers import REPO, run_cli
from tests.test_speed import QUIET, tiny_gan


def fake_trainer(world_size: int, rank: int, completed: int) -> SimpleNamespace:
    """What the loaders read of a trainer: world size, rank, device and the epoch's completed batches."""
    progress = SimpleNamespace(current=SimpleNamespace(completed=completed))
    return SimpleNamespace(
        world_size=world_size,
        global_rank=rank,
        training=True,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)),
    )


def train_batches(datamodule, trainer, epoch: int) -> tuple:
    datamodule.trainer = trainer
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(epoch)  # as Lightning does at each epoch start
    return loader, list(loader)


@pytest.mark.parametrize(
    "make",
    [
        lambda on_device: DigitsDataModule(batch_size=16, seed=3, on_device=on_device),
        lambda on_device: GaussianMixtureDataModule(num_train=200, batch_size=8, pack=3, on_device=on_device),
    ],
    ids=["digits", "packed_points"],
)
@pytest.mark.parametrize("world_size, rank, completed", [(1, 0, 0), (2, 1, 0), (2, 0, 5)])
def test_on_device_serves_the_dataloaders_batches_in_its_order(make, world_size, rank, completed):
    reference_loader, reference = train_batches(make(False), fake_trainer(world_size, rank, completed), epoch=4)
    loader, batches = train_batches(make(True), fake_trainer(world_size, rank, completed), epoch=4)
    assert isinstance(loader, DeviceBatches) and not isinstance(reference_loader, DeviceBatches)
    assert len(loader) == len(reference_loader)
    assert len(batches) == len(reference) == len(reference_loader) - completed > 0
    for batch, expected in zip(batches, reference):
        assert type(batch) is type(expected)
        assert_close(tuple(batch), tuple(expected), rtol=0, atol=0)
    # a new epoch, a new order
    loader.sampler.set_epoch(5)
    assert not torch.equal(next(iter(loader)).image, batches[0].image)


def test_training_on_device_gives_bit_identical_weights(tmp_path):
    weights = []
    for on_device in (False, True):
        L.seed_everything(0)
        model = tiny_gan()
        trainer = L.Trainer(max_epochs=2, limit_train_batches=4, logger=False, enable_checkpointing=False, **QUIET)
        trainer.fit(model, DigitsDataModule(batch_size=8, on_device=on_device))
        weights.append(model.state_dict())
    assert_close(weights[1], weights[0], rtol=0, atol=0)
    assert not torch.equal(weights[0]["generator.net.0.weight"], tiny_gan().state_dict()["generator.net.0.weight"])


def test_on_device_refuses_data_drawn_fresh_per_item():
    datamodule = DigitsDataModule(batch_size=8, on_device=True)
    datamodule.setup("fit")
    datamodule.train_set.draw_jitter = lambda generator: None  # as dynamically binarized MNIST's split has
    with pytest.raises(ConfigError, match="set data.on_device false"):
        datamodule.train_dataloader()


def test_on_device_from_the_command_line(tmp_path):
    cli = run_cli(
        "fit",
        f"--config={REPO / 'configs/gan_digits.yaml'}",
        "--data.on_device=true",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
    )
    assert cli.datamodule.hparams.on_device is True
    assert isinstance(cli.trainer.train_dataloader, DeviceBatches) and cli.trainer.global_step == 4


def test_a_run_on_device_killed_mid_epoch_resumes_bit_exactly(tmp_path):
    # test_failures' SIGKILL-after-a-mid-epoch-checkpoint check, with the GAN's data on the device: the resumed
    # epoch must skip exactly the batches the killed run trained on.
    from tests.test_failures import _gan
    from tests.test_failures import test_sigkill_after_a_mid_epoch_checkpoint_resumes_bit_exactly as sigkill_and_resume

    sigkill_and_resume(tmp_path, lambda path: [*_gan(path), "--data.on_device=true"])
