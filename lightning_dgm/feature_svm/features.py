"""The pure parts of DCGAN's feature-learning evaluation: conv features of a discriminator,
max-pooled to 4x4, and a linear L2-SVM on them (see `lightning_dgm.feature_svm`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from lightning_dgm.callbacks.images import evaluating
from lightning_dgm.datamodules.base import keep_batch
from lightning_dgm.errors import ConfigError

#: Side of the grid every conv layer's map is max-pooled to (Sec. 5.1: "a 4 x 4 spatial grid").
POOLED_SIDE = 4
#: Default SVM regularisation grid; the paper does not state its C.
DEFAULT_C = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


# -- pure parts: features and the SVM -----------------------------------------------------------
def conv_discriminator(model: nn.Module) -> nn.Module:
    """The model's discriminator, if it has conv feature maps (a `features(x)` method, as
    DCGANDiscriminator); otherwise one clear error."""
    name = type(model).__name__
    discriminator = getattr(model, "discriminator", None)
    if not isinstance(discriminator, nn.Module):
        raise ConfigError(
            f"{name} has no discriminator: the feature-SVM evaluation needs a GAN checkpoint whose "
            f"discriminator is convolutional (e.g. lightning_dgm.nets.DCGANDiscriminator)"
        )
    if not callable(getattr(discriminator, "features", None)):
        raise ConfigError(
            f"{name}'s discriminator {type(discriminator).__name__} has no conv feature maps (no "
            f"features(x) method): use a GAN with a conv discriminator such as DCGANDiscriminator"
        )
    return discriminator


def conv_features(discriminator: nn.Module, images: Tensor) -> Tensor:
    """Images (N, C, H, W) in [-1, 1] -> features (N, 16 * sum of the conv layers' channels).

    Each map of `discriminator.features(images)` is max-pooled to 4x4 (adaptive windows, which
    overlap when the side is not a multiple of 4, e.g. 7x7 for 28-pixel images) and flattened
    channel-major; the layers are concatenated shallowest first.
    """
    maps = discriminator.features(images)
    if not maps or any(m.dim() != 4 for m in maps):
        raise ConfigError(f"{type(discriminator).__name__}.features() must return (N, C, H, W) maps")
    return torch.cat([F.adaptive_max_pool2d(m, POOLED_SIDE).flatten(1) for m in maps], dim=1)


@torch.no_grad()
def extract_features(
    discriminator: nn.Module, dataset: Dataset, batch_size: int = 256, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, D) float32 and labels (N,) int64 of a dataset of `ImageBatch`es, in order.

    The discriminator is moved to `device` and run in eval mode; its training flag is restored.
    """
    features, labels = [], []
    with evaluating(discriminator.to(device)):
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=keep_batch):
            features.append(conv_features(discriminator, batch.image.to(device)).float().cpu())
            labels.append(batch.label)
    return torch.cat(features).numpy(), torch.cat(labels).numpy()


def balanced_subset(labels: Tensor, num_labels: int, seed: int = 0) -> Tensor:
    """Sorted indices of `num_labels` items with (as nearly as possible) equally many per class,
    drawn with a generator seeded by `seed`; leftover slots go to randomly chosen classes."""
    classes = labels.unique()
    if not len(classes) <= num_labels <= len(labels):
        raise ConfigError(
            f"num_labels must be between the number of classes ({len(classes)}) and the size of the train "
            f"split ({len(labels)}), got {num_labels}; lower --num_labels, or omit it to use the whole split"
        )
    generator = torch.Generator().manual_seed(seed)
    shares = torch.full((len(classes),), num_labels // len(classes))
    shares[torch.randperm(len(classes), generator=generator)[: num_labels % len(classes)]] += 1
    chosen = []
    for label, share in zip(classes.tolist(), shares.tolist()):
        members = (labels == label).nonzero().flatten()
        if len(members) < share:
            raise ConfigError(
                f"class {label} has {len(members)} train images, fewer than the {share} that a class-balanced "
                f"draw of num_labels={num_labels} needs; lower --num_labels"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:share]])
    return torch.cat(chosen).sort().values


def fit_svm(features: np.ndarray, labels: np.ndarray, C: float, seed: int = 0) -> Pipeline:
    """Standardised features -> linear L2-SVM (squared hinge, L2 penalty, one-vs-rest)."""
    svm = LinearSVC(C=C, loss="squared_hinge", penalty="l2", dual="auto", max_iter=10_000, random_state=seed)
    return make_pipeline(StandardScaler(), svm).fit(features, labels)


def check_grid(Cs: tuple[float, ...] | list[float], has_val: bool) -> list[float]:
    if not Cs or any(c <= 0 for c in Cs):
        raise ConfigError(f"C must be one or more positive numbers, got {list(Cs)}")
    if len(Cs) > 1 and not has_val:
        raise ConfigError(
            f"choosing C among {sorted(Cs)} needs a validation split, and the data has none: "
            f"pass --data.val_size=N (N > 0) or a single --C"
        )
    return sorted(Cs)


@dataclass(frozen=True)
class SVMResult:
    C: float
    val_accuracy: float | None  # None when a single C was given and there is no validation split
    test_accuracy: float


def evaluate_svm(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    Cs: tuple[float, ...] | list[float],
    val: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
) -> SVMResult:
    """Fit on `train` for each C, keep the C with the best `val` accuracy (ties: the smallest C),
    and report that SVM's accuracy on `test`. Each argument is (features (N, D), labels (N,))."""
    Cs = check_grid(Cs, has_val=val is not None)
    best, best_val = None, None
    for C in Cs:
        svm = fit_svm(*train, C=C, seed=seed)
        accuracy = None if val is None else float(svm.score(*val))
        if best is None or (accuracy is not None and accuracy > best_val):
            best, best_val = (C, svm), accuracy
    C, svm = best
    return SVMResult(C=C, val_accuracy=best_val, test_accuracy=float(svm.score(*test)))


# -- the command: checkpoint + config -> table ------------------------------------------------
