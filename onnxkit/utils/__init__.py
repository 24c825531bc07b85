"""Utilities with torch.utils' names: `onnxkit.utils.data` (Dataset, DataLoader, random_split, ...)."""
from . import data  # noqa: F401

__all__ = ["data"]
