"""The configs that reproduce published tables say exactly what the papers' official code says:
PacGAN's 2-D mixtures (Lin et al. 2018, Table 1) and the IWAE paper's VAE (Burda et al. 2016, Table 1)."""

import itertools
import math

import lightning as L
import pytest
import torch
from torch import nn

from lightning_dgm.cli import LightningDGMCLI
from lightning_dgm.datamodules import GaussianMixtureDataModule
from lightning_dgm.losses import BernoulliLikelihood, NonSaturating
from lightning_dgm.nets import GaussianNoise, Maxout
from lightning_dgm.schedules import GeometricStagesLR
from tests.helpers import REPO, run_cli


def parsed(config: str, tmp_path, *extra: str) -> LightningDGMCLI:
    """The config's objects as the CLI builds them, nothing run."""
    args = ["--config", str(REPO / "configs" / config), f"--trainer.default_root_dir={tmp_path}", *extra]
    return LightningDGMCLI(args=args, run=False)


# -- PacGAN's 2-D mixtures --------------------------------------------------------------------------
# synthetic_data_experiments/2DRing_GAN&PacGAN/config.py: MEANS = [cos(id*pi*2/8), sin(id*pi*2/8)], 0.01 ** 2 * I
RING = [(math.cos(i * math.pi * 2 / 8), math.sin(i * math.pi * 2 / 8)) for i in range(8)]
# synthetic_data_experiments/2DGrid_GAN&PacGAN/config.py: product(range(-4, 5, 2), range(-4, 5, 2)), 0.05 ** 2 * I
GRID = [(float(i), float(j)) for i, j in itertools.product(range(-4, 5, 2), range(-4, 5, 2))]


@pytest.mark.parametrize("config, modes, std", [("pacgan_ring.yaml", RING, 0.01), ("pacgan_grid.yaml", GRID, 0.05)])
def test_pacgan_configs_are_the_official_mixtures(tmp_path, config, modes, std):
    data = parsed(config, tmp_path).datamodule
    assert isinstance(data, GaussianMixtureDataModule)
    assert data.std == std
    # exactly the official means (in float32), in the official order
    assert torch.equal(data.modes, torch.tensor(modes, dtype=torch.float64).float())
    assert (data.sizes["train"], data.batch_size, data.pack) == (100_000, 100, 1)
    data.setup("fit")
    offsets = data.train_set.points - data.modes[data.train_set.labels]
    assert abs(offsets.std().item() / std - 1) < 0.01  # the points are drawn with that std


def test_pacgan_config_is_the_official_recipe(tmp_path):
    cli = parsed(
        "pacgan_grid.yaml", tmp_path, "--data.init_args.pack=3", "--model.init_args.discriminator.init_args.pack=3"
    )
    model, g, d = cli.model, cli.model.generator, cli.model.discriminator
    linears = [m for m in g.net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (2, 400),
        (400, 400),
        (400, 400),
        (400, 400),
        (400, 2),
    ]
    assert [m.bias is None for m in linears] == [True, True, True, True, False]  # pacgan_task.py: use_bias=False
    assert [type(m).__name__ for m in g.net[1:4]] == ["BatchNorm1d", "ReLU", "Linear"]
    assert all(m.momentum == 0.05 for m in g.net if isinstance(m, nn.BatchNorm1d))
    maxouts = [m for m in d.net if isinstance(m, Maxout)]
    assert [(m.linear.in_features, m.out_features, m.pieces) for m in maxouts] == [
        (6, 200, 5),
        (200, 200, 5),
        (200, 200, 5),
    ]
    assert d.pack == cli.datamodule.pack == 3
    for linear in [*linears, *(m.linear for m in maxouts), d.net[-1]]:
        if linear.weight.numel() > 1000:  # too few numbers in the others for a tight std
            assert abs(linear.weight.std().item() / 0.02 - 1) < 0.05 and abs(linear.weight.mean().item()) < 0.002
        assert linear.bias is None or not linear.bias.any()
    assert isinstance(model.loss, NonSaturating) and isinstance(model.noise, GaussianNoise) and g.latent_dim == 2
    for optimizer in model.configure_optimizers()[0]:
        assert type(optimizer) is torch.optim.Adam
        assert (optimizer.defaults["lr"], optimizer.defaults["betas"]) == (1e-4, (0.8, 0.999))
    assert (cli.trainer.max_epochs, model.d_steps, model.g_batch_size) == (400, 1, None)


