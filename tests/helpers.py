"""Test-side helpers: data fixtures in the real on-disk formats, in-process CLI runs, callbacks that dump state."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
from pathlib import Path

import lightning as L
import numpy as np
import scipy.io
import torch
from PIL import Image
from torch import nn

from lightning_dgm.models.base import GenerativeSystem

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


class _Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING opcodes), as in the official CIFAR-10 batches: such
    strings load as bytes under `encoding="bytes"` and as str under `encoding="latin1"` (what
    torchvision uses), so the fixture reads the same way the real files do. Python 3's own pickler
    writes bytes objects that load as bytes under every encoding.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + struct.pack("<B", len(obj)) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_python2_str


def _python2_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_cifar10(root: Path, n_train: int = 100, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Tiny CIFAR-10 in torchvision's layout (<root>/cifar-10-batches-py): five train batches, a
    test batch and batches.meta, Python 2 pickles of dicts with the real files' keys (b"data" as
    (N, 3072) uint8 rows, b"labels" as a list of ints, ...). Returns images (N, 3, 32, 32) uint8 and labels.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train).astype(np.int64),
        "test_images": rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test).astype(np.int64),
    }

    def dump(name: str, images: np.ndarray, labels: np.ndarray, batch_label: str) -> None:
        entry = {
            b"batch_label": batch_label.encode(),
            b"labels": labels.tolist(),  # a list of ints, as in the real files
            b"data": images.reshape(len(images), 3 * 32 * 32),  # rows: 1024 R, 1024 G, 1024 B
            b"filenames": [f"fixture_{i}.png".encode() for i in range(len(images))],
        }
        (folder / name).write_bytes(_python2_pickle(entry))

    parts = np.array_split(np.arange(n_train), 5)
    for i, part in enumerate(parts, start=1):
        dump(f"data_batch_{i}", arrays["train_images"][part], arrays["train_labels"][part], f"training batch {i} of 5")
    dump("test_batch", arrays["test_images"], arrays["test_labels"], "testing batch 1 of 1")
    meta = {
        b"num_cases_per_batch": len(parts[0]),
        b"label_names": [name.encode() for name in CIFAR10_CLASSES],
        b"num_vis": 3 * 32 * 32,
    }
    (folder / "batches.meta").write_bytes(_python2_pickle(meta))
    return arrays


def write_svhn(
    root: Path, n_train: int = 96, n_test: int = 32, n_extra: int = 0, seed: int = 0
) -> dict[str, np.ndarray]:
    """Tiny SVHN in torchvision's layout (<root>/{train,test,extra}_32x32.mat, MATLAB 5 files with
    X (32, 32, 3, N) uint8 and y (N, 1) uint8 in 1..10, 10 meaning the digit 0); extra only when
    n_extra > 0. Returns images (N, 3, 32, 32) uint8 and labels as written (1..10) per split.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test), ("extra", n_extra)):
        if split == "extra" and n == 0:
            continue
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(1, 11, n).astype(np.uint8)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
        mat = {"X": images.transpose(2, 3, 1, 0), "y": labels[:, None]}  # (N, C, H, W) -> (H, W, C, N)
        scipy.io.savemat(root / f"{split}_32x32.mat", mat)
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


class SamplerSystem(GenerativeSystem):
    """Base for test systems defined by their `sample()` alone: training only moves one dummy
    weight (DDP and the optimizer need a parameter); validation and test log nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        return self.weight**2

    def validation_step(self, batch, batch_idx):
        pass

    def test_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


# -- image-to-image translation folders: B is A with its colour channels reversed, a relation
# -- that survives resizing exactly, so any crop or flip applied to one image of a pair shows.
SWAP = [2, 1, 0]  # B = A with R and B channels exchanged


def random_image(seed: int, size: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()


def write_side_by_side(root: Path, split: str, n: int, size: int = 4, seed: int = 0) -> torch.Tensor:
    """n PNG pairs A|B (width 2 x size) named 0.png ...; returns A as uint8 (n, 3, size, size)."""
    images = [random_image(seed + i, size) for i in range(n)]
    for i, a in enumerate(images):
        save(root / split / f"{i}.png", np.concatenate([a, a[..., SWAP]], axis=1))
    return torch.stack([chw(a) for a in images])


def write_domain(root: Path, folder: str, n: int, seed: int, size: int = 4) -> torch.Tensor:
    images = [random_image(seed + i, size) for i in range(n)]
    for i, image in enumerate(images):
        save(root / folder / f"{i}.png", image)
    return torch.stack([chw(image) for image in images])


class SignalAt(L.Callback):
    """Sends `signal` (a name: SIGTERM, SIGINT, SIGKILL) to this process at the start of batch `batch`
    of epoch `epoch`: a preemption or a crash at a known point of training, for subprocess tests."""

    def __init__(self, epoch: int, batch: int, signal: str) -> None:
        self.epoch, self.batch, self.signal = epoch, batch, signal

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            import signal

            os.kill(os.getpid(), getattr(signal, self.signal))


def tiny_cyclegan(root: Path) -> list[str]:
    """CLI arguments for configs/cyclegan_horse2zebra_small.yaml at a size a CPU test affords: 32 px
    crops of the fixture folder `root`, batch 1, pools of 2, one residual block per generator."""
    return [
        f"--config={REPO / 'configs' / 'cyclegan_horse2zebra_small.yaml'}",
        f"--data.root={root}",
        "--data.load_size=36",
        "--data.crop_size=32",
        "--data.batch_size=1",
        "--model.pool_size=2",
        "--model.generator_ab.num_blocks=1",
        "--model.generator_ba.num_blocks=1",
    ]
