"""Speed without changing results: logging only at the logged steps, opt-in compile / channels-last /
matmul precision, and 16-bit mixed precision with a real GradScaler on the CPU."""

import copy
import logging
import os

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins import MixedPrecision
from torch import nn
from torch.testing import assert_close

from lightning_dgm.callbacks import ChannelsLast, CompileNetworks, MatmulPrecision
from lightning_dgm.datamodules import DigitsDataModule
from lightning_dgm.models import GAN, ConditionalGAN, CycleGAN
from lightning_dgm.nets import (
    ConditionalMLPDiscriminator,
    ConditionalMLPGenerator,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
)
from tests.helpers import REPO
from tests.test_translation_systems import PairData, pairs, translator

QUIET = dict(enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", limit_val_batches=0)


def tiny_gan(**kwargs) -> GAN:
    torch.manual_seed(0)
    return GAN(
        generator=MLPGenerator(latent_dim=8, hidden_dims=[16], image_shape=(1, 8, 8)),
        discriminator=MLPDiscriminator(image_shape=(1, 8, 8), hidden_dims=[16]),
        **kwargs,
    )


def logged_rows(folder):
    import csv

    with open(folder / "metrics.csv") as file:
        return [row for row in csv.DictReader(file) if row.get("d_loss")]


def test_logging_every_n_steps_gives_the_loggers_the_values_of_logging_every_step(tmp_path):
    # The same seed trains the same weights; the logger of the cadence-3 run must receive, at its
    # logged steps, exactly the values the every-step run receives at those steps.
    rows = {}
    for every in (1, 3):
        L.seed_everything(0)
        trainer = L.Trainer(
            max_epochs=1,
            limit_train_batches=9,
            log_every_n_steps=every,
            logger=CSVLogger(tmp_path, name=f"every{every}", version=0),
            enable_checkpointing=False,
            **QUIET,
        )
        trainer.fit(tiny_gan(), DigitsDataModule(batch_size=8))
        rows[every] = logged_rows(tmp_path / f"every{every}" / "version_0")
    assert [row["step"] for row in rows[1]] == [str(s) for s in range(9)]
    assert [row["step"] for row in rows[3]] == ["2", "5", "8"]
    by_step = {row["step"]: row for row in rows[1]}
    for row in rows[3]:
        for key in ("d_loss", "d_real", "d_fake", "g_loss"):
            assert row[key] == by_step[row["step"]][key], (row["step"], key)


def fit(model, datamodule, tmp_path, batches=3, **kwargs):
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=batches, logger=False, default_root_dir=tmp_path, **QUIET, **kwargs
    )
    trainer.fit(model, datamodule)
    return trainer


def test_compiled_and_uncompiled_runs_load_each_others_checkpoints(tmp_path):
    model = tiny_gan()
    # aot_eager: torch.compile's graph capture without C++ code generation, which takes minutes here.
    trainer = fit(model, DigitsDataModule(batch_size=8), tmp_path, callbacks=[CompileNetworks(backend="aot_eager")])
    assert model.generator._compiled_call_impl is not None and model.discriminator._compiled_call_impl is not None
    trainer.save_checkpoint(tmp_path / "compiled.ckpt")
    state = torch.load(tmp_path / "compiled.ckpt", weights_only=False)["state_dict"]
    assert not [k for k in state if "_orig_mod" in k]
    plain = tiny_gan()
    plain.load_state_dict(state)  # strict: every key matches an uncompiled system's
    assert_close(plain.state_dict(), model.state_dict(), rtol=0, atol=0)
    # and back: an uncompiled run's checkpoint resumes under compile
    trainer = fit(plain, DigitsDataModule(batch_size=8), tmp_path / "plain")
    trainer.save_checkpoint(tmp_path / "plain.ckpt")
    compiled = tiny_gan()
    trainer = L.Trainer(
        max_epochs=2, limit_train_batches=3, logger=False, callbacks=[CompileNetworks(backend="aot_eager")], **QUIET
    )
    # weights_only=False: this system was built in Python, so its hparams hold the modules themselves.
    trainer.fit(compiled, DigitsDataModule(batch_size=8), ckpt_path=tmp_path / "plain.ckpt", weights_only=False)
    assert trainer.global_step == 2 * 2 * 3 and compiled.generator._compiled_call_impl is not None
    assert all(torch.isfinite(p).all() for p in compiled.parameters())
    with pytest.raises(ValueError, match="has no network critic"):
        fit(tiny_gan(), DigitsDataModule(batch_size=8), tmp_path, callbacks=[CompileNetworks(modules=["critic"])])


