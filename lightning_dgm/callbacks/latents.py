"""Callbacks for systems with a latent code (AutoEncoder, VAE): reconstructions, interpolations,
the decoded 2-D manifold with a scatter of the codes, and a linear probe of the codes.

They rely on one contract only: `latent_dim: int`, `encode(x) -> (N, latent_dim)` (deterministic,
the posterior mean for a VAE) and `decode(z) -> (N, C, H, W)` in [-1, 1]. Images come from the
datamodule's validation split during fit and its test split at test end, read through its
`evaluation_batches` (every framework datamodule has it).
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor
from torch.distributions import Normal

from lightning_dgm.callbacks.images import EpochPictures, evaluating, new_figure, picture_file, write_figure, write_grid
from lightning_dgm.errors import ConfigError

_ENCODE_BATCH = 256  # inference only (no activations kept), so larger than a training batch is fine


def manifold_latents(grid_size: int) -> Tensor:
    """(grid_size**2, 2) codes of the decoded-manifold picture, row-major over a grid_size x grid_size grid.

    Kingma & Welling (2014, fig. 4) map evenly spaced points of the unit square through the Gaussian
    inverse CDF. We take the midpoints u_i = (i + 0.5) / grid_size: each tile is then the median of a
    cell holding 1/grid_size of the prior's mass per axis, and u never reaches 0 or 1 (z = +-inf).
    z1 grows along columns (left to right), z2 along rows from bottom to top, as on a plot's axes.
    """
    if grid_size < 1:
        raise ConfigError(f"grid_size must be at least 1, got {grid_size}")
    z = Normal(0.0, 1.0).icdf((torch.arange(grid_size, dtype=torch.float32) + 0.5) / grid_size)
    z2, z1 = torch.meshgrid(z.flip(0), z, indexing="ij")  # row 0 is the top, so it holds the largest z2
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


def _require_autoencoder(pl_module: L.LightningModule, who: str) -> None:
    if not all(hasattr(pl_module, name) for name in ("latent_dim", "encode", "decode")):
        raise TypeError(
            f"{who} needs a system with latent_dim, encode() and decode() (AutoEncoder, VAE); "
            f"{type(pl_module).__name__} has not; remove the callback"
        )


def _split(trainer: L.Trainer, name: str, who: str, min_size: int = 1):
    """The datamodule, after checking that its split `name` ("train", "val" or "test") holds at least
    `min_size` images; an error that says what to set if it is unusable."""
    datamodule = trainer.datamodule
    size = datamodule.split_size(name) if hasattr(datamodule, "evaluation_batches") else None
    if size is None or size < min_size:
        got = "none" if size is None else size
        raise ConfigError(
            f"{who} needs at least {min_size} images in the datamodule's {name}_set, got {got} "
            f"(use an image datamodule; for validation images set data.val_size)"
        )
    return datamodule


def _first(datamodule, split: str, count: int, device: torch.device) -> Tensor:
    # Fewer images than asked for when the split is smaller: a picture of what exists beats an error.
    count = min(count, datamodule.split_size(split))
    return next(datamodule.evaluation_batches(split, count, batch_size=count)).image.to(device)


def _encode_split(
    pl_module: L.LightningModule, datamodule, split: str, count: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Codes (N, latent_dim), flattened pixels (N, C*H*W) in [-1, 1] and labels (N,) of the first `count`
    images of `split` (fewer if it is smaller), on the CPU; call in eval mode under no_grad. Data drawn
    at access (dynamically binarized MNIST) are drawn from `generator` (None: a fixed draw)."""
    codes, pixels, labels = [], [], []
    count = min(count, datamodule.split_size(split))
    for batch in datamodule.evaluation_batches(split, count, batch_size=_ENCODE_BATCH, generator=generator):
        codes.append(pl_module.encode(batch.image.to(pl_module.device)).float().cpu())
        pixels.append(batch.image.flatten(1))
        labels.append(batch.label)
    return torch.cat(codes), torch.cat(pixels), torch.cat(labels)


