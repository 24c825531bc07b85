"""Item assignment `x[idx] = value` as a functional scatter: the positions that `x[idx]` reads are
computed by indexing a grid of flat positions, and ScatterND writes `value` there. Every index form
that getitem takes works, symbolic dims included, and gradients reach both x and value."""
import numpy as np

from ..tensor import apply, const
from .core import as_tensor, cast
from .shape import expand, getitem, reshape, unsqueeze


def _positions(x):
    """An int64 tensor of x's shape holding each element's flat position (Range over Size, reshaped)."""
    i64 = np.dtype(np.int64)
    n = apply("Size", [x], types=[(i64, ())])
    flat = apply("Range", [const(0, np.int64), n, const(1, np.int64)], types=[(i64, (_numel(x._shape),))])
    return reshape(flat, x.shape)


def _numel(shape):
    n = 1
    for d in shape:
        if not isinstance(d, int):
            return "setitem_numel"
        n *= d
    return n


def setitem(x, idx, value):
    """x with x[idx] replaced by value (broadcast to x[idx]'s shape, cast to x's dtype)."""
    x = as_tensor(x)
    where = getitem(_positions(x), idx)
    value = as_tensor(value, x.dtype)
    if value.dtype != x.dtype:
        value = cast(value, x.dtype)
    if value._shape != where._shape:
        value = expand(value, where.shape)
    flat = reshape(x, -1)
    out = apply("ScatterND", [flat, unsqueeze(reshape(where, -1), -1), reshape(value, -1)],
                types=[(x.dtype, flat._shape)])
    return reshape(out, x.shape)
