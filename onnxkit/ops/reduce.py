"""Reductions and softmax with torch's `dim`/`keepdim` arguments (ONNX Reduce* with an axes input)."""
import builtins
import collections
import numbers

import numpy as np

from .. import dtypes
from ..tensor import apply, const
from .autodiff_helpers import stop
from .core import as_tensor, cast, no_strings, sub, mul, div, sqrt, exp, log, add, abs_, pow_, ne, neg, maximum, minimum

MaxMin = collections.namedtuple("MaxMin", ["values", "indices"])


def _axes(x, dim):
    """`dim` (an int or a sequence) as non-negative axes, checked against x's rank; None for all."""
    if dim is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    r = len(x._shape)
    for d in dims:
        if not -r <= d < builtins.max(r, 1):
            raise IndexError(f"dim {d} is out of range for a tensor of rank {r}")
    return [d % builtins.max(r, 1) for d in dims]


def _reduce(op_type, x, dim, keepdim):
    """One Reduce* node; an empty dim list reduces over every dim (torch), a 0-d input over none."""
    axes = None if x._shape == () else _axes(x, dim)
    inputs = [x, const(axes, np.int64)] if axes else [x]
    return apply(op_type, inputs, {"keepdims": int(keepdim)})


def _accumulating(x, dtype):
    """x cast to `dtype`, or integers and bools to int64 (torch's sum, prod and cumsum)."""
    x = no_strings(as_tensor(x), "a sum or product")
    if dtype is not None:
        return cast(x, dtype)
    return x if dtypes.is_floating(x.dtype) else cast(x, np.int64)


def sum(x, dim=None, keepdim=False, dtype=None):
    """torch.sum (ReduceSum); integer and bool inputs sum in int64, as in torch."""
    return _reduce("ReduceSum", _accumulating(x, dtype), dim, keepdim)


def mean(x, dim=None, keepdim=False, dtype=None):
    """torch.mean (ReduceMean); integer inputs need dtype=, as in torch."""
    x = as_tensor(x)
    if dtype is not None:
        x = cast(x, dtype)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"mean(): could not infer output dtype; input dtype {x.dtype} must be floating point, "
                        "pass dtype= or call .float() first")
    return _reduce("ReduceMean", x, dim, keepdim)


def prod(x, dim=None, keepdim=False, dtype=None):
    """torch.prod (ReduceProd); integer and bool inputs multiply in int64."""
    return _reduce("ReduceProd", _accumulating(x, dtype), dim, keepdim)


def _is_dim(d):
    return isinstance(d, numbers.Integral) and not isinstance(d, bool)


def _maxmin(op_type, arg_op, x, dim, keepdim, elementwise):
    x = as_tensor(x)
    if dim is None:
        return _reduce(op_type, x, None, False)
    if not _is_dim(dim):  # max(a, b): elementwise
        return elementwise(x, dim)
    values = _reduce(op_type, x, dim, keepdim)
    return MaxMin(values, _arg(arg_op, x, dim, keepdim))


def max(x, dim=None, keepdim=False):
    """max over everything (ReduceMax), (values, indices) over `dim` (+ ArgMax), or the elementwise
    maximum with a tensor (Max)."""
    return _maxmin("ReduceMax", "ArgMax", x, dim, keepdim, maximum)


def min(x, dim=None, keepdim=False):
    """min over everything (ReduceMin), (values, indices) over `dim` (+ ArgMin), or the elementwise
    minimum with a tensor (Min)."""
    return _maxmin("ReduceMin", "ArgMin", x, dim, keepdim, minimum)


def amax(x, dim=None, keepdim=False):
    """Maximum over `dim` (all dims by default), ties share the gradient (ReduceMax)."""
    return _reduce("ReduceMax", as_tensor(x), dim, keepdim)


def amin(x, dim=None, keepdim=False):
    """Minimum over `dim` (all dims by default), ties share the gradient (ReduceMin)."""
    return _reduce("ReduceMin", as_tensor(x), dim, keepdim)


