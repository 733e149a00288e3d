"""Mechanics shared by systems: the sampling protocol, the predict step, seeded random streams,
and, for adversarial systems, one D update and one G update under manual optimisation. Mechanics
only: the algorithm of each model lives in its own file.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn

from lightning_dgm import seeding
from lightning_dgm.errors import ConfigError
from lightning_dgm.losses import AdversarialLoss
from lightning_dgm.models.overhead import install_overhead_shortcuts, manual_step
from lightning_dgm.types import SampleRequest, Samples

install_overhead_shortcuts()  # at import: before any optimizer steps, in every process


@contextmanager
def frozen(parameters: Iterable[nn.Parameter]) -> Iterator[None]:
    """requires_grad off for `parameters` inside (those that had it), back on after: backward then
    computes no gradients for them. What Lightning's `toggled_optimizer` does for the other optimizers'
    parameters, for one network only and without its per-call bookkeeping of every parameter."""
    thawed = [p for p in parameters if p.requires_grad]
    for p in thawed:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in thawed:
            p.requires_grad_(True)


def optimized_parameters(optimizer: torch.optim.Optimizer | LightningOptimizer) -> list[nn.Parameter]:
    """The parameters `optimizer` updates: for an adversarial system's D optimizer, exactly
    `discriminator_parameters()` (configure_optimizers built it from them), read from its parameter
    groups in about 2 µs instead of walking D's modules again (11-16 µs for a small MLP)."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def scaled(weight: float, loss: Tensor) -> Tensor:
    """weight * loss; at weight 1 the loss itself: the same value and gradients, without a product
    node in the graph (about 10 µs forward and backward per step on a 2-core CPU)."""
    return loss if weight == 1.0 else weight * loss


class System(L.LightningModule):
    """Base of every LightningModule of the framework: training-step logging that costs nothing
    when nobody reads it, and the seeded random streams of `lightning_dgm.seeding`."""

    _STEP_METHODS = ("training_step", "validation_step", "test_step", "predict_step")

    def __init_subclass__(cls, **kwargs) -> None:
        # Lightning inspects the step's signature at every batch (whether it takes batch_idx); a
        # signature stored on the function is returned at once instead of being rebuilt each time.
        super().__init_subclass__(**kwargs)
        for name in cls._STEP_METHODS:
            method = cls.__dict__.get(name)
            if inspect.isfunction(method) and "__signature__" not in method.__dict__:
                method.__signature__ = inspect.signature(method)

    #: Set by Lightning around every hook it calls (about 40 times a batch), and by `log_training`.
    _PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "_step_logs_live"})
    _step_logs_live = False

    def __setattr__(self, name: str, value) -> None:
        # nn.Module.__setattr__ checks every value against the parameters, buffers and submodules
        # first: skipped for the few plain attributes set at every batch.
        if name in self._PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def logging_due(self) -> bool:
        """Whether Lightning passes this training step's logs to the loggers (every
        `trainer.log_every_n_steps` batches, and when the run is stopping). At other steps a
        `self.log` call costs about a millisecond in Lightning's result collection and reaches no
        logger, so the systems' training steps log (and compute what they log) only when this is true;
        the progress bar then shows the values of the last logged step."""
        trainer = self._trainer
        if trainer is None:
            return True
        due = trainer._logger_connector.should_update_logs  # Lightning's own rule
        if not due and self._step_logs_live:
            self._retire_step_logs(trainer)
        return due

    def _retire_step_logs(self, trainer: L.Trainer) -> None:
        # Lightning keeps a training step's step-only logs in its result collection until the epoch
        # ends and, after every batch, reads them all again for the progress bar, each with `.item()`:
        # a host-device sync per value per batch (and ~10 µs on a CPU), although they changed only at
        # the logged step. Once the loggers have had them, they are marked as Lightning marks a reset
        # result (skipped until logged again); the progress bar, callback and logged metrics keep the
        # values already copied out, so nothing anyone reads changes.
        for result in trainer._results.values() if trainer._results is not None else ():
            meta = result.meta
            if meta.fx == "training_step" and meta.on_step and not meta.on_epoch:
                result.has_reset = True
        self._step_logs_live = False

    def log_training(self, metrics: Mapping[str, Tensor], prog_bar: bool = True) -> None:
        """`self.log_dict(metrics)` of a training step, at the steps the loggers receive (`logging_due`).
        Values are logged as they are (no `.item()`): no host sync in a training step."""
        if self.logging_due():
            self.log_dict({name: value.detach() for name, value in metrics.items()}, prog_bar=prog_bar)
            self._step_logs_live = True

    def random_stream(self, purpose: str, *salt: int, per_step: bool = True) -> torch.Generator:
        """A generator on this module's device for one of the streams of `lightning_dgm.seeding`,
        seeded by (global seed, purpose, rank, global_step if `per_step`, *salt): a resumed run
        draws exactly what an uninterrupted one draws, and DDP ranks draw differently."""
        trainer = self._trainer
        rank = trainer.global_rank if trainer is not None else 0
        step = (trainer.global_step if trainer is not None else 0,) if per_step else ()
        return seeding.generator(seeding.global_seed(), purpose, rank, *step, *salt, device=self.device)


