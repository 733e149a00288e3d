"""Runs that never end as if they succeeded, and never lose what they trained.

* `NonFiniteGuard` stops a diverging run with `NonFiniteError` (exit 3) before any checkpoint of
  the bad state is written, naming the step, the network and the quantity;
* `ResumeCheckpoint` saves `checkpoints/last.ckpt` at the end of the current batch when the run
  gets SIGTERM (SLURM's preemption notice) or SIGINT (Ctrl-C), then stops with `Interrupted`
  (exit 143 or 130) and says how to resume; optionally also every n batches or minutes, which
  `ModelCheckpoint` cannot do under manual optimisation (`every_n_train_steps` counts optimizer
  steps, `train_time_interval` never fires). A checkpoint saved after a batch resumes exactly:
  the training loaders skip the batches of the epoch it already consumed
  (`datamodules.base.shuffled_train_loader`).

The CLI adds both to every run whose config does not list them; list one to change its options:

    trainer:
      callbacks:
        - class_path: lightning_dgm.callbacks.ResumeCheckpoint
          init_args: {every_n_minutes: 30}
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from lightning_dgm.errors import ConfigError, Interrupted, NonFiniteError

#: exit codes of a run stopped by a signal: 128 + the signal's number, as a shell reports it
EXIT_CODES = {"SIGTERM": 128 + signal.SIGTERM, "SIGINT": 128 + signal.SIGINT}


def _owners(module: L.LightningModule, parameters: list[Tensor]) -> str:
    """The names of `module`'s top-level children that hold `parameters` ("generator", ...)."""
    ids = {id(p) for p in parameters}
    names = [name for name, child in module.named_children() if any(id(p) in ids for p in child.parameters())]
    return "+".join(names) or type(module).__name__


class NonFiniteGuard(L.Callback):
    """Stops training at the first non-finite loss or parameter.

    Every `every_n_batches` batches, each loss handed to backward is checked before its optimizer
    steps (a non-finite parameter makes the next loss non-finite, so the parameters need no scan of
    their own on the hot path); every parameter is checked before each checkpoint is written, whatever
    the cadence, so no saved checkpoint holds NaN or Inf and none is deleted in its favour (the run
    stops before `ModelCheckpoint` saves or rotates). A loss check is one host-device sync: raise
    `every_n_batches` on a GPU if the per-step sync shows in the throughput.

    Under 16-mixed, infinite *gradients* are normal (the GradScaler skips those steps), so
    gradients are not checked; the loss and the parameters are.
    """

    def __init__(self, every_n_batches: int = 1) -> None:
        if every_n_batches < 1:
            raise ConfigError(f"NonFiniteGuard.every_n_batches must be at least 1, got {every_n_batches}")
        self.every_n_batches = every_n_batches
        self._loss: Tensor | None = None

    def _due(self, trainer: L.Trainer) -> bool:
        return trainer.fit_loop.epoch_loop.batch_progress.current.ready % self.every_n_batches == 0

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        self._loss = loss.detach() if self._due(trainer) else None

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        loss, self._loss = self._loss, None
        if loss is not None and not bool(torch.isfinite(loss).all()):
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
            self._fail(trainer, f"the loss of {_owners(pl_module, parameters)} is {loss.float().sum().item()}")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._check_parameters(trainer, pl_module)

    def _check_parameters(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        flags = [torch.isfinite(p).all() for p in pl_module.parameters()]
        if not flags or bool(torch.stack(flags).all()):
            return
        for name, child in pl_module.named_children():
            for parameter_name, p in child.named_parameters():
                if not bool(torch.isfinite(p).all()):
                    self._fail(trainer, f"parameter {name}.{parameter_name} holds NaN or Inf")

    @staticmethod
    def _fail(trainer: L.Trainer, what: str) -> None:
        batch = trainer.fit_loop.epoch_loop.batch_progress.current.ready - 1
        folder = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
        kept = folder if folder and any(Path(folder).glob("*.ckpt")) else None
        raise NonFiniteError(
            f"training diverged at epoch {trainer.current_epoch}, batch {batch} (global step "
            f"{trainer.global_step}): {what}; the run stopped without saving this state"
            + (f" (earlier checkpoints are kept in {kept})" if kept else "")
            + "; lower the learning rates or try another loss or precision"
        )


class ResumeCheckpoint(L.Callback):
    """Saves `<run>/checkpoints/last.ckpt` after the batch in which SIGTERM or SIGINT arrived, then
    stops the run with `Interrupted`, whose message is the `--ckpt_path` to resume with; and, if
    asked, every `every_n_batches` batches or `every_n_minutes` minutes of training (mid-epoch).

    A second Ctrl-C stops at once (Python's KeyboardInterrupt), without a checkpoint. Under DDP the
    ranks agree on the signal every batch (one tiny all-reduce), so all of them save and stop together.

    Args:
        every_n_batches: also save after every n-th batch of each epoch (None: only on a signal).
        every_n_minutes: also save when this many minutes of wall time passed since the last save.
    """

    def __init__(self, every_n_batches: int | None = None, every_n_minutes: float | None = None) -> None:
        if every_n_batches is not None and every_n_batches < 1 or every_n_minutes is not None and every_n_minutes <= 0:
            raise ConfigError(
                f"ResumeCheckpoint needs every_n_batches >= 1 and every_n_minutes > 0, got {every_n_batches}, "
                f"{every_n_minutes}"
            )
        self.every_n_batches, self.every_n_minutes = every_n_batches, every_n_minutes
        self._signal: str | None = None
        self._previous_sigint = None
        self._last_save = math.inf

    def path(self, trainer: L.Trainer) -> Path:
        callback = trainer.checkpoint_callback
        folder = (
            callback.dirpath
            if callback is not None and callback.dirpath
            else Path(trainer.default_root_dir) / "checkpoints"
        )
        return Path(folder) / "last.ckpt"

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._signal, self._last_save = None, time.monotonic()
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # a terminal's Ctrl-C, not an ignored one
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame) -> None:
        self._signal = "SIGINT"
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts at once

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_sigint()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_sigint()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        received = "SIGTERM" if getattr(trainer, "received_sigterm", False) else self._signal
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        due = (self.every_n_batches is not None and batches % self.every_n_batches == 0) or (
            self.every_n_minutes is not None and time.monotonic() - self._last_save >= 60 * self.every_n_minutes
        )
        if trainer.world_size > 1:  # every rank must save together (save_checkpoint has a barrier)
            if trainer.strategy.reduce_boolean_decision(received is not None, all=False):
                received = received or "SIGTERM"
            due = trainer.strategy.broadcast(due, src=0)
        if received is None and not due:
            return
        path = self.path(trainer)
        for callback in trainer.checkpoint_callbacks:  # theirs to overwrite at the epoch's end, not to version
            if getattr(callback, "save_last", False) and callback.dirpath and Path(callback.dirpath) == path.parent:
                callback.last_model_path = str(path)  # (set before saving: it is part of the saved state)
        trainer.save_checkpoint(path)
        self._last_save = time.monotonic()
        if received is not None:
            raise Interrupted(
                f"interrupted by {received} at epoch {trainer.current_epoch}, batch {batches - 1}; resume with "
                f"--ckpt_path {path}",
                EXIT_CODES[received],
            )
