"""Runs that never lie: divergence, unwritable or damaged checkpoints, checkpoints of another model,
signals, crashes mid-epoch, run folders that are never clobbered, W&B without a route, one-line errors."""

import base64
import errno
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import torch
from torch.testing import assert_close

from lightning_dgm.__main__ import main
from lightning_dgm.checkpoints import AtomicCheckpointIO, read_checkpoint
from lightning_dgm.datamodules import MNISTDataModule
from lightning_dgm.errors import CheckpointError, ConfigError, DataError, MissingFileError
from lightning_dgm.runs import metrics_files, previous_wandb_id, wandb_problem, wandb_run_id
from tests.helpers import PYTHON, REPO, run_cli, subprocess_env, tiny_cyclegan
from tests.test_translation_runs import horse2zebra

GAN = str(REPO / "configs" / "gan_digits.yaml")
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
FAST = ["--trainer.limit_train_batches=4", "--trainer.limit_val_batches=1", *QUIET]


def dgm(*args: str) -> int:
    """`python -m lightning_dgm <args>` in this process; its exit code."""
    import wandb

    try:
        main(list(args))
        return 0
    except SystemExit as stop:
        return stop.code
    finally:
        wandb.finish()


def _interruptible() -> None:
    # A shell's background job (`cmd &`) inherits SIGINT ignored, and the CLI rightly leaves an ignored
    # SIGINT alone: give the child a terminal's Ctrl-C, as a user's run has, wherever the tests run.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def dgm_process(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "lightning_dgm", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
        preexec_fn=_interruptible,
    )


def error_line(stderr: str) -> str:
    """The CLI's one error line: the only stderr line that starts with `error:`."""
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def digests(folder) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ckpt"))}


@pytest.fixture
def gan_run(tmp_path):
    """A GAN run trained for one epoch of 4 batches: its run folder (version_0)."""
    assert dgm("fit", f"--config={GAN}", *FAST, "--trainer.max_epochs=1", f"--trainer.default_root_dir={tmp_path}") == 0
    return tmp_path / "version_0"


# -- exit 0 means success -------------------------------------------------------------------------
def test_divergence_stops_with_exit_3_naming_the_network_and_keeps_earlier_checkpoints(tmp_path, capsys):
    # Sane learning rates for epoch 0 (whose checkpoints are saved), then x1e30 from epoch 1 on.
    explode = ["--model.g_lr_scheduler=torch.optim.lr_scheduler.StepLR", "--model.g_lr_scheduler.step_size=1"]
    explode += ["--model.g_lr_scheduler.gamma=1e30", "--model.d_lr_scheduler=torch.optim.lr_scheduler.StepLR"]
    explode += ["--model.d_lr_scheduler.step_size=1", "--model.d_lr_scheduler.gamma=1e30"]
    code = dgm(
        "fit", f"--config={GAN}", *FAST, *explode, "--trainer.max_epochs=3", f"--trainer.default_root_dir={tmp_path}"
    )
    line = error_line(capsys.readouterr().err)
    checkpoints = tmp_path / "version_0" / "checkpoints"
    assert code == 3
    assert line.startswith("error: training diverged at epoch 1, batch 0 (global step 9): ")
    assert "the loss of discriminator" in line or "the loss of generator" in line or "parameter " in line
    assert f"earlier checkpoints are kept in {checkpoints}" in line
    # nothing of the bad state saved, nothing rotated away: epoch 0's checkpoints, finite
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch=0-step=8.ckpt", "last.ckpt"]
    for path in checkpoints.iterdir():
        checkpoint = read_checkpoint(path)
        assert checkpoint["epoch"] == 0
        assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


