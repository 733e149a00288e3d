"""Test-side helpers: IDX fixtures, in-process CLI runs, a callback that dumps each rank's weights."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
SHARED_DATA = REPO.parent / "shared" / "data"


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """MNIST's IDX3 format: magic 2051, count, rows, cols (big-endian int32), then uint8 pixels."""
    path.write_bytes(struct.pack(">iiii", 2051, *images.shape) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    path.write_bytes(struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def write_mnist(root: Path, n_train: int = 96, n_test: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """Tiny MNIST in torchvision's layout (<root>/MNIST/raw); returns what was written."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    write_idx_images(raw / "train-images-idx3-ubyte", arrays["train_images"])
    write_idx_labels(raw / "train-labels-idx1-ubyte", arrays["train_labels"])
    write_idx_images(raw / "t10k-images-idx3-ubyte", arrays["test_images"])
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", arrays["test_labels"])
    return arrays


def run_cli(*args: str):
    """Run the real CLI in this process; returns it (trainer, model, datamodule, run_dir)."""
    import wandb

    from lightning_dgm.cli import LightningDGMCLI

    try:
        return LightningDGMCLI(args=list(args))
    finally:
        wandb.finish()  # the CLI closes W&B after a command; this also closes it when one fails


def subprocess_env(**extra: str) -> dict[str, str]:
    # WANDB_SERVICE points at this pytest process's own wandb-core (started by in-process runs):
    # a child must start its own, or its run files are written by ours, late.
    dropped = ("LIGHTNING_DGM_", "LOCAL_RANK", "PL_", "WANDB_SERVICE", "WANDB__")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


PYTHON = sys.executable


class DumpWeights(L.Callback):
    """Saves every rank's final parameters to <run folder>/weights_rank<R>.pt (used by the DDP test)."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save(state, Path(trainer.default_root_dir) / f"weights_rank{trainer.global_rank}.pt")


class DumpMetrics(L.Callback):
    """Saves every rank's final `callback_metrics` to <run folder>/metrics_rank<R>.pt."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: v.detach().cpu().clone() for k, v in trainer.callback_metrics.items()}
        torch.save(metrics, Path(trainer.default_root_dir) / f"metrics_rank{trainer.global_rank}.pt")
