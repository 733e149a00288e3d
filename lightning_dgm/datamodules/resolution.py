"""The datasets of super-resolution: bicubic downscaling (how LR inputs are made), random HR crops
with their aligned LR crops, whole HR/LR images for evaluation, and LR images alone for predict."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from lightning_dgm import seeding
from lightning_dgm.datamodules.loaders import jitter_items
from lightning_dgm.errors import ConfigError
from lightning_dgm.types import ResolutionPair, ResolutionRequest, to_signed_unit


def bicubic_downscale(images: Tensor, scale: int) -> Tensor:
    """uint8 (N, C, H, W), H and W multiples of `scale` -> uint8 (N, C, H / scale, W / scale).

    Antialiased bicubic (PyTorch's `interpolate(..., mode="bicubic", antialias=True)`): the cubic
    kernel with a = -0.5, widened by `scale` so it low-pass filters before subsampling. That is
    MATLAB's `imresize(hr, 1/scale, 'bicubic')` (a = -0.5, antialiasing on when shrinking), which made
    the LR images of every SR benchmark and of DIV2K's bicubic track; without antialiasing (a = -0.75,
    no widening) the LR inputs alias and published numbers are not comparable. Rounded to uint8, as
    those LR images are stored as PNGs (and as a user's LR files come to `predict`).
    """
    height, width = images.shape[-2:]
    low = F.interpolate(
        images.float(), size=(height // scale, width // scale), mode="bicubic", antialias=True, align_corners=False
    )
    return low.round_().clamp_(0, 255).to(torch.uint8)


def bicubic_upscale(low: Tensor, scale: int) -> Tensor:
    """The bicubic baseline: float (N, C, h, w) in [-1, 1] -> (N, C, h * scale, w * scale), clamped to
    [-1, 1], with the same a = -0.5 cubic kernel as MATLAB's imresize (PyTorch's antialiased path)."""
    return F.interpolate(low, scale_factor=scale, mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)


def dihedral(image: Tensor, flip: int, turns: int) -> Tensor:
    """(C, H, W) mirrored left-right if `flip`, then turned by `turns` x 90 degrees: the 8 symmetries of a square."""
    image = image.flip(-1) if flip else image
    return torch.rot90(image, turns, dims=(-2, -1)) if turns else image


class HRCrops(Dataset):
    """Training items: a random `crop_size` HR crop of image i (under a random flip and 90-degree
    rotation when `augment`), and its LR crop, the bicubic downscale of that very HR crop, so the
    two are aligned exactly. Jitter rows (top, left, flip, turns) are drawn per (seed, epoch) by the
    JitterSampler; without a generator, every item is its image's centre crop, untransformed.
    Batches: `ResolutionPair`, low (n, C, c / scale, c / scale) and high (n, C, c, c), in [-1, 1].
    """

    jitter_purpose = seeding.JITTER

    def __init__(self, images: list[Tensor], crop_size: int, scale: int, augment: bool) -> None:
        self.images, self.crop_size, self.scale, self.augment = images, crop_size, scale, augment
        self.room = torch.tensor([[im.shape[-2] - crop_size + 1, im.shape[-1] - crop_size + 1] for im in images])

    def __len__(self) -> int:
        return len(self.images)

    def draw_jitter(self, generator: torch.Generator | None) -> Tensor:
        n = len(self)
        if generator is None:
            return torch.cat([(self.room - 1) // 2, torch.zeros(n, 2, dtype=torch.int64)], dim=1)
        top_left = (torch.rand(n, 2, generator=generator) * self.room).long().clamp_(max=self.room - 1)
        flip = torch.randint(0, 2, (n, 1), generator=generator)
        turns = torch.randint(0, 4, (n, 1), generator=generator)
        if not self.augment:
            flip, turns = flip.zero_(), turns.zero_()
        return torch.cat([top_left, flip, turns], dim=1)

    def __getitems__(self, items: list) -> ResolutionPair:
        index, jitter = jitter_items(self, items)
        c = self.crop_size
        high = torch.stack(
            [
                dihedral(self.images[i][:, t : t + c, x : x + c], f, k)
                for i, (t, x, f, k) in zip(index.tolist(), jitter.tolist())
            ]
        )
        return ResolutionPair(to_signed_unit(bicubic_downscale(high, self.scale)), to_signed_unit(high))


class WholeImages(Dataset):
    """Evaluation items: whole HR images cropped to a multiple of `scale` (top-left, as MATLAB's
    `modcrop`), with their bicubic LR images. Images differ in size, so a batch holds images of one size."""

    def __init__(self, images: list[Tensor], names: list[str], scale: int) -> None:
        self.high = [im[:, : im.shape[-2] // scale * scale, : im.shape[-1] // scale * scale] for im in images]
        self.low = [bicubic_downscale(im[None], scale)[0] for im in self.high]
        self.names = names

    def __len__(self) -> int:
        return len(self.high)

    def _stack(self, images: list[Tensor], indices: list[int]) -> Tensor:
        if len({tuple(images[i].shape) for i in indices}) > 1:
            raise ConfigError("images of different sizes cannot share a batch: ask for batch_size 1")
        return to_signed_unit(torch.stack([images[i] for i in indices]))

    def __getitems__(self, indices: list[int]) -> ResolutionPair:
        return ResolutionPair(self._stack(self.low, indices), self._stack(self.high, indices))

    def requests(self) -> LowImages:
        return LowImages(self.low, self.names)


class LowImages(Dataset):
    """Predict items: LR images of any size to upscale, named: `ResolutionRequest` batches."""

    def __init__(self, images: list[Tensor], names: list[str]) -> None:
        self.images, self.names = images, names

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: list[int]) -> ResolutionRequest:
        if len({tuple(self.images[i].shape) for i in indices}) > 1:
            raise ConfigError("images of different sizes cannot share a batch: predict one image per batch")
        low = to_signed_unit(torch.stack([self.images[i] for i in indices]))
        return ResolutionRequest(torch.tensor(indices), low, tuple(self.names[i] for i in indices))
