"""Latent noise distributions p(z) for generators.

Each draws a tensor of a given shape; a `torch.Generator` makes the draw reproducible. The draw
happens on the generator's device (or `device`) and is returned on `device`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_dgm.errors import ConfigError


class Noise:
    """Base: p(z). `sample(shape)` draws z of that shape; subclasses say how (`draw`)."""

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        truncation: float | None = None,
    ) -> Tensor:
        """z of `shape`; with `truncation` t, every entry with |z_i| > t is redrawn until none is left
        (BigGAN's truncation trick: z from p(z) restricted to [-t, t]^d)."""
        draw_device = generator.device if generator is not None else device
        z = self.draw(shape, generator, draw_device)
        if truncation is not None:
            if truncation <= 0:
                raise ConfigError(f"truncation must be positive, got {truncation}")
            outside = z.abs() > truncation
            for _ in range(10_000):  # each round redraws only the entries still outside
                count = int(outside.sum())
                if count == 0:
                    break
                z[outside] = self.draw((count,), generator, draw_device)
                outside = z.abs() > truncation
            else:
                raise ConfigError(f"truncation {truncation} leaves (almost) no mass of {type(self).__name__}: raise it")
        return z.to(device)

    def draw(
        self, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None
    ) -> Tensor:
        """z of `shape`, drawn from `generator` on `device` (the generator's own, when there is one)."""
        raise NotImplementedError


class GaussianNoise(Noise):
    """z ~ N(0, I): the common modern choice (DCGAN and after)."""

    def draw(
        self, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None
    ) -> Tensor:
        return torch.randn(shape, generator=generator, device=device)


class UniformNoise(Noise):
    """z ~ U(low, high)^d: the original GAN recipe uses U(-0.5, 0.5)."""

    def __init__(self, low: float = -0.5, high: float = 0.5) -> None:
        if not low < high:
            raise ConfigError(f"UniformNoise needs low < high, got low={low}, high={high}")
        self.low, self.high = low, high

    def draw(
        self, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None
    ) -> Tensor:
        return self.low + (self.high - self.low) * torch.rand(shape, generator=generator, device=device)
