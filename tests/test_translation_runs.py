"""Translation systems as a user runs them: the small configs through the CLI on tiny folders of
the real layouts, bf16-mixed, validate/test, DDP over gloo; FID / KID of translations."""

import json
import subprocess

import lightning as L
import pytest
import torch
from torch.testing import assert_close

from lightning_dgm.callbacks import TranslationMetrics
from lightning_dgm.datamodules import UnpairedDataModule
from lightning_dgm.metrics import FrechetDistance, ImageFeatures, KernelDistance
from lightning_dgm.models import TranslationSystem
from lightning_dgm.types import to_signed_unit
from tests.helpers import PYTHON, REPO, run_cli, subprocess_env, tiny_cyclegan, write_domain, write_side_by_side
from tests.test_sample_metrics import RandomProjection

SMALL = [
    "--data.load_size=36",
    "--data.crop_size=32",
    "--data.batch_size=2",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
]


def facades(root, n_train=4, n_val=2, n_test=2):
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        write_side_by_side(root, split, n, size=40, seed=hash(split) % 1000)
    return root


def horse2zebra(root, sizes=(4, 5, 3, 4)):
    for folder, n, seed in zip(("trainA", "trainB", "testA", "testB"), sizes, (0, 100, 200, 300)):
        write_domain(root, folder, n, seed=seed, size=40)
    return root


def test_pix2pix_small_trains_in_bf16_and_tests_from_its_checkpoint(tmp_path):
    root = facades(tmp_path / "facades")
    config = str(REPO / "configs" / "pix2pix_facades_small.yaml")
    fit = run_cli(
        "fit",
        f"--config={config}",
        f"--data.root={root}",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        "--trainer.max_epochs=2",
        "--trainer.precision=bf16-mixed",
        "--trainer.log_every_n_steps=1",  # the test reads the training logs
        *SMALL,
    )
    run = tmp_path / "runs" / "version_0"
    assert fit.model.generator.image_size == 32  # linked from data.crop_size
    assert sorted(p.name for p in (run / "translations").iterdir()) == ["epoch_000.png", "epoch_001.png"]
    metrics = {k: v.item() for k, v in fit.trainer.callback_metrics.items()}
    assert {"val/l1", "val/psnr", "val/ssim", "d_loss", "g_l1"} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    # 2 epochs of a 10 + 10 linear decay: the rate for epoch 2 is 1 - (2 + 1 - 10) / 11 clipped to 1
    assert [g["lr"] for opt in fit.model.optimizers() for g in opt.param_groups] == [2e-4, 2e-4]
    test = run_cli(
        "test",
        f"--config={config}",
        f"--data.root={root}",
        f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        *SMALL,
    )
    tested = test.trainer.callback_metrics
    assert {"test/l1", "test/psnr", "test/ssim"} <= set(tested)
    assert 0 < tested["test/psnr"] < 60 and -1 <= tested["test/ssim"] <= 1
    # predict translates every test image (center crop) and writes it as predict does samples
    run_cli(
        "predict",
        f"--config={config}",
        f"--data.root={root}",
        f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        *SMALL,
    )
    written = torch.load(run / "predictions" / "samples.pt")
    assert set(written) == {"images"} and len(list((run / "predictions").glob("*.png"))) == 2
    model = test.model.eval()
    with torch.no_grad():
        expected = model.translate(to_signed_unit(test.datamodule.test_set.source))
    assert_close(written["images"], expected.clamp(-1, 1))


