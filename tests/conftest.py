import os

import pytest

from tests.helpers import write_mnist


@pytest.fixture(autouse=True)
def _offline_and_isolated(tmp_path, monkeypatch):
    """Every test runs in its own folder, with W&B offline and nothing inherited from other runs."""
    monkeypatch.chdir(tmp_path)
    if os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
        monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield


@pytest.fixture
def mnist_root(tmp_path):
    """A data_dir holding tiny MNIST IDX files written by the test."""
    root = tmp_path / "data"
    write_mnist(root)
    return root
