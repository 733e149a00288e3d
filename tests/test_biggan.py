"""BigGAN: conditional BatchNorm, projection, spectral norm, G-EMA, orthogonal regularisation,
truncation, precision/recall/density/coverage, and the published config."""

import subprocess

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from lightning_dgm.callbacks import ClassGrid, ClassInterpolation
from lightning_dgm.errors import ConfigError
from lightning_dgm.losses import orthogonal_regularization
from lightning_dgm.metrics import MetricInputs, PrecisionRecall, precision_recall_density_coverage
from lightning_dgm.models import BigGAN, GeneratorEMA
from lightning_dgm.nets import BigGANDiscriminator, BigGANGenerator, GaussianNoise
from tests.helpers import PYTHON, REPO, run_cli, subprocess_env, write_cifar10


def tiny_generator(**kwargs):
    torch.manual_seed(0)
    return BigGANGenerator(**{"latent_dim": 60, "image_shape": (1, 28, 28), "ch": 4, "embedding_dim": 8} | kwargs)


def tiny_discriminator(**kwargs):
    torch.manual_seed(1)
    return BigGANDiscriminator(**{"image_shape": (1, 28, 28), "ch": 4, "attention_resolution": None} | kwargs)


# -- networks ---------------------------------------------------------------------------------------
def test_conditional_batchnorm_makes_the_class_matter_through_the_shared_embedding_only():
    g = tiny_generator(attention_resolution=14).eval()
    z = torch.randn(1, 60).expand(2, 60)
    images = g(z, torch.tensor([0, 1]))
    assert images.shape == (2, 1, 28, 28) and images.abs().max() <= 1
    assert (images[0] - images[1]).abs().max() > 1e-3  # same z, two classes: two images
    with torch.no_grad():  # class 1's embedding row made equal to class 0's
        original = g.embed.parametrizations.weight.original
        original[1] = original[0]
    images = g(z, torch.tensor([0, 1]))
    assert_close(images[0], images[1], rtol=0, atol=0)


def test_projection_discriminator_is_psi_of_phi_plus_the_inner_product_with_the_class_embedding():
    d = tiny_discriminator().eval()
    x, labels = torch.rand(3, 1, 28, 28) * 2 - 1, torch.tensor([2, 0, 7])
    phi = d.features(x)  # (3, 16) after ReLU and sum pooling
    assert phi.shape == (3, 16) and (phi >= 0).all()
    w, b, embed = d.head.weight, d.head.bias, d.embed.weight  # spectrally normalised (eval: fixed u, v)
    by_hand = torch.stack([phi[i] @ w[0] + b[0] + phi[i] @ embed[labels[i]] for i in range(3)]).unsqueeze(1)
    assert_close(d(x, labels), by_hand)
    # Changing only the label moves the logit by <embed(y) - embed(y'), phi(x)>.
    moved = d(x, torch.tensor([5, 5, 5])) - d(x, labels)
    assert_close(moved[:, 0], ((embed[5] - embed[labels]) * phi).sum(1))


