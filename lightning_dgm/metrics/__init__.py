"""Metrics: pure cores and torchmetrics wrappers, kept out of LightningModules (see callbacks)."""

from lightning_dgm.metrics.modes import Coverage, ModeCounts, ModeCoverage, count_modes, mode_coverage

__all__ = ["Coverage", "ModeCounts", "ModeCoverage", "count_modes", "mode_coverage"]
