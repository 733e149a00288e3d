"""Regularisers: penalties on the gradient of D with respect to its input, and G's orthogonal regularisation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_dgm.losses.adversarial import realness


def _input_gradient(discriminator: nn.Module, x: Tensor) -> Tensor:
    """d(sum of D's realness)/dx, kept in the graph so the penalty itself can be minimised."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(realness(discriminator(x)).sum(), x, create_graph=True)
    return grad.flatten(1)


class Penalty:
    """Base: a D-step regulariser, added to D's loss."""

    def __call__(
        self, discriminator: nn.Module, real: Tensor, fake: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        raise NotImplementedError


class GradientPenalty(Penalty):
    """WGAN-GP (Gulrajani et al. 2017, eq. 3): weight * E[(||grad D(x_hat)||_2 - target)^2].

    x_hat = eps * x + (1 - eps) * G(z) with eps ~ U[0, 1] per sample.
    """

    def __init__(self, weight: float = 10.0, target: float = 1.0) -> None:
        self.weight = weight
        self.target = target

    def __call__(
        self, discriminator: nn.Module, real: Tensor, fake: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        shape = (len(real),) + (1,) * (real.dim() - 1)
        eps = torch.rand(shape, generator=generator, device=generator.device if generator else real.device)
        x_hat = eps.to(real) * real.detach() + (1 - eps.to(real)) * fake.detach()
        norm = _input_gradient(discriminator, x_hat).norm(2, dim=1)
        return self.weight * (norm - self.target).pow(2).mean()


class R1Penalty(Penalty):
    """R1 (Mescheder et al. 2018, eq. 9): gamma / 2 * E[||grad D(x)||^2] on real data only."""

    def __init__(self, gamma: float = 10.0) -> None:
        self.gamma = gamma

    def __call__(
        self, discriminator: nn.Module, real: Tensor, fake: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        return 0.5 * self.gamma * _input_gradient(discriminator, real).pow(2).sum(dim=1).mean()


def orthogonal_regularization(module: nn.Module, beta: float = 1e-4) -> Tensor:
    """BigGAN's orthogonal regularisation (Brock et al. 2019, eq. 3) of every weight of `module` with
    two or more dimensions except embeddings: beta * sum_W ||W W^T * (1 - I)||_F^2, W viewed as
    (out, -1), so only the filters' pairwise cosines are pushed to 0, not their norms. Under spectral
    norm the weights regularised are the unnormalised ones (`parametrizations.<name>.original`), as
    in BigGAN-PyTorch, whose update 2 beta (W W^T * (1 - I)) W is half this term's gradient."""
    embeddings = {id(p) for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    total = None
    for parameter in module.parameters():
        if parameter.dim() < 2 or id(parameter) in embeddings:
            continue
        w = parameter.flatten(1)
        gram = w @ w.T
        term = (gram - torch.diag_embed(torch.diagonal(gram))).square().sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros((), device=next(module.parameters()).device)
    return beta * total
