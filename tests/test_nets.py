"""MLP networks and noise: shapes, ranges, init and errors."""

import math

import pytest
import torch
from torch import nn

from lightning_dgm.nets import GaussianNoise, MLPDiscriminator, MLPGenerator, UniformNoise


def test_generator_maps_noise_to_images_in_range():
    g = MLPGenerator(latent_dim=10, hidden_dims=[16, 8], image_shape=(3, 4, 5))
    x = g(torch.randn(7, 10) * 100)
    assert x.shape == (7, 3, 4, 5)
    assert x.min() >= -1 and x.max() <= 1


def test_discriminator_gives_one_or_two_logits_and_checks_shapes():
    x = torch.randn(6, 1, 8, 8)
    assert MLPDiscriminator(image_shape=(1, 8, 8), out_features=1)(x).shape == (6, 1)
    assert MLPDiscriminator(image_shape=(1, 8, 8), out_features=2)(x).shape == (6, 2)
    with pytest.raises(ValueError, match="out_features must be 1"):
        MLPDiscriminator(out_features=3)
    with pytest.raises(ValueError, match=r"built for images of shape \(1, 28, 28\)"):
        MLPDiscriminator()(x)
    with pytest.raises(ValueError, match=r"noise of shape \(N, 100\)"):
        MLPGenerator()(torch.randn(2, 99))


def test_he_uniform_init_bounds_and_spread():
    torch.manual_seed(0)
    g = MLPGenerator(latent_dim=100, hidden_dims=[128], image_shape=(1, 28, 28), he_uniform_init=True)
    for layer in (m for m in g.modules() if isinstance(m, nn.Linear)):
        bound = math.sqrt(6 / layer.in_features)
        assert layer.weight.abs().max() <= bound
        # U(-b, b) has std b / sqrt(3)
        assert abs(layer.weight.std().item() - bound / math.sqrt(3)) < 0.03 * bound
        assert torch.count_nonzero(layer.bias) == 0


def test_noise_distributions_are_reproducible_and_in_support():
    u = UniformNoise(-0.5, 0.5).sample((4000, 3), generator=torch.Generator().manual_seed(1))
    assert u.min() >= -0.5 and u.max() < 0.5 and abs(u.mean()) < 0.02
    again = UniformNoise(-0.5, 0.5).sample((4000, 3), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(u, again, rtol=0, atol=0)
    z = GaussianNoise().sample((4000, 3), generator=torch.Generator().manual_seed(2))
    assert abs(z.std() - 1) < 0.05
    with pytest.raises(ValueError, match="low < high"):
        UniformNoise(1.0, 1.0)
