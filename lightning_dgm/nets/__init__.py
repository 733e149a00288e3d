"""Networks: plain nn.Modules (tensors in, tensors out) and latent distributions. No Lightning here."""

from lightning_dgm.nets.mlp import MLPDiscriminator, MLPGenerator
from lightning_dgm.nets.points import Maxout, PointDiscriminator, PointGenerator
from lightning_dgm.nets.noise import GaussianNoise, Noise, UniformNoise

__all__ = [
    "GaussianNoise", "MLPDiscriminator", "MLPGenerator", "Maxout", "Noise", "PointDiscriminator", "PointGenerator",
    "UniformNoise",
]
