"""FID, KID and IS of a system's samples, every N epochs and at test time.

Protocol: `num_samples` images from `pl_module.sample()` (eval mode, no grad, seeded) are
quantised to uint8 like saved PNGs and scored against real images from the datamodule: the
**train split** (`datamodule.train_set`, without the validation images) at validation, the
**test split** (`datamodule.test_set`) at test. Real features are extracted once per split and
cached on disk, keyed by everything that changes them (see `SampleMetrics.cache_key`), so later
runs never pass over real data again. The values are torchmetrics' (FrechetInceptionDistance,
KernelInceptionDistance, InceptionScore) with our extractor as their `feature=`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
import torchmetrics
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch.utils.data import default_collate
from torchmetrics import Metric
from torchmetrics.image import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance
from torchmetrics.utilities.distributed import gather_all_tensors

from lightning_dgm.callbacks.images import epoch_due, evaluating
from lightning_dgm.metrics.features import fingerprint
from lightning_dgm.types import Samples, signed_unit_to_uint8

# What a metric logs, per supported class (subclasses included).
_OUTPUTS: dict[type[Metric], tuple[str, ...]] = {
    FrechetInceptionDistance: ("fid",),
    KernelInceptionDistance: ("kid_mean", "kid_std"),
    InceptionScore: ("is_mean", "is_std"),
}
# Init args that change how data is served, not what it is.
_LOADER_ARGS = {"batch_size", "num_workers", "pin_memory", "persistent_workers", "download", "prefetch_factor"}


def _kind(metric_class: type[Metric]) -> type[Metric]:
    for kind in _OUTPUTS:
        if isinstance(metric_class, type) and issubclass(metric_class, kind):
            return kind
    raise ValueError(f"SampleMetrics supports {[k.__name__ for k in _OUTPUTS]} (or subclasses), got {metric_class!r}")


class _Given(nn.Module):
    """The metrics' `feature=`: features reach them already extracted, so FID and KID share one
    extractor pass per batch (torchmetrics would run the extractor once per metric)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


class _RealStatistics(NamedTuple):
    count: int
    total: Tensor  # (D,) float64 sum of features
    outer: Tensor  # (D, D) float64 sum of outer products: FID's states
    features: Tensor | None  # (count, D) float32, kept for KID only


def _describe(module: nn.Module | None) -> str | None:
    return None if module is None else f"{type(module).__name__}({module.extra_repr()})"


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lightning_dgm" / "real_features"


def _data_args(datamodule: L.LightningDataModule) -> dict[str, str]:
    """The datamodule's init args that affect its images, read back from same-named attributes."""
    args = {}
    for name, parameter in inspect.signature(type(datamodule).__init__).parameters.items():
        variadic = parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        if name == "self" or name in _LOADER_ARGS or variadic:
            continue
        if not hasattr(datamodule, name):
            raise ValueError(
                f"SampleMetrics keys its real-feature cache by the datamodule's init args, but "
                f"{type(datamodule).__name__} does not keep `{name}` as an attribute of that name"
            )
        value = getattr(datamodule, name)
        # A relative path names different data in different working directories (and the cache is
        # shared by every project of a user): key by where it points.
        if isinstance(value, (str, os.PathLike)) and str(value) and Path(value).expanduser().exists():
            value = Path(value).expanduser().resolve()
        args[name] = repr(value)
    return args