def test_spectral_norm_holds_every_weight_at_spectral_norm_one():
    g, d = tiny_generator(attention_resolution=14), tiny_discriminator(attention_resolution=7)
    parametrized = [m for net in (g, d) for m in net.modules() if hasattr(m, "parametrizations")]
    layers = [m for net in (g, d) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert len(parametrized) == len(layers) > 20  # every conv, linear and embedding
    with torch.no_grad():  # weights far from norm 1, with spread singular values
        for m in parametrized:
            m.parametrizations.weight.original.mul_(3).add_(torch.randn_like(m.parametrizations.weight.original))
    g.train(), d.train()
    with torch.no_grad():
        d(g(torch.randn(2, 60), torch.arange(2)), torch.arange(2))  # the networks run with them
        for _ in range(100):  # in train mode every use of a weight does one power iteration
            for m in parametrized:
                _ = m.weight
    for m in parametrized:
        assert torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item() == pytest.approx(1.0, abs=2e-2)


def test_networks_refuse_sizes_and_latents_they_cannot_build():
    with pytest.raises(ConfigError, match="multiple of 3"):
        tiny_generator(latent_dim=61)
    with pytest.raises(ConfigError, match="px"):
        BigGANGenerator(image_shape=(3, 48, 48))
    with pytest.raises(ConfigError, match="attention_resolution"):
        tiny_discriminator(attention_resolution=16)


def test_published_cifar10_config_builds_the_published_networks(tmp_path):
    from lightning_dgm.cli import LightningDGMCLI

    cli = LightningDGMCLI(
        args=["--config", str(REPO / "configs/biggan_cifar10.yaml"), f"--trainer.default_root_dir={tmp_path}"],
        run=False,
    )
    model, g, d = cli.model, cli.model.generator, cli.model.discriminator
    assert isinstance(model, BigGAN) and type(model.fake_labels).__name__ == "UniformLabels"
    assert (g.latent_dim, g.chunk, g.channels, g.embed.weight.shape) == (80, 20, [384] * 4, (10, 128))
    assert list(g.attention) == ["1"] and g.blocks[1].conv2.out_channels == 384  # attention at 16x16
    assert sum(isinstance(b, type(g.attention["1"])) for b in d.blocks) == 1
    assert (model.d_steps, model.generator_ema.decay, model.generator_ema.start_after) == (5, 0.9999, 1000)
    assert cli.datamodule.batch_size == 64 and cli.trainer.max_steps == 600_000  # 100k G + 500k D steps
    g_opt, d_opt = model.configure_optimizers()[0]
    assert g_opt.defaults["lr"] == d_opt.defaults["lr"] == 2e-4 and g_opt.defaults["betas"] == (0.5, 0.999)


# -- G-EMA --------------------------------------------------------------------------------------
def test_ema_after_k_steps_is_the_closed_form_and_copies_buffers():
    g = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    ema = GeneratorEMA(g, decay=0.9, start_after=2)
    history = []
    for _ in range(6):
        with torch.no_grad():
            for p in g.parameters():
                p.copy_(torch.randn_like(p))
        g(torch.randn(5, 2))  # moves BatchNorm's running statistics
        ema.update(g)
        history.append([p.detach().clone() for p in g.parameters()])
    # w_ema(k) = w(k) for k <= 2, then 0.9 w_ema(k - 1) + 0.1 w(k)
    expected = history[1]
    for k in range(2, 6):
        expected = [0.9 * e + 0.1 * w for e, w in zip(expected, history[k])]
    for averaged, closed_form in zip(ema.module.parameters(), expected):
        assert_close(averaged, closed_form)
    assert int(ema.steps) == 6 and not any(p.requires_grad for p in ema.parameters())
    assert_close(ema.module[1].running_mean, g[1].running_mean, rtol=0, atol=0)  # buffers copied, not averaged


TINY = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=0",
    "--data.download=false",
    "--data.val_size=16",
    "--data.batch_size=16",
    "--model.init_args.generator.init_args.ch=4",
    "--model.init_args.discriminator.init_args.ch=4",
    "--model.init_args.ema_decay=0.5",
    "--model.init_args.ema_start=1",
]


def test_ema_lives_in_checkpoints_and_resumes_bit_exactly(mnist_root, tmp_path):
    common = [f"--config={REPO / 'configs/biggan_mnist.yaml'}", f"--data.data_dir={mnist_root}", *TINY]
    run_cli("fit", *common, "--trainer.max_epochs=2", f"--trainer.default_root_dir={tmp_path / 'straight'}")
    run_cli("fit", *common, "--trainer.max_epochs=1", f"--trainer.default_root_dir={tmp_path / 'split'}")
    interrupted = tmp_path / "split" / "version_0" / "checkpoints" / "last.ckpt"
    cli = run_cli(
        "fit",
        *common,
        "--trainer.max_epochs=2",
        f"--trainer.default_root_dir={tmp_path / 'split'}",
        f"--ckpt_path={interrupted}",
    )
    straight = torch.load(tmp_path / "straight" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = torch.load(interrupted, weights_only=True)
    ema = {k: v for k, v in resumed["state_dict"].items() if k.startswith("generator_ema.")}
    assert int(ema["generator_ema.steps"]) == 6 and len(ema) > 20  # 6 G steps, keyed on G steps
    assert_close(resumed["state_dict"], straight["state_dict"], rtol=0, atol=0)
    # sample() uses the EMA G by default, the raw G with sample_ema false.
    model, labels = cli.model.eval(), torch.arange(4)
    z = torch.randn(4, 60, generator=torch.Generator().manual_seed(3))
    assert_close(
        model.sample(4, labels=labels, generator=torch.Generator().manual_seed(3)),
        model.generator_ema.module(z, labels),
    )
    model.sample_ema = False
    assert_close(model.sample(4, labels=labels, generator=torch.Generator().manual_seed(3)), model.generator(z, labels))
    assert (model.generator(z, labels) - model.generator_ema.module(z, labels)).abs().max() > 1e-4


# -- orthogonal regularisation, truncation --------------------------------------------------------
def test_orthogonal_regularization_is_beta_times_the_off_diagonal_gram_norm():
    module = nn.Sequential(nn.Embedding(4, 3), nn.Conv2d(2, 3, 1), nn.Linear(3, 2))
    with torch.no_grad():
        module[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]).view(3, 2, 1, 1))
        module[2].weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 3.0, 0.0]]))  # orthogonal rows: no term
    # Gram of the conv's filters: off-diagonal entries 0, 1, 2 (each twice): 2 * (0 + 1 + 4) = 10.
    assert_close(orthogonal_regularization(module, beta=1e-4), torch.tensor(10e-4))


