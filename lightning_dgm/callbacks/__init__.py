"""Callbacks: everything a run writes besides checkpoints (sample grids, predictions, ...)."""

from lightning_dgm.callbacks.images import image_grid, write_grid
from lightning_dgm.callbacks.sample_grid import SampleGrid
from lightning_dgm.callbacks.sample_writer import SampleRequests, SampleWriter

__all__ = ["SampleGrid", "SampleRequests", "SampleWriter", "image_grid", "write_grid"]
