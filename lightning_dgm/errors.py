"""The errors a user can fix, and the runs that must not end as if they succeeded.

Every error the framework raises about the user's config, data, checkpoints, paths or environment
is a `UserError`; the CLI prints it as one line (`error: <message>`) and exits with its
`exit_code`, and `LIGHTNING_DGM_DEBUG=1` shows the traceback instead. Each class also derives from
the built-in exception a caller would catch (`ConfigError` is a ValueError, `MissingFileError` a
FileNotFoundError), so library use with plain `except ValueError` keeps working.

Exit codes of `python -m lightning_dgm`:
  0    the command did all it was asked;
  1    a bug or an unexpected failure (the traceback is printed);
  2    a `UserError`: the message says what to change;
  3    training diverged (`NonFiniteError`): the checkpoints written before it are kept;
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: a checkpoint of the last finished batch is
       saved and the message gives the `--ckpt_path` that resumes it.
"""

from __future__ import annotations

#: the environment variable that makes the CLI print tracebacks of user errors
DEBUG_ENV = "LIGHTNING_DGM_DEBUG"


class UserError(Exception):
    """Something the user can fix; the message says what and how."""

    exit_code = 2


class ConfigError(UserError, ValueError):
    """An argument, a config value or a combination of them that cannot work."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the command needs is not there."""


class DataError(UserError, RuntimeError):
    """Data that cannot be read or obtained (a failed download, a corrupt file)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be read, does not match the config, or cannot be written."""


class NonFiniteError(UserError, ArithmeticError):
    """Training produced a NaN or an infinity; the run stopped before saving the bad state."""

    exit_code = 3


class Interrupted(UserError):
    """The run was stopped by a signal after saving a checkpoint to resume from."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line(error: BaseException) -> str:
    """An exception's message as one line."""
    return " ".join(str(error).split())
