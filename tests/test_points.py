"""2-D data, the PacGAN discriminator, the mode-coverage metric and the point callbacks."""

import math
from functools import partial

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from lightning_dgm import seeding
from lightning_dgm.datamodules import CSVPointDataModule, GaussianMixtureDataModule, Grid, Ring
from lightning_dgm.datamodules.points import PointDataset
from lightning_dgm.metrics import ModeCounts, ModeCoverage, count_modes, mode_coverage
from lightning_dgm.nets import PointDiscriminator, PointGenerator
from tests.helpers import REPO, run_cli

FAST = [
    "--trainer.max_epochs=2",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=2",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--data.num_train=1000",
]


# -- data -------------------------------------------------------------------------------------
def test_ring_and_grid_modes_are_the_standard_ones():
    ring = GaussianMixtureDataModule().modes
    assert ring.shape == (8, 2)
    assert_close(
        ring[[0, 2, 4, 6]], torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]]), atol=1e-6, rtol=0
    )
    assert_close(ring.norm(dim=1), torch.full((8,), 2.0))
    grid = GaussianMixtureDataModule(Grid()).modes
    assert grid.shape == (25, 2)
    assert sorted(set(grid[:, 0].tolist())) == sorted(set(grid[:, 1].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(p) for p in grid.tolist()}) == 25
    assert GaussianMixtureDataModule(Ring(num_modes=5, radius=3.0)).modes.norm(dim=1).allclose(torch.tensor(3.0))
    assert GaussianMixtureDataModule(Grid(size=3, spacing=1.0)).modes.abs().max() == 1.0


@pytest.mark.parametrize(
    "make",
    [partial(GaussianMixtureDataModule, Ring()), partial(GaussianMixtureDataModule, Grid())],
    ids=["ring", "grid"],
)
def test_mixture_points_sit_on_their_modes_with_the_given_std(make):
    data = make(num_train=20_000, std=0.05, seed=3)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch.image.shape == (100, 2) and batch.image.dtype == torch.float32 and batch.label.shape == (100,)
    points, labels = data.train_set.points, data.train_set.labels
    offsets = points - data.modes[labels]
    assert abs(offsets.std().item() - 0.05) < 0.002 and offsets.mean().abs().max() < 0.002
    counts = torch.bincount(labels, minlength=len(data.modes)).float()
    assert (counts / counts.mean() - 1).abs().max() < 0.15  # equal weights
    again = make(num_train=20_000, std=0.05, seed=3)
    again.setup("fit")
    assert_close(again.train_set.points, points, rtol=0, atol=0)  # seeded
    assert not torch.equal(data.val_set.points, points[: len(data.val_set)])  # splits differ


def test_each_split_is_drawn_by_the_seeding_rule_whatever_the_global_rng():
    splits = {}
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        data = GaussianMixtureDataModule(Grid(), num_train=300, num_val=50, num_test=40, seed=4)
        data.setup("fit")
        splits[global_seed] = {split: getattr(data, f"{split}_set") for split in ("train", "val", "test")}
    for split, n in (("train", 300), ("val", 50), ("test", 40)):
        # the one rule of lightning_dgm.seeding: split `split` from the generator of (seed, TOY_DATA, split)
        points, labels = data.draw(split, n, seeding.generator(4, seeding.TOY_DATA, split))
        for drawn in splits.values():
            assert torch.equal(drawn[split].points, points) and torch.equal(drawn[split].labels, labels)


