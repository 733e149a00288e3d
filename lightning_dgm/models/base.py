"""Mechanics shared by systems: the sampling protocol, the predict step, seeded random streams,
and, for adversarial systems, one D update and one G update under manual optimisation. Mechanics
only: the algorithm of each model lives in its own file.
"""

from __future__ import annotations

import inspect
import math
import os
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
from lightning_dgm.types import SampleRequest, Samples


def drop_nvml_cuda_check_without_nvml() -> bool:
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 when imported, so that `torch.cuda.is_available()`
    asks NVML instead of initialising CUDA (fork safety). Where NVML cannot be loaded (a CUDA build of
    torch on a machine without the NVIDIA driver) torch then tries to load it again at every call and
    falls back to the very call the setting avoids; and torch's Adam asks at every step (its CUDA-graph
    check): 0.2 ms a step on a 2-core CPU, as much as all of Lightning's per-batch cost. There the
    setting changes nothing but that cost, so it is dropped. Returns whether it was."""
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1" or not torch.cuda._is_compiled():
        return False
    try:
        nvml_missing = torch.cuda._device_count_nvml() < 0
    except Exception:  # a private torch function: leave Lightning's setting if it changes
        return False
    if nvml_missing:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]
    return nvml_missing


drop_nvml_cuda_check_without_nvml()  # at import: before any optimizer steps, in every process


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

    def __setattr__(self, name: str, value) -> None:
        # Lightning sets `_current_fx_name` around every hook it calls (about 40 times a batch), and
        # nn.Module.__setattr__ checks every value against the parameters, buffers and submodules first.
        if name == "_current_fx_name":
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
        return trainer is None or trainer._logger_connector.should_update_logs  # Lightning's own rule

    def log_training(self, metrics: Mapping[str, Tensor], prog_bar: bool = True) -> None:
        """`self.log_dict(metrics)` of a training step, at the steps the loggers receive (`logging_due`)."""
        if self.logging_due():
            self.log_dict({name: value.detach() for name, value in metrics.items()}, prog_bar=prog_bar)

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
        d_loss = weight * self.loss.d_loss(real_logits, fake_logits)
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
        with frozen(self.discriminator_parameters()):  # no weight gradients for D in G's update
            adversarial = self.loss.g_loss(self.judge(fake, condition))
            g_loss = adversarial_weight * adversarial
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
        """zero_grad -> backward (AMP-scaled) -> step, on Lightning's optimizer wrapper."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()

    def log_discriminator(self, d_loss: Tensor, real_logits: Tensor, fake_logits: Tensor) -> None:
        """Logs a D step: `d_loss` and what D says of real and fake images on average (`d_real`,
        `d_fake`: probabilities for BCE losses, raw scores otherwise; see the system's `loss`)."""
        if self.logging_due():
            with torch.no_grad():
                real, fake = self.loss.output(real_logits).mean(), self.loss.output(fake_logits).mean()
            self.log_dict({"d_loss": d_loss.detach(), "d_real": real, "d_fake": fake}, prog_bar=True)

    def on_train_epoch_end(self) -> None:
        # Under manual optimisation Lightning never steps schedulers: step them once per epoch.
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()
