"""Reductions and softmax with torch's `dim`/`keepdim` arguments (ONNX Reduce* with an axes input)."""
import builtins
import collections

import numpy as np

from .. import dtypes
from ..tensor import apply, const
from .core import as_tensor, cast, sub, mul, div, sqrt, exp, log, add

MaxMin = collections.namedtuple("MaxMin", ["values", "indices"])


def _axes(x, dim):
    if dim is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    r = len(x._shape)
    for d in dims:
        if not -r <= d < builtins.max(r, 1):
            raise IndexError(f"dim {d} is out of range for a tensor of rank {r}")
    return [d % builtins.max(r, 1) for d in dims]


def _reduce(op_type, x, dim, keepdim):
    axes = _axes(x, dim) or None  # torch: an empty dim list reduces over every dim
    inputs = [x] if axes is None else [x, const(axes, np.int64)]
    return apply(op_type, inputs, {"keepdims": int(keepdim)})


def sum(x, dim=None, keepdim=False, dtype=None):
    """torch.sum; integer and bool inputs sum in int64, as in torch."""
    x = as_tensor(x)
    if dtype is not None:
        x = cast(x, dtype)
    elif not dtypes.is_floating(x.dtype):
        x = cast(x, np.int64)
    return _reduce("ReduceSum", x, dim, keepdim)


def mean(x, dim=None, keepdim=False, dtype=None):
    x = as_tensor(x)
    if dtype is not None:
        x = cast(x, dtype)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"mean(): could not infer output dtype; input dtype {x.dtype} must be floating point, "
                        "pass dtype= or call .float() first")
    return _reduce("ReduceMean", x, dim, keepdim)


def prod(x, dim=None, keepdim=False, dtype=None):
    x = as_tensor(x)
    if dtype is not None:
        x = cast(x, dtype)
    elif not dtypes.is_floating(x.dtype):
        x = cast(x, np.int64)
    return _reduce("ReduceProd", x, dim, keepdim)


def _maxmin(op_type, arg_op, x, dim, keepdim, other_fn):
    from . import core
    x = as_tensor(x)
    if dim is None:
        return _reduce(op_type, x, None, False)
    if not isinstance(dim, int):  # max(a, b): elementwise
        return other_fn(x, dim)
    values = _reduce(op_type, x, dim, keepdim)
    indices = apply(arg_op, [x], {"axis": _axes(x, dim)[0], "keepdims": int(keepdim), "select_last_index": 0})
    return MaxMin(values, indices)


def max(x, dim=None, keepdim=False):
    """max over everything, (values, indices) over `dim`, or the elementwise maximum with a tensor."""
    from .core import maximum
    return _maxmin("ReduceMax", "ArgMax", x, dim, keepdim, maximum)


def min(x, dim=None, keepdim=False):
    from .core import minimum
    return _maxmin("ReduceMin", "ArgMin", x, dim, keepdim, minimum)


def amax(x, dim=None, keepdim=False):
    return _reduce("ReduceMax", as_tensor(x), dim, keepdim)


def amin(x, dim=None, keepdim=False):
    return _reduce("ReduceMin", as_tensor(x), dim, keepdim)


def argmax(x, dim=None, keepdim=False):
    x = as_tensor(x)
    if dim is None:
        from .shape import reshape
        x, dim, keepdim = reshape(x, (-1,)), 0, False
    return apply("ArgMax", [x], {"axis": _axes(x, dim)[0], "keepdims": int(keepdim)})


def argmin(x, dim=None, keepdim=False):
    x = as_tensor(x)
    if dim is None:
        from .shape import reshape
        x, dim, keepdim = reshape(x, (-1,)), 0, False
    return apply("ArgMin", [x], {"axis": _axes(x, dim)[0], "keepdims": int(keepdim)})


def logsumexp(x, dim, keepdim=False):
    """Stable log-sum-exp: max + log(sum(exp(x - max)))."""
    x = as_tensor(x)
    m = amax(x, dim, keepdim=True)
    from .autodiff_helpers import stop
    m = stop(m)
    out = add(log(sum(exp(sub(x, m)), dim, keepdim=True)), m)
    if not keepdim:
        from .shape import squeeze
        out = squeeze(out, dim)
    return out


def var(x, dim=None, unbiased=None, keepdim=False, correction=None):
    """torch.var: correction 1 by default (unbiased)."""
    x = as_tensor(x)
    corr = correction if correction is not None else (1 if unbiased is None or unbiased else 0)
    m = mean(x, dim, keepdim=True)
    d = sub(x, m)
    ss = sum(mul(d, d), dim, keepdim)
    n = _count(x, dim)
    return div(ss, float(n - corr)) if isinstance(n, int) else div(ss, sub(cast(n, x.dtype), float(corr)))


def std(x, dim=None, unbiased=None, keepdim=False, correction=None):
    return sqrt(var(x, dim, unbiased, keepdim, correction))


def _count(x, dim):
    shape = x.shape
    axes = range(len(shape)) if dim is None else _axes(x, dim)
    n = 1
    for a in axes:
        n = n * shape[a]
    return n if isinstance(n, int) else n.tensor()


def norm(x, p="fro", dim=None, keepdim=False):
    """Vector p-norms (torch.norm / linalg.vector_norm for p in 1, 2, inf, 'fro', other floats)."""
    x = as_tensor(x)
    if p in ("fro", 2, 2.0):
        return _reduce("ReduceL2", x, dim, keepdim)
    if p in (1, 1.0):
        return _reduce("ReduceL1", x, dim, keepdim)
    from .core import abs_, pow_
    if p == float("inf"):
        return amax(abs_(x), dim, keepdim)
    if p == float("-inf"):
        return amin(abs_(x), dim, keepdim)
    if p == 0:
        from .core import ne
        return sum(cast(ne(x, 0), x.dtype), dim, keepdim)
    return pow_(sum(pow_(abs_(x), float(p)), dim, keepdim), 1.0 / p)


def softmax(x, dim=None, dtype=None):
    x = as_tensor(x)
    if dtype is not None:
        x = cast(x, dtype)
    return apply("Softmax", [x], {"axis": _softmax_dim(x, dim)})


def log_softmax(x, dim=None, dtype=None):
    x = as_tensor(x)
    if dtype is not None:
        x = cast(x, dtype)
    return apply("LogSoftmax", [x], {"axis": _softmax_dim(x, dim)})


def softmin(x, dim=None, dtype=None):
    from .core import neg
    return softmax(neg(as_tensor(x)), dim, dtype)


def _softmax_dim(x, dim):
    if dim is None:  # torch's legacy implicit choice
        dim = 0 if len(x._shape) in (0, 1, 3) else 1
    return _axes(x, dim)[0] if len(x._shape) else 0


def cumsum(x, dim, dtype=None):
    x = as_tensor(x)
    if dtype is not None:
        x = cast(x, dtype)
    elif not dtypes.is_floating(x.dtype):
        x = cast(x, np.int64)
    return apply("CumSum", [x, const(_axes(x, dim)[0], np.int64)])


def all(x, dim=None, keepdim=False):
    return cast(_reduce("ReduceMin", cast(x, np.int64), dim, keepdim), np.bool_)


def any(x, dim=None, keepdim=False):
    return cast(_reduce("ReduceMax", cast(x, np.int64), dim, keepdim), np.bool_)
