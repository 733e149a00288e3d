"""FID / KID / IS: the feature extractors, and the SampleMetrics callback in one process and under DDP."""

import json
import subprocess
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.testing import assert_close

from lightning_dgm.callbacks import RealFeatureCache, SampleMetrics, generated_samples
from lightning_dgm.datamodules import DigitsDataModule, MNISTDataModule
from lightning_dgm.metrics import (
    INCEPTION_FILE,
    INCEPTION_URL,
    FrechetDistance,
    ImageFeatures,
    InceptionFeatures,
    InceptionScore,
    KernelDistance,
)
from lightning_dgm.metrics.features import INCEPTION_FILE_PYTORCH_FID
from lightning_dgm.types import signed_unit_to_uint8, to_signed_unit
from tests.helpers import PYTHON, REPO, SamplerSystem, subprocess_env, write_mnist


# -- stand-ins ----------------------------------------------------------------------------------
class RandomProjection(nn.Module):
    """Flattened pixels times a fixed random matrix: a tiny, deterministic feature extractor."""

    def __init__(self, in_features: int = 64, out_features: int = 16, seed: int = 0) -> None:
        super().__init__()
        weight = torch.randn(in_features, out_features, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("weight", weight / in_features**0.5)
        self.images_seen = 0

    def forward(self, x):
        self.images_seen += len(x)
        return x.flatten(1) @ self.weight


class ConstantLogits(nn.Module):
    """A classifier that gives every image the same class probabilities."""

    def forward(self, x):
        return torch.tensor([4.0, 1.0, 0.0], device=x.device).expand(len(x), 3)


class ReplaySystem(SamplerSystem):
    """`sample()` returns the training images themselves, in order (plus Gaussian noise of `noise_std`)."""

    def __init__(self, noise_std: float = 0.0) -> None:
        super().__init__()
        self.noise_std, self.cursor = noise_std, 0

    def sample(self, n, *, labels=None, generator=None):
        images = self.trainer.datamodule.train_set.images
        index = (self.cursor + torch.arange(n)) % len(images)
        self.cursor += n
        x = to_signed_unit(images[index])
        return (x + self.noise_std * torch.randn(x.shape, generator=generator)).clamp(-1, 1).to(self.device)


class ConditionalReplay(ReplaySystem):
    """A conditional system whose sample of class y is a flat 8x8 image of grey level y (-1 for 0,
    1 for 9); it records the labels it was given, its mode and the grad mode."""

    conditional = True
    num_classes = 10

    def __init__(self) -> None:
        super().__init__()
        self.calls = []

    def sample(self, n, *, labels=None, generator=None):
        self.calls.append((labels, self.training, torch.is_grad_enabled()))
        return (labels.float() / 4.5 - 1).view(n, 1, 1, 1).expand(n, 1, 8, 8)


class RecordedSampleMetrics(SampleMetrics):
    """SampleMetrics that also saves what `measure` returned on this rank, before Lightning's sync."""

    def measure(self, trainer, pl_module, split):
        values = super().measure(trainer, pl_module, split)
        torch.save(values, Path(trainer.default_root_dir) / f"measured_rank{trainer.global_rank}.pt")
        return values


def stand_in_inception(path: Path) -> dict:
    """A file shaped like the real FID Inception weights, with random values. pytorch-fid builds its
    FID Inception as torchvision's Inception3 (1008 classes, no aux head) and torch-fidelity adapts
    that code, so torchvision's state_dict keys are the real file's keys."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    state = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def digits():
    return DigitsDataModule(image_size=8, val_size=150, test_size=300)  # 1,347 train, 300 test images


NUM_TRAIN = 1797 - 150 - 300


def callback(cache_dir, **kwargs):
    settings = dict(
        feature=ImageFeatures(RandomProjection(), num_features=16),
        classifier=ImageFeatures(ConstantLogits(), num_features=3),
        metrics=[FrechetDistance(), KernelDistance(subsets=20, subset_size=500), InceptionScore()],
        num_samples=NUM_TRAIN,
        batch_size=500,
        cache_dir=str(cache_dir),
    )
    return SampleMetrics(**{**settings, **kwargs})


def fit(root, system, metrics_callback, test=False):
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(root),
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[metrics_callback, ModelCheckpoint(dirpath=root / "checkpoints", save_last=True)],
    )
    trainer.fit(system, datamodule=digits())
    values = {k: v.item() for k, v in trainer.callback_metrics.items()}
    if test:
        values.update({k: v for k, v in trainer.test(system, datamodule=trainer.datamodule, verbose=False)[0].items()})
    return trainer, values


def count_tensors(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return 1
    if isinstance(obj, dict):
        return sum(count_tensors(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(count_tensors(v) for v in obj)
    return 0


# -- extractors ---------------------------------------------------------------------------------
def test_inception_features_never_download_and_say_what_to_fetch(tmp_path, monkeypatch):
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    assert INCEPTION_URL == URL_INCEPTION_V3 and INCEPTION_URL.endswith("/" + INCEPTION_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError) as error:
        InceptionFeatures()
    expected = tmp_path / "torch" / "hub" / "checkpoints" / INCEPTION_FILE
    message = str(error.value)
    assert INCEPTION_FILE in message and INCEPTION_URL in message and f"save it as {expected}" in message
    assert "\n" not in message
    with pytest.raises(FileNotFoundError, match=f"save it as {tmp_path / 'missing.pth'}"):
        InceptionFeatures(weights_path=str(tmp_path / "missing.pth"))


def test_inception_features_load_a_local_stand_in_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = tmp_path / "torch" / "hub" / "checkpoints" / INCEPTION_FILE_PYTORCH_FID  # pytorch-fid's name also counts
    stand_in = stand_in_inception(path)

    pool = InceptionFeatures()  # found in $TORCH_HOME/hub/checkpoints, loaded strictly
    assert set(pool.network.state_dict()) == set(stand_in)
    assert_close(pool.network.Mixed_7c.branch_pool.conv.weight, stand_in["Mixed_7c.branch_pool.conv.weight"])
    assert pool.num_features == 2048 and not any(p.requires_grad for p in pool.parameters())
    grey = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8)
    features = pool(grey)  # the whole network, resizing to 299x299 itself
    assert features.shape == (2, 2048) and features.dtype == torch.float32 and torch.isfinite(features).all()
    logits = InceptionFeatures(weights_path=str(path), feature="logits_unbiased")
    assert logits.num_features == 1008 and logits.network.features_list == ["logits_unbiased"]
    with pytest.raises(ValueError, match="feature must be one of"):
        InceptionFeatures(weights_path=str(path), feature=1000)

    # What the network is given: uint8 RGB, from uint8 or float [0, 1] input, grey repeated.
    seen = []

    class Record(nn.Module):
        def forward(self, x):
            seen.append(x)
            return torch.zeros(len(x), 2048)

    pool.network = Record()
    pool(grey), pool(grey.float() / 255)
    assert all(x.dtype == torch.uint8 and x.shape == (2, 3, 16, 16) and torch.equal(x[:, 2:], grey) for x in seen)
    assert torch.equal(seen[0], seen[1])


def test_signed_unit_to_uint8_inverts_the_datamodules_mapping():
    every_level = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    assert torch.equal(signed_unit_to_uint8(to_signed_unit(every_level)), every_level)
    out_of_range = torch.tensor([-1.3, -1.0, -0.5, 0.0, 1.0, 1.2])
    assert signed_unit_to_uint8(out_of_range).tolist() == [0, 0, 64, 128, 255, 255]  # clamped, rounded


def test_image_features_range_channels_resize_and_width():
    seen = {}

    class Record(nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x.mean(dim=(2, 3))

    extractor = ImageFeatures(Record(), num_features=3, in_channels=3, image_size=12)
    images = torch.tensor([0, 255], dtype=torch.uint8).repeat_interleave(32).reshape(1, 1, 8, 8)
    assert extractor(images).shape == (1, 3)
    assert seen["x"].shape == (1, 3, 12, 12) and seen["x"].min() == -1 and seen["x"].max() == 1
    assert_close(extractor(images.float() / 255), extractor(images))
    assert not extractor.train().training  # stays in eval mode
    with pytest.raises(ValueError, match="num_features says 4"):
        ImageFeatures(Record(), num_features=4)(images)
    with pytest.raises(ValueError, match="3 channels"):
        ImageFeatures(Record(), num_features=1, in_channels=1)(images.expand(-1, 3, -1, -1))


# -- the callback, one process ------------------------------------------------------------------
def test_fid_kid_is_properties_and_the_real_features_cache(tmp_path):
    cache = tmp_path / "cache"
    first = callback(cache)
    trainer, exact = fit(tmp_path / "a", ReplaySystem(0.0), first)
    # One pass over the 1,347 real train images, one over as many samples; none in the sanity check.
    assert first.feature.network.images_seen == 2 * NUM_TRAIN
    (cache_file,) = cache.iterdir()
    written = cache_file.stat().st_mtime_ns
    assert exact["val/fid"] < 1e-6  # generated images are exactly the real ones: FID(x, x) = 0
    assert exact["val/is_mean"] == pytest.approx(1.0) and exact["val/is_std"] == pytest.approx(0.0, abs=1e-6)

    results = []
    for noise_std in (0.1, 0.5):
        again = callback(cache)
        _, values = fit(tmp_path / f"noise{noise_std}", ReplaySystem(noise_std), again)
        assert again.feature.network.images_seen == NUM_TRAIN  # real features came from the cache
        results.append(values)
    assert list(cache.iterdir()) == [cache_file] and cache_file.stat().st_mtime_ns == written
    assert exact["val/fid"] < results[0]["val/fid"] < results[1]["val/fid"]
    assert exact["val/kid_mean"] < results[0]["val/kid_mean"] < results[1]["val/kid_mean"]
    # KID(x, x) is ~0, a little below: random subsets of one set share images, which the unbiased
    # estimator's cross term counts and its within-set terms leave out.
    assert abs(exact["val/kid_mean"]) < 0.05 * results[1]["val/kid_mean"]

    # No extractor weights in checkpoints: the callback holds them and saves no state.
    checkpoint = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=False)
    assert list(checkpoint["state_dict"]) == ["weight"]
    assert first.state_dict() == {} and not any(k.startswith("SampleMetrics") for k in checkpoint["callbacks"])
    # The protocol is logged once, as plain hyperparameters (safe-loadable YAML).
    protocol = yaml.safe_load((Path(trainer.logger.log_dir) / "hparams.yaml").read_text())["sample_metrics"]
    assert protocol["num_generated"] == NUM_TRAIN and protocol["val_real"] == f"train split, first {NUM_TRAIN} images"
    assert protocol["torch"] == torch.__version__ and protocol["extractor"].startswith("ImageFeatures(network=Random")
    assert protocol["resize"] is None and protocol["classifier"].startswith("ImageFeatures(network=ConstantLogits")


def test_test_stage_scores_against_the_test_split(tmp_path):
    metrics = callback(tmp_path / "cache", metrics=[FrechetDistance()], classifier=None, num_real_samples=250)
    _, values = fit(tmp_path, ReplaySystem(0.0), metrics, test=True)
    assert metrics.feature.network.images_seen == 2 * (250 + NUM_TRAIN)  # train then test real features
    assert values["val/fid"] > 0 and values["test/fid"] > 0 and "val/kid_mean" not in values
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "cache").glob("*.pt")) == ["test", "train"]


def test_cache_key_follows_data_and_extractor_but_not_loader_settings(tmp_path, monkeypatch):
    def path(datamodule, seed=0, count=100):
        cache = RealFeatureCache(ImageFeatures(RandomProjection(seed=seed), num_features=16), tmp_path, 50, 0)
        return cache.path(cache.key(datamodule, "train", count))

    base = path(digits())
    assert path(DigitsDataModule(image_size=8, val_size=150, test_size=300, batch_size=7, num_workers=1)) == base
    assert path(digits(), seed=1) != base
    assert path(DigitsDataModule(image_size=8, val_size=150, test_size=300, seed=1)) != base
    assert path(DigitsDataModule(image_size=9, val_size=150, test_size=300)) != base
    assert path(digits(), count=99) != base

    # A relative data_dir is keyed by the folder it names, not by its spelling.
    for project in ("a", "b"):
        write_mnist(tmp_path / project / "data", n_train=8, n_test=4, seed=ord(project))
    monkeypatch.chdir(tmp_path / "a")
    in_a = path(MNISTDataModule(data_dir="data", download=False, val_size=2))
    assert path(MNISTDataModule(data_dir=str(tmp_path / "a" / "data"), download=False, val_size=2)) == in_a
    monkeypatch.chdir(tmp_path / "b")
    assert path(MNISTDataModule(data_dir="data", download=False, val_size=2)) != in_a


def test_conditional_systems_get_balanced_labels_in_eval_mode_without_grad(tmp_path):
    system = ConditionalReplay()
    metrics = callback(
        tmp_path / "cache", metrics=[FrechetDistance()], classifier=None, num_samples=1005, batch_size=400
    )
    _, values = fit(tmp_path, system, metrics)
    labels = torch.cat([labels for labels, _, _ in system.calls])
    assert [len(labels) for labels, _, _ in system.calls] == [400, 400, 205]
    assert torch.equal(labels, torch.arange(1005) % 10)  # every class 100 or 101 times
    assert not any(training or grad for _, training, grad in system.calls) and system.training  # train mode is back
    assert values["val/fid"] > 0


def test_generated_samples_split_the_indices_over_ranks():
    system = ConditionalReplay()
    shares = [list(generated_samples(system, 7, batch_size=2, rank=r, world_size=3)) for r in range(3)]
    assert [[b.index.tolist() for b in share] for share in shares] == [[[0, 1], [2]], [[3, 4]], [[5, 6]]]
    assert all(torch.equal(b.label, b.index % 10) for share in shares for b in share)
    assert all(torch.equal(b.image[:, 0, 3, 5], b.label / 4.5 - 1) for share in shares for b in share)
    system.num_classes = None
    with pytest.raises(ValueError, match="conditional but has no int `num_classes`"):
        next(generated_samples(system, 7, batch_size=2))


def test_settings_are_checked_up_front(tmp_path):
    feature = ImageFeatures(RandomProjection(), num_features=16)
    with pytest.raises(ValueError, match="InceptionScore needs class logits"):
        SampleMetrics(feature, metrics=[InceptionScore()])
    with pytest.raises(ValueError, match="supports"):
        SampleMetrics(feature, metrics=[torch.nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="pass an instance"):
        SampleMetrics(feature, metrics=[FrechetDistance])
    with pytest.raises(ValueError, match="num_features"):
        SampleMetrics(RandomProjection(), metrics=[FrechetDistance()])
    with pytest.raises(ValueError, match="subset_size=1000 images, more than num_samples=100"):
        SampleMetrics(feature, metrics=[KernelDistance()], num_samples=100)
    with pytest.raises(ValueError, match="FrechetDistance needs image features"):
        SampleMetrics(classifier=feature, metrics=[FrechetDistance(), InceptionScore()])
    with pytest.raises(ValueError, match="no two that log the same name"):
        SampleMetrics(feature, metrics=[KernelDistance(subset_size=10), KernelDistance(subset_size=20)])
    only_is = SampleMetrics(classifier=feature, metrics=[InceptionScore()])
    assert only_is.feature is None and only_is.cache is None  # IS alone needs no real data


# -- the callback under DDP, through the CLI ----------------------------------------------------
def extractor(out_features: int) -> dict:
    return {
        "class_path": "lightning_dgm.metrics.ImageFeatures",
        "init_args": {
            "network": {
                "class_path": "tests.test_sample_metrics.RandomProjection",
                "init_args": {"in_features": 256, "out_features": out_features},
            },
            "num_features": out_features,
        },
    }


def test_ddp_two_processes_log_identical_values_and_cache_all_real_features(tmp_path):
    cache = tmp_path / "cache"
    settings = {
        "class_path": "tests.test_sample_metrics.RecordedSampleMetrics",
        "init_args": {
            "feature": extractor(16),
            "classifier": extractor(10),
            "metrics": [
                {"class_path": "lightning_dgm.metrics.FrechetDistance"},
                {
                    "class_path": "lightning_dgm.metrics.KernelDistance",
                    "init_args": {"subsets": 10, "subset_size": 100},
                },
                {"class_path": "lightning_dgm.metrics.InceptionScore"},
            ],
            "num_samples": 301,  # shares of 151 and 150
            "batch_size": 75,
            "cache_dir": str(cache),
        },
    }
    out = subprocess.run(
        [
            PYTHON,
            "-m",
            "lightning_dgm",
            "fit",
            "--config",
            str(REPO / "configs" / "gan_digits.yaml"),
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.strategy=ddp_find_unused_parameters_true",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger=false",
            f"--trainer.callbacks+={json.dumps(settings)}",
            "--trainer.callbacks+=tests.helpers.DumpMetrics",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    folder = tmp_path / "runs" / "gan_digits" / "version_0"
    rank0, rank1 = (torch.load(folder / f"metrics_rank{r}.pt") for r in (0, 1))
    measured0, measured1 = (torch.load(folder / f"measured_rank{r}.pt") for r in (0, 1))  # before Lightning's sync
    for name in ("fid", "kid_mean", "kid_std", "is_mean", "is_std"):
        assert torch.isfinite(measured0[name]) and measured0[name] != 0, name
        assert_close(measured0[name], measured1[name], rtol=0, atol=0)
        assert_close(rank0[f"val/{name}"], measured0[name], rtol=0, atol=0)
        assert_close(rank1[f"val/{name}"], measured0[name], rtol=0, atol=0)

    # Each rank extracted half of the real images; the cache holds all of them, in order.
    (path,) = cache.glob("DigitsDataModule-train-*.pt")
    cached = torch.load(path, weights_only=True)
    data = DigitsDataModule(image_size=16)
    data.setup("fit")
    expected = ImageFeatures(RandomProjection(256, 16), num_features=16)(data.train_set.images)
    assert_close(cached["features"], expected)

    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)
    assert all(k.startswith(("generator.", "discriminator.")) for k in checkpoint["state_dict"])
    assert not any(k.startswith("SampleMetrics") for k in checkpoint["callbacks"])  # it saves no state