def _arg(op_type, x, dim, keepdim):
    """ArgMax/ArgMin over `dim`, or over the flattened tensor when dim is None (torch keeps every dim
    as size 1 then if keepdim)."""
    x = as_tensor(x)
    if dim is not None and x._shape != ():
        return apply(op_type, [x], {"axis": _axes(x, dim)[0], "keepdims": int(keepdim)})
    from .shape import reshape
    flat = apply(op_type, [reshape(x, -1)], {"axis": 0, "keepdims": 0})
    return reshape(flat, [1] * len(x._shape)) if keepdim else flat


def argmax(x, dim=None, keepdim=False):
    """Index of the first maximum over `dim`, or of the flattened tensor (ArgMax)."""
    return _arg("ArgMax", x, dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    """Index of the first minimum over `dim`, or of the flattened tensor (ArgMin)."""
    return _arg("ArgMin", x, dim, keepdim)


def logsumexp(x, dim, keepdim=False):
    """Stable log-sum-exp: max + log(sum(exp(x - max)))."""
    x = as_tensor(x)
    m = stop(amax(x, dim, keepdim=True))
    out = add(log(sum(exp(sub(x, m)), dim, keepdim=True)), m)
    if not keepdim:
        from .shape import squeeze
        out = squeeze(out, dim)
    return out


def var(x, dim=None, unbiased=None, keepdim=False, correction=None):
    """torch.var: correction 1 by default (unbiased); `var(False)` is the legacy var(unbiased=False)."""
    x = as_tensor(x)
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    corr = correction if correction is not None else (1 if unbiased is None or unbiased else 0)
    d = sub(x, mean(x, dim, keepdim=True))
    ss = sum(mul(d, d), dim, keepdim)
    n = _count(x, dim)
    return div(ss, float(n - corr)) if isinstance(n, int) else div(ss, sub(cast(n, x.dtype), float(corr)))


def std(x, dim=None, unbiased=None, keepdim=False, correction=None):
    """sqrt of var (same arguments)."""
    return sqrt(var(x, dim, unbiased, keepdim, correction))


def _count(x, dim):
    """Number of elements reduced over `dim`: an int, or a 0-d int64 tensor when symbolic."""
    shape = x.shape
    n = 1
    for a in (range(len(shape)) if dim is None else _axes(x, dim)):
        n = n * shape[a]
    if isinstance(n, int):
        return n
    from .shape import squeeze
    return squeeze(n.tensor(), 0)


_NORM_ORDERS = "1, 2, inf, -inf, 0, 'fro' or another number"


def norm(x, p="fro", dim=None, keepdim=False):
    """Vector p-norms (torch.norm / linalg.vector_norm): ReduceL2 for 2 and 'fro', ReduceL1 for 1,
    max/min of |x| for +-inf, a count for 0, the power sum otherwise."""
    x = as_tensor(x)
    if p in ("fro", 2):
        return _reduce("ReduceL2", x, dim, keepdim)
    if not isinstance(p, numbers.Real):
        raise ValueError(f"norm: p={p!r} is not supported; vector norms take p = {_NORM_ORDERS}")
    if p == 1:
        return _reduce("ReduceL1", x, dim, keepdim)
    if p == float("inf"):
        return amax(abs_(x), dim, keepdim)
    if p == float("-inf"):
        return amin(abs_(x), dim, keepdim)
    if p == 0:
        return sum(cast(ne(x, 0), x.dtype), dim, keepdim)
    return pow_(sum(pow_(abs_(x), float(p)), dim, keepdim), 1.0 / p)


def _softmax_op(op_type, x, dim, dtype):
    x = as_tensor(x)
    if dtype is not None:
        x = cast(x, dtype)
    return apply(op_type, [x], {"axis": _softmax_dim(x, dim)})


def softmax(x, dim=None, dtype=None):
    """exp(x) / sum(exp(x)) along `dim` (one Softmax)."""
    return _softmax_op("Softmax", x, dim, dtype)


def log_softmax(x, dim=None, dtype=None):
    """log(softmax(x)) along `dim`, computed stably (one LogSoftmax)."""
    return _softmax_op("LogSoftmax", x, dim, dtype)


def softmin(x, dim=None, dtype=None):
    """softmax(-x) along `dim`."""
    return softmax(neg(as_tensor(x)), dim, dtype)


def _softmax_dim(x, dim):
    """The softmax axis; without `dim`, torch's legacy implicit choice (0 for ranks 0, 1 and 3, else 1)."""
    if dim is None:
        dim = 0 if len(x._shape) in (0, 1, 3) else 1
    return _axes(x, dim)[0] if len(x._shape) else 0


def cumsum(x, dim, dtype=None):
    """Running sum along `dim` (CumSum); integer and bool inputs accumulate in int64, as in torch."""
    x = _accumulating(x, dtype)
    return apply("CumSum", [x, const(_axes(x, dim)[0], np.int64)])


def _truth(x):
    """x as 0/1 int64: nonzero (NaN included) counts as True, as in torch.all/any."""
    x = as_tensor(x)
    return cast(cast(x, np.bool_), np.int64)


def all(x, dim=None, keepdim=False):
    """True where every element along `dim` is nonzero (ReduceMin over 0/1)."""
    return cast(_reduce("ReduceMin", _truth(x), dim, keepdim), np.bool_)


def any(x, dim=None, keepdim=False):
    """True where some element along `dim` is nonzero (ReduceMax over 0/1)."""
    return cast(_reduce("ReduceMax", _truth(x), dim, keepdim), np.bool_)


def count_nonzero(input, dim=None):
    """Number of nonzero elements (NaN counts) over `dim`, int64 (ReduceSum of the 0/1 truth)."""
    return _reduce("ReduceSum", _truth(input), dim, False)


def cumprod(input, dim, dtype=None):
    """Running product along `dim` (no ONNX op): ReduceProd over an (n, n) lower-triangular Where of x
    against ones, so zeros and gradients are exact (the ReduceProd rule); O(n^2) memory along dim.
    Integer and bool inputs multiply in int64, as in torch."""
    from .core import where
    from .shape import unsqueeze, reshape
    x = _accumulating(input, dtype)
    if x._shape == ():
        return x
    d = _axes(x, dim)[0]
    n, r = x.shape[d], len(x._shape)
    if isinstance(n, int):
        lower = const(np.tril(np.ones((n, n), bool)), np.bool_)
    else:
        size = reshape(n.tensor(), ())
        pos = apply("Range", [const(0, np.int64), size, const(1, np.int64)], types=[(np.dtype(np.int64), (n.name,))])
        lower = apply("GreaterOrEqual", [unsqueeze(pos, 1), unsqueeze(pos, 0)])  # [i, j]: j <= i
    lower = reshape(lower, *([1] * d), n, n, *([1] * (r - d - 1)))
    rows = where(lower, unsqueeze(x, d), const(1, x.dtype))  # [..., i, j, ...] = x_j for j <= i
    return _reduce("ReduceProd", rows, d + 1, False)


# ----- running extrema, NaN-ignoring sums, paired statistics ------------------------------------------
AMinMax = collections.namedtuple("aminmax", ["min", "max"])


def aminmax(input, *, dim=None, keepdim=False):
    """(amin, amax) over `dim` (all dims by default), as torch.aminmax's (min, max)."""
    x = as_tensor(input)
    return AMinMax(amin(x, dim, keepdim), amax(x, dim, keepdim))


def _positions(n):
    """0..n-1 as int64 (a constant, or a Range for a symbolic n)."""
    from .shape import reshape
    if isinstance(n, int):
        return const(np.arange(n), np.int64)
    return apply("Range", [const(0, np.int64), reshape(n.tensor(), ()), const(1, np.int64)],
                 types=[(np.dtype(np.int64), (n.name,))])


def _prefix(x, d):
    """The (n, n) mask [i, j] = j <= i placed at dims (d, d + 1) of a rank-(r + 1) tensor, and the
    positions j at dim d + 1: the pieces of running (prefix) reductions along d."""
    from .shape import reshape, unsqueeze
    n, r = x.shape[d], len(x._shape)
    pos = _positions(n)
    lower = apply("GreaterOrEqual", [unsqueeze(pos, 1), unsqueeze(pos, 0)])
    lower = reshape(lower, *([1] * d), n, n, *([1] * (r - d - 1)))
    return lower, reshape(pos, *([1] * (d + 1)), n, *([1] * (r - d - 1)))


def _running_extreme(input, dim, largest):
    """cummax / cummin: the running extreme and the index of its last occurrence; a NaN takes over from
    where it appears (torch's rule), as the index of the latest NaN."""
    from .core import where, eq, logical_and, isnan, ge
    from .shape import unsqueeze, gather
    x = as_tensor(input)
    if x._shape == ():
        return MaxMin(x, const(0, np.int64))
    d = _axes(x, dim)[0]
    floating = dtypes.is_floating(x.dtype)
    key = cast(x, np.uint8) if x.dtype == np.bool_ else x
    bound = (-np.inf if largest else np.inf) if floating else \
        (np.iinfo(key.dtype).min if largest else np.iinfo(key.dtype).max)
    if floating:
        key = where(isnan(x), const(bound, x.dtype), x)
    lower, pos = _prefix(x, d)
    rows = where(lower, unsqueeze(key, d), const(bound, key.dtype))
    best = _reduce("ReduceMax" if largest else "ReduceMin", rows, d + 1, True)
    none = const(-1, np.int64)
    idx = _reduce("ReduceMax", where(logical_and(lower, eq(rows, best)), pos, none), d + 1, False)
    if floating:
        nan_at = _reduce("ReduceMax", where(logical_and(lower, unsqueeze(isnan(x), d)), pos, none), d + 1, False)
        idx = where(ge(nan_at, 0), nan_at, idx)
    return MaxMin(gather(x, d, idx), idx)


def cummax(input, dim):
    """(values, indices) of the running maximum along `dim`; ties give the latest index, NaN propagates
    (torch.cummax). O(n^2) memory along dim, as cumprod."""
    return _running_extreme(input, dim, True)


def cummin(input, dim):
    """(values, indices) of the running minimum along `dim` (torch.cummin)."""
    return _running_extreme(input, dim, False)


def logcumsumexp(input, dim):
    """log(cumsum(exp(x))) along `dim` without overflow or underflow: a logsumexp over each prefix (an
    (n, n) lower-triangular Where), shifted by the prefix's maximum."""
    from .core import where, isinf, _floating
    from .shape import unsqueeze, squeeze
    x = _floating(input)
    if x._shape == ():
        return x
    d = _axes(x, dim)[0]
    lower, _ = _prefix(x, d)
    rows = where(lower, unsqueeze(x, d), const(-np.inf, x.dtype))
    m = stop(_reduce("ReduceMax", rows, d + 1, True))
    m = where(isinf(m), const(0.0, x.dtype), m)
    return squeeze(add(log(_reduce("ReduceSum", exp(sub(rows, m)), d + 1, True)), m), d + 1)


def _without_nan(x):
    from .core import where, isnan
    return where(isnan(x), const(0, x.dtype), x) if dtypes.is_floating(x.dtype) else x


def nansum(input, dim=None, keepdim=False, *, dtype=None):
    """sum treating NaN as zero (torch.nansum)."""
    x = as_tensor(input)
    return sum(_without_nan(x), dim, keepdim, dtype)


def nanmean(input, dim=None, keepdim=False, *, dtype=None):
    """mean over the non-NaN elements (NaN where all are NaN), as torch.nanmean."""
    from .core import logical_not, isnan
    x = as_tensor(input)
    if dtype is not None:
        x = cast(x, dtype)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"nanmean(): expected input to have floating point dtype but got {x.dtype}")
    count = sum(cast(logical_not(isnan(x)), x.dtype), dim, keepdim)
    return div(nansum(x, dim, keepdim), count)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(var, mean) over `dim` (torch.var_mean; correction 1 by default)."""
    x = as_tensor(input)
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return var(x, dim, unbiased, keepdim, correction), mean(x, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(std, mean) over `dim` (torch.std_mean; correction 1 by default)."""
    x = as_tensor(input)
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return std(x, dim, unbiased, keepdim, correction), mean(x, dim, keepdim)


