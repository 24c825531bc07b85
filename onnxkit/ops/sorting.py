"""Sorting and selection with torch's names: topk, sort, argsort, msort, kthvalue, median (TopK) and
unique (Unique); searchsorted/bucketize/isin by counting comparisons; quantiles, nanmedian and mode.
TopK orders equal elements by index, so sort is stable as torch's stable=True.
Floating inputs are ranked by a key that puts NaN above +inf, as torch; their values are then
gathered from the input (GatherElements), so NaNs survive and gradients flow through that Gather."""
import collections

import numpy as np

from .. import dtypes
from ..dims import Dim
from ..infer import fresh_dim
from ..tensor import apply, const
from .core import as_tensor, cast, isnan, isposinf, where
from .shape import expand, getitem, reshape, squeeze, _key, _norm_dim

__all__ = ["topk", "sort", "argsort", "msort", "kthvalue", "median", "unique", "unique_consecutive", "searchsorted",
           "bucketize", "isin", "quantile", "nanquantile", "nanmedian", "mode"]

_I64, _BOOL = np.dtype(np.int64), np.dtype(np.bool_)

TopK = collections.namedtuple("topk", ["values", "indices"])
Sort = collections.namedtuple("sort", ["values", "indices"])
KthValue = collections.namedtuple("kthvalue", ["values", "indices"])
Median = collections.namedtuple("median", ["values", "indices"])


def _k_tensor(k):
    """TopK's K input: a constant, or a symbolic dim's Shape value."""
    return k.tensor() if isinstance(k, Dim) else const([int(k)], _I64)


def _topk(x, k, dim, largest, sorted_):
    """TopK along `dim` -> (values, indices); 0-d inputs act as one-element vectors; bool goes through uint8."""
    x = as_tensor(x)
    if x._shape == ():
        v, i = _topk(reshape(x, 1), k, 0, largest, sorted_)
        return reshape(v, ()), reshape(i, ())
    d = _norm_dim(dim, len(x._shape))
    n = x._shape[d]
    if not isinstance(k, Dim):
        k = int(k)
        if k < 0 or (isinstance(n, int) and k > n):
            raise ValueError(f"topk: selected index k={k} out of range for dim {dim} of size {n}")
    work = cast(x, np.uint8) if x.dtype == _BOOL else x
    floating = dtypes.is_floating(x.dtype)
    if floating:
        work = _nan_key(x)
    out = tuple(_key(k) if i == d else s for i, s in enumerate(x._shape))
    values, indices = apply("TopK", [work, _k_tensor(k)], {"axis": d, "largest": int(bool(largest)),
                                                          "sorted": int(bool(sorted_))},
                            n_out=2, types=[(work.dtype, out), (_I64, out)])
    if floating:  # the values (and their gradient) come from x itself, NaN included
        values = apply("GatherElements", [x, indices], {"axis": d}, types=[(x.dtype, out)])
    return cast(values, x.dtype), indices