def test_packed_data_serve_batch_size_packs_of_m_points():
    plain = GaussianMixtureDataModule(Grid(), num_train=600, num_val=30, num_test=30, batch_size=10, seed=2)
    packed = GaussianMixtureDataModule(Grid(), num_train=200, num_val=10, num_test=10, batch_size=10, seed=2, pack=3)
    for data in (plain, packed):
        data.setup("fit")
    # m points per item from the same stream: the packed split is the plain one of m times as many points
    assert torch.equal(packed.train_set.points, plain.train_set.points)
    assert torch.equal(packed.val_set.labels, plain.val_set.labels)
    assert len(packed.train_set) == packed.split_size("train") == 200
    loader = packed.train_dataloader()
    assert len(loader) == 20  # an epoch is num_train / batch_size batches whatever the pack (PacGAN's code)
    batch = next(iter(loader))
    assert batch.image.shape == (30, 2) and batch.label.shape == (30,)
    points = packed.train_set.points
    for triple in batch.image.split(3):  # consecutive m points are one pack: rows 3k, 3k + 1, 3k + 2
        row = int((points == triple[0]).all(dim=1).nonzero()[0])
        assert row % 3 == 0 and torch.equal(points[row : row + 3], triple)
    first = next(packed.evaluation_batches("train", 4))  # callbacks read packs as their points
    assert torch.equal(first.image, points[:12])
    with pytest.raises(ValueError, match="pack"):
        PointDataset(torch.zeros(10, 2), torch.zeros(10), pack=4)
    with pytest.raises(ValueError, match="pack"):
        GaussianMixtureDataModule(pack=0)


def test_csv_points_with_and_without_header(tmp_path):
    rows = [(float(i), float(-i) / 2) for i in range(40)]
    plain, header = tmp_path / "plain.csv", tmp_path / "header.csv"
    plain.write_text("\n".join(f"{x},{y}" for x, y in rows))
    header.write_text("x,y\n" + "\n".join(f"{x},{y}" for x, y in rows))
    for path in (plain, header):
        data = CSVPointDataModule(str(path), num_val=5, num_test=5, batch_size=10)
        data.setup("fit")
        data.setup("test")
        assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (30, 5, 5)
        everything = torch.cat([data.train_set.points, data.val_set.points, data.test_set.points])
        assert sorted(map(tuple, everything.tolist())) == sorted(rows)
        assert data.modes is None and data.image_shape == (2,)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no file at"),
        ("1,2,3\n4,5,6\n", "two finite numbers per row"),
        ("x,y\na,b\n", "not numeric"),
        ("1,2\n3,4\n", "has 2 points"),
        ("1,nan\n" * 20, "two finite numbers"),
    ],
)
def test_bad_csv_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "points.csv"
    if content is not None:
        path.write_text(content)
    data = CSVPointDataModule(str(path), num_val=5, num_test=5)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as error:
        data.setup("fit")
    assert "\n" not in str(error.value)


# -- networks ---------------------------------------------------------------------------------
def test_packed_discriminator_judges_groups_of_m_points():
    torch.manual_seed(0)
    d = PointDiscriminator(pack=3, hidden_dims=(16, 16))
    x = torch.randn(12, 2)
    logits = d(x)
    assert logits.shape == (4, 1)
    by_hand = torch.cat([d.net(x[3 * i : 3 * i + 3].reshape(1, 6)) for i in range(4)])
    assert_close(logits, by_hand)
    assert d.net[0].linear.in_features == 6
    with pytest.raises(ValueError, match="multiple of 3"):
        d(torch.randn(10, 2))
    with pytest.raises(ValueError, match="maxout_pieces"):
        PointDiscriminator(maxout_pieces=1)


def test_maxout_takes_the_max_over_pieces():
    d = PointDiscriminator(hidden_dims=(4,), maxout_pieces=3)
    maxout = d.net[0]
    x = torch.randn(5, 2)
    affine = maxout.linear(x).view(5, 4, 3)
    assert_close(maxout(x), affine.max(dim=2).values)


def test_point_generator_is_unbounded_and_checks_its_input():
    g = PointGenerator(hidden_dims=(8,), batch_norm=False)
    with torch.no_grad():
        g.net[-1].bias.fill_(10.0)  # far outside tanh's range: no squashing at the output
    assert (g(torch.zeros(3, 2)) > 9).all()
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        g(torch.zeros(3, 5))


