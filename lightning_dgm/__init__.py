"""lightning_dgm: deep generative models on PyTorch Lightning, one YAML file per experiment."""

__version__ = "0.1.0"