# -- the IWAE paper's VAE -----------------------------------------------------------------------------
# experiments.py, checkpoint1to8: stage i (from 1) trains 3 ** (i - 1) epochs at
# 1e-4 * round(10 ** (1 - (i - 1) / 7), 1);
# the paper's text: 3^i passes at 0.001 * 10^(-i/7), i = 0 .. 7.
STAGE_EPOCHS = [1, 3, 9, 27, 81, 243, 729, 2187]
CODE_RATES = [1e-3, 7.2e-4, 5.2e-4, 3.7e-4, 2.7e-4, 1.9e-4, 1.4e-4, 1e-4]


@pytest.mark.parametrize("decimals", [None, 2], ids=["paper", "official-code"])
def test_iwae_schedule_epoch_to_lr_table_is_the_papers(decimals):
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = GeometricStagesLR(optimizer, decimals=decimals)
    rates = []
    for _ in range(sum(STAGE_EPOCHS) + 5):  # the lr each epoch trains at, stepping once per epoch
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    expected = [
        1e-3 * 10 ** (-i / 7) if decimals is None else CODE_RATES[i]
        for i, n in enumerate(STAGE_EPOCHS)
        for _ in range(n)
    ]
    assert len(expected) == 3280
    assert rates[:3280] == pytest.approx(expected, rel=1e-12, abs=0)
    assert rates[3280:] == pytest.approx([expected[-1]] * 5, rel=1e-12)  # the last stage's rate stays
    assert schedule.stage_ends() == [1, 4, 13, 40, 121, 364, 1093, 3280]
    assert [schedule.stage(e) for e in (0, 1, 3, 4, 12, 13, 39, 40, 120, 121, 363, 364, 1092, 1093, 3279)] == [
        0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,
    ]  # fmt: skip


def test_iwae_config_is_the_papers_vae(tmp_path, mnist_root):
    cli = parsed("vae_mnist_iwae.yaml", tmp_path, f"--data.data_dir={mnist_root}", "--data.download=false")
    model = cli.model
    layers = [*model.encoder.net, *model.decoder.net]
    linears = [(m.in_features, m.out_features) for m in layers if isinstance(m, nn.Linear)]
    assert linears == [(784, 200), (200, 200), (200, 100), (50, 200), (200, 200), (200, 784)]  # 100: mean, log-var
    assert sum(isinstance(m, nn.Tanh) for m in layers) == 4 and not any(isinstance(m, nn.ReLU) for m in layers)
    assert isinstance(model.likelihood, BernoulliLikelihood) and model.beta == 1.0 and model.iw_samples == 5000
    (optimizer,), (schedule,) = model.configure_optimizers()
    assert type(optimizer) is torch.optim.Adam
    assert (optimizer.defaults["lr"], optimizer.defaults["betas"], optimizer.defaults["eps"]) == (
        1e-3,
        (0.9, 0.999),
        1e-4,
    )
    assert isinstance(schedule, GeometricStagesLR) and schedule.stage_ends()[-1] == cli.trainer.max_epochs == 3280
    data = cli.datamodule
    assert (data.batch_size, data.binarize, data.val_size) == (20, True, 400)


class RecordLR(L.Callback):
    """Appends (epoch, lr) to `RecordLR.seen` at the start of every training epoch."""

    seen: list[tuple[int, float]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        RecordLR.seen.append((trainer.current_epoch, trainer.optimizers[0].param_groups[0]["lr"]))


def test_lightning_steps_the_iwae_schedule_once_per_epoch_and_a_resume_continues_it(tmp_path, mnist_root):
    """Through the real CLI: the VAE (automatic optimisation) trains epoch e at factor(e), and a run resumed
    from an epoch-end checkpoint picks the schedule up where it stopped."""
    common = [
        f"--config={REPO / 'configs' / 'vae_mnist_iwae.yaml'}",
        f"--data.data_dir={mnist_root}",
        "--data.download=false",
        "--data.val_size=16",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.callbacks+=tests.test_reproductions.RecordLR",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    RecordLR.seen = []
    run_cli("fit", *common, "--trainer.max_epochs=5")
    factor = 10 ** (-1 / 7)
    assert [epoch for epoch, _ in RecordLR.seen] == [0, 1, 2, 3, 4]
    assert [lr for _, lr in RecordLR.seen] == pytest.approx([1e-3, *[1e-3 * factor] * 3, 1e-3 * factor**2])
    RecordLR.seen = []
    last = tmp_path / "version_0" / "checkpoints" / "last.ckpt"
    run_cli("fit", *common, "--trainer.max_epochs=14", f"--ckpt_path={last}")
    assert [epoch for epoch, _ in RecordLR.seen] == list(range(5, 14))
    assert [lr for _, lr in RecordLR.seen] == pytest.approx([1e-3 * factor**2] * 8 + [1e-3 * factor**3])