class Shift(TranslationSystem):
    """translate(x) = x + shift: a stand-in system whose translations are known."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift

    def translate(self, source):
        return (source + self.shift).clamp(-1, 1)

    def validation_step(self, batch, batch_idx):
        pass


def translation_scores(root, shift, cache_dir, **settings):
    """validate(Shift(shift)) with TranslationMetrics on an 8-d random projection: (values, images projected)."""
    projection = RandomProjection(in_features=3 * 8 * 8, out_features=8)
    kid = KernelDistance(subsets=10, subset_size=settings.pop("subset_size", 5))
    settings = {"metrics": [FrechetDistance(), kid], "batch_size": 4, "cache_dir": str(cache_dir)} | settings
    metrics = TranslationMetrics(ImageFeatures(projection, num_features=8), **settings)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[metrics])
    trainer.validate(Shift(shift), datamodule=UnpairedDataModule(str(root), load_size=8, crop_size=8), verbose=False)
    return {k: v.item() for k, v in trainer.callback_metrics.items()}, projection.images_seen


def test_translation_metrics_are_zero_for_a_perfect_translation_and_grow_with_its_error(tmp_path):
    # Domain B is domain A: translating by the identity scores FID 0 against B; a shifted
    # translation scores worse, more with a larger shift.
    for folder in ("trainA", "trainB", "testA", "testB"):
        write_domain(tmp_path, folder, 6, seed=0, size=8)
    values = [translation_scores(tmp_path, shift, tmp_path / "cache")[0] for shift in (0.0, 0.2, 0.6)]
    assert values[0]["val/fid"] < 1e-3 < values[1]["val/fid"] < values[2]["val/fid"]
    assert values[0]["val/kid_mean"] < values[1]["val/kid_mean"] < values[2]["val/kid_mean"]


def test_translation_metrics_score_each_image_of_both_domains_once(tmp_path):
    write_domain(tmp_path, "trainA", 2, seed=0, size=8), write_domain(tmp_path, "trainB", 2, seed=0, size=8)
    write_domain(tmp_path, "testA", 6, seed=0, size=8), write_domain(tmp_path, "testB", 9, seed=50, size=8)
    _, seen = translation_scores(tmp_path, 0.0, tmp_path / "cache")
    assert seen == 6 + 9  # 6 translations, 9 target images (the split's items wrap the smaller domain)
    _, seen = translation_scores(tmp_path, 0.0, tmp_path / "cache")
    assert seen == 6  # the target features come from the cache
    with pytest.raises(
        ValueError, match="subset_size=50 images, more than the translations of the val split's 6 source"
    ):
        translation_scores(tmp_path, 0.0, tmp_path / "cache", subset_size=50)


def test_cyclegan_ddp_two_processes_keep_identical_weights_and_metrics(tmp_path):
    root = horse2zebra(tmp_path / "horse2zebra")
    feature = {
        "class_path": "lightning_dgm.metrics.ImageFeatures",
        "init_args": {
            "network": {
                "class_path": "tests.test_sample_metrics.RandomProjection",
                "init_args": {"in_features": 3 * 32 * 32, "out_features": 8},
            },
            "num_features": 8,
        },
    }
    metrics = {
        "class_path": "lightning_dgm.callbacks.TranslationMetrics",
        "init_args": {
            "feature": feature,
            "metrics": [
                {"class_path": "lightning_dgm.metrics.FrechetDistance"},
                {"class_path": "lightning_dgm.metrics.KernelDistance", "init_args": {"subsets": 5, "subset_size": 3}},
            ],
            "batch_size": 2,
            "cache_dir": str(tmp_path / "c"),
        },
    }
    out = subprocess.run(
        [
            PYTHON,
            "-m",
            "lightning_dgm",
            "fit",
            "--config",
            str(REPO / "configs" / "cyclegan_horse2zebra_small.yaml"),
            f"--data.root={root}",
            "--data.load_size=36",
            "--data.crop_size=32",
            "--data.batch_size=1",
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.strategy=ddp_find_unused_parameters_true",
            "--trainer.max_epochs=2",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path / 'r'}",
            f"--trainer.callbacks+={json.dumps(metrics)}",
            "--trainer.callbacks+=tests.helpers.DumpMetrics",
            "--trainer.callbacks+=tests.helpers.DumpWeights",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=subprocess_env(),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    folder = tmp_path / "r" / "version_0"
    weights = [torch.load(folder / f"weights_rank{r}.pt") for r in (0, 1)]
    assert_close(weights[0], weights[1], rtol=0, atol=0)
    values = [torch.load(folder / f"metrics_rank{r}.pt") for r in (0, 1)]
    for name in ("val/fid", "val/kid_mean", "val/cycle_a", "val/identity_b"):
        assert torch.isfinite(values[0][name]), name
        assert_close(values[0][name], values[1][name], rtol=0, atol=0)
    # 5 zebras in trainB, the larger domain: 5 items per epoch, over 2 ranks at batch 1 -> 3 steps each
    # (the shorter shard padded), a G and a D update per step, 2 epochs.
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 2 * 3 * 2
    pools = checkpoint["image_pools"]  # one per rank, each 2 epochs x 3 steps x 1 image
    assert len(pools) == 2 and all(len(pool["a"]["images"]) == 6 for pool in pools)
    assert sorted(p.name for p in (folder / "translations").iterdir()) == ["epoch_000.png", "epoch_001.png"]


def test_cyclegan_resume_gives_the_same_weights_pools_and_schedule_as_an_uninterrupted_run(tmp_path):
    # The pools are training state: a resumed run must draw from the same history, and its random
    # swaps (seeded by step) and crops (seeded by epoch) must match the uninterrupted run's.
    root = horse2zebra(tmp_path / "horse2zebra", sizes=(3, 3, 2, 2))
    common = [
        *tiny_cyclegan(root),
        "--model.g_lr_scheduler.constant_epochs=1",
        "--model.g_lr_scheduler.decay_epochs=3",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.logger=false",
        "--trainer.limit_val_batches=0",
    ]
    run_cli("fit", *common, "--trainer.max_epochs=3", f"--trainer.default_root_dir={tmp_path / 'straight'}")
    run_cli("fit", *common, "--trainer.max_epochs=1", f"--trainer.default_root_dir={tmp_path / 'split'}")
    interrupted = tmp_path / "split" / "version_0" / "checkpoints" / "last.ckpt"
    run_cli(
        "fit",
        *common,
        "--trainer.max_epochs=3",
        f"--trainer.default_root_dir={tmp_path / 'split'}",
        f"--ckpt_path={interrupted}",
    )
    straight, resumed = (
        torch.load(path, weights_only=False)
        for path in (tmp_path / "straight" / "version_0" / "checkpoints" / "last.ckpt", interrupted)
    )
    assert straight["global_step"] == resumed["global_step"] == 3 * 3 * 2
    assert_close(resumed["state_dict"], straight["state_dict"], rtol=0, atol=0)
    assert_close(resumed["image_pools"], straight["image_pools"], rtol=0, atol=0)
    assert len(straight["image_pools"][0]["b"]["images"]) == 2  # full: swaps happened after the first 2 steps
    g_lr = [s["_last_lr"] for s in straight["lr_schedulers"]]
    assert g_lr == [s["_last_lr"] for s in resumed["lr_schedulers"]] and g_lr[0] == [2e-4 * (1 - 3 / 4)]
