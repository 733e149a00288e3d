"""The framework's classifier, and what it measures: domain FID features, class coverage,
conditional accuracy (in one process and under DDP), and both classifier configs through the CLI."""

import json
import subprocess
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.testing import assert_close

from lightning_dgm.callbacks import ClassMetrics, SampleMetrics
from lightning_dgm.datamodules import DigitsDataModule
from lightning_dgm.metrics import (
    ClassDistribution,
    ClassifierFeatures,
    ClassifierLogits,
    FrechetDistance,
    InceptionScore,
    class_coverage,
    conditional_accuracy,
    fingerprint,
    load_classifier,
)
from lightning_dgm.models import GAN, Classifier, ConditionalGAN
from lightning_dgm.nets import (
    ConditionalMLPDiscriminator,
    ConditionalMLPGenerator,
    ConvClassifier,
    MLPDiscriminator,
    MLPGenerator,
)
from lightning_dgm.types import to_signed_unit
from tests.helpers import PYTHON, REPO, SamplerSystem, run_cli, subprocess_env, write_cifar10

SIDE = 16  # digits upscaled to 16x16, as in configs/gan_digits.yaml


def digits(**kwargs) -> DigitsDataModule:
    return DigitsDataModule(**{"image_size": SIDE, "val_size": 150, "test_size": 300, "batch_size": 64, **kwargs})


def trainer(root, callbacks=(), epochs=1, **kwargs) -> L.Trainer:
    settings = dict(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=list(callbacks),
    )
    return L.Trainer(**{**settings, **kwargs})


# -- real images as a "generator" ----------------------------------------------------------------
def replay(images, classes, n, labels=None, generator=None, shift=0, only=None) -> torch.Tensor:
    """n real training images in [-1, 1]: random ones of class (labels + shift) % 10 when labels are
    given; else random ones of any class, or of the classes in `only`."""
    if labels is None:
        pool = torch.arange(len(images)) if only is None else torch.isin(classes, torch.tensor(only)).nonzero()[:, 0]
        index = pool[torch.randint(len(pool), (n,), generator=generator)]
    else:
        draw = torch.randint(1 << 30, (n,), generator=generator)
        pools = [torch.nonzero(classes == (int(y) + shift) % 10)[:, 0] for y in labels.cpu()]
        index = torch.stack([pool[d % len(pool)] for pool, d in zip(pools, draw)])
    return to_signed_unit(images[index])


class RealImages(SamplerSystem):
    """`sample()` draws real images of the train (test, in trainer.test) split (see `replay`):
    conditional, so each sample shows a digit of its label (shifted by `shift`)."""

    conditional = True

    def __init__(self, num_classes: int | None = 10, shift: int = 0, only: list[int] | None = None) -> None:
        super().__init__()
        self.num_classes, self.shift, self.only = num_classes, shift, only

    def sample(self, n, *, labels=None, generator=None):
        datamodule = self.trainer.datamodule
        # trainer.test sets up the test split only
        data = datamodule.train_set if datamodule.train_set is not None else datamodule.test_set
        if not self.conditional:
            labels = None
        return replay(data.images, data.labels, n, labels, generator, self.shift, self.only).to(self.device)


class UnconditionalRealImages(RealImages):
    """Real images of any class, or only of the classes in `only` (a collapsed generator)."""

    conditional = False


def as_cli_checkpoint(path, class_path: str, **init_args) -> None:
    """Rewrites a Trainer's checkpoint at `path` with the hyperparameters LightningCLI would have saved."""
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["hyper_parameters"] = {
        **init_args,
        "_class_path": class_path,
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
    }
    torch.save(checkpoint, path)


