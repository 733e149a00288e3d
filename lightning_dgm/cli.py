"""`python -m lightning_dgm {fit,validate,test,predict} --config configs/<experiment>.yaml`."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from jsonargparse import Namespace
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ProgressBar as LightningBar
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from lightning_dgm.callbacks.progress import ProgressBar
from lightning_dgm.callbacks.safety import NonFiniteGuard, ResumeCheckpoint
from lightning_dgm.callbacks.sample_writer import SampleWriter
from lightning_dgm.checkpoints import AtomicCheckpointIO, config_mismatches, read_checkpoint
from lightning_dgm.errors import CheckpointError, ConfigError
from lightning_dgm.models.translation import TranslationSystem
from lightning_dgm.runs import (
    SharedRunFolder,
    config_name,
    log_folder,
    make_run_dir,
    previous_wandb_id,
    requeued_checkpoint,
    resolve_run_dir,
    wandb_offline_fallback,
)

#: Datamodule facts that flow into the model and its networks wherever an argument has the name
#: (`scale`: a super-resolution datamodule's upscaling factor).
DATA_FACTS = ("image_shape", "num_classes", "scale")
#: Loggers that nest name/version folders of their own: the CLI points them straight at the run folder.
_FOLDER_LOGGERS = (TensorBoardLogger, CSVLogger)


class RunConfig(SaveConfigCallback):
    """This invocation's resolved config in the run folder, under a name no earlier command used
    (`lightning_dgm.runs.config_name`): `config.yaml` of the first fit holds no ckpt_path, so
    re-running it starts a new run instead of continuing (and overwriting) this one."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        stage = getattr(stage, "value", stage)  # Lightning passes TrainerFn, a str Enum
        if not self.already_saved:
            self.config_filename = config_name(Path(trainer.default_root_dir), stage, trainer.ckpt_path is not None)
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """The resolved config is also the W&B run's config (rank zero; a resume updates it)."""
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=False, skip_link_targets=False))
                logger.experiment.config.update(resolved, allow_val_change=True)


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _is_subclass(class_path: str, base: type | tuple[type, ...]) -> bool:
    try:
        cls = _import(class_path)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(cls, type) and issubclass(cls, base)


def _component_is(argument: str, model: Namespace, base: type | tuple[type, ...]) -> bool:
    """Whether `argument` (model.init_args.<name>.init_args...) configures a component of the system
    (a network, an optimizer) whose class derives from `base`."""
    parts = argument.split(".")
    if len(parts) < 4 or parts[:2] != ["model", "init_args"]:
        return False
    component = model.init_args.get(parts[2]) if isinstance(model.init_args, Namespace) else None
    return isinstance(component, Namespace) and _is_subclass(str(component.get("class_path")), base)


#: components whose state a resumed fit restores from the checkpoint, whatever the command line says
_RESTORED = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)


def _accepts(class_path: str, argument: str) -> bool:
    try:
        return argument in inspect.signature(_import(class_path)).parameters
    except (ImportError, AttributeError, ValueError, TypeError):
        return False


def _loggers(value: Any) -> list[Namespace]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, Namespace) and "class_path" in v]


