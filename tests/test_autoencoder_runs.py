"""Autoencoder and VAE configs as a user runs them: fit, then test from the checkpoint, with every
picture; bf16-mixed; DDP over gloo, where the AE's code Gaussian must be fit to both ranks' codes.
"""

from __future__ import annotations

import math

import torch
from PIL import Image
from torch.testing import assert_close

from tests.helpers import REPO, run_cli
from tests.test_end_to_end import run

TINY = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
    "--data.download=false",
    "--data.val_size=16",
    "--data.batch_size=16",
]


def test_vae_z2_fit_then_test_writes_every_picture_and_the_likelihoods(mnist_root, tmp_path):
    config = str(REPO / "configs" / "vae_mnist_z2.yaml")
    common = [
        f"--config={config}",
        f"--data.data_dir={mnist_root}",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        *TINY,
    ]
    run_cli("fit", *common, "--trainer.max_epochs=5")  # the config draws every 5th epoch
    folder = tmp_path / "runs" / "version_0"
    for picture in ("samples", "reconstructions", "interpolations", "manifold", "latent_codes"):
        assert (folder / picture / "epoch_004.png").is_file(), picture
    assert Image.open(folder / "manifold" / "epoch_004.png").size == (20 * 30 + 2, 20 * 30 + 2)  # 20x20 tiles of 28+2

    cli = run_cli(
        "test", *common, "--model.init_args.iw_samples=50", f"--ckpt_path={folder / 'checkpoints' / 'last.ckpt'}"
    )
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert all(math.isfinite(metrics[k]) for k in ("test/elbo", "test/nll_iw", "test/kl", "test/recon_nll"))
    assert_close(metrics["test/elbo"], -(metrics["test/recon_nll"] + metrics["test/kl"]), rtol=1e-5, atol=1e-3)
    assert 0 <= metrics["test/latent_accuracy"] <= 1 and 0 <= metrics["test/pixel_accuracy"] <= 1
    for picture in ("reconstructions", "interpolations", "manifold", "latent_codes"):  # in the checkpoint's run folder
        assert (folder / picture / "test.png").is_file(), picture

    run_cli(
        "predict",
        *common,
        "--sample_writer.num_samples=10",
        "--sample_writer.write_png=false",
        f"--ckpt_path={folder / 'checkpoints' / 'last.ckpt'}",
    )
    samples = torch.load(folder / "predictions" / "samples.pt")
    assert samples["images"].shape == (10, 1, 28, 28) and samples["images"].abs().max() <= 1


def test_vae_trains_and_evaluates_in_bf16_mixed(mnist_root, tmp_path):
    common = [
        f"--config={REPO / 'configs' / 'vae_mnist_z20.yaml'}",
        f"--data.data_dir={mnist_root}",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        "--trainer.precision=bf16-mixed",
        *TINY,
    ]
    cli = run_cli("fit", *common, "--trainer.max_epochs=1")
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in cli.model.parameters())
    cli = run_cli(
        "test",
        *common,
        "--model.init_args.iw_samples=20",
        f"--ckpt_path={tmp_path / 'runs' / 'version_0' / 'checkpoints' / 'last.ckpt'}",
    )
    assert math.isfinite(float(cli.trainer.callback_metrics["test/nll_iw"]))


def test_ddp_autoencoder_fits_its_code_gaussian_to_both_ranks_codes(mnist_root, tmp_path):
    out = run(
        [
            "fit",
            f"--config={REPO / 'configs' / 'ae_mnist.yaml'}",
            f"--data.data_dir={mnist_root}",
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.max_epochs=1",
            "--trainer.limit_val_batches=1",
            "--trainer.callbacks+=tests.helpers.DumpWeights",
            *TINY,
        ],
        cwd=tmp_path,
        timeout=600,
    )
    folder = tmp_path / "runs" / "ae_mnist" / "version_0"
    assert (folder / "weights_rank1.pt").is_file(), out.stderr[-2000:]
    rank0, rank1 = (torch.load(folder / f"weights_rank{r}.pt") for r in (0, 1))
    assert_close(rank0, rank1, rtol=0, atol=0)  # parameters and the code Gaussian's buffers
    assert not torch.equal(rank0["code_scale_tril"], torch.eye(32))  # it was fit, not left at N(0, I)
