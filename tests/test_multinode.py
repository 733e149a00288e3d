"""Multi-node launches on one machine: torchrun with two "nodes" on loopback (two separate process
trees) and a 2-task SLURM job simulated with the variables srun sets. The job writes one run folder,
its config and checkpoints once, ends with the same weights on every rank, and resumes."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import torch
from torch.testing import assert_close

from tests.helpers import PYTHON, REPO, subprocess_env, tiny_cyclegan

GAN_DIGITS = [
    "--config",
    str(REPO / "configs" / "gan_digits.yaml"),
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
    "--trainer.callbacks+=tests.helpers.DumpWeights",
]
#: what every node runs, after `python -m lightning_dgm fit` (README's multi-node commands)
MULTINODE = [
    "--trainer.num_nodes=2",
    "--trainer.devices=1",
    "--trainer.accelerator=cpu",
    "--trainer.strategy=ddp_find_unused_parameters_true",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_nodes(commands: list[list[str]], envs: list[dict[str, str]], cwds: list, timeout: float = 90) -> None:
    """Starts one process tree (own session) per node and waits for all. When a node fails, the
    others would wait for it in a collective until gloo's timeout: they are killed at once."""
    logs = [Path(cwd) / f"node{rank}.log" for rank, cwd in enumerate(cwds)]
    outs = [log.open("w") for log in logs]
    nodes = [
        subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        for command, env, cwd, out in zip(commands, envs, cwds, outs, strict=True)
    ]
    deadline = time.monotonic() + timeout
    try:
        while any(node.poll() is None for node in nodes) and time.monotonic() < deadline:
            if any(node.poll() not in (None, 0) for node in nodes):
                break
            time.sleep(0.2)
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        for out in outs:
            out.close()
    for rank, (node, log) in enumerate(zip(nodes, logs, strict=True)):
        assert node.returncode == 0, f"node {rank} (exit {node.returncode}):\n{log.read_text()[-3000:]}"


def torchrun_job(args: list[str], cwds: list) -> None:
    """`torchrun --nnodes 2 --nproc-per-node 1 --node-rank {0,1} ... -m lightning_dgm fit <args>`,
    node r started in cwds[r]."""
    port = free_port()
    commands = [
        [
            PYTHON,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc-per-node=1",
            f"--node-rank={rank}",
            "--master-addr=127.0.0.1",
            f"--master-port={port}",
            "-m",
            "lightning_dgm",
            "fit",
            *args,
        ]
        for rank in (0, 1)
    ]
    _run_nodes(commands, [subprocess_env(OMP_NUM_THREADS="1")] * 2, cwds)


