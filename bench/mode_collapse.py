"""Mode-collapse benchmark: PacGAN's Table 1 (Lin et al. 2018) under its official protocol, over seeds.

    python bench/mode_collapse.py                                     # every cell, 3 seeds, 400 epochs
    python bench/mode_collapse.py --cells grid:GAN,grid:PacGAN4 --seeds 1 --epochs 400 \\
        --report_epochs 50,100,200,400                                # one seed of each, and the epoch curve
    python bench/mode_collapse.py --seeds 2 --epochs 2                # a quick look

The cells are Table 1's: GAN and PacGAN2 on the ring, GAN and PacGAN2/3/4 on the grid, each the
real CLI on configs/pacgan_{ring,grid}.yaml (PacGANm: `--data.init_args.pack m` and
`--model.init_args.discriminator.init_args.pack m`) in its own process, one thread, `nice -n 19`.
Seed s sets `seed_everything` and the data seed. The numbers are the validation at the asked epoch
(`val/modes_covered`, `val/high_quality_pct`, `val/reverse_kl`: 2,500 samples, 3 std, a mode covered
by 20 of them) from the run's metrics.csv, mean ± sd over seeds; `modes >= 1` counts a mode with a
single high-quality sample, as the official code's MetricLogger does, on 2,500 samples of the final
checkpoint (`predict`). CPU time is user + sys of the training processes (os.wait4).

Runs are resumable and extendable: a run folder is `<root>/<data>_<model>/seed_<s>/version_0`, and a
run asked for more epochs than it has resumes from its last.ckpt (Lightning restores the optimizers
and counters; the data and noise streams are seeded by epoch and step, so the result is the longer
run's); each resume logs to `<run>/resume-N/metrics.csv` (`lightning_dgm.runs.metrics_files` reads them
in order). A run is never retrained for fewer epochs: its validation at that epoch is read.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from lightning_dgm.metrics.modes import count_modes, mode_coverage  # noqa: E402
from lightning_dgm.runs import metrics_files  # noqa: E402

#: (data, model, pack), in the order of Table 1
CELLS = [
    ("ring", "GAN", 1),
    ("ring", "PacGAN2", 2),
    ("grid", "GAN", 1),
    ("grid", "PacGAN2", 2),
    ("grid", "PacGAN3", 3),
    ("grid", "PacGAN4", 4),
]
#: Table 1 of Lin et al. 2018: modes covered, % high quality, reverse KL (means of 10 runs)
PUBLISHED = {
    ("ring", "GAN"): (6.3, 98.2, 0.45),
    ("ring", "PacGAN2"): (7.9, 95.6, 0.07),
    ("grid", "GAN"): (17.3, 94.8, 0.70),
    ("grid", "PacGAN2"): (23.8, 91.3, 0.13),
    ("grid", "PacGAN3"): (24.6, 94.2, 0.06),
    ("grid", "PacGAN4"): (24.8, 93.6, 0.04),
}
METRICS = ("val/modes_covered", "val/high_quality_pct", "val/reverse_kl")
TRAIN = ("d_loss", "d_real", "d_fake")


class Run:
    """One (cell, seed): its folder, how far it has trained, and what that cost."""

    def __init__(self, root: Path, data: str, model: str, pack: int, seed: int) -> None:
        self.data, self.model, self.pack, self.seed = data, model, pack, seed
        self.folder = root / f"{data}_{model}" / f"seed_{seed}"
        self.run_dir = self.folder / "version_0"
        self.progress_file = self.folder / "progress.json"

    @property
    def progress(self) -> dict:
        if self.progress_file.exists():
            return json.loads(self.progress_file.read_text())
        return {"epochs": 0, "cpu_s": 0.0, "segments": []}

    def arguments(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "lightning_dgm",
            "fit",
            f"--config={REPO / 'configs' / f'pacgan_{self.data}.yaml'}",
            f"--data.init_args.pack={self.pack}",
            f"--model.init_args.discriminator.init_args.pack={self.pack}",
            f"--seed_everything={self.seed}",
            f"--data.init_args.seed={self.seed}",
            f"--trainer.default_root_dir={self.folder}",
            "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.save_dir=.",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
        ]

    def train(self, epochs: int) -> None:
        """Train (or resume) up to `epochs` epochs, adding the CPU time to progress.json."""
        progress = self.progress
        if progress["epochs"] >= epochs:
            return
        args = [*self.arguments(), f"--trainer.max_epochs={epochs}"]
        last = self.run_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            args.append(f"--ckpt_path={last}")  # its CSV logs go to <run>/resume-N/metrics.csv
        elif self.run_dir.exists():  # started but no checkpoint yet: start over
            shutil.rmtree(self.run_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
        with open(self.folder / "train.log", "a") as log:
            child = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, preexec_fn=_nice)
            # wait4 gives this child's own rusage; RUSAGE_CHILDREN would mix the parallel runs.
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        progress["segments"].append({"to_epoch": epochs, "cpu_s": round(cpu, 1), "exit": child.returncode})
        progress["cpu_s"] = round(progress["cpu_s"] + cpu, 1)
        if child.returncode == 0:
            progress["epochs"] = epochs
        self.progress_file.write_text(json.dumps(progress, indent=1))
        if child.returncode:
            raise RuntimeError(f"{self.folder} failed (exit {child.returncode}); see {self.folder / 'train.log'}")

    def rows(self) -> list[dict[str, str]]:
        """Every metrics row the run has logged, over all its resumed segments, in order."""
        rows = []
        for path in metrics_files(self.run_dir):
            with open(path) as file:
                rows += list(csv.DictReader(file))
        return rows

    def at_epoch(self, epoch: int) -> dict[str, float] | None:
        """Validation metrics and the mean of the training D logs over the epoch that ends at `epoch`."""
        rows = [row for row in self.rows() if row.get("epoch") == str(epoch - 1)]
        val = [row for row in rows if row.get(METRICS[0])]
        if not val:
            return None
        train = [row for row in rows if row.get(TRAIN[0])]
        result = {key: float(val[-1][key]) for key in METRICS}
        for key in TRAIN:
            result[key] = statistics.mean(float(row[key]) for row in train) if train else float("nan")
        return result

    def picture(self, epoch: int) -> Path | None:
        """PointsPlot's PNG of the samples over the data (and D's contours) after `epoch`, if written."""
        path = self.run_dir / "points" / f"epoch_{epoch - 1:03d}.png"
        return path if path.exists() else None

    def official_modes(self, epoch: int) -> float | None:
        """Modes with at least one high-quality sample among 2,500 from last.ckpt (the official code's
        MetricLogger rule), if last.ckpt is at `epoch`."""
        if self.progress["epochs"] != epoch:
            return None
        out = self.folder / f"final_epoch_{epoch}"
        samples = out / "samples.pt"
        if not samples.exists():
            # No logger: a CSVLogger would empty the run's metrics.csv, in the run folder predict reuses.
            args = [a for a in self.arguments() if not a.startswith(("--trainer.enable_model", "--trainer.logger"))]
            args[3] = "predict"
            args += [
                "--trainer.logger=false",
                f"--ckpt_path={self.run_dir / 'checkpoints' / 'last.ckpt'}",
                "--sample_writer.num_samples=2500",
                f"--sample_writer.output_dir={out}",
                "--sample_writer.write_png=false",
                "--trainer.callbacks=[]",
            ]
            env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
            done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, preexec_fn=_nice)
            if done.returncode:
                raise RuntimeError(f"predict failed for {self.folder}:\n{done.stderr[-2000:]}")
        points = torch.load(samples, weights_only=True)["images"].reshape(-1, 2)
        modes, std = _mixture(self.data)
        return float(mode_coverage(count_modes(points, modes, std), min_count=1).modes_covered)


def _nice() -> None:
    os.nice(19)


def _mixture(data: str) -> tuple[torch.Tensor, float]:
    """(modes, std) of the config's datamodule, read through the datamodule itself."""
    from lightning_dgm.datamodules import GaussianMixtureDataModule, Grid, Ring

    if data == "ring":
        module = GaussianMixtureDataModule(layout=Ring(8, 1.0), std=0.01)
    else:
        module = GaussianMixtureDataModule(layout=Grid(5, 2.0), std=0.05)
    return module.modes, module.std


