"""RetainFreedMemory: glibc keeps freed host memory for reuse, so reused blocks cost no page faults.

malloc's settings belong to the process, so the runs that compare them each get a fresh interpreter."""

import logging
import platform
import subprocess
import sys

import pytest

from lightning_dgm.callbacks import RetainFreedMemory, speed
from lightning_dgm.errors import ConfigError
from tests.helpers import REPO

# A tiny GAN fit (with or without the callback), then 40 MiB allocated, written and freed 5 times:
# above glibc's largest automatic mmap threshold (32 MiB), so by default every round maps fresh pages.
SCRIPT = """
import resource, sys
import lightning as L, torch
from lightning_dgm.callbacks import RetainFreedMemory
from lightning_dgm.datamodules import DigitsDataModule
from lightning_dgm.models import GAN
from lightning_dgm.nets import MLPDiscriminator, MLPGenerator

model = GAN(MLPGenerator(8, [16], (1, 8, 8)), MLPDiscriminator((1, 8, 8), [16]))
callbacks = [RetainFreedMemory()] if sys.argv[1] == "retain" else []
L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
          enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks).fit(
    model, DigitsDataModule(batch_size=8))
torch.empty(10 * 2**20).fill_(1.0)  # the first round may map pages either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.empty(10 * 2**20).fill_(1.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_reused_memory_costs_no_page_faults_with_the_callback():
    pages = 5 * 40 * 2**20 // 4096  # what mapping every round afresh costs: one fault per 4 KiB page
    assert page_faults("default") > pages // 2
    # Reused: no faults, except that in about one run of three one round maps afresh (likely a small
    # allocation from another thread lands at the top of the heap between rounds; the next block goes above it).
    assert page_faults("retain") < pages // 5 + 200


def test_thresholds_are_checked_when_configured():
    with pytest.raises(ConfigError, match="mmap_threshold must be between 1 and 2147483647 bytes"):
        RetainFreedMemory(mmap_threshold=0)
    with pytest.raises(ConfigError, match="trim_threshold must be between 1 and 2147483647 bytes .*, got 4294967296"):
        RetainFreedMemory(trim_threshold=2**32)


def test_without_glibc_it_says_so_and_changes_nothing(monkeypatch, caplog):
    monkeypatch.setattr(speed.sys, "platform", "darwin")
    assert speed.retain_freed_memory() is False
    with caplog.at_level(logging.INFO):
        RetainFreedMemory().setup(None, None, "fit")
    assert "no glibc mallopt" in caplog.text
