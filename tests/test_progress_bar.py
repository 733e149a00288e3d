"""The CLI's default progress bar: Lightning's TQDM bar, redrawn by the clock and at each loop's last
batch; a bar the config chooses, or none, is left as asked."""

import lightning as L
import pytest
from lightning.pytorch.callbacks import TQDMProgressBar

from lightning_dgm.callbacks import ProgressBar
from lightning_dgm.cli import LightningDGMCLI
from lightning_dgm.datamodules import DigitsDataModule
from lightning_dgm.errors import ConfigError
from tests.helpers import REPO
from tests.test_gan import tiny_gan


def drawn_batches(monkeypatch, bar: ProgressBar, batches: int = 10) -> tuple[list[int], list[int]]:
    """Fits a tiny GAN with `bar`; the training and validation batches at which Lightning's bar redrew."""
    drawn = {"train": [], "validation": []}
    train_draw, val_draw = TQDMProgressBar.on_train_batch_end, TQDMProgressBar.on_validation_batch_end

    def on_train(self, trainer, module, outputs, batch, batch_idx):
        drawn["train"].append(batch_idx)
        train_draw(self, trainer, module, outputs, batch, batch_idx)

    def on_validation(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        drawn["validation"].append(batch_idx)
        val_draw(self, trainer, module, outputs, batch, batch_idx, dataloader_idx)

    monkeypatch.setattr(TQDMProgressBar, "on_train_batch_end", on_train)
    monkeypatch.setattr(TQDMProgressBar, "on_validation_batch_end", on_validation)
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=batches, limit_val_batches=3, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_model_summary=False, accelerator="cpu", callbacks=[bar],
    )  # fmt: skip
    trainer.fit(tiny_gan(), DigitsDataModule(batch_size=8))
    assert trainer.progress_bar_callback is bar and bar.train_progress_bar.n == batches  # the count is complete
    return drawn["train"], drawn["validation"]


def test_the_bar_is_redrawn_by_the_clock_and_at_the_last_batch(monkeypatch):
    assert drawn_batches(monkeypatch, ProgressBar(refresh_seconds=3600)) == ([0, 9], [0, 2])
    assert drawn_batches(monkeypatch, ProgressBar(refresh_seconds=0)) == (list(range(10)), [0, 1, 2])


def test_a_negative_interval_is_refused():
    with pytest.raises(ConfigError, match="refresh_seconds must be 0 or more"):
        ProgressBar(refresh_seconds=-1)


def cli(tmp_path, *args: str) -> LightningDGMCLI:
    config = ["--config", str(REPO / "configs/gan_digits.yaml"), f"--trainer.default_root_dir={tmp_path}"]
    return LightningDGMCLI(args=[*config, *args], run=False)


@pytest.mark.parametrize(
    "args, expected",
    [
        ((), ProgressBar),
        (("--trainer.callbacks+=lightning.pytorch.callbacks.TQDMProgressBar",), TQDMProgressBar),
        (
            ("--trainer.callbacks+=lightning_dgm.callbacks.ProgressBar", "--trainer.callbacks.refresh_seconds=2"),
            ProgressBar,
        ),
        (("--trainer.enable_progress_bar=false",), type(None)),
    ],
)
def test_the_cli_uses_the_clock_bar_unless_the_config_chooses(tmp_path, args, expected):
    trainer = cli(tmp_path, *args).trainer
    assert type(trainer.progress_bar_callback) is expected
    bars = [c for c in trainer.callbacks if isinstance(c, L.pytorch.callbacks.ProgressBar)]
    assert len(bars) == (expected is not type(None))
    if "--trainer.callbacks.refresh_seconds=2" in args:  # the configured bar itself, not a default
        assert bars[0].refresh_seconds == 2
