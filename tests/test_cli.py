"""The real CLI: every YAML, the run folder, predict, resume, precision, errors."""

import subprocess
import time

import pytest
import torch
import yaml
from torch.testing import assert_close

from lightning_dgm.losses import NonSaturating
from lightning_dgm.nets import UniformNoise
from tests.helpers import (
    CONFIGS,
    PYTHON,
    REPO,
    random_image,
    run_cli,
    save,
    subprocess_env,
    write_cifar10,
    write_domain,
    write_side_by_side,
    write_svhn,
)
from tests.test_superres import stand_in_vgg19

FAST = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=2",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


def data_overrides(config, mnist_root) -> list[str]:
    """Point each config at data the test made (MNIST) or that ships with a package (digits)."""
    data_class = yaml.safe_load(config.read_text())["data"]["class_path"]
    if data_class.endswith("MNISTDataModule"):
        return [f"--data.data_dir={mnist_root}", "--data.download=false", "--data.val_size=16", "--data.batch_size=16"]
    if data_class.endswith(("CIFAR10DataModule", "SVHNDataModule")):
        root = mnist_root.parent / "image-data"
        (write_cifar10 if "CIFAR" in data_class else write_svhn)(root)
        return [f"--data.data_dir={root}", "--data.download=false", "--data.val_size=16", "--data.batch_size=16"]
    if data_class.endswith(("SideBySideDataModule", "UnpairedDataModule")):
        # 32 px instead of 256: the paper-size translation nets, at a size a CPU test affords.
        root = mnist_root.parent / "translation-data"
        for split, n in (("train", 6), ("val", 2), ("test", 2)):
            if data_class.endswith("SideBySideDataModule"):
                write_side_by_side(root, split, n, size=40)
            elif split != "val":
                (
                    write_domain(root, f"{split}A", n, seed=0, size=40),
                    write_domain(root, f"{split}B", n + 1, seed=50, size=40),
                )
        return [f"--data.root={root}", "--data.load_size=36", "--data.crop_size=32", "--data.batch_size=2"]
    if data_class.endswith("SuperResolutionDataModule"):
        # HR photos of a few sizes; 24 px crops (6 px LR) instead of 96: the paper-size nets at a CPU test's size.
        root = mnist_root.parent / "sr-data"
        for split, sizes in (("train", [(30, 34), (26, 24), (40, 28)] * 2), ("val", [(37, 29), (28, 31)])):
            for i, (height, width) in enumerate(sizes):
                save(root / split / f"{i}.png", random_image(i, max(height, width))[:height, :width])
        vgg = []
        content = yaml.safe_load(config.read_text())["model"]["init_args"].get("content")
        if isinstance(content, dict) and content["class_path"].endswith("VGGFeatures"):
            # a stand-in for torchvision's VGG-19 weights, up to relu5_4
            stand_in_vgg19(root / "vgg19.pth", "relu5_4")
            vgg = [f"--model.init_args.content.init_args.weights_path={root / 'vgg19.pth'}"]
        return vgg + [
            f"--data.train_dir={root / 'train'}",
            f"--data.val_dir={root / 'val'}",
            f"--data.test_dir={root / 'val'}",
            "--data.side_by_side_dirs=[]",
            f"--data.data_dir={root / 'cache'}",
            "--data.crop_size=24",
            "--data.batch_size=2",
            "--data.num_workers=0",
        ]
    return []


def width_overrides(config) -> list[str]:
    """BigGAN's published widths cost a minute per batch on a CPU: the test trains them at ch 4
    (test_biggan.py builds the published networks)."""
    generator = yaml.safe_load(config.read_text())["model"]["init_args"].get("generator", {})
    if not str(generator.get("class_path", "")).endswith("BigGANGenerator"):
        return []
    return [f"--model.init_args.{net}.init_args.ch=4" for net in ("generator", "discriminator")]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_config_parses_and_trains_a_few_batches(config, mnist_root, tmp_path):
    cli = run_cli(
        "fit",
        f"--config={config}",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        *FAST,
        *data_overrides(config, mnist_root),
        *width_overrides(config),
    )
    assert cli.trainer.fit_loop.epoch_loop.batch_progress.total.completed == 3  # batches (baselines take no steps)
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())
    run = tmp_path / "runs" / "version_0"
    assert cli.trainer.default_root_dir == str(run)
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()


