"""Lightning's per-batch cost where it buys nothing: an NVML probe at every optimizer step on machines
without the NVIDIA driver, profiler contexts without a profiler, and the hook dispatch around each
manual backward and optimizer step when no callback listens. Each shortcut does exactly what
Lightning would (tests/test_speed.py holds them to it) and steps aside wherever that is not certain.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.profilers import PassThroughProfiler, Profiler
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import Tensor


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


_UNPROFILED = nullcontext()  # reusable and reentrant


def _unprofiled(self: PassThroughProfiler, action_name: str) -> AbstractContextManager:
    return _UNPROFILED


def _does_nothing(self, action_name: str) -> None:
    pass


def skip_passthrough_profiling() -> bool:
    """Lightning wraps every hook, fetch and step in `trainer.profiler.profile(name)`, about 46 times a
    batch; without a profiler that is `PassThroughProfiler`, whose start and stop do nothing, yet each
    context is a generator-based context manager (about 0.7 µs to enter and leave; 0 to 30 µs of the
    ~550 µs Lightning adds to a small GAN's batch, within bench/overhead.py's noise). Its `profile`
    then returns one shared null context instead: the same nothing happens. Real profilers
    (`--trainer.profiler simple`, ...) are untouched. Returns whether the shortcut is installed: not
    if a Lightning release gives PassThroughProfiler a `profile` of its own or a start or stop that
    does something."""
    if PassThroughProfiler.profile is _unprofiled:
        return True
    empty = _does_nothing.__code__.co_code
    if (
        PassThroughProfiler.profile is not Profiler.profile
        or PassThroughProfiler.start.__code__.co_code != empty
        or PassThroughProfiler.stop.__code__.co_code != empty
    ):
        return False
    PassThroughProfiler.profile = _unprofiled
    return True


def install_overhead_shortcuts() -> None:
    """The process-wide shortcuts above; run when the systems are imported."""
    drop_nvml_cuda_check_without_nvml()
    skip_passthrough_profiling()


#: What a manual backward and optimizer step call besides backward and the update, in Lightning's order.
_STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def _overrides(obj: object, base: type, name: str) -> bool:
    return name in vars(obj) or getattr(type(obj), name) is not getattr(base, name)


def _direct_listeners(trainer: L.Trainer, module: L.LightningModule) -> tuple[list, list, list] | None:
    """The callbacks' step hooks, if a step may skip Lightning's dispatch; None where it may not."""
    plugin = trainer.precision_plugin
    plain_precision = type(plugin) is Precision or (type(plugin) is MixedPrecision and plugin.scaler is None)
    if (
        not plain_precision  # a GradScaler scales the loss and unscales and checks before stepping
        or type(trainer.strategy) is not SingleDeviceStrategy  # DDP prepares its reducer in backward
        or type(trainer.profiler) is not PassThroughProfiler  # a profiler records each of these calls
        or any(_overrides(module, L.LightningModule, name) for name in (*_STEP_HOOKS, "backward"))
    ):
        return None
    callbacks = trainer.callbacks
    return tuple([getattr(cb, name) for cb in callbacks if _overrides(cb, L.Callback, name)] for name in _STEP_HOOKS)


def _call(hooks: list, trainer: L.Trainer, module: L.LightningModule, *args) -> None:
    if hooks:
        previous, module._current_fx_name = module._current_fx_name, None
        for hook in hooks:
            module._current_fx_name = hook.__name__  # what Lightning sets while a callback hook runs
            hook(trainer, module, *args)
        module._current_fx_name = previous


def manual_step(module: L.LightningModule, optimizer, loss: Tensor) -> None:
    """zero_grad -> backward -> step of a manual-optimisation system, as `module.manual_backward(loss)`
    and `optimizer.step()` (Lightning's optimizer wrapper) do them.

    Their dispatch (strategy, precision plugin, closure, each hook through the profiler) costs about
    35 µs a step on a 2-core CPU: 70 of the ~550 µs Lightning adds to a small GAN's batch
    (bench/overhead.py). Where it adds
    nothing (one device, fp32 or bf16-mixed without a GradScaler, no profiler, a module that leaves
    `backward` and the step hooks alone) the same calls are made directly: the callbacks' step hooks
    in Lightning's order, backward, the wrapper's step bookkeeping (`trainer.global_step`) and the
    update. Anywhere else Lightning's own path runs. Which applies is decided once per trainer."""
    trainer = module._trainer
    cached = getattr(trainer, "_lightning_dgm_direct_steps", None)
    if cached is None or cached[0] is not module or cached[1] != len(trainer.callbacks):
        cached = (module, len(trainer.callbacks), _direct_listeners(trainer, module))
        trainer._lightning_dgm_direct_steps = cached
    listeners = cached[2]
    optimizer.zero_grad(set_to_none=True)
    if listeners is None:
        module.manual_backward(loss)
        optimizer.step()
        return
    before_backward, after_backward, before_step = listeners
    _call(before_backward, trainer, module, loss)
    loss.backward()
    _call(after_backward, trainer, module)
    optimizer._on_before_step()
    _call(before_step, trainer, module, optimizer.optimizer)
    optimizer.optimizer.step()
    optimizer._on_after_step()
