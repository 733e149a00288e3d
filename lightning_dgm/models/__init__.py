"""Systems (LightningModules): injected networks + losses + optimizers, one algorithm each."""

from lightning_dgm.models.base import AdversarialSystem, GenerativeSystem, SampleRequest, Samples
from lightning_dgm.models.baselines import Gaussian, Multinomial
from lightning_dgm.models.gan import GAN

__all__ = ["GAN", "Gaussian", "Multinomial", "AdversarialSystem", "GenerativeSystem", "SampleRequest", "Samples"]
