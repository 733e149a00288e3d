"""Run folders and W&B: where a run writes, and whether W&B can go online.

A run folder holds everything a run writes: `checkpoints/`, the pictures, the configs,
`predictions/` and `wandb/`. Every process of a job (every GPU of every node) uses one run folder,
by this rule, which needs no shared environment variable and no shared file system:

1. `--ckpt_path <run>/checkpoints/<file>.ckpt` (resuming, or evaluating a checkpoint): that `<run>`.
2. A job launched by SLURM (`srun`, which Lightning detects; see `slurm_job_step`):
   `<trainer.default_root_dir>/slurm-<job id>.<step id>`. Every task derives the same name, and a
   requeued job (same job id, steps counted from 0 again) comes back to its folder and resumes:
   from the `hpc_ckpt_*.ckpt` Lightning saved on SIGUSR1 (SLURMEnvironment(auto_requeue=True)), or
   else from `checkpoints/last.ckpt` (see `requeued_checkpoint`).
3. Otherwise `<trainer.default_root_dir>/version_N`, the next free N, as global rank 0 sees it.

Global rank 0 decides and alone creates the folder; once the process group exists, every other
rank adopts rank 0's choice (`SharedRunFolder` broadcasts it in the `setup` hook), whatever it
computed on its own node. Only rank 0 writes into it (checkpoints, configs, pictures, loggers).

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

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment

from lightning_dgm.errors import ConfigError


def next_version(root: Path) -> Path:
    numbers = [int(m.group(1)) for p in root.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return root / f"version_{max(numbers, default=-1) + 1}"


def slurm_job_step() -> str | None:
    """`<job id>.<step id>` (`<array job id>_<task id>.<step id>` in a job array, as `sacct` names
    steps) when SLURM launched this process and Lightning uses its SLURMEnvironment; else None."""
    if not SLURMEnvironment.detect() or not os.environ.get("SLURM_JOB_ID"):
        return None
    job = os.environ["SLURM_JOB_ID"]
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    step = os.environ.get("SLURM_STEP_ID", os.environ.get("SLURM_STEPID"))
    return f"{job}.{step}" if step else job


def resolve_run_dir(root: str | os.PathLike, ckpt_path: str | None) -> Path:
    """The run folder for this command by the rule above, as this process sees it (not created yet:
    see `make_run_dir`; ranks other than 0 adopt rank 0's in `SharedRunFolder`)."""
    root = Path(root).absolute()  # absolute: other nodes may start elsewhere (see SharedRunFolder)
    if ckpt_path and Path(ckpt_path).parent.name == "checkpoints":
        return Path(ckpt_path).absolute().parent.parent
    if job := slurm_job_step():
        return root / f"slurm-{job}"
    return next_version(root)


def requeued_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a requeued SLURM job's `fit` resumes from, when its folder exists already:
    None if Lightning resumes it itself (an `hpc_ckpt_*.ckpt` saved on SIGUSR1) or nothing was saved;
    else `checkpoints/last.ckpt` (saved on SIGTERM, or by a checkpoint callback), so a preempted
    job continues instead of training again from scratch over its own checkpoints."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not run_dir.name.startswith("slurm-") or any(run_dir.glob("hpc_ckpt_*.ckpt")) or not last.is_file():
        return None
    return last


def make_run_dir(run_dir: Path, global_rank: int) -> Path | None:
    """Creates the run folder on global rank 0; returns the outermost folder this call created (the
    run folder, or `default_root_dir` if that was new too), for removal if the command fails early."""
    if global_rank != 0 or run_dir.exists():
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


class SharedRunFolder(L.Callback):
    """Makes every rank use global rank 0's run folder (`trainer.default_root_dir`) from the `setup`
    hook on, when the process group exists. Before it, ranks other than 0 only read: a node of a
    torchrun job may have guessed another version_N, or not see rank 0's file system at all.
    Checkpoint folders are agreed by ModelCheckpoint itself (it broadcasts its dirpath)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        agreed = Path(trainer.strategy.broadcast(str(self.run_dir)))
        if agreed != self.run_dir:
            self.run_dir = agreed
            trainer._default_root_dir = str(agreed)  # the Trainer offers no setter


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


def wandb_run_id(folder: Path) -> str | None:
    """The run id of a W&B run folder (`[offline-]run-<date>_<time>-<id>[-<n>]`), read from the
    `run-<id>.wandb` file it holds: W&B appends `-<n>` to the folder's name when a resumed run starts
    within the same second as its previous folder."""
    files = sorted(folder.glob("run-*.wandb"))
    return files[0].name.removeprefix("run-").removesuffix(".wandb") if files else None


def previous_wandb_id(run_dir: Path) -> str | None:
    """The id of the newest W&B run logged in this run folder (`wandb/[offline-]run-<date>-<id>`)."""
    runs = [p for p in (run_dir / "wandb").glob("*run-*-*") if p.is_dir() and wandb_run_id(p)]
    newest = max(runs, key=lambda p: p.name.removeprefix("offline-"), default=None)
    return wandb_run_id(newest) if newest else None


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
