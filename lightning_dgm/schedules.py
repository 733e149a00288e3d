"""Learning-rate schedules that torch.optim.lr_scheduler lacks, as LRScheduler classes usable from
YAML (`g_lr_scheduler: {class_path: lightning_dgm.schedules.LinearDecayLR, init_args: ...}`).
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from lightning_dgm.errors import ConfigError


class LinearDecayLR(LambdaLR):
    """pix2pix / CycleGAN's "linear" policy (Isola et al. 2017; Zhu et al. 2017, sec. 7.1): the
    initial learning rate for `constant_epochs` epochs, then a linear decay over `decay_epochs`.

    Stepped once per epoch (the adversarial systems do that). The factor in epoch e (from 0) is
    1 - max(0, e + 1 - constant_epochs) / (decay_epochs + 1), as in the official code: the last
    decay epoch trains at lr / (decay_epochs + 1), and the rate would reach zero one epoch later.
    The papers' 200 epochs are constant_epochs=100, decay_epochs=100.
    """

    def __init__(
        self, optimizer: Optimizer, constant_epochs: int = 100, decay_epochs: int = 100, last_epoch: int = -1
    ) -> None:
        if constant_epochs < 0 or decay_epochs < 0:
            raise ConfigError(f"constant_epochs and decay_epochs must be >= 0, got {constant_epochs}, {decay_epochs}")
        self.constant_epochs, self.decay_epochs = constant_epochs, decay_epochs
        super().__init__(optimizer, self.factor, last_epoch=last_epoch)

    def factor(self, epoch: int) -> float:
        return max(0.0, 1.0 - max(0, epoch + 1 - self.constant_epochs) / (self.decay_epochs + 1))


class GeometricStagesLR(LambdaLR):
    """The IWAE paper's schedule (Burda et al. 2016, section 5: "3^i passes over the data with learning
    rate 0.001 * 10^(-i/7), for i = 0 ... 7"): stage i lasts stage_growth**i epochs and trains at
    lr * 10 ** (-i / decay_stages), lr being the optimizer's initial rate. The defaults are the paper's:
    8 stages of 1, 3, 9, ..., 2187 epochs (3,280 in all) at factors 1, 10^(-1/7), ..., 0.1.

    Stepped once per epoch: Lightning steps an epoch-interval scheduler of an automatically optimised
    module (the VAE) at the end of every training epoch, and the adversarial systems step theirs in
    on_train_epoch_end, so epoch e (from 0) trains at `factor(e)`. After the last stage the last
    factor stays. The epoch counter is the scheduler's state, so a resumed run continues the schedule.

    Args:
        stages: number of stages (8 in the paper).
        stage_growth: stage i lasts stage_growth**i epochs (3).
        decay_stages: stages over which the rate falls tenfold (7).
        decimals: round each factor to this many decimals; None (the paper's text) keeps it exact.
            The official code (github.com/yburda/iwae, experiments.py, checkpoint1to8) sets
            1e-4 * round(10 ** (1 - i / 7), 1), which is decimals=2 at lr 1e-3: 7.2e-4, not 7.197e-4.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        stages: int = 8,
        stage_growth: int = 3,
        decay_stages: float = 7.0,
        decimals: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        if stages < 1 or stage_growth < 1 or decay_stages <= 0:
            raise ConfigError(
                f"need stages >= 1, stage_growth >= 1, decay_stages > 0, got {stages}, {stage_growth}, {decay_stages}"
            )
        self.stages, self.stage_growth, self.decay_stages, self.decimals = stages, stage_growth, decay_stages, decimals
        super().__init__(optimizer, self.factor, last_epoch=last_epoch)

    def stage_ends(self) -> list[int]:
        """The epoch count at the end of each stage: [1, 4, 13, 40, 121, 364, 1093, 3280] by default."""
        ends, total = [], 0
        for i in range(self.stages):
            total += self.stage_growth**i
            ends.append(total)
        return ends

    def stage(self, epoch: int) -> int:
        """The stage epoch `epoch` (from 0) belongs to; the last one after the schedule ends."""
        return next((i for i, end in enumerate(self.stage_ends()) if epoch < end), self.stages - 1)

    def factor(self, epoch: int) -> float:
        value = 10.0 ** (-self.stage(epoch) / self.decay_stages)
        return value if self.decimals is None else round(value, self.decimals)