def test_channels_last_converts_the_conv_networks_and_trains():
    torch.manual_seed(0)
    model = GAN(DCGANGenerator(16, (1, 28, 28), 8), DCGANDiscriminator((1, 28, 28), 8))
    reference = copy.deepcopy(model)
    fit(model, DigitsDataModule(image_size=28, batch_size=8), None, callbacks=[ChannelsLast()])
    conv = model.discriminator.blocks[1][0].weight  # 8 input channels: NHWC differs from NCHW
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    changed = [not torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters())]
    assert all(torch.isfinite(p).all() for p in model.parameters()) and any(changed)


def test_matmul_precision_is_set_for_the_run_and_restored():
    seen = []

    class Spy(L.Callback):
        def on_train_start(self, trainer, pl_module):
            seen.append((torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32))

    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    fit(tiny_gan(), DigitsDataModule(batch_size=8), None, callbacks=[MatmulPrecision("medium"), Spy()])
    assert seen == [("medium", True)]
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == before


@pytest.mark.parametrize("system", ["gan", "cgan"])
def test_16_mixed_with_the_cpu_grad_scaler_trains_the_gans(system, tmp_path):
    torch.manual_seed(0)
    if system == "gan":
        model = tiny_gan()
    else:
        model = ConditionalGAN(
            ConditionalMLPGenerator(8, 10, 4, [16], (1, 8, 8)), ConditionalMLPDiscriminator((1, 8, 8), 10, 4, [16]), 10
        )
    losses = []

    class Losses(L.Callback):
        def on_before_backward(self, trainer, pl_module, loss):
            losses.append(loss.detach().float())

    before = copy.deepcopy(model.state_dict())
    scaler = torch.amp.GradScaler("cpu")
    plugins = [MixedPrecision("16-mixed", "cpu", scaler=scaler)]
    fit(model, DigitsDataModule(batch_size=8), tmp_path, plugins=plugins, callbacks=[Losses()])
    assert len(losses) == 6 and all(torch.isfinite(loss) for loss in losses)  # a D and a G loss per batch
    assert scaler.get_scale() > 0 and scaler._scale is not None  # the scaler was used, and is finite
    for name, value in model.state_dict().items():
        assert torch.isfinite(value).all(), name
    moved = [name for name, value in model.state_dict().items() if not torch.equal(value, before[name])]
    assert any(n.startswith("generator.") for n in moved) and any(n.startswith("discriminator.") for n in moved)


