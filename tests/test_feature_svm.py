"""DCGAN's feature-learning evaluation: feature layout and pooling, reproducibility, the SVM on
separable and on uninformative features, and the command on real checkpoints made by `fit`."""

import json
import runpy
import sys
import warnings

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from lightning_dgm.cli import LightningDGMCLI
from lightning_dgm.datamodules import TensorImageDataset
from lightning_dgm.feature_svm import (
    balanced_subset,
    conv_features,
    evaluate_svm,
    extract_features,
    fit_svm,
    load_discriminators,
    main,
)
from lightning_dgm.nets import DCGANDiscriminator
from tests.helpers import REPO, run_cli, write_idx_images, write_idx_labels

DCGAN_WIDTHS = [
    "--model.init_args.generator.init_args.base_channels=4",
    "--model.init_args.discriminator.init_args.base_channels=4",
]
FAST = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=0",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
]


def stripes(labels: torch.Tensor, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """uint8 images: label 0 horizontal stripes, label 1 vertical ones, random phase and pixel noise."""
    generator = torch.Generator().manual_seed(seed)
    c, h, w = shape
    rows = torch.arange(h).view(h, 1).expand(h, w)
    cols = torch.arange(w).view(1, w).expand(h, w)
    images = []
    for label in labels.tolist():
        phase = int(torch.randint(0, 4, (), generator=generator))
        lines = ((cols if label else rows) + phase) // 2 % 2
        noise = torch.randint(0, 96, (c, h, w), generator=generator)
        images.append((lines * 160 + noise).clamp(0, 255).to(torch.uint8).expand(c, h, w))
    return torch.stack(images)


# -- features --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, widths", [((1, 28, 28), [4, 8]), ((3, 32, 32), [4, 8, 16]), ((3, 64, 64), [4, 8, 16, 32])]
)
def test_feature_dimension_is_16_per_channel_of_every_conv_layer(shape, widths):
    torch.manual_seed(0)
    d = DCGANDiscriminator(image_shape=shape, base_channels=4).eval()
    with torch.no_grad():
        features = conv_features(d, torch.rand(5, *shape) * 2 - 1)
    assert features.shape == (5, 16 * sum(widths))


def test_each_layer_is_max_pooled_to_4x4_and_concatenated_in_order():
    torch.manual_seed(0)
    d = DCGANDiscriminator(image_shape=(1, 28, 28), base_channels=4).eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        first, second = d.features(x)  # (3, 4, 14, 14), (3, 8, 7, 7)
        features = conv_features(d, x)
    pooled = features[:, 4 * 16 :].view(3, 8, 4, 4)
    # Adaptive windows on a 7x7 map: rows/cols [0, 2), [1, 4), [3, 6), [5, 7) - overlapping.
    windows = [(0, 2), (1, 4), (3, 6), (5, 7)]
    for i, (r0, r1) in enumerate(windows):
        for j, (c0, c1) in enumerate(windows):
            assert_close(pooled[:, :, i, j], second[:, :, r0:r1, c0:c1].amax(dim=(2, 3)), rtol=0, atol=0)
    # 14x14 splits evenly into 4x4 windows of 3 or 4 pixels; the first block comes first
    assert_close(features[:, 0], first[:, 0, 0:4, 0:4].amax(dim=(1, 2)), rtol=0, atol=0)


