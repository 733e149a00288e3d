"""What image-to-image translation systems (Pix2Pix, CycleGAN) answer to the sampling protocol.
Adversarial ones are also `AdversarialSystem`s: `class Pix2Pix(TranslationSystem, AdversarialSystem)`.
"""

from __future__ import annotations

from torch import Tensor

from lightning_dgm.models.base import GenerativeSystem
from lightning_dgm.types import ImagePair, Samples, TranslationRequest


class TranslationSystem(GenerativeSystem):
    """Base of translation systems: they map images to images, so they have no `sample(n)`;
    `predict` translates the datamodule's test split instead (`predict_step`).

    Subclasses implement `translate(source)` and `translation_columns(batch)`.
    """

    def translate(self, source: Tensor) -> Tensor:
        """(N, C, H, W) images of domain A in [-1, 1] -> their translations into domain B."""
        raise NotImplementedError

    def translation_columns(self, batch: ImagePair) -> list[Tensor]:
        """The columns of the translation grid for `batch`: equal-shaped (N, C, H, W) tensors in [-1, 1]."""
        raise NotImplementedError

    def sample(self, n: int, *, labels: Tensor | None = None, generator=None) -> Tensor:
        raise TypeError(
            f"{type(self).__name__} translates images and draws none from noise: call translate(images), "
            f"or run `predict` to translate the datamodule's test split"
        )

    def predict_step(self, batch: TranslationRequest) -> Samples:
        """Translations of the test images `batch.source`, numbered by their place in the split."""
        return Samples(batch.index, self.translate(batch.source), None)
