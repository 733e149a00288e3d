"""Networks: plain nn.Modules (tensors in, tensors out) and latent distributions. No Lightning here."""

from lightning_dgm.nets.autoencoders import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from lightning_dgm.nets.biggan import BigGANDiscriminator, BigGANGenerator, ConditionalBatchNorm2d
from lightning_dgm.nets.classifiers import CifarResNet, ConvClassifier
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
from lightning_dgm.nets.projection import ProjectionMLPDiscriminator
from lightning_dgm.nets.srresnet import SRGANDiscriminator, SRResNetGenerator
from lightning_dgm.nets.translation import (
    BatchNorm,
    InstanceNorm,
    NormCallable,
    PatchGANDiscriminator,
    ResNetGenerator,
)
from lightning_dgm.nets.unet import UNetGenerator

__all__ = [
    "BatchNorm",
    "BigGANDiscriminator",
    "BigGANGenerator",
    "ConditionalBatchNorm2d",
    "ConcatDCGANDiscriminator",
    "ConditionalDCGANGenerator",
    "ConditionalMLPDiscriminator",
    "ConditionalMLPGenerator",
    "CifarResNet",
    "ConvClassifier",
    "ConvDecoder",
    "ConvEncoder",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "GaussianNoise",
    "InstanceNorm",
    "MLPDecoder",
    "MLPDiscriminator",
    "MLPEncoder",
    "MLPGenerator",
    "Maxout",
    "Noise",
    "NormCallable",
    "PatchGANDiscriminator",
    "PointDiscriminator",
    "PointGenerator",
    "ProjectionDCGANDiscriminator",
    "ProjectionMLPDiscriminator",
    "ResNetGenerator",
    "SRGANDiscriminator",
    "SRResNetGenerator",
    "UNetGenerator",
    "UniformNoise",
]
