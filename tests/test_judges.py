"""The independent CIFAR-10 judge (a published ResNet-20) and BigGAN's truncation sweep."""

import csv
import io
import tarfile

import pytest
import torch
import yaml
from PIL import Image
from torch.testing import assert_close

from lightning_dgm.errors import ConfigError, MissingFileError
from lightning_dgm.metrics import CIFAR10ResNet20, ResNet20Features, ResNet20Logits
from lightning_dgm.metrics.judges import RESNET20_FILE, RESNET20_MEAN, RESNET20_STD, RESNET20_URL
from lightning_dgm.nets import CifarResNet, ConvClassifier
from tests.helpers import REPO, SHARED_DATA, run_cli, write_cifar10


def published_layout(network: CifarResNet) -> dict:
    """A state_dict as the published file holds it: DataParallel's `module.` prefix, no BatchNorm counters."""
    state = {f"module.{k}": v for k, v in network.state_dict().items() if not k.endswith("num_batches_tracked")}
    return {"best_prec1": 91.78, "state_dict": state}


def stand_in(path, seed=0):
    """A randomly initialised ResNet-20 saved in the published layout, with BatchNorm statistics that are not 0/1."""
    torch.manual_seed(seed)
    network = CifarResNet(input_mean=RESNET20_MEAN, input_std=RESNET20_STD)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(published_layout(network), path)
    return network.eval()


def test_cifar_resnet20_has_the_published_size_and_parameter_free_shortcuts():
    network = CifarResNet(depth=20)
    # He et al. 2016, Table 6: ResNet-20 has 0.27M parameters, 269,722 exactly (option A shortcuts add none).
    assert sum(p.numel() for p in network.parameters()) == 269_722
    block = network.layer2[0]  # 16 -> 32 channels, side halved
    x = torch.randn(2, 16, 8, 8)
    block.conv2.weight.data.zero_()  # the residual branch gives bn2's bias only; zero it too
    block.bn2.bias.data.zero_()
    expected = torch.cat([torch.zeros(2, 8, 4, 4), x[:, :, ::2, ::2], torch.zeros(2, 8, 4, 4)], dim=1).relu()
    assert_close(block.eval()(x), expected)
    assert network.features(torch.zeros(3, 3, 32, 32)).shape == (3, 64) and network(
        torch.zeros(1, 3, 32, 32)
    ).shape == (1, 10)
    with pytest.raises(ConfigError, match="6n \\+ 2"):
        CifarResNet(depth=21)