def test_lecture_recipe_is_exact(tmp_path):
    from lightning_dgm.cli import LightningDGMCLI

    cli = LightningDGMCLI(
        args=["--config", str(REPO / "configs/gan_mnist.yaml"), f"--trainer.default_root_dir={tmp_path}"], run=False
    )
    g, d, model = cli.model.generator.net, cli.model.discriminator.net, cli.model
    assert [type(m).__name__ for m in g] == ["Linear", "LeakyReLU", "Linear", "Tanh"]
    assert (g[0].in_features, g[0].out_features, g[2].out_features, g[1].negative_slope) == (100, 128, 784, 0.01)
    assert [type(m).__name__ for m in d] == ["Flatten", "Linear", "LeakyReLU", "Linear"]
    assert (d[1].in_features, d[1].out_features, d[3].out_features, d[2].negative_slope) == (784, 128, 2, 0.01)
    assert isinstance(model.loss, NonSaturating) and isinstance(model.noise, UniformNoise)
    assert (model.noise.low, model.noise.high) == (-0.5, 0.5)
    g_opt, d_opt = model.configure_optimizers()[0]
    assert type(g_opt) is type(d_opt) is torch.optim.Adagrad
    assert g_opt.defaults["lr"] == d_opt.defaults["lr"] == 0.1
    assert (cli.datamodule.batch_size, model.g_batch_size, model.d_steps) == (16, 32, 1)
    assert cli.datamodule.val_size == 0 and cli.trainer.max_epochs == 20
    assert cli.model.generator.image_shape == (1, 28, 28)  # linked from the datamodule


def test_image_shape_is_linked_from_the_data(tmp_path):
    cli = run_cli(
        "fit",
        f"--config={REPO / 'configs/gan_digits.yaml'}",
        "--data.image_size=12",
        f"--trainer.default_root_dir={tmp_path}",
        *FAST,
    )
    assert cli.model.generator.image_shape == cli.model.discriminator.image_shape == (1, 12, 12)
    assert cli.model.sample(2).shape == (2, 1, 12, 12)


def test_help_lists_the_subcommands():
    out = subprocess.run(
        [PYTHON, "-m", "lightning_dgm", "--help"], capture_output=True, text=True, env=subprocess_env(), timeout=120
    )
    assert out.returncode == 0
    for name in ("fit", "validate", "test", "predict"):
        assert name in out.stdout


