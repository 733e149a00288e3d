"""Mode coverage of a generator on a Gaussian mixture, by the protocol of VEEGAN (Srivastava et
al. 2017, section 5.1) and PacGAN (Lin et al. 2018, section 5.1):

* a sample is *high quality* when it lies within `num_std` standard deviations of its nearest
  mode centre;
* a mode is *covered* when at least `min_count` high-quality samples fall on it;
* the *reverse KL* is KL(p_gen || p_true) between the distribution of samples over modes (each
  sample counted at its nearest mode) and the true, equal-weight distribution over modes.

`mode_coverage` is the pure core; `ModeCoverage` is a torchmetrics Metric around it that streams
batches and sums its counts across DDP processes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_dgm.errors import ConfigError


class ModeCounts(NamedTuple):
    nearest: Tensor  # (K,) samples whose nearest mode is k
    high_quality: Tensor  # (K,) of those, the ones within num_std * std of mode k


class Coverage(NamedTuple):
    modes_covered: Tensor  # () int: modes with at least min_count high-quality samples
    high_quality_pct: Tensor  # () float: % of all samples that are high quality
    reverse_kl: Tensor  # () float, nats: KL(p_gen || uniform) over modes


def count_modes(samples: Tensor, modes: Tensor, std: float, num_std: float = 3.0) -> ModeCounts:
    """Assign (N, D) samples to the nearest of (K, D) modes and count, per mode, all and high-quality ones."""
    if samples.dim() != 2 or modes.dim() != 2 or samples.shape[1] != modes.shape[1]:
        raise ConfigError(
            f"samples (N, D) and modes (K, D) must agree in D, got {tuple(samples.shape)} and {tuple(modes.shape)}"
        )
    distance, nearest = torch.cdist(samples.double(), modes.double()).min(dim=1)
    k = len(modes)
    return ModeCounts(
        torch.bincount(nearest, minlength=k),
        torch.bincount(nearest[distance <= num_std * std], minlength=k),
    )


def mode_coverage(counts: ModeCounts, min_count: int = 20) -> Coverage:
    """The three numbers of the protocol from per-mode counts (see the module docstring)."""
    total = counts.nearest.sum()
    if total == 0:
        raise ConfigError("mode_coverage needs at least one sample")
    p_gen = counts.nearest.double() / total
    nonzero = p_gen > 0  # 0 * log 0 = 0
    reverse_kl = (p_gen[nonzero] * (p_gen[nonzero] * len(p_gen)).log()).sum()
    return Coverage(
        (counts.high_quality >= min_count).sum(),
        100.0 * counts.high_quality.sum().double() / total,
        reverse_kl,
    )


class ModeCoverage(Metric):
    """Streaming mode coverage: `update(samples)` with (N, D) batches, `compute()` -> dict of
    `modes_covered`, `high_quality_pct`, `reverse_kl`. Counts are summed across processes, so
    under DDP each process can score its own share of the samples.

    Args:
        modes: (K, D) mode centres.
        std: standard deviation of each mode (per coordinate).
        num_std: a sample within num_std * std of its nearest mode is high quality (3 in the papers).
        min_count: high-quality samples a mode needs to count as covered (20 in the papers).
    """

    full_state_update = False

    def __init__(self, modes: Tensor, std: float, num_std: float = 3.0, min_count: int = 20) -> None:
        super().__init__()
        if std <= 0 or num_std <= 0 or min_count < 1:
            raise ConfigError(f"need std > 0, num_std > 0 and min_count >= 1, got {std}, {num_std}, {min_count}")
        self.register_buffer("modes", torch.as_tensor(modes, dtype=torch.float32).clone())
        self.std, self.num_std, self.min_count = std, num_std, min_count
        k = len(self.modes)
        self.add_state("nearest", torch.zeros(k, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("high_quality", torch.zeros(k, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, samples: Tensor) -> None:
        counts = count_modes(samples.detach().float(), self.modes, self.std, self.num_std)
        self.nearest += counts.nearest
        self.high_quality += counts.high_quality

    def compute(self) -> dict[str, Tensor]:
        return mode_coverage(ModeCounts(self.nearest, self.high_quality), self.min_count)._asdict()
