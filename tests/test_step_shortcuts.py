"""The shared adversarial step's shortcuts change no result: a unit loss weight adds no product to
the graph, and G's update (its parameters read from D's optimizer) computes no gradients for D."""

import torch
from torch import nn
from torch.testing import assert_close

from lightning_dgm.models import GAN, CycleGAN
from lightning_dgm.models.base import optimized_parameters, scaled
from tests.test_gan import fit, tiny_gan
from tests.test_translation_systems import PairData, pairs, translator
from tests.test_translation_systems import fit as fit_translation


def test_a_unit_weight_is_the_loss_itself_and_any_other_weight_scales_it():
    loss = torch.tensor(2.5, requires_grad=True)
    assert scaled(1.0, loss) is loss
    half = scaled(0.5, loss)
    assert_close(half, torch.tensor(1.25))
    half.backward()
    assert_close(loss.grad, torch.tensor(0.5))


def same_grads(before: list, after: list) -> bool:
    pairs = zip(before, after, strict=True)
    return all(a is b is None or (a is not None and b is not None and torch.equal(a, b)) for a, b in pairs)


def grads(module: nn.Module) -> list:
    return [None if p.grad is None else p.grad.clone() for p in module.parameters()]


class WatchedGAN(GAN):
    """Records whether each G update left D's gradients (from D's own update) as they were."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d_grads_kept: list[bool] = []

    def generator_step(self, fake, **kwargs):
        assert [id(p) for p in optimized_parameters(self.optimizers()[1])] == [
            id(p) for p in self.discriminator_parameters()
        ]
        before = grads(self.discriminator)
        super().generator_step(fake, **kwargs)
        self.d_grads_kept.append(same_grads(before, grads(self.discriminator)))
        assert all(p.requires_grad for p in self.discriminator.parameters())  # thawed again


def test_the_g_update_computes_no_gradients_for_d():
    model = tiny_gan(WatchedGAN)
    fit(model, batches=3)
    assert model.d_grads_kept == [True] * 3


class WatchedCycleGAN(CycleGAN):
    def __init__(self, *args):
        super().__init__(*args)
        self.d_grads_kept: list[bool] = []

    def _generator_step(self, a, b):
        before = grads(self.discriminator_a) + grads(self.discriminator_b)
        out = super()._generator_step(a, b)
        self.d_grads_kept.append(same_grads(before, grads(self.discriminator_a) + grads(self.discriminator_b)))
        return out


def test_cyclegans_g_update_computes_no_gradients_for_either_d(tmp_path):
    torch.manual_seed(0)
    model = WatchedCycleGAN(translator(), translator(), nn.Conv2d(3, 1, 3), nn.Conv2d(3, 1, 3))
    fit_translation(model, PairData(*pairs(4)), tmp_path, limit_train_batches=2)
    assert model.d_grads_kept == [True, True]