def test_pacgan_init_and_bias_free_hidden_layers_when_selected():
    torch.manual_seed(0)
    g = PointGenerator(hidden_bias=False, init_std=0.02, batch_norm_momentum=0.05)
    d = PointDiscriminator(pack=2, init_std=0.02)
    g_linears = [m for m in g.net if isinstance(m, nn.Linear)]
    d_linears = [m for m in d.modules() if isinstance(m, nn.Linear)]
    assert [m.bias is None for m in g_linears] == [True, True, True, True, False]  # the output keeps its bias
    assert all(not m.bias.any() for m in [g_linears[-1], *d_linears])
    for layer in [*g_linears, *d_linears]:
        if layer.weight.numel() >= 4000:
            assert abs(layer.weight.std().item() / 0.02 - 1) < 0.03
    weights = torch.cat([m.weight.flatten() for m in [*g_linears, *d_linears]])  # 885,800 numbers
    assert abs(weights.std().item() / 0.02 - 1) < 0.005 and abs(weights.mean().item()) < 1e-4
    # normal, not uniform: 4.55% beyond 2 std (a uniform of that std has nothing beyond 1.73 std)
    assert abs((weights.abs() > 0.04).float().mean().item() - 0.0455) < 0.002
    norms = [m for m in g.net if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 4 and all(m.momentum == 0.05 and (m.weight == 1).all() and not m.bias.any() for m in norms)
    # the defaults are PyTorch's: biases everywhere, Kaiming-uniform weights bounded by 1 / sqrt(fan_in)
    default = PointGenerator()
    assert all(m.bias is not None for m in default.net if isinstance(m, nn.Linear))
    assert default.net[3].weight.abs().max() <= 1 / 400**0.5 and default.net[1].momentum == 0.1
    assert PointDiscriminator().net[0].linear.bias.any()
    with pytest.raises(ValueError, match="init_std"):
        PointGenerator(init_std=0.0)


# -- mode coverage ----------------------------------------------------------------------------
MODES = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])


def test_all_samples_on_one_mode():
    samples = torch.zeros(100, 2) + 0.01
    counts = count_modes(samples, MODES, std=0.02)
    assert counts.nearest.tolist() == counts.high_quality.tolist() == [100, 0, 0, 0]
    result = mode_coverage(counts)
    assert result.modes_covered == 1 and result.high_quality_pct == 100.0
    assert_close(result.reverse_kl, torch.tensor(math.log(4), dtype=torch.float64))  # KL(delta || uniform of 4)


def test_even_spread_has_zero_reverse_kl_and_the_thresholds_are_exact():
    near = MODES.repeat_interleave(25, dim=0)
    near[:25] += torch.tensor([0.06, 0.0])  # exactly 3 std from mode 0: still high quality
    near[25:30] += torch.tensor([0.0601, 0.0])  # just outside: 20 of mode 1's 25 remain
    near[50:56] += torch.tensor([0.0, 0.5])  # far, but still nearest to mode 2: 19 remain
    result = mode_coverage(count_modes(near, MODES, std=0.02))
    assert result.modes_covered == 3  # mode 2 has 19 < 20 high-quality samples
    assert_close(result.high_quality_pct, torch.tensor(100.0 * (100 - 5 - 6) / 100, dtype=torch.float64))
    assert_close(result.reverse_kl, torch.tensor(0.0, dtype=torch.float64))
    assert mode_coverage(ModeCounts(torch.tensor([30, 30]), torch.tensor([20, 19])), min_count=19).modes_covered == 2


def test_reverse_kl_by_hand():
    counts = ModeCounts(torch.tensor([50, 30, 20, 0]), torch.tensor([0, 0, 0, 0]))
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    assert_close(mode_coverage(counts).reverse_kl, (p * (p * 4).log()).sum())
    assert mode_coverage(counts).modes_covered == 0 and mode_coverage(counts).high_quality_pct == 0


