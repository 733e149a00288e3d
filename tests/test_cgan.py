"""The conditional GAN: label-conditioned nets, which network each step changes, which labels the
fakes get, sampling with labels, one grid row per class, predict's labels, the configs, bf16."""

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.testing import assert_close

from lightning_dgm.callbacks import SampleGrid, image_grid
from lightning_dgm.datamodules import DigitsDataModule
from lightning_dgm.losses import GradientPenalty, Wasserstein
from lightning_dgm.models import ConditionalGAN
from lightning_dgm.nets import (
    ConcatDCGANDiscriminator,
    ConditionalDCGANGenerator,
    ConditionalMLPDiscriminator,
    ConditionalMLPGenerator,
    ProjectionDCGANDiscriminator,
)
from tests.helpers import REPO, run_cli, write_cifar10

SHAPE = (1, 28, 28)
FAST = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


def mlp_nets(num_classes=10):
    return (
        ConditionalMLPGenerator(8, num_classes, 4, [16], SHAPE),
        ConditionalMLPDiscriminator(SHAPE, num_classes, 4, [16]),
    )


def projection_nets(num_classes=10):
    return ConditionalDCGANGenerator(8, num_classes, 4, SHAPE, 4), ProjectionDCGANDiscriminator(SHAPE, num_classes, 4)


def concat_nets(num_classes=10):
    return ConditionalDCGANGenerator(8, num_classes, 4, SHAPE, 4), ConcatDCGANDiscriminator(SHAPE, num_classes, 4)


NETS = {"mlp": mlp_nets, "projection": projection_nets, "concat": concat_nets}


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    # Parameters, not the state_dict: D runs in training mode in G's step, so its BatchNorm running
    # statistics move there (as in the reference DCGAN code); its weights must not.
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict, module: nn.Module) -> bool:
    return not all(torch.equal(before[k], v) for k, v in module.named_parameters())


class Recorder(nn.Module):
    """A real conditional net that remembers the labels of every call."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.num_classes, self.labels = net, net.num_classes, []
        self.latent_dim = getattr(net, "latent_dim", None)

    def forward(self, x, labels):
        self.labels.append(labels.clone())
        return self.net(x, labels)


class RecordingCGAN(ConditionalGAN):
    """A real ConditionalGAN that records what each named step changes: (step, G changed, D changed)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.records, self.batch_labels = [], []

    def training_step(self, batch, batch_idx):
        self.batch_labels.append(batch.label.clone())
        super().training_step(batch, batch_idx)

    def discriminator_step(self, real, fake, **kwargs):
        g0, d0 = snapshot(self.generator), snapshot(self.discriminator)
        super().discriminator_step(real, fake, **kwargs)
        self.records.append(("d", changed(g0, self.generator), changed(d0, self.discriminator)))

    def generator_step(self, fake, **kwargs):
        g0, d0 = snapshot(self.generator), snapshot(self.discriminator)
        super().generator_step(fake, **kwargs)
        self.records.append(("g", changed(g0, self.generator), changed(d0, self.discriminator)))


def fit(model, batches=3, batch_size=8, val_batches=1) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=val_batches,
        log_every_n_steps=1,  # the tests read the training logs
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, DigitsDataModule(image_size=28, batch_size=batch_size))
    return trainer


@pytest.mark.parametrize("nets", NETS.values(), ids=NETS.keys())
def test_d_step_leaves_g_unchanged_and_g_step_leaves_d_unchanged(nets):
    g, d = nets()
    model = RecordingCGAN(generator=g, discriminator=d, num_classes=10)
    trainer = fit(model)
    assert [r[0] for r in model.records] == ["d", "g"] * 3
    for step, g_changed, d_changed in model.records:
        assert (g_changed, d_changed) == ((False, True) if step == "d" else (True, False))
    assert {"d_loss", "g_loss", "val/d_loss"} <= set(trainer.logged_metrics)
    assert all(torch.isfinite(v) for v in trainer.logged_metrics.values())


def test_fakes_take_the_labels_of_the_real_batch():
    g, d = projection_nets()
    g, d = Recorder(g), Recorder(d)
    model = RecordingCGAN(generator=g, discriminator=d, num_classes=10, loss=Wasserstein(), penalty=GradientPenalty())
    fit(model, batches=2, val_batches=0)
    for i, labels in enumerate(model.batch_labels):
        assert torch.equal(g.labels[i], labels)  # one G forward per batch serves both steps
        # D: real, fake, the penalty's interpolates, then the G step's fakes: all with the batch's labels
        assert all(torch.equal(seen, labels) for seen in d.labels[4 * i : 4 * i + 4])
    # a G batch of another size draws its labels from the real batch (the data's class prior)
    g2, d2 = projection_nets()
    model = RecordingCGAN(generator=Recorder(g2), discriminator=d2, num_classes=10, g_batch_size=20)
    fit(model, batches=2, val_batches=0)
    for i, labels in enumerate(model.batch_labels):
        g_labels = model.generator.labels[2 * i + 1]
        assert len(g_labels) == 20 and set(g_labels.tolist()) <= set(labels.tolist())


