"""Learning-rate schedules that torch.optim.lr_scheduler lacks, as LRScheduler classes usable from
YAML (`g_lr_scheduler: {class_path: lightning_dgm.schedules.LinearDecayLR, init_args: ...}`).
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


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
            raise ValueError(f"constant_epochs and decay_epochs must be >= 0, got {constant_epochs}, {decay_epochs}")
        self.constant_epochs, self.decay_epochs = constant_epochs, decay_epochs
        super().__init__(optimizer, self.factor, last_epoch=last_epoch)

    def factor(self, epoch: int) -> float:
        return max(0.0, 1.0 - max(0, epoch + 1 - self.constant_epochs) / (self.decay_epochs + 1))
