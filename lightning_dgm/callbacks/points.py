"""Callbacks for 2-D point data: mode coverage at every evaluation, and a picture per epoch of
real and generated points over the data density, with the discriminator's output as contours.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from lightning_dgm.callbacks.images import EpochPictures, new_figure, write_figure
from lightning_dgm.callbacks.sources import this_ranks_samples
from lightning_dgm.errors import ConfigError
from lightning_dgm.metrics.modes import ModeCoverage


def _datamodule_modes(trainer: L.Trainer, who: str):
    datamodule = trainer.datamodule
    modes = getattr(datamodule, "modes", None)
    if modes is None or getattr(datamodule, "std", None) is None:
        raise ConfigError(
            f"{who} needs data with known modes and std (GaussianMixtureDataModule, with a Ring or Grid "
            f"layout); {type(datamodule).__name__} has none"
        )
    return modes, datamodule.std


class ModeCoverageMonitor(L.Callback):
    """Logs `<stage>/modes_covered`, `<stage>/high_quality_pct` and `<stage>/reverse_kl` after
    every validation and test epoch (see `lightning_dgm.metrics.modes` for the protocol).

    `num_samples` samples are drawn in eval mode from generators seeded by `seed` (+ rank): each
    DDP process scores its share, and the counts are summed, so every rank logs the same value.

    Args:
        num_samples: samples scored (2,500 in VEEGAN and PacGAN).
        seed: seed of the sampling noise; the same samples are scored at every evaluation.
        num_std: high-quality radius, in standard deviations of a mode.
        min_count: high-quality samples a mode needs to count as covered.
    """

    def __init__(self, num_samples: int = 2500, seed: int = 0, num_std: float = 3.0, min_count: int = 20) -> None:
        if num_samples < 1:
            raise ConfigError(f"num_samples must be at least 1, got {num_samples}")
        self.num_samples, self.seed, self.num_std, self.min_count = num_samples, seed, num_std, min_count
        self.metric: ModeCoverage | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "predict":  # nothing is scored while predicting
            return
        modes, std = _datamodule_modes(trainer, type(self).__name__)
        self.metric = ModeCoverage(modes, std, self.num_std, self.min_count)

    @torch.no_grad()
    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        """Score this process's share of the samples and return the totals over all processes."""
        self.metric.to(pl_module.device).reset()
        for batch in this_ranks_samples(trainer, pl_module, self.num_samples, self.num_samples, self.seed):
            self.metric.update(batch.image.reshape(len(batch.image), -1))
        return self.metric.compute()  # a collective under DDP: every rank gets here

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for name, value in self.measure(trainer, pl_module).items():
            pl_module.log(f"{stage}/{name}", value.double())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, "test")


class PointsPlot(EpochPictures):
    """Writes `<run folder>/points/epoch_XXX.png` and logs it as `points` (rank zero only):
    the training data's density as a heat map, real points, generated points from fixed noise,
    and, for systems with a `discriminator`, D's output (its probability of "real" for BCE
    losses, the raw score otherwise) as contours. A packed D (PacGAN) judges m copies of each
    grid point.

    Args:
        num_samples: generated (and real) points drawn.
        every_n_epochs: draw after every N-th training epoch (and after the last one).
        seed: seed of the fixed noise.
        resolution: grid points per axis for the density and the contours.
    """

    def __init__(self, num_samples: int = 1000, every_n_epochs: int = 1, seed: int = 0, resolution: int = 100) -> None:
        super().__init__(every_n_epochs)
        if num_samples < 1 or resolution < 2:
            raise ConfigError("need num_samples >= 1 and resolution >= 2")
        self.num_samples, self.seed, self.resolution = num_samples, seed, resolution

    def _density(self, trainer: L.Trainer) -> tuple[np.ndarray, np.ndarray, list[float]]:
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "evaluation_batches"):
            raise ConfigError(
                f"PointsPlot draws the training points of a point datamodule (GaussianMixtureDataModule, "
                f"CSVPointDataModule, ...); {type(datamodule).__name__} has no evaluation_batches()"
            )
        # 2-D points are small (100,000 are 800 kB): read them in few, large batches.
        points = torch.cat([batch.image for batch in datamodule.evaluation_batches("train", batch_size=100_000)])
        if points.dim() != 2 or points.shape[1] != 2:
            raise ConfigError(f"PointsPlot draws 2-D points, but the data has shape {tuple(points.shape[1:])}")
        low, high = points.amin(dim=0), points.amax(dim=0)
        pad = ((high - low) * 0.1).clamp(min=0.5)
        extent = [float(low[0] - pad[0]), float(high[0] + pad[0]), float(low[1] - pad[1]), float(high[1] + pad[1])]
        counts, _, _ = np.histogram2d(
            points[:, 0].numpy(), points[:, 1].numpy(), bins=self.resolution, range=[extent[:2], extent[2:]]
        )
        return counts.T, points[: self.num_samples].numpy(), extent

    @torch.no_grad()
    def _critic(self, pl_module: L.LightningModule, extent: list[float]) -> tuple[np.ndarray, ...] | None:
        discriminator, loss = getattr(pl_module, "discriminator", None), getattr(pl_module, "loss", None)
        if discriminator is None or loss is None:
            return None
        xs = torch.linspace(extent[0], extent[1], self.resolution)
        ys = torch.linspace(extent[2], extent[3], self.resolution)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1).to(pl_module.device)
        packed = grid.repeat_interleave(getattr(discriminator, "pack", 1), dim=0)
        output = loss.output(discriminator(packed)).float().reshape(self.resolution, self.resolution)
        return grid_x.numpy(), grid_y.numpy(), output.cpu().numpy()

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        density, real, extent = self._density(trainer)
        fake = pl_module.sample(self.num_samples, generator=torch.Generator().manual_seed(self.seed))
        critic = self._critic(pl_module, extent)
        fake = fake.float().reshape(len(fake), -1).cpu().numpy()

        figure = new_figure()
        axes = figure.subplots()
        axes.imshow(np.log1p(density), extent=extent, origin="lower", cmap="Greys", aspect="auto")
        if critic is not None:
            contours = axes.contour(*critic, levels=10, cmap="coolwarm", linewidths=0.8)
            figure.colorbar(contours, ax=axes, label="D(x)")
        axes.scatter(real[:, 0], real[:, 1], s=3, c="tab:blue", alpha=0.5, label="real")
        axes.scatter(fake[:, 0], fake[:, 1], s=3, c="tab:orange", alpha=0.5, label="generated")
        axes.set(xlim=extent[:2], ylim=extent[2:], title=f"epoch {epoch}")
        axes.legend(loc="upper right", markerscale=4)
        write_figure(trainer, figure, key="points", epoch=epoch)
