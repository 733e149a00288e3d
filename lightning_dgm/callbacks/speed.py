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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import lightning as L
import torch
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
