"""Sorting and selection with torch's names: topk, sort, argsort, msort, kthvalue, median (TopK) and
unique (Unique). TopK orders equal elements by index, so sort is stable as torch's stable=True.
Floating inputs are ranked by a key that puts NaN above +inf, as torch; their values are then
gathered from the input (GatherElements), so NaNs survive and gradients flow through that Gather."""
import collections

import numpy as np

from .. import dtypes
from ..dims import Dim
from ..infer import fresh_dim
from ..tensor import apply, const
from .core import as_tensor, cast, isnan, isposinf, where
from .shape import getitem, reshape, squeeze, _key, _norm_dim

__all__ = ["topk", "sort", "argsort", "msort", "kthvalue", "median", "unique"]

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