def summary(values: list[float], digits: int) -> str:
    if not values:
        return "—"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="all", help="comma-separated data:model, e.g. grid:GAN,grid:PacGAN4")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    parser.add_argument("--first_seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=400, help="train every run to this epoch (400: the paper's)")
    parser.add_argument("--report_epochs", default="", help="also tabulate these epochs, e.g. 50,100,200,400")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--root", type=Path, default=Path("runs/bench_mode_collapse"))
    parser.add_argument("--report_only", action="store_true", help="train nothing; tabulate what exists")
    options = parser.parse_args()

    wanted = None if options.cells == "all" else {tuple(c.split(":")) for c in options.cells.split(",")}
    cells = [c for c in CELLS if wanted is None or c[:2] in wanted]
    seeds = range(options.first_seed, options.first_seed + options.seeds)
    runs = [Run(options.root.resolve(), data, model, pack, seed) for data, model, pack in cells for seed in seeds]
    if not options.report_only:
        # Longest first (packed D and G cost more per batch), so the two slots finish together.
        order = sorted(runs, key=lambda r: -r.pack)
        with ThreadPoolExecutor(options.jobs) as pool:
            for future in [pool.submit(run.train, options.epochs) for run in order]:
                future.result()

    epochs = options.epochs
    print(f"\nPacGAN Table 1 protocol, epoch {epochs}; mean ± sd over seeds\n")
    print(
        "| data | model | seeds | modes (>= 20) | high-quality % | reverse KL | modes (>= 1) "
        "| Table 1: modes / HQ % / KL | CPU h per run |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for data, model, _ in cells:
        mine = [r for r in runs if (r.data, r.model) == (data, model)]
        found = [(r, m) for r in mine if (m := r.at_epoch(epochs))]
        cols = [summary([m[key] for _, m in found], d) for key, d in zip(METRICS, (1, 1, 2))]
        official = [v for r, _ in found if (v := r.official_modes(epochs)) is not None]
        cpu = [r.progress["cpu_s"] / 3600 for r, _ in found if r.progress["epochs"] == epochs]
        published = " / ".join(f"{v:g}" for v in PUBLISHED[(data, model)])
        print(
            f"| {data} | {model} | {len(found)} | {' | '.join(cols)} | {summary(official, 1)} "
            f"| {published} | {summary(cpu, 2)} |"
        )

    pictures = [(r, p) for r in runs if (p := r.picture(epochs))]
    if pictures:
        print(f"\nSamples over the data after epoch {epochs}, one PNG per run:\n")
        for run, path in pictures:
            shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
            print(f"- {run.data} {run.model} seed {run.seed}: {shown}")

    report = sorted({int(e) for e in options.report_epochs.split(",") if e} | {epochs})
    if len(report) > 1:
        print("\nBy epoch (the same runs, validated along the way; D's training logs averaged over the epoch)\n")
        print(
            "| data | model | epoch | seeds | modes (>= 20) | high-quality % | reverse KL "
            "| D loss | D(real) | D(fake) |"
        )
        print("|---|---|---:|---|---|---|---|---|---|---|")
        for data, model, _ in cells:
            for epoch in report:
                found = [m for r in runs if (r.data, r.model) == (data, model) and (m := r.at_epoch(epoch))]
                if found:
                    digits = (1, 1, 2, 3, 3, 3)
                    cols = [summary([m[k] for m in found], d) for k, d in zip(METRICS + TRAIN, digits)]
                    print(f"| {data} | {model} | {epoch} | {len(found)} | {' | '.join(cols)} |")
    command = " ".join(sys.argv[1:])
    print(f"\nReproduce: python bench/mode_collapse.py {command}")


if __name__ == "__main__":
    main()
