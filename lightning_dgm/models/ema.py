"""An exponential moving average of G's weights (Karras et al. 2018; Yazıcı et al. 2019; BigGAN's G-EMA),
updated after every G step by a system's `on_generator_step_end` hook. Mechanics only."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from lightning_dgm.errors import ConfigError


class GeneratorEMA(nn.Module):
    """A copy of G whose weights follow G's: after G step k (counted here, in `steps`, not by
    `trainer.global_step`, which counts D steps too),

        w_ema(k) = w_G(k)                                          for k <= start_after
        w_ema(k) = decay * w_ema(k - 1) + (1 - decay) * w_G(k)       for k > start_after

    so before `start_after` the copy tracks G exactly (an average over G's first, fast-changing
    steps would drag in its random start) and from then on averages over about 1 / (1 - decay) G
    steps. The copy is a `torch.optim.swa_utils.AveragedModel` (its `get_ema_multi_avg_fn` does
    the update); it is a submodule of the system, so it is in every checkpoint (weights, counters)
    and a resumed run continues it exactly. Its parameters take no gradients and belong to no
    optimizer: D never sees them and DDP does not reduce them (every rank updates its own copy from
    the same G, so the copies stay identical).

    Buffers are **copied** from G at every update, not averaged and not recomputed: BatchNorm's
    running statistics and spectral norm's power-iteration vectors u, v of the EMA G are G's
    (`AveragedModel(use_buffers=False)`, StudioGAN's choice). G's running statistics average its
    last ~10 batches (momentum 0.1) of weights close to the EMA weights late in training, when the
    EMA is worth using, and u, v estimate the top singular vector of weights that differ from G's
    by an average of recent updates, so the copy costs nothing and needs no extra forward pass.
    BigGAN's "standing statistics" (running G's forward in train mode over many batches to
    re-estimate them for the averaged weights) are exact for the EMA weights but cost hundreds of
    forwards per evaluation and add a random stream to every evaluation; `standing_statistics`
    offers them for a final evaluation.

    Args:
        generator: G; deep-copied once here.
        decay: weight of the old average per G step (0.9999 in BigGAN).
        start_after: G steps during which the copy follows G exactly (1000 in BigGAN's CIFAR config).
    """

    def __init__(self, generator: nn.Module, decay: float = 0.9999, start_after: int = 0) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0 or start_after < 0:
            raise ConfigError(f"EMA needs 0 <= decay < 1 and start_after >= 0, got {decay} and {start_after}")
        self.decay, self.start_after = decay, start_after
        self.average = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
        self.average.requires_grad_(False)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @property
    def module(self) -> nn.Module:
        """The averaged G (call it like G)."""
        return self.average.module

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        """After one G step: average G's weights into the copy and copy its buffers."""
        self.steps += 1
        if self.steps <= self.start_after:
            self.average.n_averaged.zero_()  # AveragedModel copies on an update with nothing averaged yet
        self.average.update_parameters(generator)

    @torch.no_grad()
    def standing_statistics(self, draw, batches: int = 100) -> None:
        """Re-estimates the averaged G's BatchNorm running statistics for its own weights: resets them,
        then runs `draw(module)` (a forward of the averaged G on a fresh batch) `batches` times in
        train mode with cumulative averaging (momentum None). Leaves the module in eval mode."""
        norms = [m for m in self.module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        self.module.train()
        for _ in range(batches):
            draw(self.module)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        self.module.eval()