def _items(datamodule, split: str, indices: Tensor) -> Tensor:
    """Images (len(indices), C, H, W) of `split` at `indices`, in that order. Read a batch at a time:
    the indices lie anywhere in the split, which need not fit in memory as floats."""
    wanted, found, start = indices.tolist(), {}, 0
    for batch in datamodule.evaluation_batches(split, max(wanted) + 1, batch_size=_ENCODE_BATCH):
        found |= {i: batch.image[i - start] for i in wanted if start <= i < start + len(batch.image)}
        start += len(batch.image)
    return torch.stack([found[i] for i in wanted])


def _split_of(epoch: int | None) -> str:
    return "test" if epoch is None else "val"


class _Pictures(EpochPictures):
    """Also draws at test end (rank zero), on the test split (`draw`'s epoch is None then); during
    fit it draws on the validation split (see `EpochPictures` for when)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        _require_autoencoder(pl_module, type(self).__name__)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            with evaluating(pl_module), torch.no_grad():
                self.draw(trainer, pl_module, None)


class Reconstructions(_Pictures):
    """`<run>/reconstructions/epoch_XXX.png` (and `test.png`), logged as `reconstructions`: the first
    `num_images` images of the split (top row) over decode(encode(x)) (bottom row)."""

    def __init__(self, num_images: int = 8, every_n_epochs: int = 1) -> None:
        super().__init__(every_n_epochs)
        if num_images < 1:
            raise ConfigError(f"num_images must be at least 1, got {num_images}")
        self.num_images = num_images

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int | None) -> None:
        split = _split_of(epoch)
        x = _first(_split(trainer, split, type(self).__name__), split, self.num_images, pl_module.device)
        images = torch.cat([x, pl_module.decode(pl_module.encode(x))])
        write_grid(trainer, images, key="reconstructions", nrow=len(x), epoch=epoch)


class LatentInterpolation(_Pictures):
    """`<run>/interpolations/epoch_XXX.png` (and `test.png`), logged as `interpolations`: one row per
    pair of images, decode((1 - t) z_a + t z_b) for `steps` values of t from 0 to 1, so the end tiles
    are the pair's reconstructions. The pairs are fixed by `seed`, so rows change only with the model.
    """

    def __init__(self, num_pairs: int = 4, steps: int = 10, every_n_epochs: int = 1, seed: int = 0) -> None:
        super().__init__(every_n_epochs)
        if num_pairs < 1 or steps < 2:
            raise ConfigError(f"need num_pairs >= 1 and steps >= 2 (both ends), got {num_pairs} and {steps}")
        self.num_pairs, self.steps, self.seed = num_pairs, steps, seed

    def pairs(self, num_images: int) -> tuple[Tensor, Tensor]:
        """Indices (a, b), each (num_pairs,), of the pairs drawn from a split of `num_images` images."""
        order = torch.randperm(num_images, generator=torch.Generator().manual_seed(self.seed))
        return order[: self.num_pairs], order[self.num_pairs : 2 * self.num_pairs]

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int | None) -> None:
        split = _split_of(epoch)
        datamodule = _split(trainer, split, type(self).__name__, min_size=2 * self.num_pairs)
        a, b = self.pairs(datamodule.split_size(split))
        x = _items(datamodule, split, torch.cat([a, b])).to(pl_module.device)
        z_a, z_b = pl_module.encode(x).chunk(2)
        t = torch.linspace(0, 1, self.steps, device=z_a.device).view(1, -1, 1)
        # (1 - t) z_a + t z_b rather than lerp: it gives exactly z_a at t = 0 and z_b at t = 1.
        z = (1 - t) * z_a.unsqueeze(1) + t * z_b.unsqueeze(1)  # (num_pairs, steps, latent_dim)
        images = pl_module.decode(z.reshape(-1, z.shape[-1]))
        write_grid(trainer, images, key="interpolations", nrow=self.steps, epoch=epoch)


class LatentManifold(_Pictures):
    """For a 2-D latent only. `<run>/manifold/epoch_XXX.png`, logged as `manifold`: decoded codes
    on the grid of `manifold_latents(grid_size)`. `<run>/latent_codes/epoch_XXX.png`, logged as
    `latent_codes`: the codes of up to `num_points` images of the split, coloured by class.
    Both are also drawn at test end (`test.png`, codes of test images).
    """

    def __init__(self, grid_size: int = 20, num_points: int = 5000, every_n_epochs: int = 1) -> None:
        super().__init__(every_n_epochs)
        if grid_size < 1 or num_points < 1:
            raise ConfigError(f"need grid_size >= 1 and num_points >= 1, got {grid_size} and {num_points}")
        self.grid_size, self.num_points = grid_size, num_points

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if pl_module.latent_dim != 2:
            raise ConfigError(
                f"LatentManifold draws a 2-D latent space, but latent_dim is {pl_module.latent_dim}; "
                f"remove the callback or use latent_dim: 2"
            )

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int | None) -> None:
        images = pl_module.decode(manifold_latents(self.grid_size).to(pl_module.device))
        write_grid(trainer, images, key="manifold", nrow=self.grid_size, epoch=epoch)
        split = _split_of(epoch)

        datamodule = _split(trainer, split, type(self).__name__)
        codes, _, labels = _encode_split(pl_module, datamodule, split, self.num_points)
        codes, labels = codes.numpy(), labels.numpy()
        figure = new_figure()
        axes = figure.subplots()
        classes = np.unique(labels)
        if len(classes) <= 10:  # one legend entry per class while tab10 can tell them apart
            for k in classes:
                axes.scatter(*codes[labels == k].T, s=4, alpha=0.6, color=f"C{k % 10}", label=str(k))
            axes.legend(title="class", loc="upper right", markerscale=3, fontsize="small")
        else:
            points = axes.scatter(*codes.T, s=4, alpha=0.6, c=labels, cmap="viridis")
            figure.colorbar(points, ax=axes, label="class")
        axes.set(xlabel="z1", ylabel="z2", title=f"{split} codes, {picture_file(trainer, 'latent_codes', epoch)[1]}")
        write_figure(trainer, figure, key="latent_codes", epoch=epoch)


class LatentClassifier(L.Callback):
    """Logs `test/latent_accuracy` and `test/pixel_accuracy` at test end: the test accuracy of
    multinomial logistic regression fitted on the codes of up to `max_train` training images, and of
    the same classifier on their raw pixels (flattened, in [-1, 1]) as the reference a useful code
    should approach with far fewer dimensions. Both inputs are standardized first, so the score does
    not depend on the scale of the code (a VAE's and an AE's differ by orders of magnitude).

    Every rank fits the same classifier on the same images (the first `max_train` of the seeded
    train split, all test images), and lbfgs is deterministic, so every rank logs the same value.
    Data served with fresh randomness, like dynamically binarized MNIST, are drawn from a generator
    seeded by `seed` (the global RNG is not touched), so every model gets the same images and the
    same pixel baseline. A test-only run has the datamodule set the training split up.

    Args:
        max_train: training images the classifier is fitted on.
        max_iter: iterations of the lbfgs solver.
        seed: seed of the generator that data drawn at access are drawn from.
    """

    def __init__(self, max_train: int = 10000, max_iter: int = 1000, seed: int = 0) -> None:
        if max_train < 1 or max_iter < 1:
            raise ConfigError(f"need max_train >= 1 and max_iter >= 1, got {max_train} and {max_iter}")
        self.max_train, self.max_iter, self.seed = max_train, max_iter, seed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        _require_autoencoder(pl_module, type(self).__name__)

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def accuracy(self, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]) -> float:
        """Test accuracy of standardized logistic regression fitted on (features, labels) of `train`."""
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=self.max_iter))
        classifier.fit(train[0].double().numpy(), train[1].numpy())
        return float(classifier.score(test[0].double().numpy(), test[1].numpy()))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        who = type(self).__name__
        datamodule = _split(trainer, "train", who)  # a test-only run sets the training split up here
        _split(trainer, "test", who)
        with evaluating(pl_module), torch.no_grad():
            train = _encode_split(pl_module, datamodule, "train", self.max_train, self._generator())
            test = _encode_split(pl_module, datamodule, "test", datamodule.split_size("test"), self._generator())
        train_codes, train_pixels, train_labels = train
        test_codes, test_pixels, test_labels = test
        latent = self.accuracy((train_codes, train_labels), (test_codes, test_labels))
        pixel = self.accuracy((train_pixels, train_labels), (test_pixels, test_labels))
        pl_module.log("test/latent_accuracy", latent)
        pl_module.log("test/pixel_accuracy", pixel)
