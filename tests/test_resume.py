"""One seeding rule, exact resume: evaluation noise that does not move with the step, and runs
resumed from an epoch-end checkpoint that end bit-identical to uninterrupted ones (VAE, denoising
AE, and CycleGAN under 2-process DDP, whose image pools are per rank)."""

import subprocess

import lightning as L
import pytest
import torch
from torch.testing import assert_close

from lightning_dgm.datamodules import DigitsDataModule
from lightning_dgm.models import GAN
from lightning_dgm.nets import MLPDiscriminator, MLPGenerator
from tests.helpers import PYTHON, REPO, run_cli, subprocess_env, tiny_cyclegan
from tests.test_translation_runs import horse2zebra


class ValidationRecords(L.Callback):
    """Keeps `val/d_fake` of every validation epoch."""

    def __init__(self):
        self.d_fake = []

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.d_fake.append(trainer.callback_metrics["val/d_fake"].clone())


def test_two_validations_of_an_unchanged_model_log_identical_d_fake():
    # lr 0: the optimizers step (global_step moves) but no weight changes; MLP nets have no BatchNorm
    # statistics that training could move either. The fakes scored must then be the same ones.
    L.seed_everything(0)
    model = GAN(
        generator=MLPGenerator(latent_dim=8, hidden_dims=[16], image_shape=(1, 8, 8)),
        discriminator=MLPDiscriminator(image_shape=(1, 8, 8), hidden_dims=[16]),
        g_optimizer=lambda params: torch.optim.SGD(params, lr=0.0),
        d_optimizer=lambda params: torch.optim.SGD(params, lr=0.0),
    )
    records = ValidationRecords()
    trainer = L.Trainer(
        max_epochs=2,
        limit_train_batches=3,
        limit_val_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=[records],
    )
    trainer.fit(model, DigitsDataModule(batch_size=8))
    assert trainer.global_step == 12 and len(records.d_fake) == 2
    assert_close(records.d_fake[0], records.d_fake[1], rtol=0, atol=0)


TINY = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
    "--data.download=false",
    "--data.val_size=16",
    "--data.batch_size=16",
]


@pytest.mark.parametrize("config", ["vae_mnist_z2.yaml", "dae_mnist.yaml"])
def test_resume_from_an_epoch_end_checkpoint_gives_the_uninterrupted_weights(config, mnist_root, tmp_path):
    # The VAE's z ~ q(z | x), its dynamically binarized pixels and the DAE's masks are drawn from
    # seeded streams, not the global RNG (which no checkpoint holds): a resumed run draws the same.
    common = [f"--config={REPO / 'configs' / config}", f"--data.data_dir={mnist_root}", *TINY]
    run_cli("fit", *common, "--trainer.max_epochs=2", f"--trainer.default_root_dir={tmp_path / 'straight'}")
    run_cli("fit", *common, "--trainer.max_epochs=1", f"--trainer.default_root_dir={tmp_path / 'split'}")
    interrupted = tmp_path / "split" / "version_0" / "checkpoints" / "last.ckpt"
    run_cli(
        "fit",
        *common,
        "--trainer.max_epochs=2",
        f"--trainer.default_root_dir={tmp_path / 'split'}",
        f"--ckpt_path={interrupted}",
    )
    straight = torch.load(tmp_path / "straight" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    resumed = torch.load(interrupted, weights_only=False)
    assert straight["global_step"] == resumed["global_step"] > 0
    assert_close(resumed["state_dict"], straight["state_dict"], rtol=0, atol=0)


def _cyclegan_ddp(root, run_dir, epochs, *extra):
    command = [
        PYTHON,
        "-m",
        "lightning_dgm",
        "fit",
        *tiny_cyclegan(root),
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp_find_unused_parameters_true",
        f"--trainer.max_epochs={epochs}",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.callbacks+=tests.helpers.DumpWeights",
        *extra,
    ]
    out = subprocess.run(command, cwd=run_dir.parent, capture_output=True, text=True, timeout=600, env=subprocess_env())
    assert out.returncode == 0, out.stderr[-3000:]


def test_cyclegan_ddp_resume_gives_every_rank_its_own_pool_back(tmp_path):
    # 2 ranks, 4 items per epoch -> 2 steps per rank per epoch; pools of 2 are full after epoch 0, so
    # epoch 1 swaps with each rank's own history. Before per-rank pools, rank 1 resumed with rank 0's.
    root = horse2zebra(tmp_path / "horse2zebra", sizes=(4, 4, 2, 2))
    _cyclegan_ddp(root, tmp_path / "straight", 2)
    _cyclegan_ddp(root, tmp_path / "split", 1)
    checkpoint = tmp_path / "split" / "version_0" / "checkpoints" / "last.ckpt"
    pools = torch.load(checkpoint, weights_only=False)["image_pools"]
    assert len(pools) == 2 and not torch.equal(pools[0]["a"]["images"][0], pools[1]["a"]["images"][0])
    _cyclegan_ddp(root, tmp_path / "split", 2, f"--ckpt_path={checkpoint}")
    for rank in (0, 1):
        straight = torch.load(tmp_path / "straight" / "version_0" / f"weights_rank{rank}.pt")
        resumed = torch.load(tmp_path / "split" / "version_0" / f"weights_rank{rank}.pt")
        assert_close(resumed, straight, rtol=0, atol=0)
    final = [
        torch.load(tmp_path / run / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
        for run in ("straight", "split")
    ]
    for rank in (0, 1):
        assert_close(final[1]["image_pools"][rank], final[0]["image_pools"][rank], rtol=0, atol=0)
