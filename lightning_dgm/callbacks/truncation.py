"""BigGAN's fidelity/variety trade-off, measured: the chosen metrics of a trained system's samples
at each truncation of its latent (Brock et al. 2019, Figure 4 / Table 1's truncation columns).

    python -m lightning_dgm test --config <run folder>/config.yaml --ckpt_path <run folder>/checkpoints/last.ckpt \\
        --trainer.callbacks+=lightning_dgm.callbacks.TruncationSweep --trainer.callbacks.feature ...

After the test epoch, for every truncation t (None: the untruncated prior), `num_samples` samples
drawn with `sample(..., truncation=t)` are scored against the test split exactly as `SampleMetrics`
scores them at test time (same seed at every t, so the curves differ only by the truncation). It
logs `test/truncation_<t>/<metric>` and writes `<run folder>/truncation/test.csv`, `test.md` (the
table) and `test.png` (each metric against t, one panel per metric), the PNG also to the loggers.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from torch import nn

from lightning_dgm.callbacks.images import new_figure, picture_file, write_figure
from lightning_dgm.callbacks.sample_metrics import SampleMetrics
from lightning_dgm.errors import ConfigError
from lightning_dgm.metrics.scores import SampleMetric

DEFAULT_TRUNCATIONS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, None)


class TruncationSweep(SampleMetrics):
    """At test time, the metrics of samples at each truncation in `truncations` (see the module
    docstring); nothing during training.

    Args:
        truncations: the truncations t > 0 to score, in the order of the table; None is the prior
            without truncation (drawn as t = infinity in the plot's last place).
        feature, classifier, metrics, num_samples, num_real_samples, batch_size, seed, cache_dir: as in
            `SampleMetrics` (e.g. FrechetDistance(), InceptionScore(), PrecisionRecall()).
    """

    def __init__(
        self,
        truncations: Sequence[float | None] = DEFAULT_TRUNCATIONS,
        feature: nn.Module | None = None,
        classifier: nn.Module | None = None,
        metrics: Sequence[SampleMetric] | None = None,
        num_samples: int = 10_000,
        num_real_samples: int | None = None,
        batch_size: int = 200,
        seed: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        truncations = list(truncations)
        if not truncations or any(t is not None and not t > 0 for t in truncations):
            raise ConfigError(f"truncations must be positive numbers (or null: none), got {truncations}")
        if len(set(truncations)) != len(truncations):
            raise ConfigError(f"truncations has repeats: {truncations}")
        super().__init__(feature, classifier, metrics, num_samples, num_real_samples, 1, batch_size, seed, cache_dir)
        self.truncations = truncations

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        return  # a sweep is an evaluation of a trained system: `test` only

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rows = []
        for truncation in self.truncations:
            self.source.truncation = truncation
            try:
                values = self.measure(trainer, pl_module, "test")
            finally:
                self.source.truncation = None
            for name, value in values.items():
                pl_module.log(f"test/truncation_{truncation}/{name}", value, sync_dist=True)
            rows.append({"truncation": truncation, **{name: float(value) for name, value in values.items()}})
        if trainer.is_global_zero:
            self.write(trainer, rows)

    def write(self, trainer: L.Trainer, rows: list[dict[str, float | None]]) -> None:
        """The table as `truncation/test.csv` and `test.md`, and the curves as `truncation/test.png`."""
        png, _ = picture_file(trainer, "truncation", None)
        png.parent.mkdir(parents=True, exist_ok=True)
        names = [name for name in rows[0] if name != "truncation"]
        with Path(png.with_suffix(".csv")).open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=["truncation", *names])
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "truncation": "none" if row["truncation"] is None else row["truncation"]})
        lines = ["| truncation | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
        for row in rows:
            label = "none" if row["truncation"] is None else f"{row['truncation']:g}"
            lines.append(f"| {label} | " + " | ".join(f"{row[name]:.4f}" for name in names) + " |")
        png.with_suffix(".md").write_text("\n".join(lines) + "\n")
        write_figure(trainer, self.figure(rows, names), key="truncation", epoch=None)

    @staticmethod
    def figure(rows: list[dict[str, float | None]], names: list[str]):
        """One panel per metric against the truncation; the untruncated prior is the last point."""
        figure = new_figure()
        finite = [row["truncation"] for row in rows if row["truncation"] is not None]
        right = max(finite, default=1.0) * 1.25  # where "none" (t = infinity) is drawn
        xs = [right if row["truncation"] is None else row["truncation"] for row in rows]
        columns = math.ceil(math.sqrt(len(names)))
        for index, name in enumerate(names):
            axes = figure.add_subplot(math.ceil(len(names) / columns), columns, index + 1)
            axes.plot(xs, [row[name] for row in rows], marker="o")
            axes.set_title(name, fontsize=9)
            axes.tick_params(labelsize=7)
            if any(row["truncation"] is None for row in rows):
                axes.axvline(right, color="grey", linewidth=0.5, linestyle=":")
        figure.supxlabel("truncation t (dotted line: none)", fontsize=9)
        figure.tight_layout()
        return figure


__all__ = ["DEFAULT_TRUNCATIONS", "TruncationSweep"]
