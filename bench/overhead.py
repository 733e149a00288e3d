"""The framework's own cost per batch, with and without each of its shortcuts around Lightning's loop.

A GAN too small for its arithmetic to matter (MLP 8-16-64 / 64-16-1, batch 8, one thread: Python-bound,
so steady even on a shared machine) is trained through the Trainer with the shortcuts of
`lightning_dgm.models.overhead` and `System` switched off, each alone, and all on; and by the plain loop
of bench/throughput.py. Printed: the median µs a batch of each over `--repeats` rounds, each round
running every variant once in rotating order, and the framework's cost (Trainer minus plain).

The shortcuts (each does exactly what Lightning would; tests/test_speed.py holds them to it):
  * profiler: without a profiler, Lightning's ~46 `profile()` contexts a batch are one shared null context;
  * retire: a training step's logs leave Lightning's result collection once the loggers have had them,
    instead of being read back (`.item()` each) after every batch for the progress bar;
  * direct: manual backward and optimizer steps without Lightning's dispatch where nothing listens.

    python bench/overhead.py [--batches 2000 --repeats 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import lightning as L
import torch
from lightning.pytorch.profilers import PassThroughProfiler, Profiler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput  # noqa: E402
import train_throughput  # noqa: E402

from lightning_dgm.models import overhead  # noqa: E402
from lightning_dgm.models.base import System  # noqa: E402

ON = {"profiler": overhead._unprofiled, "retire": System._retire_step_logs, "direct": overhead._direct_listeners}
OFF = {"profiler": Profiler.profile, "retire": lambda self, trainer: None, "direct": lambda trainer, module: None}
VARIANTS = {
    "Trainer, no shortcuts": (),
    "Trainer, profiler": ("profiler",),
    "Trainer, retire": ("retire",),
    "Trainer, direct": ("direct",),
    "Trainer, all (as shipped)": ("profiler", "retire", "direct"),
}


def switch(on: tuple[str, ...]) -> None:
    chosen = {name: (ON if name in on else OFF)[name] for name in ON}
    PassThroughProfiler.profile = chosen["profiler"]
    System._retire_step_logs = chosen["retire"]
    overhead._direct_listeners = chosen["direct"]


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=10)
    own = p.parse_args(argv)
    args = train_throughput.parse_args(
        ["--hidden", "16,16", "--latent-dim", "8", "--batch-size", "8", "--threads", "1", "--batches", str(own.batches)]
    )
    device = throughput.setup(args)
    load_before = os.getloadavg()[0]
    runs = {name: [] for name in [*VARIANTS, "plain PyTorch"]}
    names = list(runs)
    for repeat in range(own.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:  # rotate the order
            if name == "plain PyTorch":
                seconds = 1 / train_throughput.run_plain(args, device)
            else:
                switch(VARIANTS[name])
                seconds = 1 / train_throughput.run_lightning(args, device)
            runs[name].append(seconds * args.batch_size * 1e6)
    switch(("profiler", "retire", "direct"))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    plain = medians["plain PyTorch"]
    print("\n| per batch (median) | µs | framework µs |\n|---|---:|---:|")
    for name, value in medians.items():
        framework = f"{value - plain:,.0f}" if name != "plain PyTorch" else ""
        print(f"| {name} | {value:,.0f} | {framework} |")
    print(f"\nReproduce: python bench/overhead.py --batches {own.batches} --repeats {own.repeats}")
    print(f"Device: {throughput.machine(device)}; torch {torch.__version__}, lightning {L.__version__}")
    print(f"Load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    return medians


if __name__ == "__main__":
    main()
