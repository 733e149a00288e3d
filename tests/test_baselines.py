"""The closed-form baselines: the multinomial table and its inverse-CDF sampler, the Gaussian."""

import math

import pytest
import torch
from torch.testing import assert_close

from lightning_dgm.models import Gaussian, Multinomial
from lightning_dgm.models.baselines import inverse_cdf
from tests.helpers import REPO, run_cli

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def test_inverse_cdf_returns_the_smallest_i_with_u_at_most_F_i():
    # p = [0.2, 0.0, 0.5, 0.3]  ->  F = [0.2, 0.2, 0.7, 1.0]
    cdf = torch.tensor([[0.2, 0.2, 0.7, 1.0]], dtype=torch.float64)
    u = torch.tensor([[1e-9], [0.2], [0.2000001], [0.7], [0.71], [1.0]], dtype=torch.float64)
    assert inverse_cdf(cdf, u).flatten().tolist() == [0, 0, 2, 2, 3, 3]  # value 1 (p = 0) never comes out


def fitted(model_class, data, **kwargs):
    """Fit a baseline the way `fit` does, without a trainer: accumulate, then derive."""
    model = model_class(image_shape=tuple(data.shape[1:]), **kwargs)
    model.reset_statistics()
    for chunk in data.split(7):
        model.accumulate(chunk.reshape(len(chunk), -1).double())
    model.derive()
    return model


def test_multinomial_counts_every_value_of_every_dimension():
    x = torch.tensor([[-1.0, 1.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])  # values on 3 levels
    model = fitted(Multinomial, x, num_values=3)
    assert_close(model.probs, torch.tensor([[0.75, 0.0, 0.25], [0.0, 0.75, 0.25]], dtype=torch.float64))
    assert_close(
        model.log_prob(x.double()),
        torch.log(torch.tensor([0.75 * 0.25, 0.75 * 0.75, 0.25 * 0.75, 0.75 * 0.75], dtype=torch.float64)),
    )
    smoothed = fitted(Multinomial, x, num_values=3, pseudocount=1.0)
    assert_close(smoothed.probs[0], torch.tensor([4 / 7, 1 / 7, 2 / 7], dtype=torch.float64))


def test_multinomial_samples_follow_the_table_and_only_seen_values():
    torch.manual_seed(0)
    levels = torch.linspace(-1, 1, 256)
    p = torch.tensor([0.5, 0.3, 0.2])
    x = levels[[10, 128, 200]][torch.multinomial(p, 4000, replacement=True)].view(4000, 1, 1, 1)
    model = fitted(Multinomial, x)
    samples = model.sample(20_000, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (20_000, 1, 1, 1)
    index = model.quantize(samples.reshape(-1, 1).double()).flatten()
    assert_close(samples.flatten(), levels[index])  # samples are the table's values ...
    assert set(index.tolist()) == {10, 128, 200}  # ... and only those seen in the data
    share = torch.stack([(index == i).double().mean() for i in (10, 128, 200)])
    assert_close(share, model.probs[0, [10, 128, 200]], atol=0.015, rtol=0)
    again = model.sample(20_000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(samples, again)


def test_gaussian_is_the_maximum_likelihood_fit():
    torch.manual_seed(0)
    x = torch.randn(500, 3) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.2]]) + torch.tensor(
        [1.0, -2.0, 0.5]
    )
    model = fitted(Gaussian, x, jitter=0.0, value_range=None)
    assert_close(model.mean, x.double().mean(dim=0))
    assert_close(model.covariance, torch.cov(x.double().T, correction=0))  # divided by N: maximum likelihood
    reference = torch.distributions.MultivariateNormal(model.mean, model.covariance)
    assert_close(model.log_prob(x.double()), reference.log_prob(x.double()))
    samples = model.sample(50_000, generator=torch.Generator().manual_seed(2))
    assert samples.shape == (50_000, 3) and samples.dtype == torch.float32
    assert_close(torch.cov(samples.double().T), model.covariance, atol=0.03, rtol=0)
    bounded = fitted(Gaussian, x)  # images: clamped to [-1, 1]
    assert bounded.sample(1000).abs().max() <= 1.0


def test_unfit_models_and_labels_are_clear_errors():
    for model in (Multinomial(image_shape=(2,)), Gaussian(image_shape=(2,))):
        with pytest.raises(RuntimeError, match="run `fit` first"):
            model.sample(3)
    model = fitted(Gaussian, torch.randn(10, 2))
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(3, labels=torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("config", ["multinomial_mnist.yaml", "gaussian_mnist.yaml"])
def test_mnist_baselines_fit_evaluate_and_sample_through_the_cli(config, mnist_root, tmp_path):
    cli = run_cli(
        "fit",
        f"--config={REPO / 'configs' / config}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--data.data_dir={mnist_root}",
        "--data.download=false",
        "--data.val_size=16",
        "--data.batch_size=16",
        *QUIET,
    )
    model = cli.model
    assert int(model.num_fitted) == 80 and cli.trainer.global_step == 0  # every train image counted, no optimizer
    images = cli.datamodule.train_set.images
    if isinstance(model, Gaussian):  # the trainer's pass gives the closed-form fit
        flat = (images.double() / 127.5 - 1).reshape(80, -1)
        assert_close(model.mean, flat.mean(dim=0))
    else:
        assert_close(model.counts.sum(dim=1), torch.full((784,), 80.0, dtype=torch.float64))
    nll = cli.trainer.callback_metrics["val/nll"]
    assert torch.isfinite(nll)
    assert_close(cli.trainer.callback_metrics["val/bits_per_dim"], nll / (784 * math.log(2)))
    run = tmp_path / "version_0"
    assert (run / "samples" / "epoch_000.png").is_file()
    loaded = type(model).load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    assert_close(
        loaded.sample(4, generator=torch.Generator().manual_seed(0)),
        model.sample(4, generator=torch.Generator().manual_seed(0)),
    )


@pytest.mark.parametrize("config", ["toy_grid_gaussian.yaml", "toy_grid_multinomial.yaml"])
def test_toy_baselines_are_scored_like_the_gans(config, tmp_path):
    cli = run_cli(
        "fit",
        f"--config={REPO / 'configs' / config}",
        f"--trainer.default_root_dir={tmp_path}",
        "--data.num_train=5000",
        *QUIET,
    )
    metrics = cli.trainer.callback_metrics
    assert int(cli.model.num_fitted) == 5000
    if isinstance(cli.model, Gaussian):  # one broad blob: almost nothing lands on a mode
        assert metrics["val/modes_covered"] == 0 and metrics["val/high_quality_pct"] < 5
    else:  # the grid is a product of its marginals, which is all an independent table can fit
        assert metrics["val/modes_covered"] == 25 and metrics["val/high_quality_pct"] > 90
    assert (tmp_path / "version_0" / "points" / "epoch_000.png").is_file()
