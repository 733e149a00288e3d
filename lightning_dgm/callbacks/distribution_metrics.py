"""The machinery shared by `SampleMetrics` and `TranslationMetrics`: score a set of generated images
against a set of real ones with the chosen metrics (`lightning_dgm.metrics.SampleMetric`s), after
every N-th validation epoch and after every test epoch, and log the protocol beside the values.

Per evaluation of a split: the real features come from the on-disk cache (`real_features`), the
generated images from the callback's source (`sources`), quantised to uint8 like saved PNGs and
passed through the extractors (one forward when the feature extractor and the classifier are the
same Inception), streamed into a `GeneratedSet`, synced over processes; then each metric computes
its values from these inputs with a CPU generator seeded by `seed`. Every rank gets the same values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torchmetrics
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from lightning_dgm.callbacks.budget import TimeShare
from lightning_dgm.callbacks.images import epoch_due
from lightning_dgm.callbacks.real_features import RealFeatureCache, describe
from lightning_dgm.callbacks.sources import ImageSource
from lightning_dgm.errors import ConfigError
from lightning_dgm.metrics.distances import feature_sums, statistics_from_sums
from lightning_dgm.metrics.features import FeaturesAndLogits
from lightning_dgm.metrics.generated import GeneratedSet
from lightning_dgm.metrics.scores import FEATURE_INPUTS, REAL_INPUTS, Input, SampleMetric
from lightning_dgm.types import signed_unit_to_uint8


class DistributionMetrics(L.Callback):
    """Base of the callbacks that compare generated images with real ones (see the module docstring).
    Subclasses choose the `source` of both sets and the split scored after validation epochs
    (`validation_split`; test epochs score "test"). The extractors live here, not in the
    LightningModule, and the callback's checkpoint state is empty: no extractor weights in checkpoints.
    """

    #: The split scored against after validation epochs (test epochs use "test").
    validation_split = "train"

    def __init__(
        self,
        source: ImageSource,
        metrics: Sequence[SampleMetric],
        feature: nn.Module | None = None,
        classifier: nn.Module | None = None,
        every_n_epochs: int = 1,
        batch_size: int = 200,
        seed: int = 0,
        cache_dir: str | None = None,
        max_time_share: float | None = None,
    ) -> None:
        who = type(self).__name__
        metrics = list(metrics)
        if min(every_n_epochs, batch_size) < 1:
            raise ConfigError(f"every_n_epochs and batch_size must be at least 1, got {every_n_epochs}, {batch_size}")
        for metric in metrics:
            if not isinstance(metric, SampleMetric):
                hint = ": pass an instance, e.g. FrechetDistance()" if isinstance(metric, type) else ""
                raise ConfigError(
                    f"{who} supports lightning_dgm.metrics.SampleMetric instances (FrechetDistance(), "
                    f"KernelDistance(), InceptionScore(), ...), got {metric!r}{hint}"
                )
        outputs = [name for metric in metrics for name in metric.outputs]
        if not metrics or len(set(outputs)) != len(outputs):
            raise ConfigError(f"{who} needs at least one metric, and no two that log the same name, got {metrics}")
        for name, module in (("feature", feature), ("classifier", classifier)):
            if module is not None and not isinstance(getattr(module, "num_features", None), int):
                raise ConfigError(
                    f"{name} needs an int `num_features`: wrap the network in "
                    f"lightning_dgm.metrics.ImageFeatures(network, num_features=...)"
                )
        for metric in metrics:
            if metric.needs & FEATURE_INPUTS and feature is None:
                raise ConfigError(
                    f"{type(metric).__name__} needs image features: pass feature= (e.g. InceptionFeatures()), "
                    "or leave it out of metrics"
                )
            if Input.GENERATED_LOGITS in metric.needs and classifier is None:
                raise ConfigError(
                    f"{type(metric).__name__} needs class logits: pass classifier= (e.g. "
                    "InceptionFeatures(feature='logits_unbiased')), or leave it out of metrics"
                )
        self.source, self.metrics = source, metrics
        self.needs = frozenset().union(*(metric.needs for metric in metrics))
        self.feature = feature.eval().requires_grad_(False) if feature is not None else None
        self.classifier = classifier.eval().requires_grad_(False) if classifier is not None else None
        self.extractors = FeaturesAndLogits(self.feature, self.classifier)
        self.every_n_epochs, self.batch_size, self.seed = every_n_epochs, batch_size, seed
        self.cache = RealFeatureCache(self.feature, cache_dir, batch_size, seed) if self.needs & REAL_INPUTS else None
        self._real: dict[Path, dict[str, Any]] = {}  # real inputs by cache file: a new datamodule gets its own
        self._protocol_logged: set[str] = set()
        self.max_time_share = max_time_share
        self.time_share = TimeShare(max_time_share) if max_time_share is not None else None
        self._real_seconds = 0.0  # of the last measure: the real features' time, left out of the budget

    # -- the inputs -------------------------------------------------------------------------------
    def _check_datamodule(self, trainer: L.Trainer) -> L.LightningDataModule:
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "evaluation_batches"):
            raise ConfigError(
                f"{type(self).__name__} reads real images through the datamodule's evaluation_batches(): "
                f"pass a lightning_dgm datamodule, got {type(datamodule).__name__}"
            )
        return datamodule

    def _real_inputs(self, trainer: L.Trainer, split: str, device: torch.device) -> dict[str, Any]:
        """The real fields of MetricInputs that the metrics need (none when they need none)."""
        if self.cache is None:
            return {}
        datamodule = self._check_datamodule(trainer)
        count, field = self.source.num_real(datamodule, split), self.source.real_field
        for metric in self.metrics:
            metric.check_set_size(count, self.source.describe_real(split, count))
        path = self.cache.path(self.cache.key(datamodule, split, count, field))
        if path not in self._real:
            features = self.cache.features(trainer, split, count, field)  # a collective under DDP
            real = {}
            if Input.REAL_FEATURES in self.needs:
                real["real_features"] = features
            if Input.REAL_STATISTICS in self.needs:
                real["real_statistics"] = statistics_from_sums(len(features), *feature_sums(features))
            self._real[path] = real
        return {name: _to(value, device) for name, value in self._real[path].items()}

    # -- the values -------------------------------------------------------------------------------
    @torch.no_grad()
    def measure(
        self, trainer: L.Trainer, pl_module: L.LightningModule, split: str, allowance: float | None = None
    ) -> dict[str, Tensor] | None:
        """Score this process's share of generated images against `split`; every rank returns the
        same values. A collective under DDP: call it on every rank. With an `allowance` in seconds
        (`max_time_share`, cost not known yet), None when the first batch shows it would take longer."""
        num_generated = self.source.num_generated(trainer.datamodule, split)
        if num_generated < trainer.world_size:
            raise ConfigError(
                f"{self.source.describe_generated(split, num_generated)} leave some of the {trainer.world_size} "
                "processes without images: generate at least one per process"
            )
        for metric in self.metrics:
            metric.check_set_size(num_generated, self.source.describe_generated(split, num_generated))
        device = pl_module.device
        self.extractors.to(device)
        # The run's own CPU random stream (data order, noise) is the same with and without this callback.
        with torch.random.fork_rng(devices=[]):
            num_features = self.feature.num_features if self.feature is not None else None
            generated = GeneratedSet(self.needs, num_features).to(device)
            started = self._clock(device)
            for index, images in enumerate(self.source.generated(trainer, pl_module, split)):
                features, logits = self.extractors(
                    signed_unit_to_uint8(images), features=generated.wants_features, logits=generated.keep_logits
                )
                generated.update(features, logits)
                if index == 0 and allowance is not None:
                    batches = math.ceil(num_generated / trainer.world_size / self.batch_size)
                    over = self.time_share.over(self._clock(device) - started, batches, allowance)
                    if trainer.strategy.broadcast(over, src=0):  # rank 0 decides for all
                        return None
            # Real inputs after the first batch: their one-off extraction is never started for nothing.
            real_started = self._clock(device)
            real = self._real_inputs(trainer, split, device)
            self._real_seconds = self._clock(device) - real_started
            inputs = generated.compute()._replace(**real)  # a collective under DDP
            values = {}
            for metric in self.metrics:
                computed = metric.compute(inputs, torch.Generator().manual_seed(self.seed))
                values.update({name: value.float() for name, value in computed.items()})
        return values

    def protocol(self, trainer: L.Trainer, stage: str, split: str) -> dict[str, Any]:
        """How the numbers were made, logged beside them."""
        try:
            fidelity = version("torch-fidelity")
        except PackageNotFoundError:
            fidelity = None
        num_real = self.source.num_real(trainer.datamodule, split) if self.cache is not None else None
        return {
            "metrics": {type(metric).__name__: metric.settings() for metric in self.metrics},
            "extractor": describe(self.feature),
            "extractor_sha256": self.cache.fingerprint if self.cache is not None else None,
            "resize": getattr(self.feature, "image_size", None),
            "antialias": getattr(self.feature, "antialias", None),
            "classifier": describe(self.classifier),
            "classifier_resize": getattr(self.classifier, "image_size", None),
            "classifier_antialias": getattr(self.classifier, "antialias", None),
            "shared_inception_forward": self.extractors.shared,
            "input": "uint8 [0, 255] (generated images rounded from [-1, 1])",
            **self.source.protocol(stage, split, num_real, self.source.num_generated(trainer.datamodule, split)),
            "seed": self.seed,
            "world_size": trainer.world_size,
            "torch": str(torch.__version__),
            "torchmetrics": torchmetrics.__version__,
            "torch_fidelity": fidelity,
        }

    # -- when -------------------------------------------------------------------------------------
    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, split: str) -> None:
        if self.time_share is not None and trainer.state.fn == TrainerFn.FITTING:
            values = self._measure_within_budget(trainer, pl_module, split)
        else:
            values = self.measure(trainer, pl_module, split)
        if values is None:  # postponed
            return
        for name, value in values.items():
            # Equal on every rank already; syncing only averages equal numbers (and Lightning asks for it).
            pl_module.log(f"{stage}/{name}", value, sync_dist=True)
        if stage not in self._protocol_logged:
            self._protocol_logged.add(stage)
            for logger in trainer.loggers:
                logger.log_hyperparams({"sample_metrics": self.protocol(trainer, stage, split)})

    def _measure_within_budget(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str):
        """`measure` under `max_time_share` during fit: None when postponed (said in one info line)."""
        budget = self.time_share
        allowance = budget.allowance()
        if not trainer.strategy.broadcast(budget.due(), src=0):
            self._postponed(trainer, budget.expected, allowance)
            return None
        started, self._real_seconds = self._clock(pl_module.device), 0.0
        values = self.measure(trainer, pl_module, split, allowance if budget.expected is None else None)
        budget.exclude(self._real_seconds)
        budget.spend(self._clock(pl_module.device) - started - self._real_seconds, completed=values is not None)
        if values is None:
            self._postponed(trainer, budget.expected, allowance)
        return values

    def _clock(self, device: torch.device) -> float:
        """The budget's clock once the device has done what was asked of it (0 without a budget)."""
        if self.time_share is None:
            return 0.0
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return self.time_share.clock()

    def _postponed(self, trainer: L.Trainer, expected: float, allowance: float) -> None:
        rank_zero_info(
            f"{type(self).__name__}: epoch {trainer.current_epoch}'s evaluation postponed: it takes about "
            f"{expected:.0f} s, and max_time_share {self.max_time_share} allows {max(allowance, 0):.0f} s now"
        )

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.time_share is not None:
            self.time_share.start()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.state.fn == TrainerFn.FITTING and not epoch_due(trainer, self.every_n_epochs):
            return
        self._log(trainer, pl_module, "val", self.validation_split)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, "test", "test")


def _to(value: Any, device: torch.device) -> Any:
    """A tensor, or a NamedTuple of tensors (and ints), on `device`."""
    if isinstance(value, Tensor):
        return value.to(device)
    return type(value)(*(_to(v, device) for v in value)) if isinstance(value, tuple) else value
