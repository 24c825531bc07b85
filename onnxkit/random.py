"""Host-side random stream for masks drawn in define-by-run code, seeded by ok.manual_seed."""
import numpy as np

_gen = np.random.default_rng(0)


def seed(n):
    global _gen
    _gen = np.random.default_rng(n)


def generator():
    return _gen