def test_16_mixed_with_the_cpu_grad_scaler_trains_cyclegan(tmp_path):
    torch.manual_seed(0)
    model = CycleGAN(translator(), translator(), nn.Conv2d(3, 1, 3), nn.Conv2d(3, 1, 3))
    before = copy.deepcopy(model.state_dict())
    scaler = torch.amp.GradScaler("cpu")
    fit(model, PairData(*pairs(4)), tmp_path, 2, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    assert scaler._scale is not None and scaler.get_scale() > 0
    for name, value in model.state_dict().items():
        assert torch.isfinite(value).all(), name
    moved = {name.split(".")[0] for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert moved == {"generator_ab", "generator_ba", "discriminator_a", "discriminator_b"}


def test_the_gpu_benchmark_runs_its_pieces_on_the_cpu(tmp_path, monkeypatch):
    # bench/gpu.py's dry run, a batch each: both benchmarks (the VAE for the conv one), bf16, compiled (eager
    # backend: graph capture without code generation) and data on the device; fp32 is the path of the others.
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import gpu

    out = tmp_path / "table.md"
    argv = ["--device", "cpu", "--variants", "bf16,compile,on_device", "--compile-backend", "eager", "--batches", "1"]
    argv += ["--warmup", "1", "--repeats", "1", "--mlp-batch-sizes", "4", "--conv-batch-size", "2"]
    argv += ["--conv-models", "vae", "--out", str(out)]
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    try:
        table = gpu.run(argv)
    finally:  # the benchmarks quieten Lightning's loggers for the whole process: later tests read its info lines
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| ") and "img/s" not in line]
    assert out.read_text() == table + "\n" and len(rows) == 3 * 2  # 3 variants x (MLP GAN, VAE)
    assert [row[2] for row in rows] == ["bf16", "bf16", "compile", "compile", "on_device", "on_device"]
    assert all(float(row[-1].rstrip(" |")) > 0 for row in rows)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA GPU is visible"):
        gpu.run([])


def test_systems_still_register_what_is_assigned_to_them():
    # System.__setattr__ takes a shortcut for Lightning's hook name only; modules and parameters register as ever.
    model = tiny_gan()
    model._current_fx_name = "training_step"
    assert model._current_fx_name == "training_step" and "_current_fx_name" not in model.__dict__["_modules"]
    model.extra, model.scale = nn.Linear(1, 1), nn.Parameter(torch.ones(1))
    assert "extra" in dict(model.named_children()) and "scale" in dict(model.named_parameters())
    model.extra = None  # a registered submodule set to None stays registered as None, as nn.Module does
    assert "extra" in model._modules and model.extra is None


def test_the_nvml_cuda_check_is_dropped_only_where_nvml_cannot_be_loaded(monkeypatch):
    from lightning_dgm.models.overhead import drop_nvml_cuda_check_without_nvml

    available = torch.cuda.is_available()
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # as `import lightning` sets it
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: 1)  # NVML loads: Lightning's setting stays
    assert not drop_nvml_cuda_check_without_nvml() and os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: -1)  # no driver: torch falls back anyway
    assert drop_nvml_cuda_check_without_nvml() == torch.cuda._is_compiled()
    assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in os.environ or not torch.cuda._is_compiled()
    assert torch.cuda.is_available() == available


def test_step_logs_are_read_back_only_at_the_logged_steps(tmp_path, monkeypatch):
    # Lightning reads every live step log back after each batch for the progress bar, with `.item()`
    # (a host-device sync per value). The systems retire their logs once the loggers have had them:
    # over 10 batches logged every 5, the values are read back at batches 4 and 9 only (not 4 to 9).
    from lightning.pytorch.trainer.connectors.logger_connector import result

    L.seed_everything(0)
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=10, log_every_n_steps=5, enable_checkpointing=False,
        logger=CSVLogger(tmp_path, name="run", version=0), **QUIET,
    )  # fmt: skip
    read_at = []
    convert = result.convert_tensors_to_scalars

    def counted(value):
        read_at.append(trainer.fit_loop.epoch_loop.batch_idx)
        return convert(value)

    monkeypatch.setattr(result, "convert_tensors_to_scalars", counted)
    trainer.fit(tiny_gan(), DigitsDataModule(batch_size=8))
    assert sorted(set(read_at)) == [4, 9]
    last = logged_rows(tmp_path / "run" / "version_0")[-1]
    assert last["step"] == "9"
    # What the progress bar and callbacks read keeps the last logged values.
    for key in ("d_loss", "d_real", "d_fake", "g_loss"):
        assert trainer.progress_bar_metrics[key] == pytest.approx(float(last[key]), rel=1e-6)
        assert trainer.callback_metrics[key].item() == pytest.approx(float(last[key]), rel=1e-6)


def test_passthrough_profiling_is_a_shared_null_context_and_real_profilers_still_record(tmp_path):
    from lightning.pytorch.profilers import PassThroughProfiler, SimpleProfiler

    from lightning_dgm.models.overhead import skip_passthrough_profiling

    assert skip_passthrough_profiling()
    profiler = PassThroughProfiler()
    with profiler.profile("a") as inner, profiler.profile("b"):
        assert inner is None
    simple = SimpleProfiler(dirpath=tmp_path, filename="profile")
    fit(tiny_gan(), DigitsDataModule(batch_size=8), tmp_path, profiler=simple)
    assert len(simple.recorded_durations["run_training_batch"]) == 3
    assert "[LightningModule]GAN.on_before_optimizer_step" in simple.recorded_durations


