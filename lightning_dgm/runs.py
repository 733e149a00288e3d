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

import base64
import json
import netrc
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from lightning_dgm.errors import ConfigError

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


def make_run_dir(run_dir: Path) -> Path | None:
    """Creates the run folder (rank zero only); returns the outermost folder this call created (the
    run folder, or `default_root_dir` if that was new too), for removal if the command fails early."""
    if _is_launched_worker() or run_dir.exists():
        return None
    outermost = run_dir
    while not outermost.parent.exists():
        outermost = outermost.parent
    try:
        run_dir.mkdir(parents=True)
    except OSError as error:
        raise ConfigError(
            f"cannot create the run folder {run_dir}: {error.strerror or error}; pass a writable "
            "--trainer.default_root_dir"
        ) from error
    return outermost


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


def log_folder(run_dir: Path, stage: str, resuming: bool) -> str:
    """Where a CSV or TensorBoard logger of this invocation writes, relative to the run folder: the
    run folder itself for the first fit, else the stem of this invocation's config (`resume-1`,
    `test`, `test-1`, ...). Lightning's CSVLogger deletes the metrics.csv it finds in its folder, so
    a resume or a `test` of a run must never write where the first fit did."""
    name = config_name(run_dir, stage, resuming)
    return "" if name == "config.yaml" else name.removesuffix(".yaml").replace("config.", "").replace("_config", "")


def metrics_files(run_dir: Path) -> list[Path]:
    """The `metrics.csv` of a run folder's fit and of each of its resumes, in the order they were written."""
    resumes = sorted(run_dir.glob("resume-*/metrics.csv"), key=lambda p: int(p.parent.name.split("-")[1]))
    return [p for p in [run_dir / "metrics.csv", *resumes] if p.is_file()]


def previous_wandb_id(run_dir: Path) -> str | None:
    """The id of the newest W&B run logged in this run folder (`wandb/[offline-]run-<date>-<id>`)."""
    runs = [p for p in (run_dir / "wandb").glob("*run-*-*") if p.is_dir()]
    newest = max(runs, key=lambda p: p.name.removeprefix("offline-"), default=None)
    return newest.name.rsplit("-", 1)[1] if newest else None


def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").rstrip("/")


def wandb_api_key() -> str | None:
    """The API key W&B would use: WANDB_API_KEY, or netrc's entry for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    host = urlparse(_base_url()).hostname
    candidates = [os.environ.get("NETRC"), Path.home() / ".netrc", Path.home() / "_netrc"]
    for path in filter(None, candidates):
        try:
            entry = netrc.netrc(str(path)).authenticators(host)
        except (OSError, netrc.NetrcParseError):
            continue
        if entry and entry[2]:
            return entry[2]
    return None


#: seconds to wait for the W&B server before logging offline; LIGHTNING_DGM_WANDB_TIMEOUT overrides
WANDB_TIMEOUT = 5.0


def wandb_problem(api_key: str, timeout: float | None = None, base_url: str | None = None) -> str | None:
    """Why W&B could not log online (None: it can): one GraphQL request for the key's user, as W&B's
    own login check makes, answered within `timeout` seconds. A bare TCP connect is not enough: on
    many clusters a proxy accepts every connection and then never answers (or answers 404)."""
    timeout = float(os.environ.get("LIGHTNING_DGM_WANDB_TIMEOUT", WANDB_TIMEOUT)) if timeout is None else timeout
    url = f"{base_url or _base_url()}/graphql"
    request = urllib.request.Request(
        url,
        data=json.dumps({"query": "query { viewer { id } }"}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"api:{api_key}".encode()).decode(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            viewer = (json.loads(response.read() or b"{}").get("data") or {}).get("viewer")
    except urllib.error.HTTPError as error:
        return f"{url} answered HTTP {error.code}" + (" (the API key was rejected)" if error.code == 401 else "")
    except (OSError, ValueError) as error:  # no route, DNS, timeout, TLS, not JSON
        return f"{url} did not answer within {timeout:g} s ({getattr(error, 'reason', error)})"
    return None if viewer else f"{url} did not accept the API key"


def wandb_offline_fallback() -> str | None:
    """Switches W&B to offline mode when it could not log online: no API key (W&B would prompt), or
    a server that does not answer in a few seconds or rejects the key (W&B would block about two
    minutes, then crash the run). Returns the reason, or None if W&B is left as it is."""
    mode = os.environ.get("WANDB_MODE", "")
    if mode in ("offline", "disabled", "dryrun"):
        return None
    api_key = wandb_api_key()
    if api_key is None and os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return None  # federated identity: W&B's own business
    if api_key is None:
        if mode:
            return None
        reason = "no API key found"
    else:
        reason = wandb_problem(api_key)
        if reason is None:
            return None
    os.environ["WANDB_MODE"] = "offline"
    return reason
