"""Run folders and W&B: where a run writes, and whether W&B can go online.

A run folder is `<trainer.default_root_dir>/version_N`, the next free N, and holds everything
the run writes: `checkpoints/`, `samples/`, the configs, `predictions/` and `wandb/`.
Resuming from `<run>/checkpoints/*.ckpt`, or evaluating one, uses that run's folder again.
Nothing in a run folder is overwritten by a later command: every invocation saves its own config
(`config.yaml` for the first fit, `config.resume-1.yaml`, ... for resumes, `predict_config.yaml`,
`predict_config-1.yaml`, ... for the others), and a resumed run continues its W&B run (same id).
The folder is made only once the command can start, and removed again if the command fails
before it trained or saved anything.
"""

from __future__ import annotations

import netrc
import os
import re
import socket
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
    """The run folder for this command (not created yet: see `make_run_dir`)."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited and _is_launched_worker():
        return Path(inherited)
    if ckpt_path and Path(ckpt_path).parent.name == "checkpoints":
        run_dir = Path(ckpt_path).parent.parent
    else:
        run_dir = next_version(Path(root))
    os.environ[RUN_DIR_ENV] = str(run_dir)
    return run_dir


def make_run_dir(run_dir: Path) -> bool:
    """Creates the run folder (rank zero only); True if this call created it."""
    if _is_launched_worker() or run_dir.exists():
        return False
    run_dir.mkdir(parents=True)
    return True


def config_name(run_dir: Path, stage: str, resuming: bool) -> str:
    """The file name this invocation saves its config under, never one that exists."""
    if stage == "fit" and not resuming and not (run_dir / "config.yaml").exists():
        return "config.yaml"
    stem, first = ("config.resume", 1) if stage == "fit" else (f"{stage}_config", 0)
    for n in range(first, 10_000):
        name = f"{stem}-{n}.yaml" if n else f"{stem}.yaml"
        if not (run_dir / name).exists():
            return name
    raise RuntimeError(f"{run_dir} holds 10,000 configs")


def previous_wandb_id(run_dir: Path) -> str | None:
    """The id of the newest W&B run logged in this run folder (`wandb/[offline-]run-<date>-<id>`)."""
    runs = [p for p in (run_dir / "wandb").glob("*run-*-*") if p.is_dir()]
    newest = max(runs, key=lambda p: p.name.removeprefix("offline-"), default=None)
    return newest.name.rsplit("-", 1)[1] if newest else None


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


#: seconds to wait for the W&B server before logging offline; LIGHTNING_DGM_WANDB_TIMEOUT overrides
WANDB_TIMEOUT = 5.0


def wandb_reachable(timeout: float | None = None) -> bool:
    """Whether a TCP connection to the W&B server (WANDB_BASE_URL) opens within `timeout` seconds."""
    timeout = float(os.environ.get("LIGHTNING_DGM_WANDB_TIMEOUT", WANDB_TIMEOUT)) if timeout is None else timeout
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def wandb_offline_fallback() -> str | None:
    """Switches W&B to offline mode when it could not go online: no API key (W&B would prompt), or
    a server that does not answer within a few seconds (W&B would block about two minutes, then
    crash the run). Returns the reason, or None if W&B is left as it is."""
    mode = os.environ.get("WANDB_MODE", "")
    if mode in ("offline", "disabled", "dryrun"):
        return None
    if not has_wandb_credentials():
        if mode:
            return None
        reason = "no API key found"
    elif not wandb_reachable():
        host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
        reason = f"the server {host} did not answer"
    else:
        return None
    os.environ["WANDB_MODE"] = "offline"
    return reason
