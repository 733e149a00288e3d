"""Latent-space callbacks on a tiny stand-in autoencoder and the real scikit-learn digits:
which files are written, exact pixels where they can be predicted, and the linear probe."""

import lightning as L
import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Normal
from torch.testing import assert_close
from torchvision.io import read_image

from lightning_dgm.callbacks import (
    LatentClassifier,
    LatentInterpolation,
    LatentManifold,
    Reconstructions,
    manifold_latents,
)
from lightning_dgm.datamodules import DigitsDataModule

SIDE, PAIRS, STEPS, GRID, SHOWN = 8, 3, 5, 5, 6


class TinyAutoEncoder(L.LightningModule):
    """encode: a fixed linear map of the flattened 8x8 image; decode: tanh of a fixed linear map back.
    Records (training mode, grad enabled) at every encode/decode call."""

    def __init__(self, encoder: Tensor | None = None) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        encoder = torch.randn(SIDE * SIDE, 2, generator=g) / SIDE if encoder is None else encoder
        self.latent_dim = encoder.shape[1]
        self.register_buffer("encoder", encoder)
        self.register_buffer("decoder", torch.randn(self.latent_dim, SIDE * SIDE, generator=g))
        self.weight = nn.Parameter(torch.zeros(()))
        self.calls: list[tuple[bool, bool]] = []

    def encode(self, x: Tensor) -> Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        return x.flatten(1) @ self.encoder

    def decode(self, z: Tensor) -> Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        return torch.tanh(z @ self.decoder).view(-1, 1, SIDE, SIDE)

    def training_step(self, batch, batch_idx):
        return (self.weight - 1).square()

    def test_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class ModeProbe(L.Callback):
    """Runs after the callbacks under test: the module must be back in training mode."""

    def on_train_epoch_end(self, trainer, pl_module):
        assert pl_module.training


def trainer(root, callbacks, max_epochs: int = 1) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        limit_train_batches=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=root,
        callbacks=callbacks,
    )


def as_png(images: Tensor) -> Tensor:
    """[-1, 1] -> the uint8 pixels make_grid + save_image write (grey repeated over RGB)."""
    return (images.clamp(-1, 1).add(1).div(2).mul(255).add(0.5).clamp(0, 255)).to(torch.uint8).expand(3, -1, -1)


def tile(png: Tensor, row: int, col: int) -> Tensor:
    top, left = 2 + row * (SIDE + 2), 2 + col * (SIDE + 2)  # make_grid's 2-pixel padding
    return png[:, top : top + SIDE, left : left + SIDE]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    model, data = TinyAutoEncoder(), DigitsDataModule(image_size=SIDE, batch_size=32)
    callbacks = [
        Reconstructions(num_images=SHOWN),
        LatentInterpolation(num_pairs=PAIRS, steps=STEPS, seed=3),
        LatentManifold(grid_size=GRID, num_points=100),
        LatentClassifier(max_train=500),
        ModeProbe(),
    ]
    fitter = trainer(root, callbacks)
    fitter.fit(model, data)
    results = fitter.test(model, data, verbose=False)
    return {
        "root": root,
        "model": model,
        "data": data,
        "interpolation": callbacks[1],
        "results": results[0],
        "calls": list(model.calls),
    }


def test_manifold_latents_are_gaussian_quantiles_with_z2_growing_upward():
    z = manifold_latents(4)
    assert z.shape == (16, 2)
    quantile = Normal(0.0, 1.0).icdf((torch.arange(4, dtype=torch.float32) + 0.5) / 4)
    for row in range(4):
        for col in range(4):
            expected = torch.stack([quantile[col], quantile[3 - row]])
            assert_close(z[row * 4 + col], expected, rtol=0, atol=0)
    assert_close(manifold_latents(1), torch.zeros(1, 2), rtol=0, atol=0)


def test_every_picture_is_written_with_its_grid_size(run):
    sizes = {
        "reconstructions": (2, SHOWN),
        "interpolations": (PAIRS, STEPS),
        "manifold": (GRID, GRID),
    }
    for folder, (rows, cols) in sizes.items():
        for name in ("epoch_000", "test"):
            png = read_image(str(run["root"] / folder / f"{name}.png"))
            assert png.shape == (3, rows * (SIDE + 2) + 2, cols * (SIDE + 2) + 2), (folder, name)
    for name in ("epoch_000", "test"):
        assert read_image(str(run["root"] / "latent_codes" / f"{name}.png")).shape[1:] == (540, 600)  # 6 x 5.4 in


def test_reconstructions_are_the_first_images_over_their_decoded_codes(run):
    model = run["model"]
    for name, split in (("epoch_000", run["data"].val_set), ("test", run["data"].test_set)):
        png = read_image(str(run["root"] / "reconstructions" / f"{name}.png"))
        x = split.__getitems__(list(range(SHOWN))).image
        with torch.no_grad():
            reconstructed = model.decode(model.encode(x))
        for i in range(SHOWN):
            assert torch.equal(tile(png, 0, i), as_png(x[i])), (name, i)
            assert torch.equal(tile(png, 1, i), as_png(reconstructed[i])), (name, i)


