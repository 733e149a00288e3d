"""`python -m lightning_dgm.feature_svm`: the evaluation of a trained GAN checkpoint, as a command."""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch.cli import instantiate_module
from torch import nn
from torch.utils.data import Subset

from lightning_dgm.errors import ConfigError, MissingFileError
from lightning_dgm.feature_svm.features import (
    DEFAULT_C,
    POOLED_SIDE,
    balanced_subset,
    check_grid,
    conv_discriminator,
    evaluate_svm,
    extract_features,
)


def load_discriminators(ckpt_path: str | Path, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(trained D from the checkpoint, the same D class freshly initialised after torch.manual_seed(seed))."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if "_class_path" not in hparams:
        raise ConfigError(
            f"{ckpt_path} names no model class: use a checkpoint written by `python -m lightning_dgm fit`"
        )
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
        raise MissingFileError(f"checkpoint {ckpt} not found; pass --ckpt_path <run folder>/checkpoints/last.ckpt")
    if known.config is None and ckpt.parent.name != "checkpoints":
        raise ConfigError(f"{ckpt} is not in a run folder's checkpoints/: pass the run's config.yaml as --config")
    config = Path(known.config) if known.config is not None else ckpt.parent.parent / "config.yaml"
    if not config.is_file():
        raise MissingFileError(f"config {config} not found; pass the run's config.yaml as --config")
    data = (yaml.safe_load(config.read_text()) or {}).get("data")
    if not isinstance(data, dict) or "class_path" not in data:
        raise ConfigError(f"{config} has no data section with a class_path; pass the run's config.yaml as --config")
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
        raise ConfigError(f"{name} is not an image datamodule with train/val/test splits (lightning_dgm.datamodules)")
    if getattr(datamodule, "num_classes", None) is None:
        raise ConfigError(f"{name} serves no class labels, which the SVM needs: use a labelled data set")
    if image_shape is not None and tuple(datamodule.image_shape) != tuple(image_shape):
        raise ConfigError(
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
    check_grid(Cs, has_val="val" in splits)  # before the slow part
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
