"""Creation functions computed on the host with torch's names and defaults: signal windows, logspace,
range, scalar_tensor and the index lists of triangles. Results are value leaves (float32 unless dtype=)."""
import numpy as np

from .. import dtypes
from ..tensor import tensor

__all__ = ["hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window", "logspace",
           "range", "scalar_tensor", "tril_indices", "triu_indices"]


def _leaf(values, dtype, requires_grad, default="float32"):
    return tensor(np.asarray(values).astype(dtypes.as_dtype(default if dtype is None else dtype)),
                  requires_grad=requires_grad)


def _window(name, formula):
    """A window function: `formula(n, N)` over n = 0..N-1 in float64, where N is window_length (+1 when
    periodic, the last sample then dropped), as torch computes them."""
    def fn(window_length, periodic=True, *args, dtype=None, layout=None, device=None, requires_grad=False,
           pin_memory=False, **kwargs):
        length = int(window_length)
        if length < 0:
            raise RuntimeError(f"{name} requires non-negative window length, got window_length={length}")
        if dtype is not None and not dtypes.is_floating(dtypes.as_dtype(dtype)):
            raise TypeError(f"{name} expects floating point dtypes, got: {dtype}")
        if length <= 1:
            return _leaf(np.ones(length), dtype, requires_grad)
        total = length + 1 if periodic else length
        values = formula(np.arange(total, dtype=np.float64), total, *args, **kwargs)
        return _leaf(values[:length], dtype, requires_grad)
    fn.__name__ = name
    fn.__doc__ = f"torch.{name}: the window of window_length samples (periodic by default)."
    return fn


def _hamming(n, N, alpha=0.54, beta=0.46):
    return alpha - beta * np.cos(2 * np.pi * n / (N - 1))


def _kaiser(n, N, beta=12.0):
    alpha = (N - 1) / 2.0
    return np.i0(beta * np.sqrt(np.maximum(1 - ((n - alpha) / alpha) ** 2, 0.0))) / np.i0(beta)


hann_window = _window("hann_window", lambda n, N: 0.5 - 0.5 * np.cos(2 * np.pi * n / (N - 1)))
hamming_window = _window("hamming_window", _hamming)
blackman_window = _window("blackman_window", lambda n, N: 0.42 - 0.5 * np.cos(2 * np.pi * n / (N - 1))
                          + 0.08 * np.cos(4 * np.pi * n / (N - 1)))
bartlett_window = _window("bartlett_window", lambda n, N: 1 - np.abs(2 * n / (N - 1) - 1))
kaiser_window = _window("kaiser_window", _kaiser)


def logspace(start, end, steps, base=10.0, *, dtype=None, layout=None, device=None, requires_grad=False,
             pin_memory=False):
    """`steps` values from base**start to base**end, evenly spaced in the exponent (torch.logspace)."""
    steps = int(steps)
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    exps = np.linspace(float(start), float(end), steps)
    return _leaf(np.power(float(base), exps), dtype, requires_grad)



def range(start=0, end=None, step=1, *, dtype=None, layout=None, device=None, requires_grad=False,
          pin_memory=False):
    """Values from start to end inclusive, `step` apart (torch.range, deprecated there in favour of arange);
    float32 unless dtype= is given."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    count = int(np.floor((end - start) / step)) + 1
    return _leaf(start + step * np.arange(max(count, 0), dtype=np.float64), dtype, requires_grad)


def scalar_tensor(s, *, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
    """A 0-d tensor holding s (float32 unless dtype=), as torch.scalar_tensor."""
    return _leaf(np.asarray(s, np.float64) if not isinstance(s, bool) else np.asarray(s), dtype, requires_grad)


def _triangle(which):
    def fn(row, col, offset=0, *, dtype=None, layout=None, device=None, pin_memory=False):
        rows, cols = getattr(np, f"{which}_indices")(int(row), int(offset), int(col))
        out = np.stack([rows, cols]).reshape(2, -1)
        return tensor(out.astype(dtypes.as_dtype("int64" if dtype is None else dtype)))
    fn.__name__ = f"{which}_indices"
    fn.__doc__ = (f"The (2, k) row and column indices of the {'lower' if which == 'tril' else 'upper'} triangle of a "
                  f"row x col matrix, diagonal `offset` included, in row-major order (torch.{which}_indices).")
    return fn


tril_indices, triu_indices = _triangle("tril"), _triangle("triu")
