"""The CLI as a user runs it: a fresh process per command, DDP over gloo, W&B with no API key."""

import subprocess

import torch
from torch.testing import assert_close

from tests.helpers import PYTHON, REPO, subprocess_env

DIGITS = str(REPO / "configs" / "gan_digits.yaml")


def run(args, cwd, timeout=300, **env):
    out = subprocess.run(
        [PYTHON, "-m", "lightning_dgm", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(**env),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_fit_on_digits_leaves_a_complete_run_folder(tmp_path):
    run(
        [
            "fit",
            "--config",
            DIGITS,
            "--trainer.max_epochs=20",
            "--trainer.limit_train_batches=5",
            "--trainer.enable_progress_bar=false",
        ],
        cwd=tmp_path,
    )
    folder = tmp_path / "runs" / "gan_digits" / "version_0"
    assert (folder / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (folder / "samples").glob("*.png")) == ["epoch_009.png", "epoch_019.png"]
    assert "class_path: lightning_dgm.models.GAN" in (folder / "config.yaml").read_text()
    assert list((folder / "wandb").glob("offline-run-*/run-*.wandb"))


def test_ddp_two_cpu_processes_keep_identical_weights(tmp_path):
    out = run(
        [
            "fit",
            "--config",
            DIGITS,
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.strategy=ddp_find_unused_parameters_true",
            "--trainer.max_epochs=2",
            "--trainer.limit_train_batches=4",
            "--trainer.limit_val_batches=2",
            "--trainer.enable_progress_bar=false",
            "--trainer.callbacks+=tests.helpers.DumpWeights",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    folder = tmp_path / "runs" / "gan_digits" / "version_0"
    assert sorted(p.name for p in (tmp_path / "runs" / "gan_digits").iterdir()) == ["version_0"], out.stderr[-2000:]
    rank0, rank1 = (torch.load(folder / f"weights_rank{r}.pt") for r in (0, 1))
    assert_close(rank0, rank1, rtol=0, atol=0)
    assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2 * (4 + 4)


def test_wandb_without_api_key_falls_back_to_offline_and_says_so(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # No WANDB_* at all (no mode, no key) and an empty home (no netrc): what a new user has.
    env = {
        k: v
        for k, v in subprocess_env(HOME=str(home), NETRC=str(home / ".netrc")).items()
        if not k.startswith("WANDB_")
    }
    out = subprocess.run(
        [
            PYTHON,
            "-m",
            "lightning_dgm",
            "fit",
            "--config",
            DIGITS,
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.enable_progress_bar=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "W&B: no API key found" in line]
    assert len(lines) == 1 and "wandb sync" in lines[0]
    assert list((tmp_path / "runs" / "gan_digits" / "version_0" / "wandb").glob("offline-run-*"))


def test_ddp_pacgan_scores_mode_coverage_identically_on_every_rank(tmp_path):
    out = run(
        [
            "fit",
            "--config",
            str(REPO / "configs" / "toy_grid_pacgan.yaml"),
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.strategy=ddp_find_unused_parameters_true",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=2",
            "--data.num_train=1000",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger=false",
            "--trainer.callbacks+=tests.helpers.DumpWeights",
            "--trainer.callbacks+=tests.helpers.DumpMetrics",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    folder = tmp_path / "runs" / "toy_grid_pacgan" / "version_0"
    assert (folder / "points" / "epoch_000.png").is_file(), out.stderr[-2000:]
    weights = [torch.load(folder / f"weights_rank{r}.pt") for r in (0, 1)]
    # parameters agree; BatchNorm running statistics are per rank (SyncBatchNorm is GPU-only)
    assert_close(
        *({k: v for k, v in w.items() if "running" not in k and "batches" not in k} for w in weights), rtol=0, atol=0
    )
    rank0, rank1 = (torch.load(folder / f"metrics_rank{r}.pt") for r in (0, 1))
    # each rank scored its own 1,250 samples; the counts were summed, so both log the same values
    for key in ("val/modes_covered", "val/high_quality_pct", "val/reverse_kl"):
        assert_close(rank0[key], rank1[key], rtol=0, atol=0)


def test_closed_form_baselines_refuse_ddp_with_a_clear_error(tmp_path):
    out = subprocess.run(
        [
            PYTHON,
            "-m",
            "lightning_dgm",
            "fit",
            "--config",
            str(REPO / "configs" / "toy_grid_gaussian.yaml"),
            "--trainer.devices=2",
            "--data.num_train=1000",
            "--trainer.logger=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )
    assert out.returncode != 0 and "run it with trainer.devices=1" in out.stderr