def test_resnet20_loads_the_published_layout_and_refuses_others(tmp_path, monkeypatch):
    source = stand_in(tmp_path / "weights.th")
    judge = CIFAR10ResNet20(str(tmp_path / "weights.th"))
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    assert_close(judge(x), source(x), rtol=0, atol=0)
    assert not judge.train().training and not any(p.requires_grad for p in judge.parameters())
    # the extractors: uint8 images in, features / logits of the same network out
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    as_signed = images.float() / 127.5 - 1
    assert_close(ResNet20Features(str(tmp_path / "weights.th"))(images), source.features(as_signed))
    assert_close(ResNet20Logits(str(tmp_path / "weights.th"))(images), source(as_signed))
    with pytest.raises(ConfigError, match="32x32"):
        ResNet20Features(str(tmp_path / "weights.th"))(torch.zeros(1, 3, 28, 28, dtype=torch.uint8))
    # the default place is torch hub's checkpoints folder, as for the Inception weights
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(MissingFileError, match=f"{RESNET20_FILE}.*{RESNET20_URL}"):
        CIFAR10ResNet20()
    stand_in(tmp_path / "hub" / "hub" / "checkpoints" / RESNET20_FILE)
    assert_close(CIFAR10ResNet20()(x), source(x), rtol=0, atol=0)
    torch.save(ConvClassifier((3, 32, 32)).state_dict(), tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a CIFAR ResNet-20"):
        CIFAR10ResNet20(str(tmp_path / "other.pt"))


@pytest.mark.skipif(not (SHARED_DATA / "weights" / "resnet20-cifar10").is_dir(), reason="needs ../shared/data")
def test_published_resnet20_recognises_real_cifar10_test_images():
    """The real weights on 500 of the shared JPEG test images (the full set gives 81.0%; 91.78% on
    lossless CIFAR-10): an option-B shortcut or a wrong normalisation would give far less."""
    judge = CIFAR10ResNet20(str(SHARED_DATA / "weights" / "resnet20-cifar10" / "resnet20-12fca82f.th"))
    classes = sorted(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    images, labels = [], []
    with tarfile.open(SHARED_DATA / "cifar10-jpeg.tar.gz") as archive:
        for member in archive:
            parts = member.name.split("/")
            if (
                member.isfile()
                and len(parts) == 4
                and parts[1] == "test"
                and labels.count(classes.index(parts[2])) < 50
            ):
                pixels = Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB")
                images.append(torch.tensor(list(pixels.getdata()), dtype=torch.float32).T.reshape(3, 32, 32))
                labels.append(classes.index(parts[2]))
            if len(labels) == 500:
                break
    with torch.no_grad():
        predictions = judge(torch.stack(images) / 127.5 - 1).argmax(dim=1)
    assert len(labels) == 500 and (predictions == torch.tensor(labels)).float().mean() > 0.7


def sweep_config(tmp_path, truncations):
    """configs/eval/cifar10_truncation.yaml with tiny numbers, plus SampleMetrics with the same settings."""
    config = yaml.safe_load((REPO / "configs/eval/cifar10_truncation.yaml").read_text())
    sweep = config["trainer"]["callbacks"][0]["init_args"]
    sweep.update(truncations=truncations, num_samples=40, batch_size=20, cache_dir=str(tmp_path / "cache"))
    sweep["metrics"][2]["init_args"] = {"k": 2}
    sweep["metrics"][1]["init_args"] = {"splits": 2}
    plain = {k: v for k, v in sweep.items() if k != "truncations"}
    config["trainer"]["callbacks"].append({"class_path": "lightning_dgm.callbacks.SampleMetrics", "init_args": plain})
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def tiny_cifar_test(tmp_path, *configs: str) -> list[str]:
    """`test` arguments for the given configs on a tiny CIFAR-10 written by the test, without a logger."""
    write_cifar10(tmp_path / "cifar", n_train=40, n_test=30)
    return [
        "test",
        *(f"--config={config}" for config in configs),
        f"--data.data_dir={tmp_path / 'cifar'}",
        "--data.download=false",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
    ]


def test_truncation_sweep_scores_each_truncation_and_writes_table_and_plot(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    stand_in(tmp_path / "hub" / "hub" / "checkpoints" / RESNET20_FILE)
    cli = run_cli(
        *tiny_cifar_test(
            tmp_path, REPO / "configs/biggan_cifar10_small.yaml", sweep_config(tmp_path, [0.3, 1e9, None])
        ),
        "--data.val_size=0",
        "--model.init_args.generator.init_args.ch=4",
        "--model.init_args.discriminator.init_args.ch=4",
    )
    logged = {k: v.item() for k, v in cli.trainer.callback_metrics.items()}
    names = ["fid", "is_mean", "is_std", "precision", "recall", "density", "coverage"]
    untruncated = [logged[f"test/truncation_None/{name}"] for name in names]
    # no truncation is SampleMetrics' own protocol, number for number; a truncation nothing exceeds changes nothing
    assert untruncated == [logged[f"test/{name}"] for name in names]
    assert [logged[f"test/truncation_1000000000.0/{name}"] for name in names] == untruncated
    assert logged["test/truncation_0.3/fid"] != logged["test/fid"]
    (folder,) = {path.parent for path in (tmp_path / "run").rglob("truncation/test.csv")}
    rows = list(csv.DictReader((folder / "test.csv").open()))
    assert [row["truncation"] for row in rows] == ["0.3", "1000000000.0", "none"]
    assert float(rows[0]["fid"]) == pytest.approx(logged["test/truncation_0.3/fid"], rel=1e-6)
    assert (folder / "test.md").read_text().splitlines()[2].startswith("| 0.3 |")
    assert Image.open(folder / "test.png").size[0] > 100


def test_truncation_sweep_refuses_non_positive_or_repeated_truncations():
    from lightning_dgm.callbacks import TruncationSweep
    from lightning_dgm.metrics import FrechetDistance, ImageFeatures

    feature = ImageFeatures(CifarResNet(), num_features=10)
    for truncations in ([0.0], [0.5, 0.5], []):
        with pytest.raises(ConfigError, match="truncations"):
            TruncationSweep(truncations, feature=feature, metrics=[FrechetDistance()])


def test_missing_judge_weights_are_one_line_that_says_what_to_fetch(tmp_path, monkeypatch, capsys):
    from tests.test_failures import dgm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    code = dgm(*tiny_cifar_test(tmp_path, REPO / "configs/cgan_cifar10.yaml", REPO / "configs/eval/cifar10_judge.yaml"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and err.startswith("error: CIFAR-10 ResNet-20 weights not found")
    assert RESNET20_URL in err and "Expected a" not in err