class LightningDGMCLI(LightningCLI):
    """LightningCLI with the framework's conventions:

    * any LightningModule / LightningDataModule by `class_path`; optimizers are arguments of the
      system (`OptimizerCallable`), so `auto_configure_optimizers=False`;
    * `image_shape`, `num_classes` and `scale` of the datamodule are linked (at instantiation) into the
      system and into each injected network whose constructor takes them;
    * every run writes into its own run folder (see `lightning_dgm.runs`);
    * W&B falls back to offline mode when no API key is configured or the server does not
      answer within seconds; a resumed run continues its W&B run;
    * a `--ckpt_path` is read safely and must match the config's model (`lightning_dgm.checkpoints`);
      `predict` refuses to sample an untrained model unless `--untrained true`;
    * every run gets `NonFiniteGuard` and `ResumeCheckpoint` (`lightning_dgm.callbacks.safety`)
      unless its config lists them, and writes checkpoints atomically;
    * Lightning's default progress bar is `lightning_dgm.callbacks.ProgressBar` (redrawn by the clock,
      not after every batch) unless the config chooses a bar;
    * `predict` makes `sample_writer.num_samples` samples and writes them with `SampleWriter`;
      translation systems translate the test split instead (`sample_writer.output_dir`,
      `write_png` apply; the count is the split's).
    """

    #: the newest instance, for `main` to clean up after a failure inside the constructor
    latest: LightningDGMCLI | None = None

    def __init__(self, args: Any = None, run: bool = True) -> None:
        LightningDGMCLI.latest = self
        self.run_dir: Path | None = None
        self.created_run_dir: Path | None = None
        self._wandb_offline: str | None = None
        self._command_line: list[str] = []
        super().__init__(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_callback=RunConfig,
            save_config_kwargs={"overwrite": True},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(SampleWriter, "sample_writer")
        parser.add_argument(
            "--untrained", type=bool, default=False, help="predict: sample the model as built, without --ckpt_path"
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        if isinstance(args, list | tuple) or args is None:
            self._command_line = [str(a) for a in (sys.argv[1:] if args is None else args)]
        super().parse_arguments(parser, args)

    def _flag_given(self, argument: str) -> bool:
        """Whether the command line set `argument` (written with or without `init_args`)."""
        short = argument.replace(".init_args", "")
        flags = {a[2:].split("=", 1)[0].replace(".init_args", "") for a in self._command_line if a.startswith("--")}
        return any(short == f or short.startswith(f + ".") for f in flags)

    def _parse_ckpt_path(self) -> None:
        """Reads `--ckpt_path` safely and checks it against the config before LightningCLI lets the
        checkpoint's hyperparameters replace the config's model."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path:
            if subcommand == "predict" and not config.get("untrained"):
                raise ConfigError(
                    "predict needs --ckpt_path <run folder>/checkpoints/last.ckpt (add --untrained true to "
                    "sample the model as built, untrained)"
                )
            return
        checkpoint = read_checkpoint(ckpt_path)
        mismatches = config_mismatches(checkpoint, config.get("model"))
        mismatches = [m for m in mismatches if m[0].rsplit(".", 1)[-1] not in DATA_FACTS]  # linked from the data
        del checkpoint
        flagged = [m for m in mismatches if self._flag_given(m[0])]
        # A different class, or a network argument the user asked for, cannot be honoured by these weights.
        wrong = [m for m in mismatches if m[0].endswith("class_path")]
        wrong += [m for m in flagged if _component_is(m[0], config.model, nn.Module)]
        for argument, saved, asked in wrong:
            raise CheckpointError(
                f"{ckpt_path} does not match the command: {argument} is {saved} in the checkpoint but {asked} "
                "in the command; use the run's own config (<run folder>/config.yaml) or a checkpoint of this model"
            )
        for argument, saved, asked in flagged:
            if subcommand == "fit" and _component_is(argument, config.model, _RESTORED):
                raise CheckpointError(
                    f"{argument} {asked} would be ignored: resuming from {ckpt_path} restores the optimizer and "
                    f"scheduler states, which hold {saved}; drop the flag, or start a new run (no --ckpt_path)"
                )
        super()._parse_ckpt_path()
        config = self.config[subcommand]
        for argument, saved, asked in mismatches:
            if (argument, saved, asked) in flagged:  # a training or evaluation knob the user set: theirs wins
                config[argument] = asked
                rank_zero_info(f"{argument}: {asked!r} from the command line (the checkpoint has {saved!r})")
            else:
                rank_zero_info(f"{argument}: the checkpoint's {saved!r} is used (the config says {asked!r})")

    def _subcommand_config(self) -> Namespace:
        return self.config[self.subcommand] if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        config = self._subcommand_config()
        self._link_data_facts(config)
        ckpt_path = config.get("ckpt_path")
        self.run_dir = resolve_run_dir(config.trainer.default_root_dir or "runs", ckpt_path)
        if self.subcommand == "fit" and not ckpt_path and (requeued := requeued_checkpoint(self.run_dir)):
            rank_zero_info(f"Requeued SLURM job: resuming from {requeued}")
            config.ckpt_path = ckpt_path = str(requeued)
        for logger in _loggers(config.trainer.logger):
            if "save_dir" in logger.init_args:
                logger.init_args.save_dir = str(self.run_dir)
            if _is_subclass(logger.class_path, _FOLDER_LOGGERS):  # the run folder, or this invocation's folder in it
                logger.init_args.name = ""
                logger.init_args.version = log_folder(self.run_dir, self.subcommand, ckpt_path is not None)
            if _is_subclass(logger.class_path, WandbLogger):
                self._wandb_offline = wandb_offline_fallback()
                # A fit in an existing run folder resumes it (--ckpt_path, or a requeued SLURM job).
                previous = previous_wandb_id(self.run_dir) if self.subcommand == "fit" else None
                if previous and not logger.init_args.get("id") and not logger.init_args.get("version"):
                    logger.init_args.id = previous  # the resumed run continues its W&B run
                    logger.init_args.resume = "allow"

    def _link_data_facts(self, config: Namespace) -> None:
        """Links only where the chosen classes take the argument, so any system and network fits."""
        if not isinstance(config.get("data"), Namespace) or not isinstance(config.get("model"), Namespace):
            return
        parser = self._parser(self.subcommand)
        data_class, model = config.data.class_path, config.model
        for fact in DATA_FACTS:
            if not hasattr(_import(data_class), fact):
                continue
            if _accepts(model.class_path, fact):
                parser.link_arguments(f"data.{fact}", f"model.init_args.{fact}", apply_on="instantiate")
            for name, value in vars(model.get("init_args") or Namespace()).items():
                if isinstance(value, Namespace) and "class_path" in value and _accepts(value.class_path, fact):
                    parser.link_arguments(
                        f"data.{fact}", f"model.init_args.{name}.init_args.{fact}", apply_on="instantiate"
                    )

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        trainer = super().instantiate_trainer(default_root_dir=str(self.run_dir), **kwargs)
        for guard in (NonFiniteGuard, ResumeCheckpoint):  # on in every run; a config may list its own
            if not any(isinstance(c, guard) for c in trainer.callbacks):
                trainer.callbacks.append(guard())
        configured = self._subcommand_config().trainer.callbacks or []
        configured = [configured] if isinstance(configured, Namespace) else configured
        bar, chosen = trainer.progress_bar_callback, any(_is_subclass(c.class_path, LightningBar) for c in configured)
        if type(bar) is TQDMProgressBar and not chosen:  # Lightning's default bar: the same, redrawn by the clock
            trainer.callbacks[trainer.callbacks.index(bar)] = ProgressBar()
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default writer
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        for callback in trainer.checkpoint_callbacks:
            if callback.dirpath is None:
                callback.dirpath = str(self.run_dir / "checkpoints")
            last = Path(callback.dirpath) / "last.ckpt"
            if callback.save_last and last.is_file():  # a resumed (or moved) run keeps writing last.ckpt,
                callback.last_model_path = str(last)  # not last-v1.ckpt beside a stale one
        trainer.callbacks.insert(0, SharedRunFolder(self.run_dir))  # before any callback reads the folder
        self.created_run_dir = make_run_dir(self.run_dir, trainer.global_rank)
        rank_zero_info(f"Run folder: {self.run_dir}")
        if self._wandb_offline:
            rank_zero_info(
                f"W&B: {self._wandb_offline}, logging offline to {self.run_dir / 'wandb'}; "
                f"upload later with `wandb sync {self.run_dir / 'wandb'}/offline-run-*`"
            )
        return trainer

    def _finish_wandb(self) -> None:
        """Close the W&B run so its files are complete when the command returns (Lightning leaves it open)."""
        if any(isinstance(logger, WandbLogger) for logger in self.trainer.loggers):
            import wandb

            if wandb.run is not None:
                wandb.finish()

    after_fit = after_validate = after_test = after_predict = _finish_wandb

    def predict(self, model: L.LightningModule, datamodule: L.LightningDataModule | None = None, **kwargs: Any) -> None:
        writer: SampleWriter = self.config_init[self.subcommand]["sample_writer"]
        if isinstance(model, TranslationSystem):  # translations of the test split, not samples from noise
            self.trainer.predict(model, datamodule=datamodule, **kwargs)
            source = getattr(datamodule, "predict_dir", None) or "the test split"
            rank_zero_info(f"Outputs for {source} written to {writer.directory(self.trainer)}")
            return
        loader = writer.dataloader(
            getattr(datamodule, "num_classes", None), rank=self.trainer.global_rank, world_size=self.trainer.world_size
        )
        self.trainer.predict(model, dataloaders=loader, **kwargs)
        rank_zero_info(f"Samples written to {writer.directory(self.trainer)}")
