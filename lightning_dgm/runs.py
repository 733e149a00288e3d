"""Run folders and W&B credentials: where a run writes, and whether W&B can go online.

A run folder is `<trainer.default_root_dir>/version_N`, the next free N, and holds everything
the run writes: `checkpoints/`, `samples/`, `config.yaml`, `predictions/` and `wandb/`.
Resuming from `<run>/checkpoints/*.ckpt`, or evaluating one, uses that run's folder again.
"""

from __future__ import annotations

import netrc
import os
import re
from pathlib import Path
from urllib.parse import urlparse

# Set by rank zero; DDP workers that Lightning launches inherit it and join the same folder.
RUN_DIR_ENV = "LIGHTNING_DGM_RUN_DIR"


def _is_launched_worker() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("RANK", "0")) > 0


def next_version(root: Path) -> Path:
    numbers = [int(m.group(1)) for p in root.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return root / f"version_{max(numbers, default=-1) + 1}"


def resolve_run_dir(root: str | os.PathLike, ckpt_path: str | None) -> Path:
    """The run folder for this command; created here (by rank zero) so the number is taken."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited and _is_launched_worker():
        return Path(inherited)
    if ckpt_path and Path(ckpt_path).parent.name == "checkpoints":
        run_dir = Path(ckpt_path).parent.parent
    else:
        run_dir = next_version(Path(root))
    if not _is_launched_worker():
        run_dir.mkdir(parents=True, exist_ok=True)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    return run_dir


def has_wandb_credentials() -> bool:
    """An API key in the environment or in netrc for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    candidates = [os.environ.get("NETRC"), Path.home() / ".netrc", Path.home() / "_netrc"]
    for path in filter(None, candidates):
        try:
            if netrc.netrc(str(path)).authenticators(host):
                return True
        except (OSError, netrc.NetrcParseError):
            continue
    return False


def wandb_offline_fallback() -> bool:
    """Switch W&B to offline mode when no mode is set and no API key is found (never prompt)."""
    if os.environ.get("WANDB_MODE") or has_wandb_credentials():
        return False
    os.environ["WANDB_MODE"] = "offline"
    return True
