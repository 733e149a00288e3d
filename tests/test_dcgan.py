"""DCGAN networks: shapes and ranges per resolution, the paper's layout and init, and one real GAN step."""

from functools import partial

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_dgm.datamodules import DigitsDataModule
from lightning_dgm.models import GAN
from lightning_dgm.nets import DCGANDiscriminator, DCGANGenerator

# image shape -> D's feature-map shapes (C, H, W) with base_channels=8, one per conv block
FEATURES = {
    (1, 28, 28): [(8, 14, 14), (16, 7, 7)],
    (3, 32, 32): [(8, 16, 16), (16, 8, 8), (32, 4, 4)],
    (3, 64, 64): [(8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 4, 4)],
}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("shape", list(FEATURES), ids=lambda s: "x".join(map(str, s)))
def test_shapes_and_ranges(shape):
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=16, image_shape=shape, base_channels=8)
    d = DCGANDiscriminator(image_shape=shape, base_channels=8)
    images = g(torch.randn(5, 16))
    assert images.shape == (5, *shape)
    assert images.min() >= -1 and images.max() <= 1
    assert d(images).shape == (5, 1)
    maps = d.features(images)
    assert [tuple(m.shape[1:]) for m in maps] == FEATURES[shape] and all(len(m) == 5 for m in maps)
    # the paper's feature-learning evaluation: every block's map max-pooled to 4x4, concatenated
    pooled = torch.cat([F.adaptive_max_pool2d(m, 4).flatten(1) for m in maps], dim=1)
    assert pooled.shape == (5, 16 * sum(c for c, _, _ in FEATURES[shape]))
    # the logit is computed from the last map, so features() and forward() agree
    assert torch.equal(d.head(maps[-1]).flatten(1), d(images))


def test_layout_follows_the_paper():
    g = DCGANGenerator(latent_dim=16, image_shape=(3, 64, 64), base_channels=8)
    d = DCGANDiscriminator(image_shape=(3, 64, 64), base_channels=8)
    g_kinds = [type(m).__name__ for m in g.net]
    assert g_kinds == ["ConvTranspose2d", "BatchNorm2d", "ReLU"] * 4 + ["ConvTranspose2d", "Tanh"]  # no BN on output
    assert [m.out_channels for m in g.net if isinstance(m, nn.ConvTranspose2d)] == [64, 32, 16, 8, 3]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.blocks[0])  # no BN on D's input layer
    assert all(any(isinstance(m, nn.BatchNorm2d) for m in block) for block in d.blocks[1:])
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert all(
        m.stride == (2, 2) and m.kernel_size == (4, 4) for block in d.blocks for m in block if isinstance(m, nn.Conv2d)
    )
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Linear)) for m in [*g.modules(), *d.modules()])


def test_init_is_normal_0_002_and_batchnorm_1_002():
    torch.manual_seed(0)
    for net in (DCGANGenerator(image_shape=(3, 64, 64)), DCGANDiscriminator(image_shape=(3, 64, 64))):
        convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        weights = torch.cat([m.weight.flatten() for m in convs])
        assert weights.mean().abs() < 1e-3 and abs(weights.std().item() - 0.02) < 5e-4
        assert all(m.bias is None or not m.bias.any() for m in convs)
        norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        scales = torch.cat([m.weight.flatten() for m in norms])
        assert abs(scales.mean().item() - 1) < 5e-3 and abs(scales.std().item() - 0.02) < 5e-3
        assert all(not m.bias.any() for m in norms)


def test_parameter_count_is_exact_and_grows_with_base_channels():
    # G (1x28x28, z=8, b=4): ConvT 8->8 k7 (3136) + BN (16) + ConvT 8->4 k4 (512) + BN (8) + ConvT 4->1 k4 +bias (65)
    assert count(DCGANGenerator(latent_dim=8, image_shape=(1, 28, 28), base_channels=4)) == 3737
    # D (1x28x28, b=4): conv 1->4 +bias (68) + conv 4->8 (512) + BN (16) + head 8->1 k7 +bias (393)
    assert count(DCGANDiscriminator(image_shape=(1, 28, 28), base_channels=4)) == 989
    for make in (lambda b: DCGANGenerator(base_channels=b), lambda b: DCGANDiscriminator(base_channels=b)):
        assert count(make(16)) < count(make(32)) < count(make(64))


@pytest.mark.parametrize("shape", [(3, 48, 48), (1, 28, 32), (3, 16, 16), (32, 32)])
def test_unsupported_sizes_are_a_one_line_error(shape):
    for make in (lambda: DCGANGenerator(image_shape=shape), lambda: DCGANDiscriminator(image_shape=shape)):
        with pytest.raises(ValueError, match=r"\(C, 28, 28\), \(C, 32, 32\), \(C, 64, 64\)") as error:
            make()
        assert "\n" not in str(error.value)


def test_wrong_inputs_are_clear_errors():
    g, d = DCGANGenerator(latent_dim=16, base_channels=8), DCGANDiscriminator(base_channels=8)
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        g(torch.randn(2, 16, 1, 1))
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        d(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        d.features(torch.randn(2, 3, 28, 28))


class ParameterRecordingGAN(GAN):
    """A real GAN that records whose parameters each named step changed. Parameters, not the
    state_dict: D runs in training mode during G's step, so its BatchNorm running statistics move
    there, as in the reference DCGAN implementations; its weights must not.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.records: list[tuple[str, bool, bool]] = []  # (step, G changed, D changed)

    def _params(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return (
            [p.detach().clone() for p in self.generator.parameters()],
            [p.detach().clone() for p in self.discriminator.parameters()],
        )

    def _record(self, step, before):
        after = self._params()
        changed = [any(not torch.equal(a, b) for a, b in zip(x, y)) for x, y in zip(before, after)]
        self.records.append((step, *changed))

    def discriminator_step(self, real, fake, **kwargs):
        before = self._params()
        super().discriminator_step(real, fake, **kwargs)
        self._record("d", before)

    def generator_step(self, fake, **kwargs):
        before = self._params()
        super().generator_step(fake, **kwargs)
        self._record("g", before)


def test_a_dcgan_trains_on_digits_and_the_g_step_leaves_d_unchanged():
    L.seed_everything(0)
    shape = (1, 28, 28)
    model = ParameterRecordingGAN(
        generator=DCGANGenerator(latent_dim=16, image_shape=shape, base_channels=8),
        discriminator=DCGANDiscriminator(image_shape=shape, base_channels=8),
        g_optimizer=partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999)),
        d_optimizer=partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999)),
    )
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, DigitsDataModule(image_size=28, batch_size=8, val_size=8))
    assert model.records == [("d", False, True), ("g", True, False)] * 2
    assert trainer.global_step == 4
    assert all(torch.isfinite(v) for v in trainer.logged_metrics.values())
    assert model.sample(3).shape == (3, *shape)