class StepHookRecorder(L.Callback):
    """Records the step hooks Lightning (or the direct step) calls, with what each sees."""

    def __init__(self) -> None:
        self.calls = []

    def on_before_backward(self, trainer, pl_module, loss):
        self.calls.append(("on_before_backward", pl_module._current_fx_name, loss.item(), trainer.global_step))

    def on_after_backward(self, trainer, pl_module):
        grads = [p.grad.sum().item() for p in pl_module.parameters() if p.grad is not None]
        self.calls.append(("on_after_backward", pl_module._current_fx_name, sum(grads), trainer.global_step))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        assert isinstance(optimizer, torch.optim.Adam)  # the torch optimizer, as Lightning passes it
        groups = len(optimizer.param_groups)
        self.calls.append(("on_before_optimizer_step", pl_module._current_fx_name, groups, trainer.global_step))


def direct_or_lightning(monkeypatch, tmp_path, direct: bool, **kwargs):
    from lightning_dgm.models import overhead

    if not direct:
        monkeypatch.setattr(overhead, "_direct_listeners", lambda trainer, module: None)
    L.seed_everything(0)
    model, recorder = tiny_gan(), StepHookRecorder()
    trainer = fit(model, DigitsDataModule(batch_size=8), tmp_path, batches=4, callbacks=[recorder], **kwargs)
    monkeypatch.undo()
    return model, trainer, recorder.calls


def test_direct_steps_train_and_call_hooks_exactly_as_lightning_does(monkeypatch, tmp_path):
    direct, direct_trainer, direct_calls = direct_or_lightning(monkeypatch, tmp_path, direct=True)
    assert direct_trainer._lightning_dgm_direct_steps[2] is not None  # the direct path ran
    lightning, lightning_trainer, lightning_calls = direct_or_lightning(monkeypatch, tmp_path, direct=False)
    assert lightning_trainer._lightning_dgm_direct_steps[2] is None
    assert_close(direct.state_dict(), lightning.state_dict(), rtol=0, atol=0)
    assert direct_trainer.global_step == lightning_trainer.global_step == 8
    assert direct_calls == lightning_calls and len(direct_calls) == 4 * 2 * 3


class AfterBackward(GAN):
    def on_after_backward(self) -> None:
        self.seen = True


@pytest.mark.parametrize(
    "setting",
    [
        dict(plugins=[MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))]),  # scales and checks
        dict(profiler="simple"),  # a profiler times each call
        dict(module=AfterBackward),  # the module's own step hooks
    ],
)
def test_lightning_steps_wherever_the_direct_step_would_skip_something(setting, tmp_path):
    setting = dict(setting)
    module = setting.pop("module", GAN)
    torch.manual_seed(0)
    model = module(
        generator=MLPGenerator(latent_dim=8, hidden_dims=[16], image_shape=(1, 8, 8)),
        discriminator=MLPDiscriminator(image_shape=(1, 8, 8), hidden_dims=[16]),
    )
    trainer = fit(model, DigitsDataModule(batch_size=8), tmp_path, **setting)
    assert trainer._lightning_dgm_direct_steps[2] is None and trainer.global_step == 6
    assert getattr(model, "seen", True)


def test_the_overhead_benchmark_switches_each_shortcut_and_leaves_them_on(monkeypatch, capsys):
    from lightning.pytorch.profilers import PassThroughProfiler

    from lightning_dgm.models import overhead
    from lightning_dgm.models.base import System

    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import overhead as bench_overhead
    import throughput

    shipped = (PassThroughProfiler.profile, System._retire_step_logs, overhead._direct_listeners)
    steps = (GAN.training_step, throughput.plain_gan_step)  # timed during the runs, restored after
    levels = [logging.getLogger(name).level for name in ("lightning.pytorch", "lightning.fabric")]
    try:
        medians = bench_overhead.main(["--batches", "3", "--repeats", "1"])
    finally:
        for name, level in zip(("lightning.pytorch", "lightning.fabric"), levels):
            logging.getLogger(name).setLevel(level)
    assert len(medians) == 9 and all(value > 0 for value in medians.values())
    assert (PassThroughProfiler.profile, System._retire_step_logs, overhead._direct_listeners) == shipped
    assert (GAN.training_step, throughput.plain_gan_step) == steps
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| Trainer")]
    assert len(rows) == 7
    for row in rows:  # per batch, in the step, outside it: the step is part of the batch
        per_batch, inside, outside = (float(row[i].replace(",", "")) for i in (2, 4, 5))
        assert 0 < inside < per_batch and outside == pytest.approx(per_batch - inside, abs=1)
