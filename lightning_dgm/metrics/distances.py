"""The pure core of the sample-quality metrics: tensors in, numbers out (no Lightning, no state).

* **FID** (Heusel et al. 2017): the Fréchet distance between two Gaussians fitted to feature sets,
  ||m1 - m2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)), with the trace of the square root taken as the sum
  of the square roots of the eigenvalues of C1 C2 (real parts), as torchmetrics does.
* **KID** (Bińkowski et al. 2018): the unbiased estimate of the squared MMD under the polynomial
  kernel k(x, y) = (gamma x.y + coef)^degree (degree 3, gamma 1/d, coef 1), averaged over random
  subsets of both sets; mean and (population) standard deviation over subsets.
* **IS** (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)) per split of the (shuffled) logits;
  mean and (sample) standard deviation over splits.

Given the same features and a generator seeded like torchmetrics' global RNG, the numbers are
torchmetrics' (`FrechetInceptionDistance`, `KernelInceptionDistance`, `InceptionScore`): same
formulas, same order of operations, same random draws.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from lightning_dgm.errors import ConfigError


class GaussianStatistics(NamedTuple):
    """Mean and unbiased covariance of a feature set, in float64."""

    mean: Tensor  # (D,)
    cov: Tensor  # (D, D)
    count: int


class MeanStd(NamedTuple):
    mean: Tensor  # ()
    std: Tensor  # ()


def _check_features(features: Tensor, who: str, at_least: int = 2) -> None:
    if features.dim() != 2 or len(features) < at_least:
        raise ConfigError(f"{who} needs features (N, D) with N >= {at_least}, got shape {tuple(features.shape)}")


def feature_sums(features: Tensor) -> tuple[Tensor, Tensor]:
    """(sum (D,), sum of outer products (D, D)) of features (N, D), in float64: the running sums
    from which `statistics_from_sums` gives the Gaussian, added batch by batch or across processes."""
    double = features.double()
    return double.sum(dim=0), double.T @ double


def statistics_from_sums(count: int, total: Tensor, outer: Tensor) -> GaussianStatistics:
    """Mean and unbiased covariance from `count` features' sum and sum of outer products."""
    count = int(count)
    if count < 2:
        raise ConfigError(f"a covariance needs at least 2 feature vectors, got {count}")
    mean = (total.double() / count).unsqueeze(0)
    cov = (outer.double() - count * mean.T.mm(mean)) / (count - 1)
    return GaussianStatistics(mean.squeeze(0), cov, count)


def gaussian_statistics(features: Tensor) -> GaussianStatistics:
    """Mean and unbiased covariance (float64) of features (N, D), N >= 2."""
    _check_features(features, "gaussian_statistics")
    return statistics_from_sums(len(features), *feature_sums(features))


def frechet_distance(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> Tensor:
    """Squared Fréchet distance () between N(mean1, cov1) and N(mean2, cov2), in the dtype of the
    inputs (pass float64: the eigenvalues of cov1 @ cov2 lose much in float32). FID is this
    distance with (mean1, cov1) from the real features and (mean2, cov2) from the generated ones."""
    if mean1.shape != mean2.shape or cov1.shape != cov2.shape or cov1.shape != (*mean1.shape, *mean1.shape):
        raise ConfigError(
            f"expected means (D,) and covariances (D, D) of one D, got {tuple(mean1.shape)}, {tuple(cov1.shape)}, "
            f"{tuple(mean2.shape)}, {tuple(cov2.shape)}"
        )
    squared_mean_distance = (mean1 - mean2).square().sum(dim=-1)
    traces = cov1.trace() + cov2.trace()
    trace_of_root = torch.linalg.eigvals(cov1 @ cov2).sqrt().real.sum(dim=-1)
    return squared_mean_distance + traces - 2 * trace_of_root


def polynomial_kernel(x: Tensor, y: Tensor, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> Tensor:
    """k(x_i, y_j) = (gamma x_i.y_j + coef)^degree (N, M) of features x (N, D) and y (M, D); gamma
    None is 1 / D."""
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef) ** degree


def unbiased_mmd(k_xx: Tensor, k_xy: Tensor, k_yy: Tensor) -> Tensor:
    """Unbiased squared MMD () of two sets of m items from their kernel matrices (m, m): the
    within-set means leave out the diagonal (i = j), the cross mean keeps every pair."""
    m = k_xx.shape[0]
    within_x = (k_xx.sum(dim=-1) - torch.diag(k_xx)).sum()
    within_y = (k_yy.sum(dim=-1) - torch.diag(k_yy)).sum()
    across = k_xy.sum(dim=0).sum()
    return (within_x + within_y) / (m * (m - 1)) - 2 * across / (m**2)


def kernel_inception_distance(
    real: Tensor,
    generated: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
) -> MeanStd:
    """KID of feature sets real (N, D) and generated (M, D): the unbiased polynomial-kernel MMD^2 of
    `subsets` pairs of subsets of `subset_size` items, each drawn without replacement (a random
    permutation of the real set, then one of the generated set, from the CPU `generator`; None:
    the global RNG). Returns the mean and the population standard deviation over subsets, in the
    features' dtype."""
    for features, name in ((real, "real"), (generated, "generated")):
        _check_features(features, f"KID's {name} set")
        if len(features) < subset_size:
            raise ConfigError(f"KID draws subsets of subset_size={subset_size}, but the {name} set has {len(features)}")
    if subsets < 1 or subset_size < 2:
        raise ConfigError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    scores = []
    for _ in range(subsets):
        x = real[torch.randperm(len(real), generator=generator)[:subset_size]]
        y = generated[torch.randperm(len(generated), generator=generator)[:subset_size]]
        k_xx = polynomial_kernel(x, x, degree, gamma, coef)
        k_yy = polynomial_kernel(y, y, degree, gamma, coef)
        k_xy = polynomial_kernel(x, y, degree, gamma, coef)
        scores.append(unbiased_mmd(k_xx, k_xy, k_yy))
    scores = torch.stack(scores)
    return MeanStd(scores.mean(), scores.std(unbiased=False))


def inception_score(logits: Tensor, splits: int = 10, generator: torch.Generator | None = None) -> MeanStd:
    """IS of class logits (N, K): the logits shuffled (a random permutation from the CPU
    `generator`; None: the global RNG) and cut into `splits` near-equal parts (torch.chunk), each
    scoring exp(mean_x KL(p(y|x) || mean_x p(y|x))). Returns the mean and the sample standard
    deviation over splits (NaN for one split), in the logits' dtype."""
    _check_features(logits, "inception_score", at_least=1)
    if splits < 1:
        raise ConfigError(f"splits must be at least 1, got {splits}")
    logits = logits[torch.randperm(len(logits), generator=generator)]
    probabilities = logits.softmax(dim=1).chunk(splits, dim=0)
    log_probabilities = logits.log_softmax(dim=1).chunk(splits, dim=0)
    scores = []
    for p, log_p in zip(probabilities, log_probabilities):
        marginal = p.mean(dim=0, keepdim=True)
        scores.append((p * (log_p - marginal.log())).sum(dim=1).mean().exp())
    scores = torch.stack(scores)
    std = scores.std() if len(scores) > 1 else torch.full_like(scores[0], math.nan)  # no spread from one split
    return MeanStd(scores.mean(), std)
