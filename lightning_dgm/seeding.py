"""One seeding rule for every random stream of a run.

A stream's seed is derived from a tuple of parts: the run's global seed (`seed_everything`'s,
which Lightning keeps in `PL_GLOBAL_SEED`), the process's rank where processes must differ, a
counter (the optimizer step, the epoch, the batch index) and the stream's purpose, a name from the
list below. `derive_seed` hashes the parts with SHA-256 over a fixed text encoding, so a seed is
the same on every Python and PyTorch version and platform (Python's `hash()` of a tuple is not
promised to be), and streams of different purposes or counters are independent for practical
purposes.

Nothing here keeps state: a stream is re-seeded from its parts every time it is used, so a run
resumed from a checkpoint draws exactly what an uninterrupted run draws, with no generator state
to save. The streams of the framework:

=====================  ==================================================  ====================
purpose                what it draws                                        parts after purpose
=====================  ==================================================  ====================
NOISE                  G's z (and fake labels) in a training step           rank, global step
EVALUATION             z of validation / test steps (the same every time)   rank, batch index
REPARAMETERIZATION     the VAE's z ~ q(z | x) in a training step            rank, global step
CORRUPTION             a denoising autoencoder's input noise                rank, global step
IMAGE_POOL             CycleGAN's image-pool swaps                          rank, global step
JITTER                 a translation data set's crops and flips             epoch
BINARIZATION           dynamically binarized pixels' per-image seeds        epoch (or "fixed")
TOY_DATA               2-D mixture points of each split                     split
=====================  ==================================================  ====================

Data streams (the last three) start from the datamodule's `seed` instead of the run's, so data
are a fact of the datamodule: `derive_seed(seed, JITTER, epoch)`. Data order is torch's
`DistributedSampler` rule, a permutation seeded by seed + epoch.
"""

from __future__ import annotations

import hashlib
import os

import torch

from lightning_dgm.errors import ConfigError

NOISE = "noise"
EVALUATION = "evaluation"
REPARAMETERIZATION = "reparameterization"
CORRUPTION = "corruption"
IMAGE_POOL = "image_pool"
JITTER = "jitter"
BINARIZATION = "binarization"
TOY_DATA = "toy_data"

_MASK = (1 << 63) - 1  # torch.Generator.manual_seed takes a signed 64-bit value: stay non-negative


def global_seed() -> int:
    """The run's seed: `seed_everything`'s (Lightning stores it in PL_GLOBAL_SEED), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def derive_seed(*parts: int | str) -> int:
    """A seed in [0, 2**63) from ints and strings: SHA-256 of their canonical text, first 8 bytes.

    >>> derive_seed(0, "noise", 0, 12) == derive_seed(0, "noise", 0, 12)
    True
    """
    if not parts:
        raise ConfigError("derive_seed needs at least one part")
    text = "\x1f".join(f"{type(p).__name__}:{p}" for p in parts)  # "int:3" and "str:3" differ
    if any(not isinstance(p, (int, str)) or isinstance(p, bool) for p in parts):
        raise TypeError(f"derive_seed takes ints and strings, got {parts!r}")
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & _MASK


def generator(*parts: int | str, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh torch.Generator on `device`, seeded by `derive_seed(*parts)`."""
    return torch.Generator(device=device).manual_seed(derive_seed(*parts))


__all__ = [
    "BINARIZATION",
    "CORRUPTION",
    "EVALUATION",
    "IMAGE_POOL",
    "JITTER",
    "NOISE",
    "REPARAMETERIZATION",
    "TOY_DATA",
    "derive_seed",
    "generator",
    "global_seed",
]