def test_interpolation_ends_are_the_reconstructions_of_the_seeded_pair(run):
    model, val_set = run["model"], run["data"].val_set
    a, b = run["interpolation"].pairs(len(val_set))
    assert len(set(torch.cat([a, b]).tolist())) == 2 * PAIRS  # distinct images
    png = read_image(str(run["root"] / "interpolations" / "epoch_000.png"))
    with torch.no_grad():
        z_a = model.encode(val_set.__getitems__(a.tolist()).image)
        z_b = model.encode(val_set.__getitems__(b.tolist()).image)
        middle = model.decode(0.5 * z_a + 0.5 * z_b)  # steps = 5: t = 0.5 is column 2
        ends = model.decode(z_a), model.decode(z_b)
    for p in range(PAIRS):
        assert_close(tile(png, p, 0).int(), as_png(ends[0][p]).int(), rtol=0, atol=1)
        assert_close(tile(png, p, STEPS - 1).int(), as_png(ends[1][p]).int(), rtol=0, atol=1)
        assert_close(tile(png, p, STEPS // 2).int(), as_png(middle[p]).int(), rtol=0, atol=1)


def test_manifold_tile_decodes_its_grid_point(run):
    model = run["model"]
    png = read_image(str(run["root"] / "manifold" / "epoch_000.png"))
    quantile = Normal(0.0, 1.0).icdf((torch.arange(GRID, dtype=torch.float32) + 0.5) / GRID)
    for row, col in [(0, 0), (0, GRID - 1), (GRID - 1, 0), (2, 3)]:
        z = torch.stack([quantile[col], quantile[GRID - 1 - row]]).unsqueeze(0)
        with torch.no_grad():
            expected = as_png(model.decode(z)[0])
        assert_close(tile(png, row, col).int(), expected.int(), rtol=0, atol=1)


def test_pictures_run_in_eval_mode_without_grad_and_restore_training(run):
    # Every encode/decode came from a callback (the stand-in's steps never call them).
    assert run["calls"] and all(call == (False, False) for call in run["calls"])


def test_classifier_logs_accuracies_in_the_unit_interval(run):
    for key in ("test/latent_accuracy", "test/pixel_accuracy"):
        assert 0.0 <= run["results"][key] <= 1.0
    assert run["results"]["test/pixel_accuracy"] > 0.8  # 8x8 digits are nearly linearly separable


def test_an_informative_code_classifies_better_than_a_constant_one(tmp_path):
    scores = {}
    for name, encoder in (("identity", torch.eye(SIDE * SIDE)), ("constant", torch.zeros(SIDE * SIDE, 2))):
        # A test-only run: the callback must load the training split itself.
        results = trainer(tmp_path / name, [LatentClassifier(max_train=800)]).test(
            TinyAutoEncoder(encoder), DigitsDataModule(image_size=SIDE, batch_size=32), verbose=False
        )
        scores[name] = results[0]
    identity, constant = scores["identity"], scores["constant"]
    assert identity["test/latent_accuracy"] == identity["test/pixel_accuracy"]  # the code is the pixels
    assert identity["test/latent_accuracy"] > 0.8
    assert constant["test/latent_accuracy"] < 0.3  # at best the most frequent class
    assert constant["test/pixel_accuracy"] == identity["test/pixel_accuracy"]  # the reference ignores the model


def test_every_n_epochs_skips_the_other_epochs_but_not_the_last(tmp_path):
    trainer(tmp_path, [Reconstructions(num_images=2, every_n_epochs=2)], max_epochs=3).fit(
        TinyAutoEncoder(), DigitsDataModule(image_size=SIDE, batch_size=32)
    )
    assert sorted(p.name for p in (tmp_path / "reconstructions").iterdir()) == ["epoch_001.png", "epoch_002.png"]


def test_manifold_needs_a_2d_latent():
    model = TinyAutoEncoder(torch.zeros(SIDE * SIDE, 3))
    with pytest.raises(ValueError, match="latent_dim is 3; remove the callback or use latent_dim: 2") as error:
        LatentManifold().setup(None, model, "fit")
    assert "\n" not in str(error.value)


def test_callbacks_reject_systems_without_a_code():
    with pytest.raises(TypeError, match="encode"):
        Reconstructions().setup(None, L.LightningModule(), "fit")


def test_interpolation_needs_enough_images(tmp_path):
    callback = LatentInterpolation(num_pairs=80)  # 160 images, but only 150 validation images
    with pytest.raises(ValueError, match="at least 160 images in the datamodule's val_set, got 150"):
        trainer(tmp_path, [callback]).fit(TinyAutoEncoder(), DigitsDataModule(image_size=SIDE, batch_size=32))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Reconstructions(num_images=0),
        lambda: Reconstructions(every_n_epochs=0),
        lambda: LatentInterpolation(num_pairs=0),
        lambda: LatentInterpolation(steps=1),
        lambda: LatentManifold(grid_size=0),
        lambda: LatentManifold(num_points=0),
        lambda: LatentClassifier(max_train=0),
        lambda: LatentClassifier(max_iter=0),
    ],
)
def test_bad_arguments_are_rejected(make):
    with pytest.raises(ValueError, match="at least 1|>= 1|>= 2"):
        make()
