"""The pure core of FID / KID / IS (`lightning_dgm.metrics.distances`), the metric classes over it
(`scores`) and the streamed generated set (`generated`): hand-computed values, and torchmetrics'
values on the same features, to the bit."""

import math
import subprocess
import warnings

import pytest
import torch
from torch import nn
from torch.testing import assert_close
from torchmetrics.image import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance

from lightning_dgm.metrics import (
    FrechetDistance,
    GeneratedSet,
    Input,
    KernelDistance,
    MetricInputs,
    SampleMetric,
    feature_sums,
    frechet_distance,
    gaussian_statistics,
    inception_score,
    kernel_inception_distance,
    statistics_from_sums,
)
from lightning_dgm.metrics import InceptionScore as OurInceptionScore
from tests.helpers import PYTHON, subprocess_env

EXACT = dict(rtol=0, atol=0)


class Given(nn.Module):
    """torchmetrics' `feature=`: the features are the input."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


def features(n, d, seed, shift=0.0, scale=1.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * scale + shift


def torchmetrics_metric(cls, *args, **kwargs):
    with warnings.catch_warnings():  # KID and IS warn that they keep every feature
        warnings.simplefilter("ignore")
        return cls(*args, **kwargs)


# -- hand-computed values -------------------------------------------------------------------------
def test_frechet_distance_of_gaussians_with_known_distance():
    # Commuting covariances: Tr(C1 + C2 - 2 (C1 C2)^1/2) = sum_i (sqrt(a_i) - sqrt(b_i))^2.
    mean1, cov1 = torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    mean2, cov2 = torch.tensor([1.0, 2.0], dtype=torch.float64), 4 * torch.eye(2, dtype=torch.float64)
    assert frechet_distance(mean1, cov1, mean2, cov2).item() == pytest.approx(1 + 4 + 2 * (1 - 2) ** 2)
    cov3 = torch.diag(torch.tensor([9.0, 0.25], dtype=torch.float64))
    assert frechet_distance(mean1, cov1, mean1, cov3).item() == pytest.approx((1 - 3) ** 2 + (1 - 0.5) ** 2)
    with pytest.raises(ValueError, match="one D"):
        frechet_distance(mean1, cov1, torch.zeros(3), torch.eye(3))


def test_frechet_distance_of_a_set_with_itself_is_zero_and_statistics_are_mean_and_covariance():
    x = features(500, 16, seed=0, shift=2.0)
    stats = gaussian_statistics(x)
    assert stats.count == 500 and stats.mean.dtype == torch.float64
    assert_close(stats.mean, x.double().mean(dim=0))
    assert_close(stats.cov, torch.cov(x.double().T))
    assert abs(frechet_distance(stats.mean, stats.cov, stats.mean, stats.cov).item()) < 1e-9
    # Running sums added batch by batch give the same Gaussian as the whole set.
    parts = [feature_sums(part) for part in x.split(128)]
    streamed = statistics_from_sums(500, sum(p[0] for p in parts), sum(p[1] for p in parts))
    assert_close(streamed.mean, stats.mean) and assert_close(streamed.cov, stats.cov)
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_statistics(x[:1])


def test_kernel_inception_distance_hand_computed():
    # d = 1, so gamma = 1 and k(a, b) = (ab + 1)^3. With subsets of the whole sets the draw does not matter.
    x, y = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [1.0]])
    # within x: k(1, 2) twice = 54; within y: k(0, 1) twice = 2; across: 1 + 8 + 1 + 27 = 37
    kid = kernel_inception_distance(x, y, subsets=3, subset_size=2, generator=torch.Generator().manual_seed(0))
    assert kid.mean.item() == pytest.approx((54 + 2) / 2 - 2 * 37 / 4) and kid.std.item() == 0
    same = kernel_inception_distance(x, x, subsets=1, subset_size=2)
    assert same.mean.item() == pytest.approx((54 + 54) / 2 - 2 * (8 + 27 + 27 + 125) / 4)  # < 0: unbiased
    with pytest.raises(ValueError, match="subset_size=3, but the real set has 2"):
        kernel_inception_distance(x, y, subsets=1, subset_size=3)


def test_inception_score_hand_computed():
    p = torch.tensor([[0.8, 0.2], [0.2, 0.8]])
    kl = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)  # each row against the marginal (0.5, 0.5)
    score = inception_score(p.log(), splits=1)
    assert score.mean.item() == pytest.approx(math.exp(kl)) and math.isnan(score.std.item())
    # Every image given the same class probabilities: no information, IS = 1 in every split.
    same = inception_score(torch.tensor([[4.0, 1.0, 0.0]]).expand(12, 3), splits=4)
    assert same.mean.item() == pytest.approx(1.0) and same.std.item() == pytest.approx(0.0, abs=1e-6)


# -- torchmetrics' values on the same features ------------------------------------------------------
@pytest.mark.parametrize("n_real, n_fake, d", [(700, 650, 16), (60, 90, 3)])
def test_frechet_distance_equals_torchmetrics(n_real, n_fake, d):
    real, fake = features(n_real, d, 1), features(n_fake, d, 2, shift=0.1, scale=1.1)
    fid = torchmetrics_metric(FrechetInceptionDistance, feature=Given(d))
    fid.update(real, real=True)
    for part in fake.split(128):
        fid.update(part, real=False)
    real_stats = gaussian_statistics(real)
    parts = [feature_sums(part) for part in fake.split(128)]
    fake_stats = statistics_from_sums(n_fake, sum(p[0] for p in parts), sum(p[1] for p in parts))
    ours = frechet_distance(real_stats.mean, real_stats.cov, fake_stats.mean, fake_stats.cov)
    assert_close(ours.float(), fid.compute(), **EXACT)


@pytest.mark.parametrize("seed, subsets, subset_size", [(0, 10, 200), (3, 7, 50)])
def test_kernel_inception_distance_equals_torchmetrics_with_its_draws(seed, subsets, subset_size):
    real, fake = features(700, 16, 1), features(650, 16, 2, shift=0.1)
    kid = torchmetrics_metric(KernelInceptionDistance, feature=Given(16), subsets=subsets, subset_size=subset_size)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    torch.manual_seed(seed)  # torchmetrics draws its subsets from the global RNG
    expected = kid.compute()
    ours = kernel_inception_distance(real, fake, subsets, subset_size, torch.Generator().manual_seed(seed))
    assert_close(tuple(ours), tuple(expected), **EXACT)


@pytest.mark.parametrize("n, splits", [(523, 10), (40, 3)])
def test_inception_score_equals_torchmetrics_with_its_draws(n, splits):
    logits = features(n, 10, 4, scale=3.0)
    metric = torchmetrics_metric(InceptionScore, feature=Given(10), splits=splits)
    metric.update(logits)
    torch.manual_seed(5)
    expected = metric.compute()
    assert_close(tuple(inception_score(logits, splits, torch.Generator().manual_seed(5))), tuple(expected), **EXACT)


# -- the metric classes ------------------------------------------------------------------------------
def test_metric_classes_say_what_they_need_and_compute_with_the_core():
    real, fake, logits = features(300, 8, 1), features(250, 8, 2, shift=0.3), features(250, 5, 3)
    inputs = MetricInputs(
        real_features=real,
        real_statistics=gaussian_statistics(real),
        generated_features=fake,
        generated_statistics=gaussian_statistics(fake),
        generated_logits=logits,
    )
    fid, kid, score = FrechetDistance(), KernelDistance(subsets=5, subset_size=100), OurInceptionScore(splits=5)
    assert fid.needs == {Input.REAL_STATISTICS, Input.GENERATED_STATISTICS} and fid.outputs == ("fid",)
    assert kid.needs == {Input.REAL_FEATURES, Input.GENERATED_FEATURES} and kid.outputs == ("kid_mean", "kid_std")
    assert score.needs == {Input.GENERATED_LOGITS} and score.outputs == ("is_mean", "is_std")
    assert all(isinstance(m, SampleMetric) for m in (fid, kid, score))

    def seeded():
        return torch.Generator().manual_seed(0)

    stats = inputs.real_statistics, inputs.generated_statistics
    assert_close(fid.compute(inputs, seeded())["fid"], frechet_distance(*stats[0][:2], *stats[1][:2]), **EXACT)
    expected_kid = kernel_inception_distance(real, fake, 5, 100, seeded())
    assert_close(kid.compute(inputs, seeded()), {"kid_mean": expected_kid.mean, "kid_std": expected_kid.std}, **EXACT)
    expected_is = inception_score(logits, 5, seeded())
    assert_close(score.compute(inputs, seeded()), {"is_mean": expected_is.mean, "is_std": expected_is.std}, **EXACT)

    assert kid.settings() == {"subsets": 5, "subset_size": 100, "degree": 3, "gamma": None, "coef": 1.0}
    assert repr(score) == "InceptionScore(splits=5)" and repr(fid) == "FrechetDistance()"
    with pytest.raises(ValueError, match="subset_size=100 images, more than the 99 real images"):
        kid.check_set_size(99, "the 99 real images")
    with pytest.raises(ValueError, match="at least 2 images"):
        fid.check_set_size(1, "1 generated image")
    with pytest.raises(ValueError, match="no real features given"):
        kid.compute(MetricInputs(generated_features=fake), seeded())
    with pytest.raises(ValueError, match="subset_size >= 2"):
        KernelDistance(subset_size=1)
    with pytest.raises(ValueError, match="splits >= 1"):
        OurInceptionScore(splits=0)


def test_generated_set_streams_what_is_needed():
    fake, logits = features(250, 8, 2), features(250, 5, 3)
    state = GeneratedSet(frozenset({Input.GENERATED_STATISTICS, Input.GENERATED_LOGITS, Input.REAL_FEATURES}), 8)
    for f, g in zip(fake.split(64), logits.split(64)):
        state.update(f, g)
    out = state.compute()
    assert out.generated_features is None and out.real_features is None  # not asked for / not its side
    assert_close(out.generated_logits, logits, **EXACT)
    whole = gaussian_statistics(fake)
    assert out.generated_statistics.count == 250
    assert_close(out.generated_statistics.mean, whole.mean) and assert_close(out.generated_statistics.cov, whole.cov)

    kept = GeneratedSet(frozenset({Input.GENERATED_FEATURES}), 8)
    for f in fake.split(100):
        kept.update(f)
    assert_close(kept.compute().generated_features, fake, **EXACT)  # in order
    with pytest.raises(ValueError, match="pass them"):
        kept.update(None, logits)


def test_metrics_do_not_import_the_systems():
    code = "import sys, lightning_dgm.metrics; print(sorted(m for m in sys.modules if m.startswith('lightning_dgm.')))"
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=subprocess_env(), check=True)
    assert "lightning_dgm.metrics.classes" in out.stdout and "lightning_dgm.models" not in out.stdout