def test_print_config_is_complete_and_reruns(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_cli("fit", f"--config={REPO / 'configs/gan_digits.yaml'}", "--print_config")
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    assert config["model"]["init_args"]["loss"]["class_path"] == "lightning_dgm.losses.NonSaturating"
    assert config["sample_writer"]["num_samples"] == 1000
    (tmp_path / "printed.yaml").write_text(printed)
    cli = run_cli("fit", f"--config={tmp_path / 'printed.yaml'}", f"--trainer.default_root_dir={tmp_path / 'r'}", *FAST)
    assert cli.trainer.global_step == 6


def test_unknown_config_key_is_a_clear_error(tmp_path, capsys):
    config = yaml.safe_load((REPO / "configs/gan_digits.yaml").read_text())
    config["model"]["init_args"]["d_stepz"] = 2
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exit_info:
        run_cli("fit", f"--config={tmp_path / 'typo.yaml'}")
    assert exit_info.value.code != 0
    assert "d_stepz" in capsys.readouterr().err


def test_predict_writes_pngs_and_samples_pt(tmp_path):
    fit = run_cli(
        "fit", f"--config={REPO / 'configs/gan_digits.yaml'}", f"--trainer.default_root_dir={tmp_path}", *FAST
    )
    ckpt = tmp_path / "version_0" / "checkpoints" / "last.ckpt"
    run_cli(
        "predict",
        f"--config={REPO / 'configs/gan_digits.yaml'}",
        f"--ckpt_path={ckpt}",
        f"--trainer.default_root_dir={tmp_path}",
        "--sample_writer.num_samples=37",
        "--sample_writer.batch_size=10",
        "--trainer.enable_progress_bar=false",
    )
    out = tmp_path / "version_0" / "predictions"  # default: inside the checkpoint's run folder
    assert (tmp_path / "version_0" / "predict_config.yaml").is_file()  # fit's config.yaml is kept
    assert len(list(out.glob("*.png"))) == 37
    samples = torch.load(out / "samples.pt")
    assert set(samples) == {"images"}  # no labels: the GAN is unconditional
    images = samples["images"]
    assert images.shape == (37, 1, 16, 16) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    # the same checkpoint, seed and batch size give the same samples, to a folder of our choice
    again = tmp_path / "again"
    run_cli(
        "predict",
        f"--config={REPO / 'configs/gan_digits.yaml'}",
        f"--ckpt_path={ckpt}",
        f"--trainer.default_root_dir={tmp_path}",
        "--sample_writer.num_samples=37",
        "--sample_writer.batch_size=10",
        f"--sample_writer.output_dir={again}",
        "--sample_writer.write_png=false",
    )
    assert_close(torch.load(again / "samples.pt")["images"], images, rtol=0, atol=0)
    assert not list(again.glob("*.png"))
    assert fit.model.sample(1).shape == (1, 1, 16, 16)


def _weights_and_optimizers(ckpt):
    state = torch.load(ckpt, weights_only=False)
    return state["state_dict"], state["optimizer_states"], state["lr_schedulers"], state["global_step"], state["epoch"]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    common = [
        f"--config={REPO / 'configs/gan_digits.yaml'}",
        "--trainer.limit_train_batches=4",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
        "--model.g_lr_scheduler=torch.optim.lr_scheduler.StepLR",
        "--model.g_lr_scheduler.step_size=1",
        "--model.g_lr_scheduler.gamma=0.5",
        "--model.d_steps=2",
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
    straight = _weights_and_optimizers(tmp_path / "straight" / "version_0" / "checkpoints" / "last.ckpt")
    resumed = _weights_and_optimizers(interrupted)  # the resumed run writes into the same run folder
    assert resumed[3:] == straight[3:] == (3 * (4 + 2), 2)  # 4 D + 2 G steps per epoch
    assert_close(resumed[0], straight[0], rtol=0, atol=0)
    assert_close(resumed[1], straight[1], rtol=0, atol=0)
    assert resumed[2] == straight[2] and resumed[2][0]["_last_lr"] == [0.0005 * 0.5**3]
    assert not (tmp_path / "split" / "version_1").exists()


def test_bf16_mixed_precision_trains(tmp_path):
    cli = run_cli(
        "fit",
        f"--config={REPO / 'configs/gan_digits.yaml'}",
        "--trainer.precision=bf16-mixed",
        f"--trainer.default_root_dir={tmp_path}",
        *FAST,
    )
    assert cli.trainer.precision == "bf16-mixed"
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in cli.model.parameters())
    assert all(torch.isfinite(v) for v in cli.trainer.logged_metrics.values())
    assert cli.model.sample(3).dtype == torch.float32  # callbacks sample outside autocast


def test_wandb_offline_run_is_written(tmp_path):
    # 10 one-batch epochs: the config writes a sample grid every 10th epoch
    run_cli(
        "fit",
        f"--config={REPO / 'configs/gan_digits.yaml'}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.max_epochs=10",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false",
    )
    runs = list((tmp_path / "version_0" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    assert list(runs[0].glob("files/media/images/samples_*.png"))  # the sample grid went to W&B too


def test_the_resolved_config_is_the_wandb_run_config(tmp_path):
    run_cli("fit", f"--config={REPO / 'configs/gan_digits.yaml'}", f"--trainer.default_root_dir={tmp_path}", *FAST)
    (wandb_file,) = (tmp_path / "version_0" / "wandb").glob("offline-run-*/run-*.wandb")
    # Offline, the config travels inside the run file (as JSON values); Lightning itself logs only the
    # system's and the datamodule's hyperparameters, not the trainer's or the class paths.
    expected = [b'"max_epochs":1', b'"limit_train_batches":3']
    expected += [b'"class_path":"lightning_dgm.datamodules.DigitsDataModule"']
    deadline = time.monotonic() + 20  # wandb-core writes the file shortly after finish()
    while not all(value in wandb_file.read_bytes() for value in expected) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(value in wandb_file.read_bytes() for value in expected)


def test_second_run_gets_its_own_folder(tmp_path):
    for _ in range(2):
        run_cli("fit", f"--config={REPO / 'configs/gan_digits.yaml'}", f"--trainer.default_root_dir={tmp_path}", *FAST)
    assert sorted(p.name for p in tmp_path.glob("version_*")) == ["version_0", "version_1"]
    assert all((tmp_path / v / "config.yaml").is_file() for v in ("version_0", "version_1"))


@pytest.mark.parametrize(
    "logger, written", [("CSVLogger", "metrics.csv"), ("TensorBoardLogger", "events.out.tfevents.*")]
)
def test_tensorboard_and_csv_loggers_write_into_the_run_folder(tmp_path, logger, written):
    run_cli(
        "fit",
        f"--config={REPO / 'configs/gan_digits.yaml'}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger=lightning.pytorch.loggers.{logger}",
        "--trainer.logger.save_dir=ignored",
        *FAST,
    )
    run = tmp_path / "version_0"
    assert list(run.glob(written)) and (run / "config.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["version_0"]
