"""`max_time_share`: evaluations during fit stay within a share of the run's wall time, on any device.
The clock is the test's: a training batch takes 1 s, a batch through the feature extractor 1 s."""

import csv

import lightning as L
import pytest
from lightning.pytorch.loggers import CSVLogger

from lightning_dgm.callbacks import SampleMetrics
from lightning_dgm.callbacks.budget import TimeShare
from lightning_dgm.errors import ConfigError
from lightning_dgm.metrics import FrechetDistance, ImageFeatures
from tests.test_sample_metrics import RandomProjection, ReplaySystem, digits


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TrainingTakesTime(L.Callback):
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def on_train_batch_end(self, *args) -> None:
        self.clock.now += 1.0


class SlowProjection(RandomProjection):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def forward(self, x):
        self.clock.now += 1.0
        return super().forward(x)


def evaluated_epochs(tmp_path, max_time_share):
    clock = Clock()
    metrics = SampleMetrics(
        feature=ImageFeatures(SlowProjection(clock), num_features=16),
        metrics=[FrechetDistance()],
        num_samples=400,  # 4 batches: 4 s an evaluation
        num_real_samples=400,  # 4 s of real features, once: not counted
        batch_size=100,
        cache_dir=str(tmp_path / f"cache{max_time_share}"),
        max_time_share=max_time_share,
    )
    if metrics.time_share is not None:
        metrics.time_share.clock = clock
    trainer = L.Trainer(
        max_epochs=8, limit_train_batches=4, limit_val_batches=1, accelerator="cpu", devices=1,
        logger=CSVLogger(tmp_path, name="run", version=str(max_time_share)), enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[TrainingTakesTime(clock), metrics],
    )  # fmt: skip
    trainer.fit(ReplaySystem(noise_std=0.1), datamodule=digits())
    with open(tmp_path / "run" / str(max_time_share) / "metrics.csv") as file:
        epochs = [int(row["epoch"]) for row in csv.DictReader(file) if row.get("val/fid")]
    return epochs, metrics, clock


def test_evaluations_wait_until_they_fit_the_share_of_wall_time(tmp_path):
    every, _, _ = evaluated_epochs(tmp_path, None)
    assert every == list(range(8))
    # Share 0.25, 4 s of training an epoch, 4 s an evaluation, 4 s of real features once (left out of
    # the account). Epoch 0: 1.33 s allowed, the first batch (1 s) projects 4 s: stopped there. Then
    # an epoch is evaluated when (spent + 4) / (elapsed + 4) <= 0.25: after epochs 3 (17 s elapsed,
    # 1 spent) and 6 (33 s, 5 spent).
    epochs, metrics, clock = evaluated_epochs(tmp_path, 0.25)
    assert epochs == [3, 6]
    budget = metrics.time_share
    assert budget.spent == 1 + 4 + 4 and budget.expected == 4 and budget.excluded == 4
    assert clock.now == 8 * 4 + 1 + 4 + 4 + 4  # training, the stopped first batch, two evaluations, real features
    assert budget.spent / (clock.now - budget.excluded) <= 0.25


@pytest.mark.parametrize("share", [0, 1, -0.1, 1.5])
def test_the_share_is_checked(share):
    with pytest.raises(ConfigError, match="max_time_share must be between 0 and 1"):
        TimeShare(share)
