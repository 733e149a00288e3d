"""`python -m lightning_dgm {fit,validate,test,predict} --config configs/<experiment>.yaml`."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info

from lightning_dgm.callbacks.sample_writer import SampleWriter
from lightning_dgm.models.translation import TranslationSystem
from lightning_dgm.runs import resolve_run_dir, wandb_offline_fallback

#: Datamodule facts that flow into the model and its networks wherever an argument has the name.
DATA_FACTS = ("image_shape", "num_classes")
#: Loggers that nest name/version folders of their own: the CLI points them straight at the run folder.
_FOLDER_LOGGERS = (TensorBoardLogger, CSVLogger)


class RunConfig(SaveConfigCallback):
    """The resolved config in the run folder: `config.yaml` for fit, `<stage>_config.yaml` otherwise."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        stage = getattr(stage, "value", stage)  # Lightning passes TrainerFn, a str Enum
        if stage != "fit":
            self.config_filename = f"{stage}_config.yaml"
        super().setup(trainer, pl_module, stage)


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _is_subclass(class_path: str, base: type | tuple[type, ...]) -> bool:
    try:
        cls = _import(class_path)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(cls, type) and issubclass(cls, base)


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
    * `image_shape` and `num_classes` of the datamodule are linked (at instantiation) into the
      system and into each injected network whose constructor takes them;
    * every run writes into its own run folder (see `lightning_dgm.runs`);
    * W&B falls back to offline mode when no API key is configured;
    * `predict` makes `sample_writer.num_samples` samples and writes them with `SampleWriter`;
      translation systems translate the test split instead (`sample_writer.output_dir`,
      `write_png` apply; the count is the split's).
    """

    def __init__(self, args: Any = None, run: bool = True) -> None:
        self.run_dir: Path | None = None
        self._wandb_offline = False
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

    def _subcommand_config(self) -> Namespace:
        return self.config[self.subcommand] if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        config = self._subcommand_config()
        self._link_data_facts(config)
        self.run_dir = resolve_run_dir(config.trainer.default_root_dir or "runs", config.get("ckpt_path"))
        for logger in _loggers(config.trainer.logger):
            if "save_dir" in logger.init_args:
                logger.init_args.save_dir = str(self.run_dir)
            if _is_subclass(logger.class_path, _FOLDER_LOGGERS):  # write straight into the run folder
                logger.init_args.name, logger.init_args.version = "", ""
            if _is_subclass(logger.class_path, WandbLogger):
                self._wandb_offline = wandb_offline_fallback()

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
        for callback in trainer.checkpoint_callbacks:
            if callback.dirpath is None:
                callback.dirpath = str(self.run_dir / "checkpoints")
        rank_zero_info(f"Run folder: {self.run_dir}")
        if self._wandb_offline:
            rank_zero_info(
                f"W&B: no API key found, logging offline to {self.run_dir / 'wandb'}; "
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
            rank_zero_info(f"Translations of the test split written to {writer.directory(self.trainer)}")
            return
        loader = writer.dataloader(
            getattr(datamodule, "num_classes", None), rank=self.trainer.global_rank, world_size=self.trainer.world_size
        )
        self.trainer.predict(model, dataloaders=loader, **kwargs)
        rank_zero_info(f"Samples written to {writer.directory(self.trainer)}")


def main(args: Any = None) -> None:
    LightningDGMCLI(args=args)