# ----- integrals, norms over all but one dim ---------------------------------------------------------------
def _trapezoid_parts(y, x, dx, dim):
    """The per-interval areas (y[i] + y[i+1]) / 2 * (x[i+1] - x[i]) along `dim`, and that dim."""
    from .core import _floating
    from .shape import narrow, diff
    y = as_tensor(y)
    if not dtypes.is_floating(y.dtype):
        y = _floating(y)
    d = _axes(y, dim)[0]
    n = y.shape[d]
    mids = mul(add(narrow(y, d, 1, n - 1), narrow(y, d, 0, n - 1)), 0.5) if n else y
    if x is None:
        return (mids if dx is None or dx == 1 else mul(mids, float(dx))), d
    x = as_tensor(x)
    if len(x._shape) == 1:
        widths = diff(x)
        widths = _along(widths, d, len(y._shape))
    else:
        widths = diff(x, dim=d)
    return mul(mids, widths), d


def _along(v, d, rank):
    """A 1-D v laid along dim d of a rank-`rank` tensor."""
    from .shape import reshape
    return reshape(v, *[-1 if i == d else 1 for i in range(rank)])


def trapezoid(y, x=None, *, dx=None, dim=-1):
    """The trapezoid-rule integral of y along `dim`, at sample points x (or spacing dx, default 1)."""
    if x is not None and dx is not None:
        raise TypeError("trapezoid() received both x and dx")
    parts, d = _trapezoid_parts(y, x, dx, dim)
    return sum(parts, d)


