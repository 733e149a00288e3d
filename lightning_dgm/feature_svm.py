"""DCGAN's feature-learning evaluation (Radford, Metz & Chintala 2015, Sec. 5.1 and 5.2).

A trained discriminator as a feature extractor: each conv layer's activation map is max-pooled
to a 4x4 grid, the grids are flattened and concatenated, and a linear L2-SVM (squared hinge loss,
L2 penalty: scikit-learn's LinearSVC, one-vs-rest) is trained on labelled train images and scored
on the test split. The paper reports SVHN with 1,000 class-balanced labels (22.48% test error).
The same procedure on the same discriminator class, freshly initialised (N(0, 0.02)), is printed
beside it: what the features owe to GAN training rather than to the architecture. With `--seed`
equal to the run's `seed_everything` (0 in every config) it is exactly the trained D's initial state.

    python -m lightning_dgm.feature_svm --ckpt_path runs/dcgan_svhn/version_0/checkpoints/last.ckpt \\
        --num_labels 1000

Choices the paper leaves open, made here:
  * features are the maps after each conv block's activation (conv -> [BatchNorm] -> LeakyReLU),
    from `discriminator.features(x)`; D's last conv is its 1-channel logit, not a feature layer;
  * D runs in eval mode (BatchNorm uses its running statistics), so an image's features do not
    depend on the rest of its batch;
  * features are standardised (StandardScaler, fitted on the SVM's train images);
  * C, which the paper does not state, is the value of `--C` with the best accuracy on the
    datamodule's validation split (ties: the smallest C), chosen separately for each discriminator;
  * `--num_labels` train images are drawn class-balanced ("uniformly class distributed"), seeded.

The model is rebuilt from the checkpoint's own hyperparameters (the CLI stores them complete,
data-linked `image_shape` included); the run's config gives the datamodule, with `--data.*` overrides
(relative paths in it are read from the current folder, as in `fit`).
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch.cli import instantiate_module
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from lightning_dgm.callbacks.images import evaluating
from lightning_dgm.datamodules.base import keep_batch

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
        raise ValueError(
            f"{name} has no discriminator: the feature-SVM evaluation needs a GAN checkpoint whose "
            f"discriminator is convolutional (e.g. lightning_dgm.nets.DCGANDiscriminator)"
        )
    if not callable(getattr(discriminator, "features", None)):
        raise ValueError(
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
        raise ValueError(f"{type(discriminator).__name__}.features() must return (N, C, H, W) maps")
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
        raise ValueError(
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
            raise ValueError(
                f"class {label} has {len(members)} train images, fewer than the {share} that a class-balanced "
                f"draw of num_labels={num_labels} needs; lower --num_labels"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:share]])
    return torch.cat(chosen).sort().values


def fit_svm(features: np.ndarray, labels: np.ndarray, C: float, seed: int = 0) -> Pipeline:
    """Standardised features -> linear L2-SVM (squared hinge, L2 penalty, one-vs-rest)."""
    svm = LinearSVC(C=C, loss="squared_hinge", penalty="l2", dual="auto", max_iter=10_000, random_state=seed)
    return make_pipeline(StandardScaler(), svm).fit(features, labels)


def _check_grid(Cs: tuple[float, ...] | list[float], has_val: bool) -> list[float]:
    if not Cs or any(c <= 0 for c in Cs):
        raise ValueError(f"C must be one or more positive numbers, got {list(Cs)}")
    if len(Cs) > 1 and not has_val:
        raise ValueError(
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
    Cs = _check_grid(Cs, has_val=val is not None)
    best, best_val = None, None
    for C in Cs:
        svm = fit_svm(*train, C=C, seed=seed)
        accuracy = None if val is None else float(svm.score(*val))
        if best is None or (accuracy is not None and accuracy > best_val):
            best, best_val = (C, svm), accuracy
    C, svm = best
    return SVMResult(C=C, val_accuracy=best_val, test_accuracy=float(svm.score(*test)))


# -- the command: checkpoint + config -> table ------------------------------------------------
def load_discriminators(ckpt_path: str | Path, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(trained D from the checkpoint, the same D class freshly initialised after torch.manual_seed(seed))."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if "_class_path" not in hparams:
        raise ValueError(f"{ckpt_path} names no model class: use a checkpoint written by `python -m lightning_dgm fit`")
    hparams.pop("_instantiator", None)
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # Lightning's advice to ignore nn.Module hparams concerns training only
        warnings.filterwarnings("ignore", message=r".*is an instance of `nn.Module`")
        model = instantiate_module(L.LightningModule, hparams)
    random_d = copy.deepcopy(conv_discriminator(model))
    model.load_state_dict(checkpoint["state_dict"])
    return model.discriminator, random_d


def _data_from_run_config(argv: list[str]) -> list[str]:
    """`--data <the run config's data section>`, to go before the user's `--data.*` overrides.

    The config is --config, else config.yaml of the run folder holding the checkpoint."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--ckpt_path")
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.ckpt_path is None:
        return []  # the full parser reports the missing --ckpt_path (or prints --help)
    ckpt = Path(known.ckpt_path)
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt} not found; pass --ckpt_path <run folder>/checkpoints/last.ckpt")
    if known.config is None and ckpt.parent.name != "checkpoints":
        raise ValueError(f"{ckpt} is not in a run folder's checkpoints/: pass the run's config.yaml as --config")
    config = Path(known.config) if known.config is not None else ckpt.parent.parent / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"config {config} not found; pass the run's config.yaml as --config")
    data = (yaml.safe_load(config.read_text()) or {}).get("data")
    if not isinstance(data, dict) or "class_path" not in data:
        raise ValueError(f"{config} has no data section with a class_path; pass the run's config.yaml as --config")
    return ["--data", json.dumps(data)]


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m lightning_dgm.feature_svm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", type=str, required=True, help="checkpoint of a GAN with a conv discriminator")
    parser.add_argument(
        "--config",
        type=str | None,
        default=None,
        help="the run's config.yaml (for its data section); default: <run folder>/config.yaml",
    )
    parser.add_argument(
        "--num_labels",
        type=int | None,
        default=None,
        help="class-balanced labelled train images for the SVM (1000 for SVHN); None: all of them",
    )
    parser.add_argument(
        "--C",
        type=float | list[float],
        default=list(DEFAULT_C),
        help="SVM regularisation, or a grid to choose from on the validation split",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the random-D init, the label draw and the SVM")
    parser.add_argument("--batch_size", type=int, default=256, help="images per feature-extraction batch")
    parser.add_argument("--device", type=str, default="auto", help="cpu, cuda, cuda:1, ...; auto: cuda when available")
    parser.add_argument("--output", type=str | None, default=None, help="also write the results to this JSON file")
    parser.add_subclass_arguments(L.LightningDataModule, "data", help="default: the run config's data section")
    return parser


def _splits(datamodule: L.LightningDataModule, image_shape: tuple | None, num_labels: int | None, seed: int) -> dict:
    """train (all of it, or a class-balanced `num_labels`), val (if any) and test: datasets of ImageBatch."""
    name = type(datamodule).__name__
    if not all(hasattr(datamodule, split) for split in ("train_set", "val_set", "test_set")):
        raise ValueError(f"{name} is not an image datamodule with train/val/test splits (lightning_dgm.datamodules)")
    if getattr(datamodule, "num_classes", None) is None:
        raise ValueError(f"{name} serves no class labels, which the SVM needs: use a labelled data set")
    if image_shape is not None and tuple(datamodule.image_shape) != tuple(image_shape):
        raise ValueError(
            f"{name} serves images of shape {tuple(datamodule.image_shape)} but the discriminator was "
            f"built for {tuple(image_shape)}: use the run's config, or fix the --data.* overrides"
        )
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    train = datamodule.train_set
    if num_labels is not None:
        train = Subset(train, balanced_subset(train.labels, num_labels, seed).tolist())
    splits = {"train": train, "test": datamodule.test_set}
    if len(datamodule.val_set):
        splits["val"] = datamodule.val_set
    return splits


def _table(rows: list[dict]) -> str:
    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    header = ("discriminator", "features", "train labels", "C", "val acc", "test acc", "test error")
    lines = [header] + [
        (
            r["discriminator"],
            str(r["features"]),
            str(r["train_labels"]),
            f"{r['C']:g}",
            percent(r["val_accuracy"]),
            percent(r["test_accuracy"]),
            percent(1 - r["test_accuracy"]),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(" | ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the evaluation for the trained and the randomly initialised D; print and return one row each."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args([*_data_from_run_config(argv), *argv])
    Cs = [float(args.C)] if isinstance(args.C, (int, float)) else [float(c) for c in args.C]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    datamodule = parser.instantiate(args).data

    trained, random_d = load_discriminators(args.ckpt_path, args.seed)
    splits = _splits(datamodule, getattr(trained, "image_shape", None), args.num_labels, args.seed)
    _check_grid(Cs, has_val="val" in splits)  # before the slow part
    rows = []
    named = {f"trained ({Path(args.ckpt_path).name})": trained, f"random init (seed {args.seed})": random_d}
    for name, discriminator in named.items():
        features = {}
        for split, dataset in splits.items():
            torch.manual_seed(args.seed)  # data drawn as it is served (dynamic binarisation): same for both Ds
            features[split] = extract_features(discriminator, dataset, args.batch_size, device)
        result = evaluate_svm(features["train"], features["test"], Cs, features.get("val"), seed=args.seed)
        rows.append(
            {
                "discriminator": name,
                "features": features["train"][0].shape[1],
                "train_labels": len(splits["train"]),
                **asdict(result),
            }
        )

    command = shlex.join(["python", "-m", "lightning_dgm.feature_svm", *argv])
    sizes = ", ".join(f"{split} {len(dataset)}" for split, dataset in splits.items())
    chosen = f"C chosen from {sorted(Cs)} by val accuracy" if len(Cs) > 1 else f"C = {Cs[0]:g}"
    print(
        f"DCGAN feature-learning evaluation: D conv features max-pooled to {POOLED_SIDE}x{POOLED_SIDE}, "
        f"StandardScaler + L2-SVM (LinearSVC); {chosen}"
    )
    print(f"data: {type(datamodule).__name__} ({sizes} images)")
    print(_table(rows))
    edges = {row["C"] for row in rows} & ({min(Cs), max(Cs)} if len(Cs) > 1 else set())
    if edges:
        at = ", ".join(f"{c:g}" for c in sorted(edges))
        print(f"note: C = {at} is at the edge of the grid; consider widening --C")
    print(f"command: {command}")
    if args.output is not None:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # bad settings: one line, not a traceback
        raise SystemExit(f"error: {error}") from None