def test_projection_logit_is_psi_plus_inner_product_and_concat_stacks_one_hot_maps():
    torch.manual_seed(0)
    x, y = torch.randn(5, *SHAPE).tanh(), torch.tensor([0, 3, 3, 9, 1])
    d = ProjectionDCGANDiscriminator(SHAPE, 10, 4).eval()
    phi = d.features(x)[-1]
    expected = d.body.head(phi).flatten(1) + (d.embed.weight[y] * phi.flatten(1)).sum(1, keepdim=True)
    assert_close(d(x, y), expected)
    assert d.embed.weight.shape == (10, 8 * 7 * 7)
    concat = ConcatDCGANDiscriminator(SHAPE, 10, 4).eval()
    maps = torch.zeros(5, 10, 28, 28)
    maps[torch.arange(5), y] = 1
    assert_close(concat(x, y), concat.body(torch.cat([x, maps], dim=1)))
    for net in (d, concat, mlp_nets()[1]):  # the label changes D's verdict on the same image
        assert net(x, y).shape == (5, 1) and not torch.equal(net(x, y), net(x, (y + 1) % 10))


@pytest.mark.parametrize("nets", NETS.values(), ids=NETS.keys())
def test_sample_with_labels(nets):
    g, d = nets()
    model = ConditionalGAN(generator=g, discriminator=d, num_classes=10)
    labels = torch.tensor([0, 1, 2, 7, 7])
    a = model.sample(5, labels=labels, generator=torch.Generator().manual_seed(3))
    assert a.shape == (5, *SHAPE) and a.abs().max() <= 1
    assert_close(a, model.sample(5, labels=labels, generator=torch.Generator().manual_seed(3)), rtol=0, atol=0)
    # same z, other labels: other images
    b = model.sample(5, labels=(labels + 1) % 10, generator=torch.Generator().manual_seed(3))
    assert all(not torch.equal(a[i], b[i]) for i in range(5))


