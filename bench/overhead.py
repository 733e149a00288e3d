"""The framework's own cost per batch, with and without each of its shortcuts around Lightning's loop.

A GAN too small for its arithmetic to matter (MLP 8-16-64 / 64-16-1, batch 8, one thread: Python-bound,
so steady even on a shared machine) is trained through the Trainer with the shortcuts of
`lightning_dgm.models.overhead` and `System` switched off, each alone, and all on; and by the plain loop
of bench/throughput.py. Printed: the median µs a batch of each over `--repeats` rounds, each round
running every variant once in rotating order, and the framework's cost (Trainer minus plain), split
into the part inside the training step (the system's `training_step` against the plain loop's step
function: the same arithmetic) and the part outside it (Lightning's loop against the plain loop's).

Two rows add a progress bar to the shipped Trainer (written to /dev/null): Lightning's TQDM bar,
which redraws after every batch, and `lightning_dgm.callbacks.ProgressBar`, the same bar redrawn by
the clock (what every CLI run gets). A last row runs the plain loop with unrelated Python between
its steps (`unrelated_python`: signature inspection, JSON, a regex, a sort; a few hundred µs), to
show what Python run between steps costs the step itself: the step's arithmetic then runs slower too
(caches hold the other code's work), so the Trainer's loop costs the step time besides its own.

The shortcuts (each does exactly what Lightning would; tests/test_speed.py holds them to it):
  * profiler: without a profiler, Lightning's ~46 `profile()` contexts a batch are one shared null context;
  * retire: a training step's logs leave Lightning's result collection once the loggers have had them,
    instead of being read back (`.item()` each) after every batch for the progress bar;
  * direct: manual backward and optimizer steps without Lightning's dispatch where nothing listens.

    python bench/overhead.py [--batches 2000 --repeats 10]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import os
import re
import statistics
import sys
import time
import timeit

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.profilers import PassThroughProfiler, Profiler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput  # noqa: E402
import train_throughput  # noqa: E402

from lightning_dgm.callbacks import ProgressBar  # noqa: E402
from lightning_dgm.models import GAN, overhead  # noqa: E402
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


class StepClock:
    """Wall time inside each training step of the runs in a `with` block: the GAN system's
    `training_step` under the Trainer, the step function of bench/throughput.py's plain loop."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def timed(self, step):
        @functools.wraps(step)
        def timed_step(*args):
            start = time.perf_counter()
            step(*args)
            self.seconds.append(time.perf_counter() - start)

        return timed_step

    def __enter__(self) -> StepClock:
        self.saved = GAN.training_step, throughput.plain_gan_step
        GAN.training_step = self.timed(GAN.training_step)  # wraps keeps the stored __signature__
        plain_gan_step = self.saved[1]
        throughput.plain_gan_step = lambda *args: self.timed(plain_gan_step(*args))
        return self

    def __exit__(self, *exc) -> None:
        GAN.training_step, throughput.plain_gan_step = self.saved

    def mean_us(self, skip: int) -> float:
        return statistics.mean(self.seconds[skip:]) * 1e6


def unrelated_python() -> None:
    """A few hundred µs of Python with a wide footprint, none of it about training."""
    for function in (L.Trainer.__init__, L.Trainer.fit, L.LightningModule.log, torch.optim.Adam.step, json.dumps):
        inspect.signature(function)
    json.dumps({"a": [1, 2, {"b": "c" * 50}], "d": list(range(100))})
    re.sub(r"(\w+)@(\w+)", r"\2 at \1", "user@example " * 30)
    sorted({str(i): i for i in range(200)}.items())


def run_plain_interleaved(args: argparse.Namespace, device: torch.device) -> float:
    """The plain loop with `unrelated_python()` before each step (outside the timed step)."""
    make_step = throughput.plain_gan_step

    def interleaved(*arguments):
        step = make_step(*arguments)

        def with_python_between(real, batch_idx):
            unrelated_python()
            step(real, batch_idx)

        return with_python_between

    throughput.plain_gan_step = interleaved
    try:
        return train_throughput.run_plain(args, device)
    finally:
        throughput.plain_gan_step = make_step


PLAIN, INTERLEAVED = "plain PyTorch", "plain PyTorch, unrelated Python between steps"
#: progress bars on the shipped Trainer (`Trainer, all`): Lightning's default, and the CLI's
BARS = {"Trainer, all + Lightning's TQDM bar": TQDMProgressBar, "Trainer, all + the CLI's ProgressBar": ProgressBar}


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
    runs = {name: [] for name in [*VARIANTS, *BARS, PLAIN, INTERLEAVED]}
    in_step = {name: [] for name in runs}
    names = list(runs)
    for repeat in range(own.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:  # rotate the order
            with StepClock() as clock:
                if name == PLAIN:
                    seconds = 1 / train_throughput.run_plain(args, device)
                elif name == INTERLEAVED:
                    seconds = 1 / run_plain_interleaved(args, device)
                elif name in BARS:
                    switch(("profiler", "retire", "direct"))
                    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                        seconds = 1 / train_throughput.run_lightning(args, device, [BARS[name]()])
                else:
                    switch(VARIANTS[name])
                    seconds = 1 / train_throughput.run_lightning(args, device)
            runs[name].append(seconds * args.batch_size * 1e6)
            in_step[name].append(clock.mean_us(skip=args.warmup))
    switch(("profiler", "retire", "direct"))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    step = {name: statistics.median(values) for name, values in in_step.items()}
    plain, plain_step = medians[PLAIN], step[PLAIN]
    print("\n| per batch (median) | µs | more than plain µs | in the step µs | outside it µs | more: in / outside |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, value in medians.items():
        inside, outside = step[name], value - step[name]
        more = "" if name == PLAIN else f"{value - plain:,.0f}"
        split = "" if name == PLAIN else f"{inside - plain_step:,.0f} / {outside - (plain - plain_step):,.0f}"
        print(f"| {name} | {value:,.0f} | {more} | {inside:,.0f} | {outside:,.0f} | {split} |")
    alone = min(timeit.repeat(unrelated_python, number=200, repeat=5)) / 200 * 1e6
    print(f"\nThe unrelated Python alone: {alone:,.0f} µs a call")
    print(f"\nReproduce: python bench/overhead.py --batches {own.batches} --repeats {own.repeats}")
    print(f"Device: {throughput.machine(device)}; torch {torch.__version__}, lightning {L.__version__}")
    print(f"Load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    return medians


if __name__ == "__main__":
    main()
