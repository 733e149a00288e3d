"""The types at the bottom of the house: what travels between datamodules, systems, callbacks and
metrics, and the conversions between the framework's image range and the others.

Images inside the framework are float tensors in [-1, 1], NCHW. They meet other ranges only at
the edges: uint8 [0, 255] on disk and in feature extractors (`to_signed_unit`,
`signed_unit_to_uint8`), [0, 1] in PSNR / SSIM and image writers (`signed_unit_to_unit`).

Nothing here imports Lightning, a datamodule or a system: every package may import this module.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from lightning_dgm.errors import ConfigError


# -- batches --------------------------------------------------------------------------------------
class ImageBatch(NamedTuple):
    """Images with their classes. 2-D point data travel here too, `image` being (N, 2)."""

    image: Tensor  # (N, C, H, W) float32 in [-1, 1]
    label: Tensor  # (N,) int64 class index


class ImagePair(NamedTuple):
    """A batch for image-to-image translation: translate `source` into the domain of `target`.

    Paired data: target[i] is source[i]'s true translation (the datamodule applies the
    direction, so `source` is always the input, domain A). Unpaired data: source and target
    are independent draws from domains A and B.
    """

    source: Tensor  # (N, C, H, W) float32 in [-1, 1], domain A (the input)
    target: Tensor  # (N, C, H, W) float32 in [-1, 1], domain B


class ResolutionPair(NamedTuple):
    """A batch for super-resolution: `low` is `high` downscaled by the data's `scale`."""

    low: Tensor  # (N, C, H, W) float32 in [-1, 1]
    high: Tensor  # (N, C, H * scale, W * scale) float32 in [-1, 1]


# -- predict: requests in, samples out --------------------------------------------------------------
class SampleRequest(NamedTuple):
    """A predict batch of a sampling system: which samples to make. Labels matter only to
    conditional systems."""

    index: Tensor  # (N,) int64 sample number in [0, num_samples)
    label: Tensor  # (N,) int64 class to condition on
    seed: Tensor  # (N,) int64; the batch is drawn with a generator seeded by seed[0]
    truncation: Tensor | None = None  # (N,) float: the truncation of z in `sample()` (inf or None: none)


class TranslationRequest(NamedTuple):
    """A predict batch of a translation datamodule: which test images to translate."""

    index: Tensor  # (N,) int64 position in the test split's source domain
    source: Tensor  # (N, C, H, W) float32 in [-1, 1]


class ResolutionRequest(NamedTuple):
    """A predict batch of super-resolution: low-resolution images to upscale, and the names (file
    stems) their results are written under."""

    index: Tensor  # (N,) int64 position in the predict set
    low: Tensor  # (N, C, h, w) float32 in [-1, 1]
    name: tuple[str, ...]  # N names


class Samples(NamedTuple):
    """What `predict_step` returns, and what metric callbacks score: images in [-1, 1] (or points,
    (N, D), unbounded), and labels for conditional systems."""

    index: Tensor  # (N,) int64
    image: Tensor  # (N, C, H, W)
    label: Tensor | None  # (N,) int64 or None


# -- ranges -----------------------------------------------------------------------------------------
def to_signed_unit(images: Tensor) -> Tensor:
    """uint8 in [0, 255] -> float32 in [-1, 1]: the framework's image range."""
    return images.float().div_(127.5).sub_(1.0)


def signed_unit_to_uint8(images: Tensor) -> Tensor:
    """Framework images, float in [-1, 1], -> uint8 in [0, 255], rounded as an image writer would
    (exact inverse of `to_signed_unit`)."""
    return images.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def signed_unit_to_unit(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1] float32, clamped: what PSNR / SSIM with data_range 1 expect."""
    return images.float().add(1).div(2).clamp(0, 1)


# -- checks at boundaries ---------------------------------------------------------------------------
def check_shape(x: Tensor, shape: tuple[int, ...], who: str, what: str = "images") -> None:
    """One clear error when a batch (N, *shape) has other per-item dimensions than `who` was built for."""
    if tuple(x.shape[1:]) != tuple(shape):
        raise ConfigError(f"{who} was built for {what} of shape {tuple(shape)}, got {tuple(x.shape[1:])}")


def check_labels(labels: Tensor | None, n: int, num_classes: int, who: str) -> None:
    """One clear error for missing, mis-shaped or out-of-range labels (nn.Embedding's own is an
    IndexError on CPU and a device-side assert on GPU)."""
    if labels is None:
        raise ConfigError(f"{who} is class-conditional: pass labels, int64 of shape ({n},) in [0, {num_classes})")
    if labels.shape != (n,) or labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ConfigError(
            f"{who} expects labels of shape ({n},) and an integer dtype, got {tuple(labels.shape)} {labels.dtype}"
        )
    check_label_range(labels, num_classes, f"{who} expects labels in [0, {num_classes}), got values in")


def check_label_range(labels: Tensor, num_classes: int, message: str, advice: str = "") -> None:
    """ValueError "<message> [min, max]<advice>" when a label lies outside [0, num_classes)."""
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ConfigError(f"{message} [{int(labels.min())}, {int(labels.max())}]{advice}")


__all__ = [
    "ImageBatch",
    "ImagePair",
    "ResolutionPair",
    "ResolutionRequest",
    "SampleRequest",
    "Samples",
    "TranslationRequest",
    "check_label_range",
    "check_labels",
    "check_shape",
    "signed_unit_to_uint8",
    "signed_unit_to_unit",
    "to_signed_unit",
]