# -- the classifier ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A ConvClassifier trained on 1,347 real digits (16x16) for 8 epochs; its checkpoint and test accuracy."""
    root = tmp_path_factory.mktemp("classifier")
    L.seed_everything(0)
    model = Classifier(
        ConvClassifier((1, SIDE, SIDE), 10, channels=(16, 32), num_features=32, dropout=0.1),
        optimizer=lambda params: torch.optim.Adam(params, lr=3e-3),
    )
    fit = trainer(root, [ModelCheckpoint(dirpath=root, save_last=True)], epochs=8, limit_val_batches=0)
    fit.fit(model, datamodule=digits())
    accuracy = fit.test(model, datamodule=fit.datamodule, verbose=False)[0]["test/acc"]
    # Hyperparameters as a CLI run writes them (class paths and plain values, `_class_path` naming the
    # system): load_classifier rebuilds from those with weights_only=True, never from pickled modules.
    as_cli_checkpoint(
        root / "last.ckpt",
        "lightning_dgm.models.Classifier",
        network={
            "class_path": "lightning_dgm.nets.ConvClassifier",
            "init_args": {"image_shape": [1, SIDE, SIDE], "num_classes": 10, "channels": [16, 32], "num_features": 32},
        },
        num_classes=10,
    )
    return SimpleNamespace(checkpoint=root / "last.ckpt", model=model.eval(), accuracy=accuracy)


def test_classifier_learns_real_digits_to_high_test_accuracy(trained):
    assert trained.accuracy > 0.93  # 300 held-out digits; chance is 0.1
    assert trained.model.num_classes == 10 and trained.model.num_features == 32
    assert trained.model.image_shape == (1, SIDE, SIDE)


def test_conv_classifier_shapes_and_errors():
    net = ConvClassifier((3, 32, 32), 10, channels=(8, 16, 32), convs_per_stage=2, batch_norm=True, num_features=24)
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    assert net(x).shape == (5, 10) and net.features(x).shape == (5, 24) and (net.features(x) >= 0).all()
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 6
    with pytest.raises(ValueError, match=r"built for images of shape \(3, 32, 32\), got \(1, 28, 28\)"):
        net(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="use fewer channels"):
        ConvClassifier((1, 8, 8), 10, channels=(8, 8, 8, 8))
    with pytest.raises(ValueError, match="built for 5 classes but the model has 10"):
        Classifier(ConvClassifier(num_classes=5), num_classes=10)