def generated_samples(
    pl_module: L.LightningModule,
    num_samples: int,
    *,
    batch_size: int,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[Samples]:
    """This process's share of `num_samples` samples, as `Samples(index, image, label)` batches of
    at most `batch_size`: `index` (n,) the global sample numbers (ranks take consecutive blocks,
    rank 0 first), `image` (n, C, H, W) float in [-1, 1] on the module's device, `label` (n,) int64
    for conditional systems (sample i gets class i % num_classes: every class equally often, to
    within one) or None.

    Drawn under no_grad in eval mode (train mode comes back when the iterator ends or is closed)
    with a CPU generator seeded by `seed + rank`, so a run is repeatable for a given world size.
    """
    conditional = getattr(pl_module, "conditional", False)
    num_classes = getattr(pl_module, "num_classes", None)
    if conditional and not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(
            f"{type(pl_module).__name__} is conditional but has no int `num_classes` >= 1 "
            f"(got {num_classes!r}): set it so that samples can be drawn class by class"
        )
    indices = torch.arange(num_samples).tensor_split(world_size)[rank]
    generator = torch.Generator().manual_seed(seed + rank)
    with evaluating(pl_module):
        for index in indices.split(batch_size):
            labels = (index % num_classes).to(pl_module.device) if conditional else None
            with torch.no_grad():  # not around the yield: the consumer's grad mode is its own
                images = pl_module.sample(len(index), labels=labels, generator=generator)
            yield Samples(index, images, labels)


class SampleMetrics(L.Callback):
    """Logs `<stage>/fid`, `<stage>/kid_mean`, `<stage>/kid_std`, `<stage>/is_mean`,
    `<stage>/is_std` (those of the chosen `metrics`) after every N-th validation epoch (never in
    the sanity check) and after every test epoch; and, once per stage, the protocol (extractor,
    sample counts, resize, versions) as logger hyperparameters under `sample_metrics`.

    Samples come from `generated_batches` (see `generated_samples`): conditional systems
    (`pl_module.conditional`) get labels cycling over `pl_module.num_classes`, so every class is
    drawn equally often. Under DDP each process generates its share of `num_samples` with seed
    `seed + rank`; the metrics' states are synced by torchmetrics and KID's / IS's random subsets
    are seeded, so every rank gets the same value. The extractors live here, not in the
    LightningModule, and this callback's checkpoint state is empty: no extractor weights in
    checkpoints.

    Args:
        feature: extractor for FID and KID (`InceptionFeatures()` for published numbers,
            `ImageFeatures(...)` for a domain network): uint8 images in, (N, num_features) out;
            required when `metrics` holds either.
        classifier: extractor giving class logits, for IS (`InceptionFeatures(feature="logits_unbiased")`);
            required when `metrics` holds InceptionScore.
        metrics: torchmetrics classes to compute: FrechetInceptionDistance, KernelInceptionDistance,
            InceptionScore, or subclasses.
        num_samples: generated images per evaluation, over all processes (10k or 50k in papers).
        num_real_samples: real images scored, the first ones of the split; None takes the whole split.
        every_n_epochs: score after every N-th validation epoch.
        kid_subset_size, kid_subsets: KID's subset size and count (torchmetrics' 1000 and 100).
        is_splits: IS splits (10, as in Salimans et al. 2016).
        batch_size: images per `sample()` call and per extractor call.
        seed: seed of the sampling noise (+ rank) and of KID's / IS's random subsets.
        cache_dir: folder of real-feature caches; None: `$XDG_CACHE_HOME/lightning_dgm/real_features`
            (default `~/.cache/...`).
    """

    #: The split scored against after validation epochs (test epochs use "test").
    validation_split = "train"

    def __init__(
        self,
        feature: nn.Module | None = None,
        classifier: nn.Module | None = None,
        metrics: Sequence[type[Metric]] = (FrechetInceptionDistance, KernelInceptionDistance, InceptionScore),
        num_samples: int = 10_000,
        num_real_samples: int | None = None,
        every_n_epochs: int = 1,
        kid_subset_size: int = 1000,
        kid_subsets: int = 100,
        is_splits: int = 10,
        batch_size: int = 200,
        seed: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        if min(num_samples, every_n_epochs, batch_size, kid_subset_size, kid_subsets, is_splits) < 1:
            raise ValueError(
                "num_samples, every_n_epochs, batch_size, kid_subset_size, kid_subsets and is_splits must be at least 1"
            )
        if num_real_samples is not None and num_real_samples < 2:
            raise ValueError(f"num_real_samples must be at least 2 (None: the whole split), got {num_real_samples}")
        kinds = [_kind(m) for m in metrics]
        if not kinds or len(set(kinds)) != len(kinds):
            raise ValueError(f"metrics must name each of FID, KID, IS at most once and at least one, got {metrics}")
        for name, module in (("feature", feature), ("classifier", classifier)):
            if module is not None and not isinstance(getattr(module, "num_features", None), int):
                raise ValueError(
                    f"{name} needs an int `num_features` (torchmetrics' contract): wrap the network "
                    f"in lightning_dgm.metrics.ImageFeatures(network, num_features=...)"
                )
        if {FrechetInceptionDistance, KernelInceptionDistance} & set(kinds) and feature is None:
            raise ValueError(
                "FID and KID need image features: pass feature= (e.g. InceptionFeatures()), "
                "or keep only InceptionScore in metrics"
            )
        if InceptionScore in kinds and classifier is None:
            raise ValueError(
                "InceptionScore needs class logits: pass classifier= (e.g. "
                "InceptionFeatures(feature='logits_unbiased')), or leave InceptionScore out of metrics"
            )
        if KernelInceptionDistance in kinds and num_samples < kid_subset_size:
            raise ValueError(f"KID draws subsets of kid_subset_size={kid_subset_size} images: need num_samples >= it")
        self.feature = feature.eval().requires_grad_(False) if feature is not None else None
        self.classifier = classifier.eval().requires_grad_(False) if classifier is not None else None
        self.num_samples, self.num_real_samples, self.every_n_epochs = num_samples, num_real_samples, every_n_epochs
        self.kid_subset_size, self.kid_subsets, self.is_splits = kid_subset_size, kid_subsets, is_splits
        self.batch_size, self.seed = batch_size, seed
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
        with warnings.catch_warnings():  # KID and IS warn that they keep all features: known, and bounded here
            warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
            self.metrics: dict[type[Metric], Metric] = {k: self._make(cls, k) for cls, k in zip(metrics, kinds)}
        self._real: dict[Path, _RealStatistics] = {}  # by cache file: a new datamodule gets its own
        self._fingerprint: str | None = None
        self._protocol_logged: set[str] = set()

    def _make(self, metric_class: type[Metric], kind: type[Metric]) -> Metric:
        if kind is FrechetInceptionDistance:
            return metric_class(feature=_Given(self.feature.num_features))
        if kind is KernelInceptionDistance:
            return metric_class(
                feature=_Given(self.feature.num_features), subsets=self.kid_subsets, subset_size=self.kid_subset_size
            )
        return metric_class(feature=_Given(self.classifier.num_features), splits=self.is_splits)

    # -- real features: once per split, cached on disk ----------------------------------------
    def cache_key(self, trainer: L.Trainer, split: str) -> dict[str, Any]:
        """Everything that changes the real features: the data (datamodule class and the init args
        that shape its images, split, image shape, count) and the extractor (class, settings
        including resize and antialias, and a hash of its weights)."""
        datamodule, dataset = trainer.datamodule, self._dataset(trainer, split)
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.feature)
        return {
            "datamodule": f"{type(datamodule).__module__}.{type(datamodule).__qualname__}",
            "data_args": _data_args(datamodule),
            "split": split,
            "image_shape": list(getattr(datamodule, "image_shape", ())),
            "num_real_samples": self._num_real(dataset),
            "extractor": _describe(self.feature),
            "extractor_sha256": self._fingerprint,
            "input": "uint8",
        }

    def _dataset(self, trainer: L.Trainer, split: str):
        dataset = getattr(trainer.datamodule, f"{split}_set", None) if trainer.datamodule is not None else None
        if dataset is None:
            raise ValueError(
                f"SampleMetrics scores against the datamodule's {split} split, but trainer.datamodule "
                f"has no `{split}_set` (pass a LightningDataModule whose setup() makes it)"
            )
        return dataset

    def _num_real(self, dataset) -> int:
        if self.num_real_samples is not None and self.num_real_samples > len(dataset):
            raise ValueError(f"num_real_samples={self.num_real_samples}, but the split has {len(dataset)} images")
        return self.num_real_samples or len(dataset)

    def cache_path(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        name = key["datamodule"].rsplit(".", 1)[-1]
        return self.cache_dir / f"{name}-{key['split']}-{key['num_real_samples']}-{digest}.pt"

    def real_images(self, batch: Any) -> Tensor:
        """The real images of a batch of the datamodule's dataset."""
        return batch.image

    @torch.no_grad()
    def _extract_real(self, trainer: L.Trainer, split: str, count: int, device: torch.device) -> Tensor:
        """Features (count, D) of the split's first `count` images; each rank extracts a shard."""
        dataset = self._dataset(trainer, split)
        shard = torch.arange(count).tensor_split(trainer.world_size)[trainer.global_rank]
        getitems = getattr(dataset, "__getitems__", None)
        parts = []
        for indices in shard.split(self.batch_size):
            indices = indices.tolist()
            batch = getitems(indices) if getitems is not None else default_collate([dataset[i] for i in indices])
            parts.append(self.feature(signed_unit_to_uint8(self.real_images(batch).to(device))))
        features = torch.cat(parts) if parts else torch.empty(0, self.feature.num_features, device=device)
        if trainer.world_size > 1:
            features = torch.cat(gather_all_tensors(features.contiguous()))  # rank order = index order
        return features

    def _real_statistics(self, trainer: L.Trainer, split: str) -> _RealStatistics:
        key = self.cache_key(trainer, split)
        path = self.cache_path(key)
        if path not in self._real:
            device = trainer.lightning_module.device
            # Every rank must take the same branch: the miss branch is a collective.
            if trainer.strategy.reduce_boolean_decision(path.is_file(), all=True):
                cached = torch.load(path, map_location="cpu", weights_only=True)
                if cached.get("key") != key:
                    raise ValueError(f"real-feature cache {path} was made for another setting: delete it")
                features = cached["features"]
                rank_zero_info(f"SampleMetrics: real {split} features loaded from {path}")
            else:
                with torch.random.fork_rng(devices=[]):  # some data sets draw at access (binarized MNIST)
                    torch.default_generator.manual_seed(self.seed)
                    features = self._extract_real(trainer, split, key["num_real_samples"], device).float().cpu()
                if trainer.local_rank == 0:  # one writer per machine; the rename is atomic
                    path.parent.mkdir(parents=True, exist_ok=True)
                    partial = path.with_suffix(f".{os.getpid()}.partial")
                    torch.save({"key": key, "features": features}, partial)
                    os.replace(partial, path)
                rank_zero_info(f"SampleMetrics: real {split} features extracted and cached in {path}")
            double = features.double()
            kid = KernelInceptionDistance in self.metrics  # only KID needs the features themselves
            self._real[path] = _RealStatistics(
                len(features), double.sum(dim=0), double.T @ double, features if kid else None
            )
        return self._real[path]

    def _load_real_into(self, metric: Metric, kind: type[Metric], trainer: L.Trainer, split: str, device) -> None:
        """Put the real statistics in the metric so that torchmetrics' sync counts them once:
        FID's sums on rank 0 only (they are summed over ranks), KID's features split over ranks
        (they are gathered in rank order)."""
        if kind is InceptionScore:
            return  # IS scores generated images only
        real = self._real_statistics(trainer, split)
        if kind is FrechetInceptionDistance and trainer.global_rank == 0:
            metric.real_features_sum, metric.real_features_cov_sum = real.total.to(device), real.outer.to(device)
            metric.real_features_num_samples = torch.tensor(real.count, device=device)
        elif kind is KernelInceptionDistance:
            if real.count < self.kid_subset_size:
                raise ValueError(
                    f"KID draws subsets of kid_subset_size={self.kid_subset_size}, but the {split} "
                    f"split gives {real.count} real images: lower kid_subset_size"
                )
            metric.real_features = [real.features.tensor_split(trainer.world_size)[trainer.global_rank].to(device)]

    # -- generated images and the metrics -----------------------------------------------------
    def generated_batches(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> Iterator[Samples]:
        """This rank's share of the `num_samples` images that `measure` scores against `split`, with
        this callback's `batch_size` and `seed` (see `generated_samples`): a callback computing
        other sample statistics can score exactly the same images."""
        return generated_samples(
            pl_module,
            self.num_samples,
            batch_size=self.batch_size,
            seed=self.seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
        )

    @torch.no_grad()
    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> dict[str, Tensor]:
        """Score this process's share of samples against `split`; every rank returns the same values.
        A collective under DDP: call it on every rank."""
        if self.num_samples < trainer.world_size:
            raise ValueError(
                f"num_samples={self.num_samples} leaves some of the {trainer.world_size} processes "
                f"without samples: raise it to at least {trainer.world_size}"
            )
        device = pl_module.device
        for extractor in (self.feature, self.classifier):
            if extractor is not None:
                extractor.to(device)
        # The run's own CPU random stream (data order, noise) is the same with and without this callback.
        with torch.random.fork_rng(devices=[]):
            for kind, metric in self.metrics.items():
                metric.to(device).reset()
                self._load_real_into(metric, kind, trainer, split, device)
            for batch in self.generated_batches(trainer, pl_module, split):
                images = signed_unit_to_uint8(batch.image)
                features = self.feature(images) if self.metrics.keys() - {InceptionScore} else None
                for kind, metric in self.metrics.items():
                    if kind is InceptionScore:
                        metric.update(self.classifier(images))
                    else:
                        metric.update(features, real=False)
            values = {}
            for kind, metric in self.metrics.items():
                # KID's and IS's list states sync one all_gather per element (dist_reduce_fx=None): one
                # tensor per list, so that every rank makes the same calls whatever its batch count.
                for name, state in metric.metric_state.items():
                    if isinstance(state, list) and len(state) > 1:
                        setattr(metric, name, [torch.cat(state)])
                # KID's and IS's random subsets come from the global CPU RNG: the same on every rank.
                torch.default_generator.manual_seed(self.seed)
                result = metric.compute()  # a collective under DDP
                result = result if isinstance(result, tuple) else (result,)
                values.update({name: value.float() for name, value in zip(_OUTPUTS[kind], result)})
        return values

    def protocol(self, trainer: L.Trainer, stage: str, split: str) -> dict[str, Any]:
        """How the numbers were made, logged beside them."""
        try:
            fidelity = version("torch-fidelity")
        except PackageNotFoundError:
            fidelity = None
        real = self._num_real(self._dataset(trainer, split)) if self.feature is not None else None
        return {
            "metrics": [type(m).__name__ for m in self.metrics.values()],
            "extractor": _describe(self.feature),
            "extractor_sha256": self._fingerprint,
            "resize": getattr(self.feature, "image_size", None),
            "antialias": getattr(self.feature, "antialias", None),
            "classifier": _describe(self.classifier),
            "classifier_resize": getattr(self.classifier, "image_size", None),
            "classifier_antialias": getattr(self.classifier, "antialias", None),
            "input": "uint8 [0, 255] (generated images rounded from [-1, 1])",
            "num_generated": self.num_samples,
            f"{stage}_real": None if real is None else f"{split} split, first {real} images",
            "seed": self.seed,
            "kid_subset_size": self.kid_subset_size,
            "kid_subsets": self.kid_subsets,
            "is_splits": self.is_splits,
            "world_size": trainer.world_size,
            "torch": str(torch.__version__),
            "torchmetrics": torchmetrics.__version__,
            "torch_fidelity": fidelity,
        }

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, split: str) -> None:
        for name, value in self.measure(trainer, pl_module, split).items():
            # Equal on every rank already; syncing only averages equal numbers (and Lightning asks for it).
            pl_module.log(f"{stage}/{name}", value, sync_dist=True)
        if stage not in self._protocol_logged:
            self._protocol_logged.add(stage)
            for logger in trainer.loggers:
                logger.log_hyperparams({"sample_metrics": self.protocol(trainer, stage, split)})

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.state.fn == TrainerFn.FITTING and not epoch_due(trainer, self.every_n_epochs):
            return
        self._log(trainer, pl_module, "val", self.validation_split)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, "test", "test")
