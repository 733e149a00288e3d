"""Where generative modelling starts: models fit by maximum likelihood in closed form.

`Multinomial` is an independent probability table per dimension (per pixel), fit by counting and
sampled by the inverse CDF; `Gaussian` is one multivariate normal with full covariance. Both are
fit by `fit` like every other system: one pass over the training data accumulates sufficient
statistics, and at the last batch the parameters follow from them. They have no optimizer, so
`trainer.global_step` stays 0. `max_epochs: 1` is enough: each epoch recounts from zero.

They run on one process: DDP only wraps modules with trainable parameters, and a counting pass
over MNIST takes seconds.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_dgm.errors import ConfigError
from lightning_dgm.models.base import GenerativeSystem
from lightning_dgm.types import ImageBatch


def inverse_cdf(cdf: Tensor, u: Tensor) -> Tensor:
    """For each row d of `cdf` (D, K) and each u[n, d] in (0, 1], the smallest i with u <= F_d(i).

    Returns (N, D) int64. This is the textbook's sampler: draw u ~ U(0, 1], return that i.
    """
    return torch.searchsorted(cdf.contiguous(), u.T.contiguous()).T


class _ClosedFormSystem(GenerativeSystem):
    """Mechanics of a model fit by counting: reset at epoch start, accumulate per batch, derive
    the parameters at the last batch of the epoch (before validation runs)."""

    def __init__(self, image_shape: tuple[int, ...], value_range: tuple[float, float] | None) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.value_range = None if value_range is None else (float(value_range[0]), float(value_range[1]))
        self.dim = math.prod(self.image_shape)
        self.automatic_optimization = False
        self.register_buffer("num_fitted", torch.zeros((), dtype=torch.long))

    def configure_optimizers(self) -> list:
        return []  # fit by counting: nothing to optimise

    def _flat(self, batch: ImageBatch) -> Tensor:
        x = batch.image
        if tuple(x.shape[1:]) != self.image_shape:
            raise ConfigError(
                f"{type(self).__name__} was built for data of shape {self.image_shape}, got {tuple(x.shape[1:])}"
            )
        return x.reshape(len(x), self.dim).double()

    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1:
            raise ConfigError(f"{type(self).__name__} is fit by counting on one process; run it with trainer.devices=1")

    def on_train_epoch_start(self) -> None:
        self.reset_statistics()

    def training_step(self, batch: ImageBatch, batch_idx: int) -> None:
        self.accumulate(self._flat(batch))
        if self.trainer.is_last_batch:
            self.derive()
            self.log("train/num_fitted", self.num_fitted.double())

    def _check_fitted(self, labels: Tensor | None = None) -> None:
        if labels is not None:
            raise ConfigError(f"{type(self).__name__} is unconditional: call sample() without labels")
        if self.num_fitted == 0:
            raise RuntimeError(f"{type(self).__name__} has not been fit: run `fit` first or load a checkpoint")

    def _shape_output(self, flat: Tensor) -> Tensor:
        if self.value_range is not None:
            flat = flat.clamp(*self.value_range)
        return flat.float().view(len(flat), *self.image_shape)

    def _evaluate(self, batch: ImageBatch, prefix: str) -> None:
        if self.trainer.sanity_checking:  # before the counting pass there is no model to score
            return
        self._check_fitted()
        nll = -self.log_prob(self._flat(batch))  # nats per example
        self.log_dict(
            {f"{prefix}/nll": nll.mean(), f"{prefix}/bits_per_dim": nll.mean() / (self.dim * math.log(2))},
            sync_dist=True,
        )

    def validation_step(self, batch: ImageBatch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: ImageBatch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    # -- what each model provides ---------------------------------------------------------
    def reset_statistics(self) -> None:
        raise NotImplementedError

    def accumulate(self, x: Tensor) -> None:
        raise NotImplementedError

    def derive(self) -> None:
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class Multinomial(_ClosedFormSystem):
    """Independent multinomial per dimension over `num_values` evenly spaced values in `value_range`.

    Data are rounded to the nearest value (exact for 8-bit images in [-1, 1] with 256 values). The
    table p[d, i] = (count[d, i] + pseudocount) / (N + K * pseudocount); pseudocount 0 is the
    maximum-likelihood table (values never seen get probability 0). Sampling draws u ~ U(0, 1]
    per dimension and returns value i for the smallest i with u <= F_d(i), F_d the CDF.

    Args:
        image_shape: shape of one example; linked from the datamodule.
        num_values: K, the number of values each dimension takes.
        value_range: (low, high), the first and last value.
        pseudocount: added to every count (1 is Laplace smoothing).
    """

    def __init__(
        self,
        image_shape: tuple[int, ...] = (1, 28, 28),
        num_values: int = 256,
        value_range: tuple[float, float] = (-1.0, 1.0),
        pseudocount: float = 0.0,
    ) -> None:
        super().__init__(image_shape, value_range)
        if num_values < 2 or not value_range[0] < value_range[1] or pseudocount < 0:
            raise ConfigError("need num_values >= 2, value_range low < high and pseudocount >= 0")
        self.save_hyperparameters()
        self.num_values, self.pseudocount = num_values, pseudocount
        self.register_buffer("values", torch.linspace(*self.value_range, num_values, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(self.dim, num_values, dtype=torch.float64))
        self.register_buffer("cdf", torch.ones(self.dim, num_values, dtype=torch.float64))

    def quantize(self, x: Tensor) -> Tensor:
        """(N, D) data -> (N, D) int64 index of the nearest value."""
        low, high = self.value_range
        return ((x - low) * ((self.num_values - 1) / (high - low))).round().clamp(0, self.num_values - 1).long()

    def reset_statistics(self) -> None:
        self.counts.zero_()
        self.num_fitted.zero_()

    def accumulate(self, x: Tensor) -> None:
        self.counts.scatter_add_(1, self.quantize(x).T, torch.ones_like(x).T)
        self.num_fitted += len(x)

    @property
    def probs(self) -> Tensor:
        """(D, K) the fitted table."""
        table = self.counts + self.pseudocount
        return table / table.sum(dim=1, keepdim=True)

    def derive(self) -> None:
        cdf = self.probs.cumsum(dim=1)
        cdf[:, -1] = 1.0  # the last value closes every CDF exactly, despite rounding
        self.cdf = cdf

    def log_prob(self, x: Tensor) -> Tensor:
        return self.probs.log().gather(1, self.quantize(x).T).sum(dim=0)

    @torch.no_grad()
    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        self._check_fitted(labels)
        u = 1.0 - torch.rand(n, self.dim, generator=generator, dtype=torch.float64)  # (0, 1]: 0 never picks p = 0
        return self._shape_output(self.values[inverse_cdf(self.cdf.cpu(), u).to(self.device)])


class Gaussian(_ClosedFormSystem):
    """One multivariate normal N(mean, covariance) with full covariance, fit by maximum likelihood
    (covariance divided by N). `jitter` is added to the diagonal before the Cholesky factor is
    taken, since images have constant pixels and so a singular covariance.

    Args:
        image_shape: shape of one example; linked from the datamodule.
        jitter: added to the covariance diagonal, in squared data units.
        value_range: samples are clamped to it (the image range [-1, 1]); None leaves them unbounded.
    """

    def __init__(
        self,
        image_shape: tuple[int, ...] = (1, 28, 28),
        jitter: float = 1e-4,
        value_range: tuple[float, float] | None = (-1.0, 1.0),
    ) -> None:
        super().__init__(image_shape, value_range)
        if jitter < 0:
            raise ConfigError(f"jitter must be >= 0, got {jitter}")
        self.save_hyperparameters()
        self.jitter = jitter
        d = self.dim
        self.register_buffer("sum", torch.zeros(d, dtype=torch.float64))
        self.register_buffer("sum_outer", torch.zeros(d, d, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(d, dtype=torch.float64))
        self.register_buffer("covariance", torch.eye(d, dtype=torch.float64))
        self.register_buffer("scale_tril", torch.eye(d, dtype=torch.float64))

    def reset_statistics(self) -> None:
        self.sum.zero_()
        self.sum_outer.zero_()
        self.num_fitted.zero_()

    def accumulate(self, x: Tensor) -> None:
        self.sum += x.sum(dim=0)
        self.sum_outer += x.T @ x
        self.num_fitted += len(x)

    def derive(self) -> None:
        n = self.num_fitted.double()
        self.mean = self.sum / n
        self.covariance = self.sum_outer / n - torch.outer(self.mean, self.mean)  # E[xx^T] - mu mu^T
        eye = torch.eye(self.dim, dtype=torch.float64, device=self.device)
        self.scale_tril = torch.linalg.cholesky(self.covariance + self.jitter * eye)

    def _distribution(self) -> torch.distributions.MultivariateNormal:
        return torch.distributions.MultivariateNormal(self.mean, scale_tril=self.scale_tril, validate_args=False)

    def log_prob(self, x: Tensor) -> Tensor:
        return self._distribution().log_prob(x)

    @torch.no_grad()
    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        self._check_fitted(labels)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64).to(self.device)
        return self._shape_output(self.mean + z @ self.scale_tril.T)


__all__ = ["Gaussian", "Multinomial", "inverse_cdf"]