def test_truncation_redraws_only_the_entries_outside_and_never_returns_them():
    noise = GaussianNoise()
    plain = noise.sample((2000, 80), generator=torch.Generator().manual_seed(0))
    for t in (0.25, 0.5, 1.0, 2.0):
        z = noise.sample((2000, 80), generator=torch.Generator().manual_seed(0), truncation=t)
        assert z.abs().max() <= t
        inside = plain.abs() <= t
        assert_close(z[inside], plain[inside], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="positive"):
        noise.sample((2, 2), truncation=0.0)


def test_predict_passes_truncation_through_to_sample(mnist_root, tmp_path):
    common = [
        "predict",
        f"--config={REPO / 'configs/biggan_mnist.yaml'}",
        f"--data.data_dir={mnist_root}",
        "--data.download=false",
        "--untrained=true",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--model.init_args.generator.init_args.ch=4",
        "--model.init_args.discriminator.init_args.ch=4",
        f"--trainer.default_root_dir={tmp_path}",
        "--sample_writer.num_samples=8",
        "--sample_writer.write_png=false",
    ]
    runs = {}
    for name, extra in (
        ("plain", []),
        ("huge", ["--sample_writer.truncation=1e9"]),
        ("half", ["--sample_writer.truncation=0.05"]),
    ):
        run_cli(*common, f"--sample_writer.output_dir={tmp_path / name}", *extra)
        runs[name] = torch.load(tmp_path / name / "samples.pt", weights_only=True)["images"]
    assert_close(runs["huge"], runs["plain"], rtol=0, atol=0)  # a truncation nothing exceeds changes nothing
    assert (runs["half"] - runs["plain"]).abs().max() > 1e-3


# -- precision, recall, density, coverage ----------------------------------------------------------
def test_identical_sets_score_one_and_far_disjoint_sets_zero():
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    same = precision_recall_density_coverage(x, x.clone())
    assert (same.precision, same.recall, same.density, same.coverage) == (1.0, 1.0, 1.0, 1.0)
    far = precision_recall_density_coverage(x, x[:200] + 100)
    assert (far.precision, far.recall, far.density, far.coverage) == (0.0, 0.0, 0.0, 0.0)


def test_precision_recall_density_coverage_by_hand():
    real, generated = torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([[0.5], [2.5], [10.0]])
    # k = 1. Real radii 1, 1, 2; generated radii 2, 2, 7.5.
    # precision: 0.5 in ball(0, 1), 2.5 in ball(3, 2), 10 in none -> 2/3.
    # recall: every real point within 0.5 of a generated one (radius 2) -> 1.
    # density: 0.5 lies in 2 real balls, 2.5 in 1, 10 in 0 -> 3 / (1 * 3) = 1.
    # coverage: each real point's nearest sample (0.5, 0.5, 0.5 away) lies inside its ball -> 1.
    values = precision_recall_density_coverage(real, generated, k=1)
    assert_close(torch.stack(list(values)), torch.tensor([2 / 3, 1.0, 1.0, 1.0], dtype=torch.float64))
    metric = PrecisionRecall(k=1)
    computed = metric.compute(MetricInputs(real_features=real, generated_features=generated), torch.Generator())
    assert list(computed) == list(metric.outputs) and computed["precision"].item() == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match="more than k"):
        metric.check_set_size(1, "num_samples=1 generated images")


