"""Networks: plain nn.Modules (tensors in, tensors out) and latent distributions. No Lightning here."""

from lightning_dgm.nets.autoencoders import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from lightning_dgm.nets.classifiers import ConvClassifier
from lightning_dgm.nets.conditional import (
    ConcatDCGANDiscriminator,
    ConditionalDCGANGenerator,
    ConditionalMLPDiscriminator,
    ConditionalMLPGenerator,
    ProjectionDCGANDiscriminator,
)
from lightning_dgm.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from lightning_dgm.nets.mlp import MLPDiscriminator, MLPGenerator
from lightning_dgm.nets.noise import GaussianNoise, Noise, UniformNoise
from lightning_dgm.nets.points import Maxout, PointDiscriminator, PointGenerator

__all__ = [
    "ConcatDCGANDiscriminator",
    "ConditionalDCGANGenerator",
    "ConditionalMLPDiscriminator",
    "ConditionalMLPGenerator",
    "ConvClassifier",
    "ConvDecoder",
    "ConvEncoder",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "GaussianNoise",
    "MLPDecoder",
    "MLPDiscriminator",
    "MLPEncoder",
    "MLPGenerator",
    "Maxout",
    "Noise",
    "PointDiscriminator",
    "PointGenerator",
    "ProjectionDCGANDiscriminator",
    "UniformNoise",
]