def test_clear_errors_for_missing_or_bad_labels_and_class_counts():
    model = ConditionalGAN(*projection_nets(), num_classes=10)
    with pytest.raises(ValueError, match="pass labels"):
        model.sample(2)
    with pytest.raises(ValueError, match=r"labels in \[0, 10\), got values in \[0, 10\]"):
        model.sample(2, labels=torch.tensor([0, 10]))
    with pytest.raises(ValueError, match=r"labels of shape \(3,\)"):
        model.sample(3, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer dtype"):
        model.sample(2, labels=torch.tensor([0.0, 1.0]))
    for g, d in (make() for make in NETS.values()):
        with pytest.raises(ValueError, match=r"noise of shape \(N, 8\)"):
            g(torch.randn(2, 9), torch.tensor([0, 1]))
        with pytest.raises(ValueError, match=r"built for images of shape \(1, 28, 28\), got \(1, 32, 32\)"):
            d(torch.randn(2, 1, 32, 32), torch.tensor([0, 1]))
        with pytest.raises(ValueError, match="pass labels"):
            d(torch.randn(2, *SHAPE), None)
    with pytest.raises(ValueError, match="num_classes >= 1, got None"):
        ConditionalGAN(*projection_nets())
    with pytest.raises(ValueError, match="generator was built for 10 classes but the model has 3"):
        ConditionalGAN(*projection_nets(), num_classes=3)
    small = ConditionalGAN(*mlp_nets(num_classes=3), num_classes=3)  # the digits have 10 classes
    with pytest.raises(ValueError, match=r"num_classes=3 got data labels in \[\d, \d\]: set model.num_classes"):
        fit(small, batches=1)


def test_sample_grid_has_one_row_per_class(tmp_path):
    model = ConditionalGAN(*projection_nets(), num_classes=10).eval()
    trainer = L.Trainer(default_root_dir=tmp_path, logger=False)
    model.trainer = trainer
    SampleGrid(num_samples=30, seed=5).on_train_epoch_end(trainer, model)  # 3 per class
    png = Image.open(tmp_path / "samples" / "epoch_000.png")
    assert png.size == (3 * 30 + 2, 10 * 30 + 2)  # 3 columns, 10 rows of 28 px plus 2 px padding
    # row k holds class k, drawn from the grid's fixed noise
    labels = torch.arange(10).repeat_interleave(3)
    grid = image_grid(model.sample(30, labels=labels, generator=torch.Generator().manual_seed(5)), nrow=3)
    pixels = torch.from_numpy(np.asarray(png.convert("RGB"))).permute(2, 0, 1).float() / 255
    assert_close(pixels, grid, rtol=0, atol=1 / 255 + 1e-6)


def test_cgan_mnist_config_trains_and_predict_writes_labels(mnist_root, tmp_path):
    data = [f"--data.data_dir={mnist_root}", "--data.download=false", "--data.val_size=16", "--data.batch_size=16"]
    config = f"--config={REPO / 'configs/cgan_mnist.yaml'}"
    fit = run_cli("fit", config, f"--trainer.default_root_dir={tmp_path}", *FAST, *data)
    model = fit.model
    assert model.num_classes == model.generator.num_classes == model.discriminator.num_classes == 10  # linked
    assert isinstance(model.discriminator, ProjectionDCGANDiscriminator)
    assert fit.trainer.global_step == 4  # 2 batches, one D and one G step each
    run = tmp_path / "version_0"
    assert Image.open(run / "samples" / "epoch_000.png").size == (10 * 30 + 2,) * 2  # 10 per class, 10 classes
    run_cli(
        "predict",
        config,
        f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        *data,
        f"--trainer.default_root_dir={tmp_path}",
        "--sample_writer.num_samples=25",
        "--sample_writer.batch_size=10",
        "--sample_writer.write_png=false",
        "--trainer.enable_progress_bar=false",
    )
    samples = torch.load(run / "predictions" / "samples.pt")
    assert set(samples) == {"images", "labels"}
    assert torch.equal(samples["labels"], torch.arange(25) % 10)  # balanced, cycling through the classes
    assert samples["images"].shape == (25, *SHAPE) and samples["images"].abs().max() <= 1
    # sample i was made for label i % 10: the batch from 10 to 19 again, from its seed
    again = model.eval().sample(10, labels=torch.arange(10), generator=torch.Generator().manual_seed(10))
    assert_close(samples["images"][10:20], again)


def test_cgan_cifar10_config_trains_with_linked_classes(tmp_path):
    write_cifar10(tmp_path / "cifar")
    cli = run_cli(
        "fit",
        f"--config={REPO / 'configs/cgan_cifar10.yaml'}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--data.data_dir={tmp_path / 'cifar'}",
        "--data.download=false",
        "--data.val_size=16",
        "--data.batch_size=16",
        *FAST,
    )
    model = cli.model
    assert isinstance(model.discriminator, ProjectionDCGANDiscriminator) and cli.trainer.global_step == 4
    assert model.num_classes == model.generator.num_classes == model.discriminator.num_classes == 10
    assert model.generator.image_shape == (3, 32, 32)
    assert Image.open(tmp_path / "version_0" / "samples" / "epoch_000.png").size == (10 * 34 + 2,) * 2


def test_bf16_mixed_precision_trains(mnist_root, tmp_path):
    data = [f"--data.data_dir={mnist_root}", "--data.download=false", "--data.val_size=16", "--data.batch_size=16"]
    cli = run_cli(
        "fit",
        f"--config={REPO / 'configs/cgan_mnist.yaml'}",
        "--trainer.precision=bf16-mixed",
        f"--trainer.default_root_dir={tmp_path}",
        *FAST,
        *data,
    )
    assert cli.trainer.precision == "bf16-mixed" and cli.trainer.global_step == 4
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in cli.model.parameters())
    assert all(torch.isfinite(v) for v in cli.trainer.logged_metrics.values())
    assert cli.model.sample(3, labels=torch.tensor([1, 2, 3])).dtype == torch.float32


def test_projection_mlp_discriminator_adds_the_label_only_through_the_inner_product():
    from lightning_dgm.nets import ProjectionMLPDiscriminator

    torch.manual_seed(0)
    d = ProjectionMLPDiscriminator(image_shape=(1, 4, 4), num_classes=3, hidden_dims=[8, 5])
    x, labels = torch.rand(6, 1, 4, 4) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    phi = d.phi(x.flatten(1))
    expected = d.psi(phi) + (d.embed.weight[labels] * phi).sum(1, keepdim=True)
    assert_close(d(x, labels), expected)
    with torch.no_grad():
        d.embed.weight.copy_(d.embed.weight[0].expand(3, -1))  # equal rows: the label no longer matters
    assert_close(d(x, labels), d(x, torch.zeros(6, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        d(x, labels + 1)
