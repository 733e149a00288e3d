"""Mode-collapse benchmark: each 2-D config over several seeds, mode coverage against the papers.

    python bench/mode_collapse.py                 # 5 seeds, 2 runs at a time, ~35 min on 2 CPU cores
    python bench/mode_collapse.py --seeds 2 --max_epochs 2   # a quick look

Each run is the real CLI (`python -m lightning_dgm fit --config ...`) in its own process with one
thread; seed s sets both `seed_everything` and the data seed. The numbers are the last
validation's `val/modes_covered`, `val/high_quality_pct` and `val/reverse_kl` (2,500 samples,
3 std, 20 samples per mode), read from each run's metrics.csv. The baselines are fit in one pass.
A finished run leaves `result.json` in its folder and is not run again; delete the root to start over.
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
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RING = ["--data.layout=lightning_dgm.datamodules.Ring"]

#: (data, model, config, extra arguments)
RUNS = [
    ("ring", "GAN", "toy_ring_gan.yaml", []),
    ("grid", "GAN", "toy_grid_gan.yaml", []),
    ("grid", "PacGAN4", "toy_grid_pacgan.yaml", []),
    ("ring", "Gaussian (baseline)", "toy_grid_gaussian.yaml", RING),
    ("grid", "Gaussian (baseline)", "toy_grid_gaussian.yaml", []),
    ("ring", "Multinomial (baseline)", "toy_grid_multinomial.yaml", RING),
    ("grid", "Multinomial (baseline)", "toy_grid_multinomial.yaml", []),
]

#: modes / % high quality / reverse KL as published (VEEGAN Table 1, PacGAN Table 1)
PUBLISHED = {
    ("ring", "GAN"): "VEEGAN: 1 / 99.3%; PacGAN: 6.3 / 98.2% / 0.45",
    ("grid", "GAN"): "VEEGAN: 3.3 / 0.5%; PacGAN: 17.3 / 94.8% / 0.70",
    ("grid", "PacGAN4"): "PacGAN: 24.8 / 93.6% / 0.04 (VEEGAN itself: 24.6 / 40%)",
}
METRICS = ("val/modes_covered", "val/high_quality_pct", "val/reverse_kl")


def run_one(config: str, extra: list[str], seed: int, root: Path, max_epochs: int | None) -> dict[str, float]:
    folder = (
        root
        / f"{Path(config).stem}{'_ring' if extra == RING else ''}"
        / f"seed_{seed}{f'_epochs_{max_epochs}' if max_epochs else ''}"
    )
    done = folder / "result.json"
    if done.exists():  # a finished run is reused, so an interrupted benchmark picks up where it stopped
        return json.loads(done.read_text())
    for old in folder.glob("version_*"):  # an unfinished run starts over
        shutil.rmtree(old)
    args = [
        sys.executable,
        "-m",
        "lightning_dgm",
        "fit",
        f"--config={REPO / 'configs' / config}",
        *extra,
        f"--seed_everything={seed}",
        f"--data.seed={seed}",
        f"--trainer.default_root_dir={folder}",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir=.",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    if max_epochs is not None and config.endswith("gan.yaml"):  # baselines fit in one pass
        args.append(f"--trainer.max_epochs={max_epochs}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    out = subprocess.run(args, check=False, capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode:
        raise RuntimeError(f"{config} seed {seed} failed:\n{out.stderr[-2000:]}")
    with open(next(folder.glob("version_*/metrics.csv"))) as file:
        rows = [row for row in csv.DictReader(file) if row.get(METRICS[0])]
    result = {key: float(rows[-1][key]) for key in METRICS}
    done.write_text(json.dumps(result))
    return result


def summary(values: list[float], digits: int) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--max_epochs", type=int, default=None, help="override the GAN configs' max_epochs")
    parser.add_argument("--root", type=Path, default=Path("runs/bench_mode_collapse"))
    options = parser.parse_args()

    start = time.perf_counter()
    jobs = [(data, model, config, extra, seed) for data, model, config, extra in RUNS for seed in range(options.seeds)]
    with ThreadPoolExecutor(options.jobs) as pool:
        futures = [
            pool.submit(run_one, config, extra, seed, options.root.resolve(), options.max_epochs)
            for _, _, config, extra, seed in jobs
        ]
        results = [future.result() for future in futures]

    print(
        f"\nMode coverage, {options.seeds} seeds (mean ± sd), 2,500 samples per run; "
        f"{time.perf_counter() - start:.0f} s wall on {os.cpu_count()} CPU cores\n"
    )
    print("| data | model | modes covered | high-quality % | reverse KL | published: modes / high-quality / KL |")
    print("|---|---|---|---|---|---|")
    for data, model, _config, _extra in RUNS:
        mine = [r for (d, m, c, e, s), r in zip(jobs, results) if (d, m) == (data, model)]
        cells = [summary([r[key] for r in mine], digits) for key, digits in zip(METRICS, (1, 1, 2))]
        print(f"| {data} | {model} | {' | '.join(cells)} | {PUBLISHED.get((data, model), '—')} |")
    command = " ".join(
        ["python bench/mode_collapse.py", f"--seeds {options.seeds}"]
        + ([f"--max_epochs {options.max_epochs}"] if options.max_epochs else [])
    )
    print(f"\nReproduce: {command}")


if __name__ == "__main__":
    main()
