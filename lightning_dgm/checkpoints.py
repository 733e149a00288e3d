"""Checkpoints that are written whole or not at all, read safely, and checked against the config.

* `AtomicCheckpointIO` writes each checkpoint to a temporary file beside it and renames it into
  place, so a full disk or a killed process never leaves a truncated `.ckpt`, and a write that fails
  is a `CheckpointError` (Lightning's own writer swallows PermissionError and the run "succeeds"
  with nothing saved);
* `read_checkpoint` loads with `weights_only=True` (no code runs from a crafted file) and turns a
  missing, empty, truncated or unsafe file into one line naming it;
* `config_mismatches` lists where a checkpoint's model differs from what the command asks for:
  LightningCLI would otherwise let the checkpoint's hyperparameters silently replace the config's
  (the `--ckpt_path` of another model class, other network widths on the command line).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lightning_dgm.errors import CheckpointError, MissingFileError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves to `<name>.tmp` in the same folder, fsyncs and renames: the file is whole or absent."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        path = Path(path)
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise CheckpointError(
                f"could not write checkpoint {path}: {error.strerror or error}; free disk space or make "
                f"{path.parent} writable (the checkpoints already there are untouched)"
            ) from error


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint at `path` (tensors on the CPU), or a one-line `UserError` naming the file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint; pass a .ckpt file in it ({path / 'last.ckpt'}?)")
    if not path.is_file():
        hint = "" if path.parent.is_dir() else f" (no folder {path.parent})"
        raise MissingFileError(f"checkpoint {path} not found{hint}; pass the path of an existing .ckpt file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); use another checkpoint of the run")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" in str(error) or "Weights only load failed" in str(error):
            raise CheckpointError(
                f"checkpoint {path} holds pickled Python objects, which are not loaded (they could run code); "
                "use a checkpoint written by `python -m lightning_dgm fit`"
            ) from error
        raise CheckpointError(f"checkpoint {path} is damaged ({error}); use another checkpoint of the run") from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        reason = " ".join(str(error).split())[:120]
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a checkpoint ({reason}); use another checkpoint of the run"
        ) from error
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return dict(checkpoint)


def _plain(value: Any) -> Any:
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if k not in ("__path__", "_instantiator")}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _differences(saved: Any, asked: Any, where: str) -> list[tuple[str, Any, Any]]:
    """(where, checkpoint's value, config's value) wherever they differ, over the keys both have;
    a different class_path is reported as such, without descending into its init_args."""
    if isinstance(saved, dict) and isinstance(asked, dict):
        if "class_path" in saved and "class_path" in asked and saved["class_path"] != asked["class_path"]:
            return [(f"{where}.class_path", saved["class_path"], asked["class_path"])]
        found = []
        for key in sorted(asked.keys() & saved.keys()):
            if key != "dict_kwargs":
                found += _differences(saved[key], asked[key], f"{where}.{key}")
        return found
    if saved != asked and asked is not None:
        return [(where, saved, asked)]
    return []


def config_mismatches(checkpoint: Mapping[str, Any], model: Namespace | None) -> list[tuple[str, Any, Any]]:
    """Where the checkpoint's model (class and init args) differs from the config's `model`:
    (argument, e.g. "model.init_args.generator.init_args.hidden_dims", checkpoint's value, config's value)."""
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if model is None or "_class_path" not in hparams:
        return []
    saved = {"class_path": hparams.pop("_class_path"), "init_args": _plain(hparams)}
    return _differences(saved, _plain(model), "model")
