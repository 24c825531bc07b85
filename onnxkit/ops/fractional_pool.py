"""Fractional max pooling (torch.nn.functional.fractional_max_pool2d/3d): pooling windows at pseudo-random
offsets, one set per (sample, channel) drawn on the host from onnxkit's generator (or given as torch's
`_random_samples`). The window positions are therefore known when the graph is built: the input is read with
one GatherElements of every window's elements, then ReduceMax/ArgMax over each window."""
import numpy as np

from .. import dtypes
from ..tensor import Tensor, apply, const, rng
from .conv import ntuple
from .core import as_tensor
from .reduce import amax, argmax
from .shape import reshape, squeeze, unsqueeze, gather

__all__ = ["fractional_max_pool2d", "fractional_max_pool2d_with_indices", "fractional_max_pool3d",
           "fractional_max_pool3d_with_indices"]

_I64 = np.dtype(np.int64)


def _intervals(sample, size, out, pool, dtype):
    """torch's generate_intervals: the window starts along one dim, computed in the input's precision."""
    seq = np.zeros(out, np.int64)
    if out > 1:
        alpha = dtype.type(size - pool) / dtype.type(out - 1)
        for i in range(out - 1):
            seq[i] = int(dtype.type(dtype.type(i) + sample) * alpha) - int(dtype.type(sample * alpha))
    if out > 0:
        seq[out - 1] = size - pool
    return seq


def _fractional(input, kernel_size, output_size, output_ratio, return_indices, samples, n):
    name = f"fractional_max_pool{n}d"
    x = as_tensor(input)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"{name}: expected a floating-point input, got {x.dtype}")
    unbatched = len(x._shape) == n + 1
    if unbatched:
        x = unsqueeze(x, 0)
    if len(x._shape) != n + 2 or not all(isinstance(d, int) for d in x._shape):
        raise ValueError(f"{name}: expected a static {n + 1}-D or {n + 2}-D input, got {tuple(x._shape)}")
    batch, channels, *sizes = x._shape
    kernel = ntuple(kernel_size, n, "kernel_size")
    if output_size is None and output_ratio is None:
        raise ValueError(f"{name} requires specifying either an output_size or an output_ratio")
    if output_size is None:
        ratios = output_ratio if isinstance(output_ratio, (tuple, list)) else (output_ratio,) * n
        out = [int(s * float(r)) for s, r in zip(sizes, ratios)]
    else:
        out = list(ntuple(output_size, n, "output_size"))
    for s, o, k in zip(sizes, out, kernel):
        if o + k - 1 > s:
            raise ValueError(f"{name}: output size {tuple(out)} plus kernel {kernel} - 1 exceeds input {tuple(sizes)}")
    if samples is None:
        u = rng().random((batch, channels, n)).astype(x.dtype)
    else:
        u = np.asarray(samples.numpy() if isinstance(samples, Tensor) else samples).astype(x.dtype)
    # torch's sample order: 2-D (W, H), 3-D (T, H, W)
    which = [1, 0] if n == 2 else [0, 1, 2]
    strides = [int(np.prod(sizes[a + 1:])) for a in range(n)]
    kernel_offsets = np.zeros(1, np.int64)
    for a in range(n):
        kernel_offsets = (kernel_offsets[:, None] + np.arange(kernel[a])[None, :] * strides[a]).reshape(-1)
    index = np.zeros((batch, channels, int(np.prod(out)), kernel_offsets.size), np.int64)
    for b in range(batch):
        for c in range(channels):
            starts = np.zeros(1, np.int64)
            for a in range(n):
                seq = _intervals(u[b, c, which[a]], sizes[a], out[a], kernel[a], np.dtype(x.dtype))
                starts = (starts[:, None] + seq[None, :] * strides[a]).reshape(-1)
            index[b, c] = starts[:, None] + kernel_offsets[None, :]
    flat = reshape(x, batch, channels, -1)
    windows = apply("GatherElements", [flat, const(index.reshape(batch, channels, -1), _I64)], {"axis": 2},
                    types=[(x.dtype, (batch, channels, index.shape[2] * index.shape[3]))])
    windows = reshape(windows, batch, channels, index.shape[2], index.shape[3])
    values = reshape(amax(windows, -1), batch, channels, *out)
    if unbatched:
        values = squeeze(values, 0)
    if not return_indices:
        return values
    pick = argmax(windows, -1, keepdim=True)
    indices = reshape(gather(const(index, _I64), 3, pick), batch, channels, *out)
    return values, squeeze(indices, 0) if unbatched else indices


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    """Max over kh x kw windows at pseudo-random offsets giving output_size (or input size x output_ratio)."""
    return _fractional(input, kernel_size, output_size, output_ratio, return_indices, _random_samples, 2)


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    """fractional_max_pool2d over three spatial dims."""
    return _fractional(input, kernel_size, output_size, output_ratio, return_indices, _random_samples, 3)


def fractional_max_pool2d_with_indices(input, kernel_size, output_size=None, output_ratio=None,
                                       return_indices=False, _random_samples=None):
    """fractional_max_pool2d returning (output, indices)."""
    return _fractional(input, kernel_size, output_size, output_ratio, True, _random_samples, 2)


def fractional_max_pool3d_with_indices(input, kernel_size, output_size=None, output_ratio=None,
                                       return_indices=False, _random_samples=None):
    """fractional_max_pool3d returning (output, indices)."""
    return _fractional(input, kernel_size, output_size, output_ratio, True, _random_samples, 3)
