"""Pictures at the end of every run: every picture callback also draws after the last training epoch
(or wherever training stopped), with one naming and captioning rule in files and in W&B."""

import re
import time

import lightning as L
import torch

from lightning_dgm.callbacks import SampleGrid
from lightning_dgm.datamodules import DigitsDataModule
from lightning_dgm.models import GAN
from lightning_dgm.nets import MLPDiscriminator, MLPGenerator
from tests.helpers import REPO, run_cli

PICTURES = ["interpolations", "latent_codes", "manifold", "reconstructions", "samples"]


def _wandb_captions(run_folder, keys, timeout=20.0):
    """{key: captions} of the images in the run's offline W&B file. The history records are protobuf
    items (key path, then the value as JSON), so `<key> captions ["epoch 2"]` can be read off the bytes.
    wandb-core writes the file a few seconds after `wandb.finish()` returns: wait for every key."""
    (wandb_file,) = run_folder.glob("wandb/offline-run-*/run-*.wandb")
    pattern = rb"\x12[\x01-\x7f]([\w/]+)\x12\x08captions\x82\x01[\x01-\x7f](\[[^\]]*\])"
    deadline = time.monotonic() + timeout
    while True:
        found = {key.decode(): value.decode() for key, value in re.findall(pattern, wandb_file.read_bytes())}
        if set(keys) <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_run_shorter_than_every_n_epochs_ends_with_every_picture(mnist_root, tmp_path):
    # vae_mnist_z2.yaml draws every 5th epoch; a 3-epoch run used to end without a single picture.
    run_cli(
        "fit",
        f"--config={REPO / 'configs' / 'vae_mnist_z2.yaml'}",
        f"--data.data_dir={mnist_root}",
        "--data.download=false",
        "--data.val_size=16",
        "--data.batch_size=32",
        "--trainer.max_epochs=3",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={tmp_path}",
    )
    run = tmp_path / "version_0"
    for key in PICTURES:
        assert sorted(p.name for p in (run / key).iterdir()) == ["epoch_002.png"], key
    assert _wandb_captions(run, PICTURES) == {key: '["epoch 2"]' for key in PICTURES}


def _tiny_gan() -> GAN:
    return GAN(
        generator=MLPGenerator(latent_dim=4, hidden_dims=[8], image_shape=(1, 8, 8)),
        discriminator=MLPDiscriminator(image_shape=(1, 8, 8), hidden_dims=[8]),
    )


def _fit(folder, callback, **limits) -> L.Trainer:
    trainer = L.Trainer(
        default_root_dir=folder,
        limit_train_batches=4,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=[callback],
        **limits,
    )
    trainer.fit(_tiny_gan(), DigitsDataModule(batch_size=8))
    return trainer


def test_a_run_stopped_inside_an_epoch_draws_that_epoch_once(tmp_path):
    # max_steps counts optimizer steps (2 per batch): 10 steps end in the middle of epoch 1.
    _fit(tmp_path, SampleGrid(num_samples=4, every_n_epochs=1), max_steps=10)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["epoch_000.png", "epoch_001.png"]


def test_the_last_epoch_is_drawn_once_when_it_is_due_anyway(tmp_path):
    drawn = []

    class Counting(SampleGrid):
        def draw(self, trainer, pl_module, epoch):
            drawn.append(epoch)
            assert not pl_module.training and not torch.is_grad_enabled()

    _fit(tmp_path, Counting(num_samples=4, every_n_epochs=2), max_epochs=4)
    assert drawn == [1, 3]