def trapz(y, x=None, *, dx=None, dim=-1):
    """torch.trapz: trapezoid (an alias)."""
    return trapezoid(y, x, dx=dx, dim=dim)


def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1):
    """The running trapezoid-rule integral of y along `dim` (one element fewer than y along it)."""
    if x is not None and dx is not None:
        raise TypeError("cumulative_trapezoid() received both x and dx")
    parts, d = _trapezoid_parts(y, x, dx, dim)
    return cumsum(parts, d)


def frobenius_norm(input, dim=(-2, -1), keepdim=False):
    """sqrt of the sum of squares over `dim` (torch.frobenius_norm)."""
    x = as_tensor(input)
    return sqrt(sum(mul(x, x), list(dim) if isinstance(dim, (list, tuple)) else dim, keepdim))


def norm_except_dim(v, pow=2, dim=0):
    """The pow-norm over every dim but `dim`, kept with size 1 elsewhere (torch.norm_except_dim, as
    weight_norm uses it); dim=-1 takes the norm of everything."""
    x = as_tensor(v)
    r = len(x._shape)
    if dim == -1:
        return norm(x, pow)
    d = _axes(x, dim)[0]
    others = [i for i in range(r) if i != d]
    return norm(x, pow, others, keepdim=True) if others else abs_(x)


def renorm(input, p, dim, maxnorm):
    """Each slice along `dim` whose p-norm exceeds maxnorm scaled down to norm maxnorm (torch.renorm; the
    scale is maxnorm / (norm + 1e-7), as torch's)."""
    from .core import where, gt
    x = as_tensor(input)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"renorm: expected a floating-point input, got {x.dtype}")
    if float(p) <= 0:
        raise ValueError(f"renorm: non-positive-norm not supported, got p={p}")
    if float(maxnorm) < 0:
        raise ValueError(f"renorm: expected maxnorm to be >= 0 but got {maxnorm}")
    d = _axes(x, dim)[0]
    others = [i for i in range(len(x._shape)) if i != d]
    n = norm(x, float(p), others, keepdim=True) if others else abs_(x)
    scale = where(gt(n, float(maxnorm)), div(float(maxnorm), add(n, 1e-7)), const(1.0, x.dtype))
    return mul(x, scale)
