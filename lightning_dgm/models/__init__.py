"""Systems (LightningModules): injected networks + losses + optimizers, one algorithm each."""

from lightning_dgm.models.autoencoder import (
    AutoEncoder,
    Corruption,
    DenoisingAutoEncoder,
    GaussianCorruption,
    MaskingCorruption,
)
from lightning_dgm.models.base import AdversarialSystem, GenerativeSystem
from lightning_dgm.models.baselines import Gaussian, Multinomial
from lightning_dgm.models.biggan import BigGAN
from lightning_dgm.models.cgan import ConditionalGAN, DataLabels, FakeLabels, UniformLabels
from lightning_dgm.models.classifier import Classifier
from lightning_dgm.models.cyclegan import CycleGAN
from lightning_dgm.models.ema import GeneratorEMA
from lightning_dgm.models.gan import GAN
from lightning_dgm.models.pix2pix import Pix2Pix
from lightning_dgm.models.superres import SRGAN, SRResNet, SuperResolutionSystem
from lightning_dgm.models.translation import TranslationSystem
from lightning_dgm.models.vae import VAE

__all__ = [
    "GAN",
    "SRGAN",
    "VAE",
    "AdversarialSystem",
    "AutoEncoder",
    "BigGAN",
    "Classifier",
    "ConditionalGAN",
    "Corruption",
    "CycleGAN",
    "DataLabels",
    "DenoisingAutoEncoder",
    "FakeLabels",
    "Gaussian",
    "GaussianCorruption",
    "GenerativeSystem",
    "GeneratorEMA",
    "MaskingCorruption",
    "Multinomial",
    "Pix2Pix",
    "SRResNet",
    "SuperResolutionSystem",
    "TranslationSystem",
    "UniformLabels",
]
