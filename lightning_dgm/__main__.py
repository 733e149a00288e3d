"""`python -m lightning_dgm`: the CLI (`lightning_dgm.cli`) with the framework's exit codes
(`lightning_dgm.errors`): an error the user can fix is one line on stderr, an interrupted run says how
to resume, and a command that fails before it trained anything leaves no folder behind."""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from typing import Any

from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lightning_dgm.callbacks.safety import EXIT_CODES
from lightning_dgm.cli import LightningDGMCLI
from lightning_dgm.errors import DEBUG_ENV, ConfigError, UserError, one_line


def _remove_unused_run_dir(cli: LightningDGMCLI | None) -> None:
    """After a failure: the run folder this command made goes again if nothing was trained or saved in it."""
    if cli is None or cli.created_run_dir is None or not cli.run_dir.is_dir():
        return
    trainer = getattr(cli, "trainer", None)
    if trainer is not None and trainer.global_step > 0 or any(cli.run_dir.rglob("*.ckpt")):
        return
    if "wandb" in sys.modules:  # W&B writes into the folder until its run is finished
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=1)
    shutil.rmtree(cli.run_dir, ignore_errors=True)
    folder = cli.run_dir.parent  # and the root folders it made, if nothing else is in them by now
    while folder != cli.created_run_dir.parent and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _user_error(error: BaseException) -> BaseException | None:
    """The error the user can fix behind `error`: ours, or Lightning's clear MisconfigurationException,
    also when jsonargparse re-raised it as a ValueError while instantiating a class (`raise ... from`)."""
    outer, seen = error, 0
    while error is not None and seen < 10:
        if isinstance(error, UserError | MisconfigurationException):
            return error
        error, seen = error.__cause__, seen + 1
    cause = outer.__cause__
    if isinstance(outer, ValueError) and str(outer).startswith(_NOT_BUILT) and cause is not None:
        # a class of the config raised while being built from its arguments (e.g. a negative width)
        reasons = _union_reasons(str(cause))
        if reasons:  # jsonargparse tried each type of a union (str | Module): its own words say what failed
            return ConfigError(f"{'; '.join(reasons)} ({DEBUG_ENV}=1 shows where it failed)")
        return ConfigError(
            f"the config's classes could not be built: {type(cause).__name__}: {one_line(cause)}; check their "
            f"arguments ({DEBUG_ENV}=1 shows where it failed)"
        )
    return None


def _union_reasons(message: str) -> list[str]:
    """The reasons jsonargparse lists for the types of a union that failed, less its "Expected a <type>"."""
    lines = [line.strip()[2:] for line in message.splitlines() if line.strip().startswith("- ")]
    return [line for line in lines if line and not line.startswith("Expected a ")]


#: how jsonargparse begins the message of a class that failed to instantiate from the config
_NOT_BUILT = "Does not validate against any of the Union subtypes"


def main(args: Any = None) -> None:
    """The CLI with the framework's exit codes (see `lightning_dgm.errors`): errors the user can fix
    are one line on stderr (LIGHTNING_DGM_DEBUG=1 shows the traceback), and an interrupted run says
    how to resume it."""
    LightningDGMCLI.latest = None
    warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")  # ours skip what was consumed
    try:
        LightningDGMCLI(args=args)
    except Exception as raised:
        error = _user_error(raised)
        _remove_unused_run_dir(LightningDGMCLI.latest)
        if error is None or os.environ.get(DEBUG_ENV):
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", 2))
    except SystemExit as stop:
        cli = LightningDGMCLI.latest
        trainer = getattr(cli, "trainer", None)
        if trainer is not None and getattr(trainer, "received_sigterm", False):  # Lightning stopped outside a batch
            print("error: interrupted by SIGTERM before a checkpoint could be saved at a batch end", file=sys.stderr)
            sys.exit(EXIT_CODES["SIGTERM"])
        if stop.code not in (0, None):
            _remove_unused_run_dir(cli)
        raise
    except BaseException:
        _remove_unused_run_dir(LightningDGMCLI.latest)
        raise


if __name__ == "__main__":
    main()