# -- pure metrics --------------------------------------------------------------------------------
def test_class_coverage_and_conditional_accuracy_exact_values():
    predictions = torch.tensor([0, 0, 0, 1, 1, 2, 0, 0])  # counts 5, 2, 1, 0 over 4 classes
    present, largest = class_coverage(predictions, num_classes=4)
    assert present.item() == 3 and largest.item() == 5 / 8
    assert class_coverage(predictions, 4, min_count=2).classes_present.item() == 2
    assert class_coverage(torch.arange(10), 10) == (10, 0.1)  # balanced: every class, share 1/K
    labels = torch.tensor([0, 1, 0, 1, 1, 2, 3, 3])
    assert conditional_accuracy(predictions, labels).item() == 5 / 8  # items 0, 2, 3, 4, 5

    metric = ClassDistribution(num_classes=4, min_count=2)  # streams, same numbers
    metric.update(predictions[:3], labels[:3])
    metric.update(predictions[3:], labels[3:])
    assert {k: v.item() for k, v in metric.compute().items()} == {
        "class_coverage": 2.0,
        "largest_class_share": 5 / 8,
        "conditional_accuracy": 5 / 8,
    }
    metric.reset()
    metric.update(predictions)
    assert "conditional_accuracy" not in metric.compute()

    with pytest.raises(ValueError, match=r"in \[0, 4\), got values in \[0, 4\]"):
        class_coverage(torch.tensor([0, 4]), 4)
    with pytest.raises(ValueError, match="argmax"):
        class_coverage(torch.rand(3, 4), 4)
    with pytest.raises(ValueError, match="at least one sample"):
        class_coverage(torch.zeros(0, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="one shape"):
        conditional_accuracy(predictions, labels[:3])


# -- the classifier as a feature extractor -------------------------------------------------------
def test_classifier_features_load_a_checkpoint_and_match_the_classifier(trained):
    data = digits()
    data.setup("fit")
    images = data.train_set.images[:40]  # uint8, what SampleMetrics passes
    features = ClassifierFeatures(str(trained.checkpoint))
    assert features.num_features == 32 and not features.training
    assert not any(p.requires_grad for p in features.parameters())
    out = features(images)
    assert out.shape == (40, 32) and out.dtype == torch.float32
    with torch.no_grad():
        expected = trained.model.features(to_signed_unit(images))
    assert_close(out, expected)  # the classifier's own penultimate features
    assert_close(features(images), out, rtol=0, atol=0)  # deterministic (dropout off)
    again = ClassifierFeatures(str(trained.checkpoint))
    assert fingerprint(again) == fingerprint(features)  # a stable key for SampleMetrics' real-feature cache
    assert fingerprint(ClassifierLogits(str(trained.checkpoint))) != fingerprint(features)
    with torch.no_grad():
        assert_close(ClassifierLogits(str(trained.checkpoint))(images), trained.model(to_signed_unit(images)))
    with pytest.raises(ValueError, match=r"takes images of shape \(1, 16, 16\), got \(1, 8, 8\)"):
        features(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


def test_classifier_fid_and_is_of_real_digits_through_sample_metrics(trained, tmp_path):
    """FID(real, real) = 0 and a high IS (confident, balanced predictions) in the classifier's space."""
    metrics = SampleMetrics(
        ClassifierFeatures(str(trained.checkpoint)),
        classifier=ClassifierLogits(str(trained.checkpoint)),
        metrics=[FrechetDistance(), InceptionScore(splits=5)],
        num_samples=1347,
        batch_size=500,
        cache_dir=str(tmp_path / "cache"),
    )

    class Ordered(UnconditionalRealImages):  # the training images themselves, in order
        def sample(self, n, *, labels=None, generator=None):
            images = self.trainer.datamodule.train_set.images
            self.cursor = getattr(self, "cursor", 0) + n
            return to_signed_unit(images[self.cursor - n : self.cursor])

    run = trainer(tmp_path, [metrics], limit_train_batches=1, limit_val_batches=1)
    run.fit(Ordered(), datamodule=digits())
    assert run.callback_metrics["val/fid"] < 1e-3
    assert run.callback_metrics["val/is_mean"] > 8.0  # at most 10 for 10 classes


def test_load_classifier_errors_say_what_to_do(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="classifier_mnist.yaml"):
        load_classifier(tmp_path / "missing.ckpt")
    gan = GAN(
        MLPGenerator(latent_dim=8, hidden_dims=[16], image_shape=(1, SIDE, SIDE)),
        MLPDiscriminator(hidden_dims=[16], image_shape=(1, SIDE, SIDE)),
    )
    run = trainer(tmp_path, limit_train_batches=1, limit_val_batches=0)
    run.fit(gan, datamodule=digits())
    run.save_checkpoint(tmp_path / "gan.ckpt")
    with pytest.raises(ValueError, match="holds pickled Python objects, which are not loaded"):
        ClassifierFeatures(str(tmp_path / "gan.ckpt"))  # a Trainer's own checkpoint pickles the injected nets
    mlp = {"image_shape": [1, SIDE, SIDE], "hidden_dims": [16]}
    as_cli_checkpoint(
        tmp_path / "gan.ckpt",
        "lightning_dgm.models.GAN",
        generator={"class_path": "lightning_dgm.nets.MLPGenerator", "init_args": {"latent_dim": 8, **mlp}},
        discriminator={"class_path": "lightning_dgm.nets.MLPDiscriminator", "init_args": mlp},
    )
    with pytest.raises(
        ValueError,
        match=r"not a Classifier checkpoint \(it holds lightning_dgm.models.GAN, which has no int num_classes",
    ):
        ClassifierFeatures(str(tmp_path / "gan.ckpt"))
    torch.save(trained.model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="not a Lightning checkpoint"):
        ClassMetrics(str(tmp_path / "weights.pt"))


# -- ClassMetrics --------------------------------------------------------------------------------
def expected_values(classifier, split, num_samples, batch_size, seed=0, world_size=1, **replay_args):
    """What ClassMetrics must log: the same samples, classified, counted over all ranks."""
    metric = ClassDistribution(10)
    conditional = "shift" in replay_args
    for rank in range(world_size):
        generator = torch.Generator().manual_seed(seed + rank)
        for index in torch.arange(num_samples).tensor_split(world_size)[rank].split(batch_size):
            labels = index % 10 if conditional else None
            with torch.no_grad():
                samples = replay(split.images, split.labels, len(index), labels, generator, **replay_args)
                predictions = classifier(samples).argmax(1)
            metric.update(predictions, labels)
    return {f"val/{k}": v.float() for k, v in metric.compute().items()}


def test_class_metrics_on_a_conditional_model_of_real_digits(trained, tmp_path):
    callback = ClassMetrics(str(trained.checkpoint), num_samples=300, batch_size=128)
    run = trainer(
        tmp_path,
        [callback, ModelCheckpoint(dirpath=tmp_path, save_last=True)],
        limit_train_batches=1,
        limit_val_batches=1,
    )
    run.fit(RealImages(), datamodule=digits())
    logged = {k: v for k, v in run.callback_metrics.items() if k.startswith("val/")}
    assert_close(logged, expected_values(trained.model, run.datamodule.train_set, 300, 128, shift=0), rtol=0, atol=0)
    assert logged["val/conditional_accuracy"] > 0.95 and logged["val/class_coverage"] == 10
    assert logged["val/largest_class_share"] < 0.15  # balanced labels: 30 of each digit asked for
    # The classifier is not part of the system: not in its checkpoint, and the callback saves no state.
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert list(checkpoint["state_dict"]) == ["weight"] and not checkpoint["callbacks"].get("ClassMetrics")
    # A generator that draws the wrong digit for each label covers every class but is never right.
    run = trainer(tmp_path, [ClassMetrics(str(trained.checkpoint), num_samples=300)], limit_train_batches=1)
    run.test(RealImages(shift=1), datamodule=digits(), verbose=False)
    assert run.callback_metrics["test/conditional_accuracy"] < 0.05
    assert run.callback_metrics["test/class_coverage"] == 10


def test_class_metrics_on_unconditional_models_see_collapse(trained, tmp_path):
    values = {}
    for name, only in (("all", None), ("collapsed", [3])):
        run = trainer(
            tmp_path,
            [ClassMetrics(trained.model, num_samples=300, min_count=10)],
            limit_train_batches=1,
            limit_val_batches=1,
        )
        run.fit(UnconditionalRealImages(only=only), datamodule=digits())
        values[name] = run.callback_metrics
        assert "val/conditional_accuracy" not in run.callback_metrics
    assert values["all"]["val/class_coverage"] == 10 and values["all"]["val/largest_class_share"] < 0.15
    assert values["collapsed"]["val/class_coverage"] == 1 and values["collapsed"]["val/largest_class_share"] > 0.9


def test_class_metrics_on_gans(trained, tmp_path):
    shape = (1, SIDE, SIDE)
    gan = GAN(
        MLPGenerator(latent_dim=8, hidden_dims=[32], image_shape=shape),
        MLPDiscriminator(hidden_dims=[32], image_shape=shape),
    )
    run = trainer(
        tmp_path,
        [ClassMetrics(str(trained.checkpoint), num_samples=200, batch_size=64)],
        limit_train_batches=2,
        limit_val_batches=1,
    )
    run.fit(gan, datamodule=digits())
    coverage, share = run.callback_metrics["val/class_coverage"], run.callback_metrics["val/largest_class_share"]
    assert 1 <= coverage <= 10 and 0.1 <= share <= 1 and "val/conditional_accuracy" not in run.callback_metrics
    with torch.no_grad():  # the protocol: 200 samples, batches of 64, generator seeded 0
        generator = torch.Generator().manual_seed(0)
        gan.eval()
        predictions = torch.cat(
            [trained.model(gan.sample(len(i), generator=generator)).argmax(1) for i in torch.arange(200).split(64)]
        )
    assert_close((coverage, share), tuple(v.float() for v in class_coverage(predictions, 10)), rtol=0, atol=0)

    cgan = ConditionalGAN(
        ConditionalMLPGenerator(latent_dim=8, num_classes=10, hidden_dims=[32], image_shape=shape),
        ConditionalMLPDiscriminator(num_classes=10, hidden_dims=[32], image_shape=shape),
        num_classes=10,
    )
    run = trainer(
        tmp_path, [ClassMetrics(str(trained.checkpoint), num_samples=100)], limit_train_batches=2, limit_val_batches=1
    )
    run.fit(cgan, datamodule=digits())
    assert 0 <= run.callback_metrics["val/conditional_accuracy"] <= 1


def test_class_metrics_refuse_a_classifier_of_other_data(trained, tmp_path):
    data = digits()
    bad_classes = ClassMetrics(ConvClassifier((1, SIDE, SIDE), num_classes=5))
    with pytest.raises(ValueError, match="the classifier has 5 classes but the model has 10"):
        bad_classes.setup(SimpleNamespace(datamodule=data), RealImages(), "fit")
    with pytest.raises(ValueError, match="the classifier has 5 classes but the data has 10"):
        bad_classes.setup(SimpleNamespace(datamodule=data), UnconditionalRealImages(num_classes=None), "fit")
    bad_shape = ClassMetrics(str(trained.checkpoint))
    with pytest.raises(
        ValueError,
        match=r"takes images of shape \(1, 16, 16\), but the data has images of shape "
        r"\(1, 8, 8\)",
    ):
        bad_shape.setup(SimpleNamespace(datamodule=digits(image_size=8)), RealImages(), "fit")
    with pytest.raises(ValueError, match="int `num_classes`"):
        ClassMetrics(nn.Linear(3, 2))


# -- DDP -----------------------------------------------------------------------------------------
def test_ddp_two_processes_log_identical_class_metrics_over_all_samples(trained, tmp_path):
    settings = {
        "class_path": "lightning_dgm.callbacks.ClassMetrics",
        "init_args": {"classifier": str(trained.checkpoint), "num_samples": 301, "batch_size": 64},
    }  # shares of 151 and 150
    out = subprocess.run(
        [
            PYTHON,
            "-m",
            "lightning_dgm",
            "fit",
            "--model=tests.test_classifier.RealImages",
            "--data=lightning_dgm.datamodules.DigitsDataModule",
            f"--data.image_size={SIDE}",
            "--data.val_size=150",
            "--data.test_size=300",
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=1",
            "--trainer.limit_val_batches=1",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger=false",
            "--trainer.default_root_dir=runs",
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
    rank0, rank1 = (torch.load(tmp_path / "runs" / "version_0" / f"metrics_rank{r}.pt") for r in (0, 1))
    data = digits()
    data.setup("fit")
    expected = expected_values(trained.model, data.train_set, 301, 64, world_size=2, shift=0)
    for key in ("val/class_coverage", "val/largest_class_share", "val/conditional_accuracy"):
        assert_close(rank0[key], rank1[key], rtol=0, atol=0)
        assert_close(rank0[key], expected[key], rtol=0, atol=0)  # counted over both ranks' samples


# -- the configs, through the CLI ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["classifier_mnist", "classifier_cifar10"])
def test_classifier_configs_fit_test_and_give_a_feature_extractor(name, mnist_root, tmp_path):
    if "cifar" in name:
        write_cifar10(tmp_path / "cifar")
    data_dir = tmp_path / "cifar" if "cifar" in name else mnist_root
    common = [
        f"--config={REPO / 'configs' / f'{name}.yaml'}",
        f"--data.data_dir={data_dir}",
        "--data.download=false",
        "--data.val_size=16",
        "--data.batch_size=16",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
    ]
    fit = run_cli(
        "fit",
        *common,
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_model_summary=false",
    )
    assert fit.trainer.global_step == 2 and "val/acc" in fit.trainer.callback_metrics
    checkpoint = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    test = run_cli("test", *common, f"--ckpt_path={checkpoint}", "--trainer.limit_test_batches=1")
    assert 0 <= test.trainer.callback_metrics["test/acc"] <= 1
    features = ClassifierFeatures(str(checkpoint))  # a CLI checkpoint loads by its class path
    shape = fit.datamodule.image_shape
    assert features(torch.zeros(3, *shape, dtype=torch.uint8)).shape == (3, features.num_features)
    assert_close(load_classifier(checkpoint).state_dict(), fit.model.state_dict())