def test_streaming_metric_equals_one_shot():
    torch.manual_seed(1)
    samples = MODES[torch.randint(4, (500,))] + 0.05 * torch.randn(500, 2)
    metric = ModeCoverage(MODES, std=0.02)
    for chunk in samples.split(77):
        metric.update(chunk)
    streamed = metric.compute()
    once = mode_coverage(count_modes(samples, MODES, std=0.02))._asdict()
    assert streamed.keys() == once.keys()
    for key in once:
        assert_close(streamed[key], once[key])


# -- through the CLI --------------------------------------------------------------------------
def test_toy_config_logs_mode_coverage_and_draws_pictures(tmp_path):
    cli = run_cli(
        "fit", f"--config={REPO / 'configs/toy_grid_pacgan.yaml'}", f"--trainer.default_root_dir={tmp_path}", *FAST
    )
    metrics = cli.trainer.callback_metrics
    assert 0 <= metrics["val/modes_covered"] <= 25 and 0 <= metrics["val/high_quality_pct"] <= 100
    assert metrics["val/reverse_kl"] >= 0
    # the logged value is the metric of the model's own samples, drawn with the callback's seed
    cli.model.eval()
    samples = cli.model.sample(2500, generator=torch.Generator().manual_seed(0))
    expected = mode_coverage(count_modes(samples, cli.datamodule.modes, std=0.02))
    assert metrics["val/modes_covered"] == expected.modes_covered
    assert_close(metrics["val/reverse_kl"], expected.reverse_kl)
    pictures = sorted(p.name for p in (tmp_path / "version_0" / "points").iterdir())
    assert pictures == ["epoch_000.png", "epoch_001.png"]
    assert list((tmp_path / "version_0" / "wandb").glob("offline-run-*/files/media/images/points_*.png"))
    test = run_cli(
        "test",
        f"--config={REPO / 'configs/toy_grid_pacgan.yaml'}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--ckpt_path={tmp_path / 'version_0' / 'checkpoints' / 'last.ckpt'}",
        "--trainer.enable_progress_bar=false",
    )
    assert "test/modes_covered" in test.trainer.callback_metrics
    run_cli(
        "predict",
        f"--config={REPO / 'configs/toy_grid_pacgan.yaml'}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--ckpt_path={tmp_path / 'version_0' / 'checkpoints' / 'last.ckpt'}",
        "--sample_writer.num_samples=300",
        "--trainer.enable_progress_bar=false",
    )
    predictions = tmp_path / "version_0" / "predictions"
    points = torch.load(predictions / "samples.pt")["images"]
    assert points.shape == (300, 2) and not list(predictions.glob("*.png"))
    assert_close(points[:250], cli.model.sample(250, generator=torch.Generator().manual_seed(0)))  # batch 1: seed 0


def test_mode_coverage_on_data_without_modes_is_a_clear_error(tmp_path):
    csv = tmp_path / "points.csv"
    csv.write_text("\n".join(f"{i % 7},{i % 5}" for i in range(1200)))
    with pytest.raises(ValueError, match="needs data with known modes"):
        run_cli(
            "fit",
            f"--config={REPO / 'configs/toy_ring_gan.yaml'}",
            f"--trainer.default_root_dir={tmp_path}",
            "--data=lightning_dgm.datamodules.CSVPointDataModule",
            f"--data.path={csv}",
            *FAST[:-1],
        )


def test_pacgan_config_trains_and_validates_with_packs_of_three(tmp_path):
    cli = run_cli(
        "fit",
        f"--config={REPO / 'configs/pacgan_grid.yaml'}",
        f"--trainer.default_root_dir={tmp_path}",
        "--data.init_args.pack=3",
        "--model.init_args.discriminator.init_args.pack=3",
        "--trainer.check_val_every_n_epoch=1",
        "--trainer.logger=false",
        *FAST,
    )
    assert cli.trainer.callback_metrics["val/d_loss"] > 0 and "val/modes_covered" in cli.trainer.callback_metrics
    batch = next(iter(cli.datamodule.train_dataloader()))
    assert batch.image.shape == (300, 2) and cli.model.discriminator(batch.image).shape == (100, 1)