def test_features_are_exactly_reproducible_and_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    d = DCGANDiscriminator(image_shape=(3, 32, 32), base_channels=4)  # has BatchNorm
    for module in d.modules():  # running statistics unlike a fresh BN's, so eval mode is visible
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    labels = torch.arange(12) % 2
    dataset = TensorImageDataset(stripes(labels, (3, 32, 32)), labels)
    a, la = extract_features(d, dataset, batch_size=12)
    b, _ = extract_features(d, dataset, batch_size=12)
    c, lc = extract_features(d, dataset, batch_size=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(c, a, rtol=1e-5, atol=1e-6)  # eval mode: one image's features, whatever its batch
    np.testing.assert_array_equal(la, labels.numpy())
    np.testing.assert_array_equal(lc, labels.numpy())
    assert a.dtype == np.float32 and d.training  # the training flag is restored
    # the property can fail: in train mode BatchNorm uses batch statistics
    x = torch.stack([dataset[i].image for i in range(12)])
    with torch.no_grad():
        assert not torch.allclose(conv_features(d.train(), x)[:5], conv_features(d, x[:5]))


# -- the SVM ---------------------------------------------------------------------------------
def test_svm_separates_stripe_orientation_and_constant_features_give_chance():
    torch.manual_seed(0)
    d = DCGANDiscriminator(image_shape=(1, 28, 28), base_channels=8)  # random init: features of the architecture
    train_y, test_y = torch.arange(40) % 2, torch.arange(60) % 2
    train = extract_features(d, TensorImageDataset(stripes(train_y, (1, 28, 28), seed=1), train_y))
    test = extract_features(d, TensorImageDataset(stripes(test_y, (1, 28, 28), seed=2), test_y))
    result = evaluate_svm(train, test, Cs=[0.01])
    assert result.test_accuracy >= 0.95 and result.val_accuracy is None
    # features that say nothing: the SVM can only predict one class, half of a balanced test set
    constant = evaluate_svm((np.ones_like(train[0]), train[1]), (np.ones_like(test[0]), test[1]), Cs=[0.01])
    assert constant.test_accuracy == 0.5


def test_c_is_chosen_on_validation_and_a_grid_without_validation_is_an_error():
    rng = np.random.default_rng(0)
    y = np.arange(90) % 2
    for shift in (0.3, 5.0):  # overlapping classes (accuracies differ by C); far apart (every C ties)
        x = rng.normal(size=(90, 30)) + y[:, None] * shift
        train, val, test = (x[:30], y[:30]), (x[30:60], y[30:60]), (x[60:], y[60:])
        grid = [1.0, 1e-4, 0.1, 1e-2]
        scores = {C: fit_svm(*train, C=C).score(*val) for C in grid}
        best = max(scores.values())
        expected = min(C for C, score in scores.items() if score == best)  # ties: the smallest C
        result = evaluate_svm(train, test, Cs=grid, val=val)
        assert (result.C, result.val_accuracy) == (expected, best)
        assert result.test_accuracy == fit_svm(*train, C=expected).score(*test)
    assert result.C == 1e-4 and result.val_accuracy == 1.0
    with pytest.raises(ValueError, match="needs a validation split.*--data.val_size"):
        evaluate_svm(train, test, Cs=[0.1, 1.0])
    with pytest.raises(ValueError, match="positive"):
        evaluate_svm(train, test, Cs=[0.0])


def test_balanced_subset_is_class_balanced_seeded_and_bounded():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    subset = balanced_subset(labels, 31, seed=0)
    counts = torch.bincount(labels[subset], minlength=3)
    assert len(subset) == len(subset.unique()) == 31 and sorted(counts.tolist()) == [10, 10, 11]
    assert torch.equal(subset, balanced_subset(labels, 31, seed=0))
    assert not torch.equal(subset, balanced_subset(labels, 31, seed=1))
    with pytest.raises(ValueError, match=r"size of the train split \(100\), got 101"):
        balanced_subset(labels, 101)
    with pytest.raises(ValueError, match="class 2 has 20 train images"):
        balanced_subset(labels, 90)


# -- the command on real checkpoints -----------------------------------------------------------
def write_halves(root, n_train=96, n_test=32):
    """MNIST files whose two classes differ by which half of the image is bright (labels 0, 1)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 2
        images = rng.integers(0, 80, (n, 28, 28))
        for image, label in zip(images, labels):
            image[:, 14 * label : 14 * label + 14] += 150
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Checkpoints of a tiny DCGAN, an MLP GAN and a VAE, each from a short real `fit` on the same data."""
    root = tmp_path_factory.mktemp("feature_svm")
    write_halves(root / "data")
    data = [f"--data.data_dir={root / 'data'}", "--data.download=false", "--data.val_size=16", "--data.batch_size=16"]
    made = {}
    with pytest.MonkeyPatch.context() as env:
        for name, config, extra in (
            ("dcgan", "dcgan_mnist.yaml", DCGAN_WIDTHS),
            ("mlp_gan", "gan_mnist.yaml", ["--data.val_size=0"]),
            ("vae", "vae_mnist_z2.yaml", ["--trainer.callbacks=[]", "--data.val_size=16"]),
        ):
            env.delenv("LIGHTNING_DGM_RUN_DIR", raising=False)
            run_cli(
                "fit",
                f"--config={REPO / 'configs' / config}",
                f"--trainer.default_root_dir={root / name}",
                *FAST,
                *data,
                *extra,
            )
            made[name] = next((root / name / "version_0" / "checkpoints").glob("*.ckpt"))
    return made


def run_module(monkeypatch, *args: str) -> None:
    """`python -m lightning_dgm.feature_svm ARGS`, in this process (a subprocess would import torch again)."""
    monkeypatch.setattr(sys, "argv", ["feature_svm", *args])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is already imported by this file
        runpy.run_module("lightning_dgm.feature_svm", run_name="__main__")


def test_the_command_reports_trained_and_random_d(runs, tmp_path, monkeypatch, capsys):
    ckpt = runs["dcgan"].parent / "last.ckpt"
    run_module(
        monkeypatch,
        f"--ckpt_path={ckpt}",
        "--num_labels=20",
        "--C=[0.01, 1.0]",
        f"--output={tmp_path / 'svm.json'}",
        "--device=cpu",
    )
    out = capsys.readouterr()
    result = json.loads((tmp_path / "svm.json").read_text())
    trained, random = result["rows"]
    assert trained["discriminator"] == "trained (last.ckpt)" and random["discriminator"] == "random init (seed 0)"
    for row in (trained, random):
        assert row["features"] == 16 * (4 + 8) and row["train_labels"] == 20 and row["C"] in (0.01, 1.0)
        assert row["test_accuracy"] >= 0.9  # bright halves are linearly separable from any conv features
    assert "lightning_dgm.feature_svm" in result["command"] and "--num_labels=20" in result["command"]
    assert "random init (seed 0)" in out.out and "test acc" in out.out and result["command"] in out.out
    # in-process, the same command gives the same numbers
    assert main([f"--ckpt_path={ckpt}", "--num_labels=20", "--C=[0.01, 1.0]", "--device=cpu"]) == result["rows"]


def test_trained_d_holds_the_checkpoint_and_random_d_is_seeded(runs, tmp_path):
    ckpt = runs["dcgan"].parent / "last.ckpt"
    trained, random = load_discriminators(ckpt, seed=0)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    for key, value in trained.state_dict().items():
        assert_close(value, saved[f"discriminator.{key}"], rtol=0, atol=0)
    again, other = load_discriminators(ckpt, seed=0)[1], load_discriminators(ckpt, seed=1)[1]
    weight = "blocks.1.0.weight"
    assert_close(again.state_dict()[weight], random.state_dict()[weight], rtol=0, atol=0)
    assert not torch.equal(other.state_dict()[weight], random.state_dict()[weight])
    assert not torch.equal(trained.state_dict()[weight], random.state_dict()[weight])
    # with the run's seed (seed_everything: 0), the baseline is the trained D as `fit` initialised it
    cli = LightningDGMCLI(
        args=[
            "--config",
            str(REPO / "configs/dcgan_mnist.yaml"),
            *DCGAN_WIDTHS,
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
        ],
        run=False,
    )
    for key, value in cli.model.discriminator.state_dict().items():
        assert_close(random.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize(
    "run, message",
    [("vae", r"VAE has no discriminator"), ("mlp_gan", r"GAN's discriminator MLPDiscriminator has no conv feature")],
)
def test_a_model_without_a_conv_discriminator_is_a_clear_error(runs, run, message):
    with pytest.raises(ValueError, match=message) as error:
        main([f"--ckpt_path={runs[run]}", "--C=0.1"])
    assert "\n" not in str(error.value)


def test_bad_settings_are_one_line_errors(runs, tmp_path, monkeypatch):
    ckpt = runs["dcgan"].parent / "last.ckpt"
    with pytest.raises(ValueError, match=r"size of the train split \(80\), got 81"):
        main([f"--ckpt_path={ckpt}", "--num_labels=81"])
    with pytest.raises(ValueError, match=r"needs a validation split"):
        main([f"--ckpt_path={ckpt}", "--num_labels=20", "--data.val_size=0"])
    with pytest.raises(ValueError, match=r"shape \(1, 32, 32\).*\(1, 28, 28\)"):
        main([f"--ckpt_path={ckpt}", "--data=lightning_dgm.datamodules.DigitsDataModule", "--data.image_size=32"])
    lone = tmp_path / "lone.ckpt"
    lone.write_bytes(ckpt.read_bytes())
    with pytest.raises(ValueError, match="pass the run's config.yaml as --config"):
        main([f"--ckpt_path={lone}"])
    with pytest.raises(SystemExit) as exit_info:  # the command line: one line, no traceback
        run_module(monkeypatch, f"--ckpt_path={ckpt}", "--num_labels=1000")
    assert str(exit_info.value.code).startswith("error: num_labels must be") and "\n" not in str(exit_info.value.code)