def test_unwritable_checkpoint_folder_fails_the_run(gan_run, tmp_path):
    checkpoints = gan_run / "checkpoints"
    before = digests(checkpoints)
    checkpoints.chmod(0o555)
    # root ignores file modes: drop the capability that lets it, as a user account would run
    drop = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv")
        caps = "-dac_override,-dac_read_search"
        drop = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    try:
        out = subprocess.run(
            [*drop, PYTHON, "-m", "lightning_dgm", "fit", f"--config={GAN}", *FAST, "--trainer.max_epochs=2"]
            + [f"--ckpt_path={checkpoints / 'last.ckpt'}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=subprocess_env(),
        )
    finally:
        checkpoints.chmod(0o755)
    assert out.returncode == 2, out.stderr[-3000:]
    line = error_line(out.stderr)
    assert line.startswith(f"error: could not write checkpoint {checkpoints}/") and "Permission denied" in line
    assert digests(checkpoints) == before


def test_an_unwritable_root_folder_is_one_line(tmp_path, monkeypatch, capsys):
    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr("pathlib.Path.mkdir", refuse)
    code = dgm("fit", f"--config={GAN}", *FAST, f"--trainer.default_root_dir={tmp_path / 'locked'}")
    line = error_line(capsys.readouterr().err)
    assert code == 2 and line == (
        f"error: cannot create the run folder {tmp_path / 'locked' / 'version_0'}: Permission denied; pass a "
        "writable --trainer.default_root_dir"
    )


def test_a_full_disk_leaves_the_old_checkpoint_whole_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    good = path.read_bytes()

    def disk_full(obj, file):
        file.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("lightning_dgm.checkpoints.torch.save", disk_full)
    with pytest.raises(CheckpointError, match=f"could not write checkpoint {path}: No space left on device"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert path.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_a_checkpoint_of_another_model_or_other_widths_is_refused(gan_run, mnist_root, tmp_path, capsys):
    ckpt = gan_run / "checkpoints" / "last.ckpt"
    vae = str(REPO / "configs" / "vae_mnist_z2.yaml")
    capsys.readouterr()
    code = dgm(
        "predict", f"--config={vae}", f"--data.data_dir={mnist_root}", "--data.download=false", f"--ckpt_path={ckpt}"
    )
    line = error_line(capsys.readouterr().err)
    assert code == 2
    assert f"{ckpt} does not match the command: model.class_path is lightning_dgm.models.GAN" in line
    assert "lightning_dgm.models.VAE" in line
    assert not (gan_run / "predictions").exists()
    code = dgm(
        "fit",
        f"--config={GAN}",
        *FAST,
        "--trainer.max_epochs=2",
        "--model.init_args.generator.init_args.hidden_dims=[64]",
        f"--ckpt_path={ckpt}",
    )
    line = error_line(capsys.readouterr().err)
    assert code == 2 and "model.init_args.generator.init_args.hidden_dims is [256, 256] in the checkpoint" in line
    assert read_checkpoint(ckpt)["epoch"] == 0  # nothing trained on
    lr = "--model.init_args.g_optimizer.init_args.lr=0.1"
    code = dgm("fit", f"--config={GAN}", *FAST, "--trainer.max_epochs=2", lr, f"--ckpt_path={ckpt}")
    line = error_line(capsys.readouterr().err)
    assert code == 2 and "model.init_args.g_optimizer.init_args.lr 0.1 would be ignored" in line
    # a training knob set on the command line is the user's to change on resume, and wins
    cli = run_cli("fit", f"--config={GAN}", *FAST, "--trainer.max_epochs=2", "--model.d_steps=2", f"--ckpt_path={ckpt}")
    assert cli.model.d_steps == 2 and cli.trainer.global_step == 8 + 4 + 2  # 4 D, 2 G steps


def test_predict_refuses_an_untrained_model_unless_asked(tmp_path, capsys):
    code = dgm("predict", f"--config={GAN}", f"--trainer.default_root_dir={tmp_path / 'runs'}")
    line = error_line(capsys.readouterr().err)
    assert code == 2 and "--ckpt_path" in line and "--untrained true" in line
    assert not (tmp_path / "runs").exists()
    code = dgm(
        "predict",
        f"--config={GAN}",
        "--untrained=true",
        "--sample_writer.num_samples=4",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        *QUIET,
    )
    assert code == 0 and len(list((tmp_path / "runs" / "version_0" / "predictions").glob("*.png"))) == 4


def test_damaged_checkpoints_are_one_line_naming_the_file(gan_run, tmp_path, capsys):
    empty, truncated, pickled = tmp_path / "empty.ckpt", tmp_path / "truncated.ckpt", tmp_path / "pickled.ckpt"
    empty.touch()
    truncated.write_bytes((gan_run / "checkpoints" / "last.ckpt").read_bytes()[:3000])
    torch.save({"state_dict": {}, "code": os.system}, pickled)
    with pytest.raises(CheckpointError, match=f"checkpoint {empty} is empty"):
        read_checkpoint(empty)
    with pytest.raises(CheckpointError, match=f"checkpoint {truncated} is truncated or not a checkpoint"):
        read_checkpoint(truncated)
    with pytest.raises(CheckpointError, match=f"checkpoint {pickled} holds pickled Python objects"):
        read_checkpoint(pickled)
    with pytest.raises(MissingFileError, match=f"checkpoint {tmp_path / 'nope' / 'last.ckpt'} not found"):
        read_checkpoint(tmp_path / "nope" / "last.ckpt")
    with pytest.raises(CheckpointError, match=f"{gan_run / 'checkpoints'} is a folder, not a checkpoint"):
        read_checkpoint(gan_run / "checkpoints")
    capsys.readouterr()
    code = dgm("predict", f"--config={GAN}", f"--ckpt_path={truncated}", f"--trainer.default_root_dir={tmp_path / 'r'}")
    assert code == 2 and str(truncated) in error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_a_bad_idx_magic_number_names_the_file(mnist_root):
    images = next((mnist_root / "MNIST" / "raw").glob("train-images*"))
    data = bytearray(images.read_bytes())
    data[2:4] = b"\x09\x99"
    images.write_bytes(bytes(data))
    data_module = MNISTDataModule(data_dir=str(mnist_root), download=False, val_size=16, batch_size=16)
    with pytest.raises(DataError, match=str(images)):
        data_module.setup("fit")


# -- nothing trained is lost ----------------------------------------------------------------------
def _signal_run(tmp_path, signal_name, *extra):
    return dgm_process(
        "fit",
        f"--config={GAN}",
        *FAST,
        "--trainer.limit_val_batches=0",
        "--trainer.max_epochs=2",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.callbacks+=tests.helpers.SignalAt",
        "--trainer.callbacks.epoch=1",
        "--trainer.callbacks.batch=2",
        f"--trainer.callbacks.signal={signal_name}",
        *extra,
        cwd=tmp_path.parent,
    )


@pytest.mark.parametrize("signal_name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_sigterm_and_sigint_save_the_current_batch_and_say_how_to_resume(tmp_path, signal_name, code):
    out = _signal_run(tmp_path / "split", signal_name)
    last = tmp_path / "split" / "version_0" / "checkpoints" / "last.ckpt"
    assert out.returncode == code, out.stderr[-3000:]
    assert error_line(out.stderr) == (
        f"error: interrupted by {signal_name} at epoch 1, batch 2; resume with --ckpt_path {last}"
    )
    checkpoint = read_checkpoint(last)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (1, 2 * (4 + 3))  # D and G step per batch


def _compare_final_weights(straight, resumed):
    a, b = read_checkpoint(straight), read_checkpoint(resumed)
    assert a["global_step"] == b["global_step"] > 0
    assert_close(b["state_dict"], a["state_dict"], rtol=0, atol=0)
    assert_close(b["optimizer_states"], a["optimizer_states"], rtol=0, atol=0)


def _gan(tmp_path):
    return [f"--config={GAN}", *FAST, "--trainer.limit_val_batches=0"]


def _vae(tmp_path):
    from tests.helpers import write_mnist

    write_mnist(tmp_path / "data")
    config = REPO / "configs" / "vae_mnist_z2.yaml"
    data = [
        f"--data.data_dir={tmp_path / 'data'}",
        "--data.download=false",
        "--data.val_size=16",
        "--data.batch_size=16",
    ]
    return [f"--config={config}", *data, *QUIET, "--trainer.limit_val_batches=0", "--trainer.logger=false"]


def _cyclegan(tmp_path):
    root = horse2zebra(tmp_path / "horse2zebra", sizes=(6, 6, 2, 2))
    limits = ["--trainer.limit_train_batches=4", "--trainer.limit_val_batches=0"]
    return [*tiny_cyclegan(root), *QUIET, *limits]


@pytest.mark.parametrize("setup", [_gan, _vae, _cyclegan], ids=["gan", "vae", "cyclegan"])
def test_sigkill_after_a_mid_epoch_checkpoint_resumes_bit_exactly(tmp_path, setup):
    common = [*setup(tmp_path), "--trainer.max_epochs=2"]
    out = dgm_process("fit", *common, f"--trainer.default_root_dir={tmp_path / 'straight'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    cadence = ["--trainer.callbacks+=lightning_dgm.callbacks.ResumeCheckpoint", "--trainer.callbacks.every_n_batches=2"]
    kill = ["--trainer.callbacks+=tests.helpers.SignalAt", "--trainer.callbacks.epoch=1"]
    kill += ["--trainer.callbacks.batch=3", "--trainer.callbacks.signal=SIGKILL"]
    out = dgm_process("fit", *common, *cadence, *kill, f"--trainer.default_root_dir={tmp_path / 'split'}", cwd=tmp_path)
    assert out.returncode == -9, out.stderr[-3000:]
    last = tmp_path / "split" / "version_0" / "checkpoints" / "last.ckpt"
    saved = read_checkpoint(last)
    # saved at the end of epoch 1's second batch (Lightning counts it completed once it restores)
    assert saved["epoch"] == 1 and saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"] == 2
    out = dgm_process("fit", *common, f"--ckpt_path={last}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    _compare_final_weights(tmp_path / "straight" / "version_0" / "checkpoints" / "last.ckpt", last)


# -- run folders are never clobbered --------------------------------------------------------------
def test_resumes_keep_every_config_and_rerunning_config_yaml_starts_a_new_run(gan_run, tmp_path):
    first = (gan_run / "config.yaml").read_bytes()
    ckpt = gan_run / "checkpoints" / "last.ckpt"
    assert dgm("fit", f"--config={GAN}", *FAST, "--trainer.max_epochs=2", f"--ckpt_path={ckpt}") == 0
    assert (gan_run / "config.yaml").read_bytes() == first
    assert "ckpt_path" in (gan_run / "config.resume-1.yaml").read_text()
    assert dgm("fit", f"--config={gan_run / 'config.yaml'}", "--trainer.max_epochs=1", *FAST) == 0
    assert sorted(p.name for p in tmp_path.glob("version_*")) == ["version_0", "version_1"]
    assert read_checkpoint(ckpt)["epoch"] == 1  # the resumed run is untouched


def test_later_commands_never_overwrite_the_csv_logs_of_a_run(tmp_path):
    csv = ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir=."]
    csv += [f"--trainer.default_root_dir={tmp_path}"]
    assert dgm("fit", f"--config={GAN}", *FAST, *csv, "--trainer.max_epochs=1") == 0
    run = tmp_path / "version_0"
    first = (run / "metrics.csv").read_bytes()
    ckpt = f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"
    assert dgm("fit", f"--config={GAN}", *FAST, *csv, "--trainer.max_epochs=2", ckpt) == 0
    assert dgm("validate", f"--config={GAN}", *FAST, *csv, ckpt) == 0
    assert (run / "metrics.csv").read_bytes() == first  # Lightning's CSVLogger empties the file it finds
    assert "val/d_fake" in (run / "validate" / "metrics.csv").read_text()
    assert [p.relative_to(run).as_posix() for p in metrics_files(run)] == ["metrics.csv", "resume-1/metrics.csv"]


def test_a_moved_run_folder_resumes_into_its_own_last_ckpt(gan_run, tmp_path):
    moved = tmp_path / "elsewhere" / "version_0"
    moved.parent.mkdir()
    gan_run.rename(moved)
    assert (
        dgm(
            "fit",
            f"--config={GAN}",
            *FAST,
            "--trainer.max_epochs=2",
            f"--ckpt_path={moved / 'checkpoints' / 'last.ckpt'}",
        )
        == 0
    )
    assert read_checkpoint(moved / "checkpoints" / "last.ckpt")["epoch"] == 1
    assert not list(moved.glob("checkpoints/last-v*.ckpt"))


def test_failed_commands_leave_no_folders(tmp_path, mnist_root, capsys):
    typo = tmp_path / "runs" / "versoin_0" / "checkpoints" / "last.ckpt"
    code = dgm("fit", f"--config={GAN}", f"--trainer.default_root_dir={tmp_path / 'runs'}", f"--ckpt_path={typo}")
    assert code == 2 and f"checkpoint {typo} not found" in error_line(capsys.readouterr().err)
    code = dgm(
        "fit", f"--config={GAN}", f"--trainer.default_root_dir={tmp_path / 'runs'}", "--data.batch_size=0", *FAST
    )
    assert code == 2 and "batch_size" in error_line(capsys.readouterr().err)
    width = "--model.init_args.generator.init_args.hidden_dims=[-3]"  # torch's own error, while building G
    code = dgm("fit", f"--config={GAN}", f"--trainer.default_root_dir={tmp_path / 'runs'}", width, *FAST)
    assert code == 2 and "negative dimension -3" in error_line(capsys.readouterr().err)
    (mnist_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()  # found missing once training starts
    vae = str(REPO / "configs" / "vae_mnist_z2.yaml")
    data = [f"--data.data_dir={mnist_root}", "--data.download=false", "--data.val_size=16"]
    code = dgm("fit", f"--config={vae}", *data, *FAST, f"--trainer.default_root_dir={tmp_path / 'runs'}")
    assert code == 2 and "t10k-labels-idx1-ubyte" in error_line(capsys.readouterr().err)
    (tmp_path / "facades" / "train").mkdir(parents=True)  # W&B has started its run when this is found
    pix2pix = str(REPO / "configs" / "pix2pix_facades_small.yaml")
    code = dgm("fit", f"--config={pix2pix}", f"--data.root={tmp_path / 'facades'}", *QUIET)
    assert code == 2 and "no images" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "runs" / "pix2pix_facades_small").exists()


# -- W&B never hangs a run -----------------------------------------------------------------------
class FakeWandb(http.server.BaseHTTPRequestHandler):
    """A W&B server that knows one API key, or (HANG) accepts connections and never answers."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers["Authorization"] != "Basic " + base64.b64encode(b"api:" + KEY.encode()).decode():
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"data": {"viewer": {"id": "VXNlcjox"}}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def wandb_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeWandb)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_wandb_goes_offline_fast_when_the_server_hangs_or_rejects_the_key(wandb_server, monkeypatch):
    assert wandb_problem(KEY, timeout=2, base_url=wandb_server) is None
    assert wandb_problem("f" * 40, timeout=2, base_url=wandb_server) == (
        f"{wandb_server}/graphql answered HTTP 401 (the API key was rejected)"
    )
    with socket.socket() as silent:  # listens, never answers: a black-holing proxy
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        assert wandb_problem(KEY, timeout=1, base_url=url).startswith(f"{url}/graphql did not answer within 1 s")
        assert time.monotonic() - start < 3


def test_fit_with_a_key_and_no_route_to_wandb_logs_offline(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    monkeypatch.setenv("WANDB_BASE_URL", "http://10.255.255.1:8080")  # unroutable (or a proxy's 404)
    monkeypatch.setenv("LIGHTNING_DGM_WANDB_TIMEOUT", "1")
    start = time.monotonic()
    assert dgm("fit", f"--config={GAN}", *FAST, "--trainer.max_epochs=1", f"--trainer.default_root_dir={tmp_path}") == 0
    assert time.monotonic() - start < 60
    assert os.environ["WANDB_MODE"] == "offline"
    assert "W&B: http://10.255.255.1:8080/graphql " in caplog.text
    assert len(list((tmp_path / "version_0" / "wandb").glob("offline-run-*"))) == 1


def test_the_wandb_id_is_read_from_the_run_file_not_the_folder_name(tmp_path):
    # W&B names a resumed run's folder <...>-<id>-1 when it starts in the same second as the last one
    for name in ("offline-run-20261203_080000-abc12345", "offline-run-20261203_080000-abc12345-1"):
        (tmp_path / "wandb" / name).mkdir(parents=True)
        (tmp_path / "wandb" / name / "run-abc12345.wandb").touch()
    assert previous_wandb_id(tmp_path) == "abc12345"


def test_a_resumed_run_continues_its_wandb_run(gan_run):
    first = [wandb_run_id(p) for p in (gan_run / "wandb").glob("offline-run-*")]
    ckpt = gan_run / "checkpoints" / "last.ckpt"
    assert len(first) == 1
    assert dgm("fit", f"--config={GAN}", *FAST, "--trainer.max_epochs=2", f"--ckpt_path={ckpt}") == 0
    ids = [wandb_run_id(p) for p in (gan_run / "wandb").glob("offline-run-*")]
    assert len(ids) == 2 and set(ids) == set(first)


# -- one clear line -------------------------------------------------------------------------------
def test_user_errors_are_one_line_with_exit_2_and_a_traceback_on_request(tmp_path, capsys, monkeypatch):
    assert dgm("fit", f"--config={GAN}", "--data.batch_size=0", *FAST) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and err.startswith("error: ") and "Traceback" not in err
    monkeypatch.setenv("LIGHTNING_DGM_DEBUG", "1")
    with pytest.raises(ValueError) as raised:  # jsonargparse re-raises ours, with ours as the cause
        main(["fit", f"--config={GAN}", "--data.batch_size=0", *FAST])
    assert isinstance(raised.value, ConfigError) or isinstance(raised.value.__cause__, ConfigError)