def test_class_grid_has_one_row_per_class_and_the_same_z_down_each_column():
    model = BigGAN(tiny_generator(attention_resolution=None), tiny_discriminator(), num_classes=10, ema_decay=None)
    grid = ClassGrid(columns=3, seed=5).grid(model)
    assert grid.shape == (30, 1, 28, 28) and model.training  # train mode back after the grid
    z = GaussianNoise().sample((3, 60), generator=torch.Generator().manual_seed(5))
    labels = torch.arange(10).repeat_interleave(3)
    assert_close(grid, model.eval().generator(z.repeat(10, 1), labels))


def test_class_interpolation_moves_the_shared_embedding_from_one_class_to_the_other():
    model = BigGAN(tiny_generator(attention_resolution=None), tiny_discriminator(), num_classes=10, ema_decay=None)
    strips = ClassInterpolation(pairs=[(2, 7)], steps=5, rows=3, seed=4).strips(model)
    assert strips.shape == (15, 1, 28, 28) and model.training  # strip by strip; train mode back
    g = model.eval().generator
    z = GaussianNoise().sample((3, 60), generator=torch.Generator().manual_seed(4))
    # both ends are the classes themselves, with each strip's own z
    assert_close(strips[0::5], g(z, torch.full((3,), 2)))
    assert_close(strips[4::5], g(z, torch.full((3,), 7)))
    # the middle is G at the embeddings' midpoint, not a blend of images
    ends = g.embed(torch.tensor([2, 7]))
    assert_close(strips[2::5], g(z, None, shared=ends.mean(0).expand(3, -1)))
    assert not torch.allclose(strips[2], (strips[0] + strips[4]) / 2, atol=1e-3)
    with pytest.raises(ConfigError, match="class 12 is outside 0..9"):
        model.interpolate_classes(2, 12, steps=3, n=1)


def test_two_process_ddp_keeps_weights_and_ema_identical_on_both_ranks(tmp_path):
    root = tmp_path / "cifar"
    write_cifar10(root, n_train=64, n_test=8)
    command = [
        PYTHON,
        "-m",
        "lightning_dgm",
        "fit",
        f"--config={REPO / 'configs/biggan_cifar10_small.yaml'}",
        f"--data.data_dir={root}",
        "--data.download=false",
        "--data.val_size=8",
        "--data.batch_size=4",
        "--model.init_args.generator.init_args.ch=4",
        "--model.init_args.discriminator.init_args.ch=4",
        "--model.init_args.ema_decay=0.5",
        "--model.init_args.ema_start=1",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp_find_unused_parameters_true",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=4",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        "--trainer.callbacks+=tests.helpers.DumpWeights",
    ]
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [torch.load(tmp_path / "run" / "version_0" / f"weights_rank{r}.pt") for r in (0, 1)]
    # BatchNorm's running statistics are each rank's own batches' (no SyncBatchNorm on CPU), in G
    # and so in its EMA copy; every weight, the EMA's averaged weights and its counters agree.
    shared = [k for k in ranks[0] if "running_" not in k and "num_batches_tracked" not in k]
    assert int(ranks[0]["generator_ema.steps"]) == 2 and sum(k.startswith("generator_ema.") for k in shared) > 20
    assert_close({k: ranks[0][k] for k in shared}, {k: ranks[1][k] for k in shared}, rtol=0, atol=0)
    key = "linear.parametrizations.weight.original"
    assert (ranks[0][f"generator_ema.average.module.{key}"] - ranks[0][f"generator.{key}"]).abs().max() > 0


def test_precision_recall_through_sample_metrics(tmp_path):
    from tests.test_sample_metrics import ReplaySystem, callback, fit

    scores = {}
    for noise_std in (0.0, 0.5):  # samples are the real train images, then the same images with noise
        metrics = callback(tmp_path / "cache", metrics=[PrecisionRecall()], classifier=None)
        _, values = fit(tmp_path / str(noise_std), ReplaySystem(noise_std), metrics)
        scores[noise_std] = [values[f"val/{name}"] for name in PrecisionRecall.outputs]
    assert scores[0.0] == pytest.approx([1.0, 1.0, 1.0, 1.0])
    assert all(noisy < exact for noisy, exact in zip(scores[0.5], scores[0.0]))
