"""Opt-in speed switches, each a callback chosen in YAML. None changes what is computed beyond
floating-point rounding, and none changes the checkpoints: a compiled run's checkpoint loads into
an uncompiled system and back (`nn.Module.compile` compiles a module's forward in place, so its
state_dict keys keep their names, without torch.compile's `_orig_mod.` prefix).

    trainer:
      benchmark: true                      # Lightning's own switch: torch.backends.cudnn.benchmark
      callbacks:
        - class_path: lightning_dgm.callbacks.CompileNetworks
        - class_path: lightning_dgm.callbacks.ChannelsLast
        - class_path: lightning_dgm.callbacks.MatmulPrecision   # TF32 matmuls on Ampere and later
        - class_path: lightning_dgm.callbacks.RetainFreedMemory # CPU: no page faults for reused memory
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Sequence
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from lightning_dgm.errors import ConfigError


def networks(pl_module: L.LightningModule, names: Sequence[str] | None) -> dict[str, nn.Module]:
    """The system's networks: its direct submodules with parameters (generator, discriminator, ...),
    or those named in `names` (an error names the ones that do not exist)."""
    children = {name: child for name, child in pl_module.named_children() if any(True for _ in child.parameters())}
    if names is None:
        return children
    missing = [name for name in names if name not in children]
    if missing:
        raise ConfigError(
            f"{type(pl_module).__name__} has no network {', '.join(missing)}; its networks are {', '.join(children)}"
        )
    return {name: children[name] for name in names}


class CompileNetworks(L.Callback):
    """`torch.compile` each network of the system separately (G and D, not the LightningModule, whose
    training step alternates optimizers and would break the graph), in place, at the start of fit,
    validate, test and predict.

    Args:
        modules: names of the networks to compile; None: every direct submodule with parameters.
        mode: torch.compile's mode (None, "reduce-overhead", "max-autotune", ...).
        backend: torch.compile's backend ("inductor"; "aot_eager" or "eager" to check without codegen).
        dynamic: torch.compile's dynamic-shape setting (None: decide after a recompile).
    """

    def __init__(
        self,
        modules: Sequence[str] | None = None,
        mode: str | None = None,
        backend: str = "inductor",
        dynamic: bool | None = None,
    ) -> None:
        self.modules, self.mode, self.backend, self.dynamic = modules, mode, backend, dynamic

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for network in networks(pl_module, self.modules).values():
            if getattr(network, "_compiled_call_impl", None) is None:  # compile each module once
                network.compile(mode=self.mode, backend=self.backend, dynamic=self.dynamic)


class ChannelsLast(L.Callback):
    """Channels-last memory format (NHWC) for the system's conv networks: cuDNN's tensor-core convolutions
    and oneDNN's CPU ones prefer it. Convolutions given a channels-last weight return channels-last
    activations, so the networks run channels-last after their first layer whatever the batch's layout.

    Args:
        modules: names of the networks to convert; None: every direct submodule with parameters.
    """

    def __init__(self, modules: Sequence[str] | None = None) -> None:
        self.modules = modules

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for network in networks(pl_module, self.modules).values():
            network.to(memory_format=torch.channels_last)


class MatmulPrecision(L.Callback):
    """`torch.set_float32_matmul_precision` for the run (restored at its end): "high" lets float32
    matmuls and convolutions use TF32 tensor cores (about 10 bits of mantissa) on Ampere and later
    GPUs; "highest" keeps full float32. No effect on CPUs.

    Args:
        precision: "high", "medium" or "highest".
    """

    def __init__(self, precision: Literal["highest", "high", "medium"] = "high") -> None:
        self.precision = precision
        self._previous: tuple[str, bool] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._previous = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
        torch.set_float32_matmul_precision(self.precision)
        torch.backends.cudnn.allow_tf32 = self.precision != "highest"

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous is not None:
            torch.set_float32_matmul_precision(self._previous[0])
            torch.backends.cudnn.allow_tf32 = self._previous[1]


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_GIB = 1 << 30


def _check_thresholds(mmap_threshold: int, trim_threshold: int) -> None:
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if not 0 < value < 2**31:  # mallopt takes a C int
            raise ConfigError(f"{name} must be between 1 and 2147483647 bytes (1073741824: 1 GiB), got {value}")


def retain_freed_memory(mmap_threshold: int = _GIB, trim_threshold: int = _GIB) -> bool:
    """Tells glibc's malloc to keep freed host memory for reuse: blocks under `mmap_threshold` bytes
    come from the heap instead of a fresh mmap, and up to `trim_threshold` bytes of free heap stay in
    the process. For the rest of the process (glibc cannot report the previous settings, so they are
    not restored), in DataLoader workers forked after it too. False where there is no glibc `mallopt`
    or it refuses a value."""
    _check_thresholds(mmap_threshold, trim_threshold)
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


class RetainFreedMemory(L.Callback):
    """Freed host memory kept for reuse (`retain_freed_memory`), as PyTorch's caching allocator keeps
    GPU memory: for training on a CPU. By default glibc's malloc hands every block over 128 KiB (a
    threshold that rises with the blocks freed, up to 32 MiB) back to the kernel when it is freed, and
    trims the heap's free top; the next batch's activations and gradients then arrive as fresh pages,
    one page fault and a zeroed 4 KiB page each. On the MLP GAN at batch 64 that is about a thousand
    faults a batch (bench/README.md); with this callback, next to none. The price: the process's
    resident memory stays near its peak instead of shrinking between batches. Linux with glibc only;
    elsewhere one info line and nothing else.

    Args:
        mmap_threshold: blocks smaller than this many bytes come from the reusable heap (1 GiB).
        trim_threshold: free heap kept in the process before any is returned (1 GiB).
    """

    def __init__(self, mmap_threshold: int = _GIB, trim_threshold: int = _GIB) -> None:
        _check_thresholds(mmap_threshold, trim_threshold)
        self.mmap_threshold, self.trim_threshold = mmap_threshold, trim_threshold

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not retain_freed_memory(self.mmap_threshold, self.trim_threshold):
            rank_zero_info("RetainFreedMemory: no glibc mallopt, or it refused the thresholds: allocator unchanged")