class GenerativeSystem(System):
    """Base of every generative system: `sample()` is the one method callbacks, metrics and
    `predict` rely on.
    """

    #: Whether `sample()` takes class labels (conditional GANs and the like).
    conditional: bool = False

    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Draw `n` images (n, C, H, W) in [-1, 1]; `generator` makes the draw reproducible."""
        raise NotImplementedError

    def predict_step(self, batch: SampleRequest) -> Samples:
        generator = torch.Generator().manual_seed(int(batch.seed[0]))
        labels = batch.label.to(self.device) if self.conditional else None
        truncation = math.inf if batch.truncation is None else float(batch.truncation[0])
        if math.isinf(truncation):
            images = self.sample(len(batch.index), labels=labels, generator=generator)
        elif "truncation" in inspect.signature(self.sample).parameters:
            images = self.sample(len(batch.index), labels=labels, generator=generator, truncation=truncation)
        else:
            raise ConfigError(f"{type(self).__name__}.sample() has no truncation: leave sample_writer.truncation unset")
        return Samples(batch.index, images, labels)


class AdversarialSystem(GenerativeSystem):
    """Base of systems with alternating D/G updates under manual optimisation: it holds what every
    adversarial system has (the loss, G's and D's optimizer factories and optional schedulers) and
    performs one D update (`discriminator_step`) and one G update (`generator_step`). Subclasses
    say which parameters are G's and D's, how D judges an image (`judge`), and the order of steps.

    Hook points, so a variant needs no copy of the step:
      * `d_regularization(real, fake, condition, rng)`: extra terms of D's loss (gradient penalties);
      * `g_regularization()`: extra terms of G's loss that need no images (orthogonal regularisation);
      * `on_generator_step_end()`: after each G update (weight averaging of G).

    `trainer.global_step` counts optimizer steps, not batches: a batch with one D step and one
    G step advances it by 2. Epoch-based settings (max_epochs, every_n_epochs) are unaffected.

    Args:
        loss: the adversarial objective, by class (NonSaturating, Hinge, LeastSquares, ...); its
            `d_loss` and `g_loss` are used at the scale the loss states (see `lightning_dgm.losses`).
        g_optimizer, d_optimizer: optimizer factories for G's and D's parameters.
        g_lr_scheduler, d_lr_scheduler: optional epoch-based schedulers, stepped once per epoch.
    """

    def __init__(
        self,
        loss: AdversarialLoss,
        g_optimizer: OptimizerCallable = torch.optim.Adam,
        d_optimizer: OptimizerCallable = torch.optim.Adam,
        g_lr_scheduler: LRSchedulerCallable | None = None,
        d_lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.loss = loss
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.g_lr_scheduler, self.d_lr_scheduler = g_lr_scheduler, d_lr_scheduler

    # -- what subclasses provide ----------------------------------------------------------------
    def generator_parameters(self) -> Iterable[nn.Parameter]:
        """The parameters G's optimizer updates."""
        return self.generator.parameters()

    def discriminator_parameters(self) -> Iterable[nn.Parameter]:
        """The parameters D's optimizer updates."""
        return self.discriminator.parameters()

    def judge(self, images: Tensor, condition: Tensor | None = None) -> Tensor:
        """D's logits for `images`, given what D is conditioned on (class labels, a source image), if anything."""
        return self.discriminator(images) if condition is None else self.discriminator(images, condition)

    # -- hook points ------------------------------------------------------------------------------
    def d_regularization(
        self, real: Tensor, fake: Tensor, condition: Tensor | None, rng: torch.Generator | None
    ) -> Tensor | None:
        """Extra terms added to D's loss in every D step (None: none)."""
        return None

    def g_regularization(self) -> Tensor | None:
        """Extra terms added to G's loss in every G step (None: none)."""
        return None

    def on_generator_step_end(self) -> None:
        """Called after every G update."""

    # -- the two updates ----------------------------------------------------------------------
    def configure_optimizers(self):
        g_opt, d_opt = self.g_optimizer(self.generator_parameters()), self.d_optimizer(self.discriminator_parameters())
        pairs = ((self.g_lr_scheduler, g_opt), (self.d_lr_scheduler, d_opt))
        return [g_opt, d_opt], [make(opt) for make, opt in pairs if make]

    def discriminator_step(
        self,
        real: Tensor,
        fake: Tensor,
        *,
        real_condition: Tensor | None = None,
        fake_condition: Tensor | None = None,
        rng: torch.Generator | None = None,
        weight: float = 1.0,
    ) -> None:
        """One D update: minimise weight * loss.d_loss(D(real | c_real), D(fake | c_fake)) + d_regularization.
        `fake` must be detached from G (so nothing reaches G's parameters, and G needs no freezing)."""
        g_opt, d_opt = self.optimizers()
        real_logits, fake_logits = self.judge(real, real_condition), self.judge(fake, fake_condition)
        d_loss = scaled(weight, self.loss.d_loss(real_logits, fake_logits))
        extra = self.d_regularization(real, fake, real_condition, rng)
        if extra is not None:
            d_loss = d_loss + extra
        self.optimizer_step_on(d_opt, d_loss)
        self.log_discriminator(d_loss, real_logits, fake_logits)

    def generator_step(
        self,
        fake: Tensor,
        *,
        condition: Tensor | None = None,
        terms: Mapping[str, tuple[float, Tensor]] | None = None,
        adversarial_weight: float = 1.0,
    ) -> None:
        """One G update: minimise adversarial_weight * loss.g_loss(D(fake | c)) + sum of weight * term
        over `terms` (name -> (weight, value), logged unweighted as `g_<name>`) + g_regularization.
        D is re-run on `fake` after its own update: reusing D's pre-step outputs would break autograd."""
        g_opt, d_opt = self.optimizers()
        terms = terms or {}
        with frozen(optimized_parameters(d_opt)):  # no weight gradients for D in G's update
            adversarial = self.loss.g_loss(self.judge(fake, condition))
            g_loss = scaled(adversarial_weight, adversarial)
            for weight, value in terms.values():
                g_loss = g_loss + weight * value
            extra = self.g_regularization()
            if extra is not None:
                g_loss = g_loss + extra
            self.optimizer_step_on(g_opt, g_loss)
        self.on_generator_step_end()
        logs = {"g_loss": g_loss}
        if terms:
            logs |= {"g_adversarial": adversarial} | {f"g_{k}": v for k, (_, v) in terms.items()}
        self.log_training(logs)

    def optimizer_step_on(self, optimizer: LightningOptimizer, loss: Tensor) -> None:
        """zero_grad -> backward (AMP-scaled) -> step, on Lightning's optimizer wrapper
        (`manual_step`: without Lightning's dispatch where nothing listens)."""
        manual_step(self, optimizer, loss)

    def log_discriminator(self, d_loss: Tensor, real_logits: Tensor, fake_logits: Tensor) -> None:
        """Logs a D step: `d_loss` and what D says of real and fake images on average (`d_real`,
        `d_fake`: probabilities for BCE losses, raw scores otherwise; see the system's `loss`)."""
        if self.logging_due():
            with torch.no_grad():
                real, fake = self.loss.output(real_logits).mean(), self.loss.output(fake_logits).mean()
            self.log_training({"d_loss": d_loss, "d_real": real, "d_fake": fake})

    def on_train_epoch_end(self) -> None:
        # Under manual optimisation Lightning never steps schedulers: step them once per epoch.
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()