def _nan_key(x):
    """A sort key ranking NaN above +inf, as torch (onnxruntime's TopK compares NaN as neither larger
    nor smaller, so it lands anywhere): float64 with +inf moved to the largest finite float64 and NaN to
    +inf (exact for narrower floats; for float64 inputs +inf ties with the largest finite value)."""
    key = cast(x, np.float64)
    key = where(isposinf(key), const(np.finfo(np.float64).max, np.float64), key)
    return where(isnan(key), const(np.inf, np.float64), key)


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The k largest (or smallest) elements along `dim` and their indices (one TopK); ties keep
    index order."""
    return TopK(*_topk(input, k, dim, largest, sorted))


def sort(input, dim=-1, descending=False, *, stable=False):
    """Values sorted along `dim` and their indices (one TopK over the whole dim, static or symbolic).
    Equal elements keep their order, so `stable` holds either way; NaN sorts as the largest."""
    x = as_tensor(input)
    n = x.shape[_norm_dim(dim, len(x._shape))] if x._shape else 1
    return Sort(*_topk(x, n, dim, descending, True))


def argsort(input, dim=-1, descending=False, *, stable=False):
    """The indices that sort `input` along `dim` (sort(...).indices)."""
    return sort(input, dim, descending, stable=stable).indices


def msort(input):
    """input sorted along its first dim (torch.msort)."""
    return sort(input, 0).values


def kthvalue(input, k, dim=-1, keepdim=False):
    """The k-th smallest element (1-based) along `dim` and its index (TopK of the k smallest, last one)."""
    x = as_tensor(input)
    d = _norm_dim(dim, len(x._shape)) if x._shape else 0
    n = x._shape[d] if x._shape else 1
    if int(k) < 1 or (isinstance(n, int) and int(k) > n):
        raise ValueError(f"kthvalue: k={k} is out of range for dim {dim} of size {n}")
    values, indices = _topk(x, int(k), dim, False, True)
    return KthValue(*(_pick(t, int(k) - 1, d, keepdim) for t in (values, indices)))


def _pick(t, i, d, keepdim):
    """t[..., i, ...] along dim d (kept as size 1 with keepdim)."""
    if t._shape == ():
        return t
    idx = tuple([slice(None)] * d + [slice(i, i + 1)])
    out = getitem(t, idx)
    return out if keepdim else squeeze(out, d)


def median(input, dim=None, keepdim=False):
    """The lower median: of all elements (a 0-d tensor) when dim is None, else (values, indices)
    along `dim` (TopK of the smallest half, its last entry). A NaN makes the median NaN (its index
    the first NaN's), as torch."""
    from .reduce import any as any_, argmax
    x = as_tensor(input)
    floating = dtypes.is_floating(x.dtype)
    if dim is None:
        flat = reshape(x, -1)
        n = flat._shape[0]
        if not isinstance(n, int):
            raise ValueError("median over all elements needs a static number of elements; pass dim=")
        if n == 0:
            raise ValueError("median() input tensor cannot be empty")
        med = reshape(_pick(_topk(flat, (n - 1) // 2 + 1, 0, False, True)[0], (n - 1) // 2, 0, False), ())
        return where(any_(isnan(x)), const(np.nan, x.dtype), med) if floating else med
    d = _norm_dim(dim, len(x._shape)) if x._shape else 0
    n = x._shape[d] if x._shape else 1
    if not isinstance(n, int):
        raise ValueError(f"median: dim {dim} is symbolic ({n}); a static size is needed")
    values, indices = _topk(x, (n - 1) // 2 + 1, dim, False, True)
    values, indices = (_pick(t, (n - 1) // 2, d, keepdim) for t in (values, indices))
    if floating and x._shape:
        nan = isnan(x)
        has_nan = any_(nan, d, keepdim)
        values = where(has_nan, const(np.nan, x.dtype), values)
        indices = where(has_nan, argmax(cast(nan, np.float32), d, keepdim), indices)
    return Median(values, indices)


_UNIQUE_TYPES = {np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int8)}  # onnxruntime's kernels


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct elements (slices along `dim`) in ascending order, with optionally the inverse
    indices and the counts (one Unique, sorted=1: torch's CPU kernel sorts either way). The number of
    distinct values is a fresh symbolic dim."""
    x = as_tensor(input)
    if dim is None:
        src, attrs = reshape(x, -1), {"sorted": 1}
        inv_shape = None
    else:
        d = _norm_dim(dim, len(x._shape))
        src, attrs, inv_shape = x, {"sorted": 1, "axis": d}, (x._shape[d],)
    work = src if src.dtype in _UNIQUE_TYPES else cast(src, np.float32 if dtypes.is_floating(src.dtype) else _I64)
    u = fresh_dim()
    y_shape = (u,) if dim is None else tuple(u if i == attrs["axis"] else s for i, s in enumerate(x._shape))
    y, _, inverse, counts = apply("Unique", [work], attrs, n_out=4, types=[
        (work.dtype, y_shape), (_I64, (u,)), (_I64, inv_shape or src._shape), (_I64, (u,))])
    y = cast(y, x.dtype)
    if not (return_inverse or return_counts):
        return y
    out = [y]
    if return_inverse:
        out.append(reshape(inverse, *x.shape) if dim is None else inverse)
    if return_counts:
        out.append(counts)
    return tuple(out)



# ----- searching sorted sequences, membership, runs -----------------------------------------------------
def _before(seq, v, right):
    """Whether seq comes before v (seq < v, or seq <= v with right=True); NaNs sort last, as in torch, so a
    NaN value goes after everything and a NaN in seq before nothing."""
    from .core import lt, le, logical_or
    before = (le if right else lt)(seq, v)
    return logical_or(before, isnan(v)) if dtypes.is_floating(seq.dtype) else before


def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None, sorter=None):
    """Where each value would be inserted into the sorted last dim of sorted_sequence to keep it sorted
    (the first such place, or the last with right=True / side='right'); a count of the elements
    before it, so O(n) comparisons per value."""
    from .core import promote_operands
    from .reduce import sum as sum_
    from .shape import unsqueeze, take_along_dim
    if side is not None:
        if side not in ("left", "right"):
            raise ValueError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side}")
        if right and side == "left":
            raise ValueError("torch.searchsorted(): side and right can't be set to opposites")
        right = side == "right"
    seq = as_tensor(sorted_sequence)
    if sorter is not None:
        seq = take_along_dim(seq, as_tensor(sorter), -1)
    scalar = not isinstance(input, type(seq)) and np.ndim(input) == 0
    v = as_tensor(np.asarray(input, seq.dtype) if scalar else input)
    seq, v = promote_operands(seq, v)
    if len(seq._shape) == 1:
        hits = _before(seq, unsqueeze(v, -1), right)
    else:
        hits = _before(unsqueeze(seq, -2), unsqueeze(v, -1), right)
    out = sum_(hits, -1)
    return cast(out, np.int32) if out_int32 else out


def bucketize(input, boundaries, *, out_int32=False, right=False):
    """The index of the bucket of each value between sorted 1-D boundaries (torch.bucketize): with
    right=False, boundaries[i-1] < x <= boundaries[i]."""
    b = as_tensor(boundaries)
    if len(b._shape) != 1:
        raise ValueError(f"boundaries tensor must be 1 dimension, but got dim({len(b._shape)})")
    return searchsorted(b, input, out_int32=out_int32, right=right)


def isin(elements, test_elements, *, assume_unique=False, invert=False):
    """Whether each element occurs in test_elements (torch.isin); O(n * m) comparisons."""
    from .core import eq, logical_not, promote_operands
    from .reduce import any as any_
    from .shape import unsqueeze
    e_scalar = np.ndim(elements) == 0 and not hasattr(elements, "_shape")
    e = as_tensor(np.asarray(elements) if e_scalar else elements)
    t = as_tensor(np.asarray(test_elements) if np.ndim(test_elements) == 0 and not hasattr(test_elements, "_shape")
                  else test_elements)
    e, t = promote_operands(e, t)
    hit = any_(eq(unsqueeze(e, -1), reshape(t, -1)), -1)
    return logical_not(hit) if invert else hit


def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """The input with runs of equal elements (or slices along `dim`) collapsed to one, and optionally the
    run of each element (inverse) and each run's length (counts), as torch.unique_consecutive."""
    from .core import ne, sub
    from .indexing import nonzero
    from .reduce import any as any_, cumsum
    from .shape import cat, narrow, index_select
    x = as_tensor(input)
    if dim is None:
        src, d = reshape(x, -1), 0
    else:
        src, d = x, _norm_dim(dim, len(x._shape))
    n = src.shape[d]
    first = const(np.ones(1, bool), _BOOL)
    if n == 0:
        starts = const(np.zeros(0, bool), _BOOL)
    else:
        changed = ne(narrow(src, d, 1, n - 1), narrow(src, d, 0, n - 1))
        if len(src._shape) > 1:
            changed = any_(changed, [a for a in range(len(src._shape)) if a != d])
        starts = cat([first, changed], 0)
    pos = reshape(nonzero(starts), -1)
    out = [index_select(src, d, pos)]
    if return_inverse:
        inv = sub(cumsum(starts, 0), 1)
        out.append(inv if dim is not None else reshape(inv, *x.shape))
    if return_counts:
        total = const([n], _I64) if isinstance(n, int) else reshape(n.tensor(), 1)
        out.append(sub(cat([narrow(pos, 0, 1, pos.shape[0] - 1), total], 0), pos))
    return out[0] if len(out) == 1 else tuple(out)


# ----- quantiles ------------------------------------------------------------------------------------------
_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(input, q, dim, keepdim, interpolation, ignore_nan, what):
    """Sort along dim (NaN last), then read rank q * (k - 1) of each slice, k its element count (its
    non-NaN count when ignoring NaN), interpolating between the neighbouring ranks as torch does."""
    from .core import mul, sub, add, floor, ceil, round_, lerp, logical_not, eq, maximum
    from .reduce import sum as sum_, any as any_
    from .shape import stack, gather
    x = as_tensor(input)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"{what}() input tensor must be either float or double dtype")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"{what}() interpolation must be one of linear, lower, higher, midpoint or nearest. "
                         f"Got {interpolation}")
    qt = cast(as_tensor(q if not isinstance(q, (list, tuple)) else np.asarray(q, x.dtype), x.dtype), x.dtype)
    if len(qt._shape) > 1:
        raise ValueError(f"{what}() q must be a scalar or 1D tensor")
    if qt.kind in ("const", "value"):
        qv = np.asarray(qt.numpy())
        if ((qv < 0) | (qv > 1)).any():
            raise ValueError(f"{what}() q values must be in the range [0, 1]")
    rank = len(x._shape)
    src = reshape(x, -1) if dim is None else x
    d = 0 if dim is None else _norm_dim(dim, rank)
    values = sort(src, d).values
    nan = isnan(src)
    if ignore_nan:
        count = sum_(cast(logical_not(nan), x.dtype), d, keepdim=True)
    else:
        count = const(float(src._shape[d]), x.dtype)
    last = maximum(sub(count, 1.0), 0.0)

    def one(qi):
        pos = mul(qi, last)
        lo, hi = floor(pos), ceil(pos)
        if interpolation == "nearest":
            lo = hi = round_(pos)
        slab = _rank_slab(values, d)
        v_lo, v_hi = (gather(values, d, cast(add(slab, r), _I64)) for r in (lo, hi))
        if interpolation in ("lower", "nearest"):
            out = v_lo
        elif interpolation == "higher":
            out = v_hi
        elif interpolation == "midpoint":
            out = lerp(v_lo, v_hi, 0.5)  # torch's midpoint, inf included
        else:
            out = lerp(v_lo, v_hi, sub(pos, lo))
        empty = eq(count, 0.0) if ignore_nan else any_(nan, d, keepdim=True)
        out = where(empty, const(np.nan, x.dtype), out)
        if dim is None:
            return reshape(out, *([1] * rank)) if keepdim else reshape(out, ())
        return out if keepdim else squeeze(out, d)
    if len(qt._shape) == 0:
        return one(qt)
    return stack([one(reshape(getitem(qt, (j,)), ())) for j in range(int(qt._shape[0]))], 0)


def _rank_slab(t, d):
    """Zeros of t's shape with dim d of size 1 (the shape of one rank read per slice)."""
    from .core import zeros_of
    from .shape import narrow
    return zeros_of(narrow(t, d, 0, 1))


def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear", out=None):
    """The q-th quantiles over `dim` (all elements by default), interpolated as torch's `interpolation`;
    NaN where a slice holds a NaN. A 1-D q puts its dim first."""
    return _quantile(input, q, dim, keepdim, interpolation, False, "quantile")


def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear", out=None):
    """quantile over the non-NaN elements (NaN where a slice has none), as torch.nanquantile."""
    return _quantile(input, q, dim, keepdim, interpolation, True, "nanquantile")


NanMedian = collections.namedtuple("nanmedian", ["values", "indices"])


def nanmedian(input, dim=None, keepdim=False):
    """The lower median of the non-NaN elements (NaN where there are none): a 0-d tensor when dim is None,
    else (values, indices) along `dim`, as torch.nanmedian."""
    from .core import sub, floor_divide, logical_not, eq
    from .reduce import sum as sum_
    from .shape import gather
    x = as_tensor(input)
    src = reshape(x, -1) if dim is None else x
    d = 0 if dim is None else _norm_dim(dim, len(x._shape)) if x._shape else 0
    if src._shape == ():
        return src if dim is None else NanMedian(src, const(0, _I64))
    values, indices = sort(src, d)
    if dtypes.is_floating(x.dtype):
        count = sum_(cast(logical_not(isnan(src)), _I64), d, keepdim=True)
    else:
        count = const(np.int64(src._shape[d]), _I64)
    n = src._shape[d]
    at = where(eq(count, 0), const(np.int64(n // 2), _I64), floor_divide(sub(count, 1), 2))  # all NaN: torch's
    shape = [1 if i == d else s for i, s in enumerate(values.shape)]
    at = expand(at, *shape)
    med, idx = gather(values, d, at), gather(indices, d, at)
    if dim is None:
        return reshape(med, ())
    if not keepdim:
        med, idx = squeeze(med, d), squeeze(idx, d)
    return NanMedian(med, idx)


Mode = collections.namedtuple("mode", ["values", "indices"])


def mode(input, dim=-1, keepdim=False):
    """The most frequent value along `dim` (the smallest among equally frequent ones) and the index of its
    last occurrence, as torch.mode; O(n^2) comparisons along dim."""
    from .core import eq
    from .reduce import sum as sum_, amax, amin, _positions
    from .shape import unsqueeze
    x = as_tensor(input)
    if x._shape == ():
        return Mode(x, const(0, _I64))
    d = _norm_dim(dim, len(x._shape))
    work = cast(x, np.uint8) if x.dtype == _BOOL else x
    same = eq(unsqueeze(work, d + 1), unsqueeze(work, d))  # [..., i, j, ...]: x_i == x_j
    counts = sum_(cast(same, _I64), d + 1)
    top = eq(counts, amax(counts, d, keepdim=True))
    big = np.inf if dtypes.is_floating(work.dtype) else np.iinfo(work.dtype).max
    value = amin(where(top, work, const(big, work.dtype)), d, keepdim=True)
    n = x.shape[d]
    pos = reshape(_positions(n), *[-1 if i == d else 1 for i in range(len(x._shape))])
    index = amax(where(eq(work, value), pos, const(-1, _I64)), d, keepdim=True)
    value = cast(value, x.dtype)
    if not keepdim:
        value, index = squeeze(value, d), squeeze(index, d)
    return Mode(value, index)
