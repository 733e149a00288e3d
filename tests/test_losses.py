"""Adversarial losses and penalties against values computed by hand."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from lightning_dgm.losses import (
    GradientPenalty,
    Hinge,
    LeastSquares,
    Minimax,
    NonSaturating,
    R1Penalty,
    Wasserstein,
)

REAL = torch.tensor([[2.0], [-1.0]])  # realness logits of D on two real images
FAKE = torch.tensor([[0.5], [-3.0]])


def sp(x: float) -> float:
    """softplus: -log sigmoid(-x) = log(1 + e^x)."""
    return math.log1p(math.exp(x))


def test_minimax_and_non_saturating_by_hand():
    # -log D(x) = softplus(-l); -log(1 - D(x)) = softplus(l)
    d = (sp(-2.0) + sp(1.0)) / 2 + (sp(0.5) + sp(-3.0)) / 2
    assert_close(Minimax().d_loss(REAL, FAKE), torch.tensor(d))
    assert_close(NonSaturating().d_loss(REAL, FAKE), torch.tensor(d))
    assert_close(Minimax().g_loss(FAKE), torch.tensor(-(sp(0.5) + sp(-3.0)) / 2))  # log(1 - D(G(z)))
    assert_close(NonSaturating().g_loss(FAKE), torch.tensor((sp(-0.5) + sp(3.0)) / 2))  # -log D(G(z))
    assert_close(NonSaturating().output(REAL), torch.sigmoid(REAL))


def test_hinge_least_squares_wasserstein_by_hand():
    assert_close(Hinge().d_loss(REAL, FAKE), torch.tensor((0.0 + 2.0) / 2 + (1.5 + 0.0) / 2))
    assert_close(Hinge().g_loss(FAKE), torch.tensor(1.25))
    assert_close(LeastSquares().d_loss(REAL, FAKE), torch.tensor(0.5 * (1 + 4) / 2 + 0.5 * (0.25 + 9) / 2))
    assert_close(LeastSquares().g_loss(FAKE), torch.tensor(0.5 * (0.25 + 16) / 2))
    assert_close(Wasserstein().d_loss(REAL, FAKE), torch.tensor(-1.25 - 0.5))
    assert_close(Wasserstein().g_loss(FAKE), torch.tensor(1.25))
    assert_close(Hinge().output(REAL), REAL)


def test_two_logit_discriminator_is_cross_entropy():
    """[fake, real] logits with cross-entropy, as in the lecture recipe's D."""
    real2 = torch.tensor([[0.3, 1.1], [2.0, -0.4]])
    fake2 = torch.tensor([[-0.2, 0.9], [1.5, 0.1]])
    ones, zeros = torch.ones(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
    expected_d = F.cross_entropy(real2, ones) + F.cross_entropy(fake2, zeros)
    assert_close(NonSaturating().d_loss(real2, fake2), expected_d)
    assert_close(NonSaturating().g_loss(fake2), F.cross_entropy(fake2, ones))  # flipped labels
    # softmax([a, b])[real] == sigmoid(b - a): a 2-way softmax D and a 1-logit D agree
    diff = (real2[:, 1] - real2[:, 0]).unsqueeze(1)
    assert_close(
        NonSaturating().d_loss(real2, fake2), NonSaturating().d_loss(diff, (fake2[:, 1] - fake2[:, 0])[:, None])
    )
    assert_close(NonSaturating().output(real2), torch.softmax(real2, 1)[:, 1])


def test_patch_logits_are_averaged_over_every_element():
    patches = torch.tensor([[[[1.0, -1.0], [0.0, 2.0]]]])  # (1, 1, 2, 2) PatchGAN-style output
    assert_close(LeastSquares().g_loss(patches), torch.tensor(0.5 * (0 + 4 + 1 + 1) / 4))


def test_losses_accept_bfloat16_and_return_float32():
    loss = NonSaturating().d_loss(REAL.bfloat16(), FAKE.bfloat16())
    assert loss.dtype == torch.float32


class Linear(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x.flatten(1) * self.w).sum(1, keepdim=True)


@pytest.mark.parametrize("norm", [0.5, 3.0])
def test_gradient_penalty_on_a_linear_critic(norm):
    w = torch.zeros(4)
    w[0] = norm
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    penalty = GradientPenalty(weight=10.0)(Linear(w), real, fake, generator=torch.Generator().manual_seed(0))
    assert_close(penalty, torch.tensor(10.0 * (norm - 1.0) ** 2))
    assert_close(R1Penalty(gamma=2.0)(Linear(w), real, fake), torch.tensor(norm**2))


def test_penalty_is_differentiable_in_the_critic():
    critic = Linear(torch.tensor([2.0, 0.0, 0.0, 0.0]))
    GradientPenalty(weight=1.0)(critic, torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)).backward()
    assert_close(critic.w.grad, torch.tensor([2.0, 0.0, 0.0, 0.0]))  # d/dw (||w|| - 1)^2 = 2(||w||-1) w/||w||