def slurm_job(args: list[str], cwd, job_id: str = "4242", step_id: str = "0") -> None:
    """What `srun --nodes 2 --ntasks-per-node 1 python -m lightning_dgm fit <args>` starts in a job."""
    port = free_port()
    envs = [
        subprocess_env(
            OMP_NUM_THREADS="1",
            SLURM_JOB_ID=job_id,
            SLURM_JOB_NAME="gan_digits",  # Lightning takes "bash" or "interactive" for a shell, not a job
            SLURM_STEP_ID=step_id,
            SLURM_NNODES="2",
            SLURM_NTASKS="2",
            SLURM_NTASKS_PER_NODE="1",
            SLURM_NODELIST="127.0.0.1",
            SLURM_PROCID=str(rank),
            SLURM_LOCALID="0",
            SLURM_NODEID=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        for rank in (0, 1)
    ]
    _run_nodes([[PYTHON, "-m", "lightning_dgm", "fit", *args]] * 2, envs, [cwd] * 2)


def _weights(run):
    ranks = [torch.load(run / f"weights_rank{rank}.pt") for rank in (0, 1)]
    assert_close(ranks[1], ranks[0], rtol=0, atol=0)
    return ranks[0]


def _steps(checkpoint) -> int:
    return torch.load(checkpoint, weights_only=False)["global_step"]


def test_a_two_node_torchrun_job_writes_one_run_folder_and_resumes(tmp_path):
    # Each "node" starts in its own folder and writes under the relative runs/: a node that does not
    # see rank 0's files. Rank 1 must still use rank 0's run folder and make none of its own.
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    for node in nodes:
        node.mkdir()
    common = [*GAN_DIGITS, *MULTINODE, "--trainer.default_root_dir=runs"]
    torchrun_job([*common, "--trainer.max_epochs=1"], nodes)
    assert [p.name for p in (nodes[0] / "runs").iterdir()] == ["version_0"] and not (nodes[1] / "runs").exists()
    run = nodes[0] / "runs" / "version_0"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "samples",  # the grid of the last epoch
        "weights_rank0.pt",  # DumpWeights: each rank writes into the folder it uses (one machine here)
        "weights_rank1.pt",
    ]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch=0-step=6.ckpt", "last.ckpt"]
    first = _weights(run)
    assert_close(torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"], first)

    # The resume, launched the same way: the checkpoint path is the same on every node (a shared
    # file system for it, or a copy on each node).
    resume = [*common, "--trainer.max_epochs=2", f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
    torchrun_job(resume, nodes)
    assert [p.name for p in (nodes[0] / "runs").iterdir()] == ["version_0"] and not (nodes[1] / "runs").exists()
    assert sorted(p.name for p in run.glob("config*.yaml")) == ["config.resume-1.yaml", "config.yaml"]
    assert _steps(run / "checkpoints" / "last.ckpt") == 12  # 3 batches per rank, 2 steps each, 2 epochs
    resumed = _weights(run)
    assert any(not torch.equal(resumed[k], first[k]) for k in first)


def test_a_simulated_two_task_slurm_job_writes_one_run_folder_named_by_the_job_and_resumes_when_requeued(tmp_path):
    root = tmp_path / "runs"
    common = [*GAN_DIGITS, *MULTINODE, f"--trainer.default_root_dir={root}"]
    slurm_job([*common, "--trainer.max_epochs=1"], tmp_path)
    assert [p.name for p in root.iterdir()] == ["slurm-4242.0"]  # not one folder per task
    run = root / "slurm-4242.0"
    assert sorted(p.name for p in run.glob("config*.yaml")) == ["config.yaml"]
    assert _steps(run / "checkpoints" / "last.ckpt") == 6
    first = _weights(run)

    # Requeued (same job id, same step, same command, more epochs to go): back to its folder, and on
    # from last.ckpt (no hpc_ckpt_*.ckpt: say SLURM sent SIGTERM rather than SIGUSR1).
    slurm_job([*common, "--trainer.max_epochs=2"], tmp_path)
    assert [p.name for p in root.iterdir()] == ["slurm-4242.0"]
    assert sorted(p.name for p in run.glob("config*.yaml")) == ["config.resume-1.yaml", "config.yaml"]
    assert _steps(run / "checkpoints" / "last.ckpt") == 12
    assert any(not torch.equal(_weights(run)[k], first[k]) for k in first)


def test_a_two_node_torchrun_cyclegan_job_keeps_one_folder_and_per_rank_pools_through_a_resume(tmp_path):
    from tests.test_translation_runs import horse2zebra

    root = horse2zebra(tmp_path / "horse2zebra", sizes=(4, 4, 2, 2))
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    for node in nodes:
        node.mkdir()
    cyclegan = [
        *tiny_cyclegan(root),
        "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.logger=false",
        "--trainer.callbacks+=tests.helpers.DumpWeights",
    ]
    common = [*cyclegan, *MULTINODE, "--trainer.default_root_dir=runs"]
    torchrun_job([*common, "--trainer.max_epochs=1"], nodes)
    run = nodes[0] / "runs" / "version_0"
    assert [p.name for p in (nodes[0] / "runs").iterdir()] == ["version_0"] and not (nodes[1] / "runs").exists()
    first = _weights(run)
    checkpoint = run / "checkpoints" / "last.ckpt"
    pools = torch.load(checkpoint, weights_only=False)["image_pools"]
    assert len(pools) == 2  # one image pool per rank, each rank's own history

    torchrun_job([*common, "--trainer.max_epochs=2", f"--ckpt_path={checkpoint}"], nodes)
    assert [p.name for p in (nodes[0] / "runs").iterdir()] == ["version_0"] and not (nodes[1] / "runs").exists()
    assert sorted(p.name for p in run.glob("config*.yaml")) == ["config.resume-1.yaml", "config.yaml"]
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 1
    resumed = _weights(run)  # identical on both ranks
    assert any(not torch.equal(resumed[k], first[k]) for k in first)
