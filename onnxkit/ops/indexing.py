"""Indexing ops with torch's names: masked_fill, tril/triu, nonzero and boolean masks, masked_select,
repeat_interleave, roll, one_hot, bincount, index_add/index_copy/index_fill, diag/diagonal/trace; the
scatters (masked_scatter, put, index_put, *_scatter, scatter_reduce, index_reduce) and histograms.

Data-dependent sizes (NonZero, repeats from a tensor, bincount) get a fresh symbolic dim; sizes
that only need a concrete value (one_hot's num_classes=-1, numpy masks) are read at build time."""
import collections

import numpy as np

from .. import dtypes
from ..dims import format_shape as _fmt
from ..infer import fresh_dim
from ..tensor import Tensor, apply, const
from .core import as_tensor, cast, where, mul, add, lt, eq, maximum, remainder, sub, ones_of
from .distance import _broadcast_pair
from .reduce import any as any_, sum as sum_
from .shape import (cat, expand, getitem, index_select, narrow, permute, reshape, unsqueeze, _is_int, _key,
                    _norm_dim)

__all__ = ["masked_fill", "tril", "triu", "nonzero", "argwhere", "masked_select", "repeat_interleave", "roll",
           "one_hot", "bincount", "index_add", "index_copy", "index_fill", "diag", "diagonal", "trace", "diagflat",
           "masked_scatter", "put", "index_put", "select_scatter", "slice_scatter", "diagonal_scatter", "diag_embed",
           "histc", "histogram", "histogramdd", "combinations", "unravel_index", "vander", "scatter_reduce",
           "index_reduce", "nonzero_static", "segment_reduce"]

_I64, _BOOL = np.dtype(np.int64), np.dtype(np.bool_)


def _i64(x):
    return cast(as_tensor(x), _I64)


def concrete_value(t, evaluate=False):
    """t's values as a numpy array when they do not depend on a graph input, else None. Computed
    tensors are evaluated only with `evaluate` (value leaves are read as they are)."""
    if t.node is None:
        return None if t.kind == "input" else np.asarray(t.numpy())
    if not evaluate:
        return None
    from ..emit import topo
    if any(leaf.kind == "input" for leaf in topo([t])[1]):
        return None
    return np.asarray(t.numpy())


def _arange(n):
    """0, 1, ..., n-1 as int64 for a static or symbolic size n (const, or one Range)."""
    if isinstance(n, int):
        return const(np.arange(n), _I64)
    stop = reshape(n.tensor(), ())
    return apply("Range", [const(0, _I64), stop, const(1, _I64)], types=[(_I64, (_key(n),))])


def _value_of(value, dtype, what):
    """A fill value as a 0-d Tensor of `dtype`: a Python scalar or a 0-d Tensor, as torch."""
    if isinstance(value, Tensor):
        if value._shape != ():
            raise ValueError(f"{what} only supports a 0-dimensional value tensor, but got tensor with "
                             f"{len(value._shape)} dimension(s)")
        return cast(value, dtype)
    if np.ndim(value) != 0:
        raise ValueError(f"{what} expects a scalar or a 0-dimensional tensor as value, got shape {np.shape(value)}")
    return const(value, dtype)


# ----- masks ------------------------------------------------------------------------------------
def masked_fill(input, mask, value):
    """input with `value` where the boolean `mask` (broadcast) is True (one Where). The value takes
    input's dtype (2.7 fills an int tensor with 2, as torch)."""
    x, m = as_tensor(input), as_tensor(mask)
    if m.dtype != _BOOL:
        raise TypeError(f"masked_fill only supports boolean masks, but got mask with dtype {m.dtype}")
    return where(m, _value_of(value, x.dtype, "masked_fill"), x)


_TRILU_TYPES = {np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int32, np.bool_)}  # onnxruntime's


def _trilu(input, diagonal, upper, what):
    x = as_tensor(input)
    if x._shape is None or len(x._shape) < 2:
        raise ValueError(f"{what}: input tensor must have at least 2 dimensions, got shape {_fmt(x._shape or ())}")
    work = x if x.dtype in _TRILU_TYPES else cast(x, np.float32 if dtypes.is_floating(x.dtype) else _I64)
    y = apply("Trilu", [work, const(int(diagonal), _I64)], {"upper": upper}, types=[(work.dtype, x._shape)])
    return cast(y, x.dtype)


def tril(input, diagonal=0):
    """The lower triangle of the last two dims, the rest zero (one Trilu, upper=0)."""
    return _trilu(input, diagonal, 0, "tril")


def triu(input, diagonal=0):
    """The upper triangle of the last two dims, the rest zero (one Trilu, upper=1)."""
    return _trilu(input, diagonal, 1, "triu")


_NONZERO_TYPES = {np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_)}


def nonzero(input, *, as_tuple=False):
    """Indices of the nonzero elements: (n, rank) int64 (NonZero + Transpose), or with as_tuple one
    1-D index tensor per dim (NonZero + Gather). n is a fresh symbolic dim."""
    x = as_tensor(input)
    if x._shape == ():  # torch: (n, 0), or as a tuple the index into the one-element flattening
        flat = nonzero(reshape(x, 1))
        return (reshape(flat, -1),) if as_tuple else getitem(flat, (slice(None), slice(0, 0)))
    if x.dtype not in _NONZERO_TYPES:
        x = cast(x, _BOOL)
    r, n = len(x._shape), fresh_dim()
    nz = apply("NonZero", [x], types=[(_I64, (r, n))])
    if as_tuple:
        return tuple(apply("Gather", [nz, const(i, _I64)], {"axis": 0}, types=[(_I64, (n,))]) for i in range(r))
    return apply("Transpose", [nz], {"perm": [1, 0]}, types=[(_I64, (n, r))])


def argwhere(input):
    """nonzero(input): the (n, rank) indices of the nonzero elements."""
    return nonzero(input)


def is_bool_mask(i):
    """Whether an index entry is a boolean mask (a bool Tensor, numpy array or list)."""
    if isinstance(i, Tensor):
        return i.dtype == _BOOL
    return isinstance(i, (np.ndarray, list)) and np.asarray(i).dtype == _BOOL


def _mask_shape(m):
    return m._shape if isinstance(m, Tensor) else np.shape(m)


def _gather_mask(x, pos, mask):
    """x[..., mask, ...] for one mask covering dims pos..pos+k-1: GatherND at the mask's nonzero
    positions (NonZero + Transpose, or a constant for a numpy mask), the mask's dims moved to the
    front first; the new (symbolic) dim stays at pos, as torch."""
    k, r = len(_mask_shape(mask)), len(x._shape)
    idx = nonzero(mask) if isinstance(mask, Tensor) else const(np.argwhere(np.asarray(mask)), _I64)
    y = x if pos == 0 else permute(x, list(range(pos, pos + k)) + list(range(pos)) + list(range(pos + k, r)))
    out = apply("GatherND", [y, idx], types=[(x.dtype, (idx._shape[0],) + tuple(y._shape[k:]))])
    if pos:
        out = permute(out, list(range(1, pos + 1)) + [0] + list(range(pos + 1, len(out._shape))))
    return out


def mask_getitem(x, idx):
    """x[idx] where the tuple idx holds boolean masks (torch: a mask indexes like its nonzero(as_tuple)).
    One mask with full slices elsewhere is one GatherND; other mixes go through the integer-array path."""
    x = as_tensor(x)
    r = len(x._shape)

    def width(i):
        if i is None or i is Ellipsis:
            return 0
        return len(_mask_shape(i)) if is_bool_mask(i) else 1
    consumed = sum(width(i) for i in idx)
    if consumed > r:
        raise IndexError(f"too many indices for tensor of rank {r}")
    ell = [j for j, i in enumerate(idx) if i is Ellipsis]
    if len(ell) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    fill = (slice(None),) * (r - consumed)
    idx = idx[:ell[0]] + fill + idx[ell[0] + 1:] if ell else idx + fill
    pos, masks = 0, []
    for i in idx:
        if is_bool_mask(i):
            shp = _mask_shape(i)
            if not shp:
                raise IndexError("a 0-d boolean index (x[True]) is not supported; use ok.where(cond, x, y)")
            for j, d in enumerate(shp):
                xd = x._shape[pos + j]
                if isinstance(d, int) and isinstance(xd, int) and d != xd:
                    raise IndexError(f"The shape of the mask {list(shp)} at index {j} does not match the shape of "
                                     f"the indexed tensor {list(x._shape)} at index {pos + j}")
            masks.append((pos, i))
        pos += width(i)
    full = all(is_bool_mask(i) or (isinstance(i, slice) and i == slice(None)) for i in idx)
    if len(masks) == 1 and full:
        return _gather_mask(x, *masks[0])
    expanded = []
    for i in idx:
        if not is_bool_mask(i):
            expanded.append(i)
        elif isinstance(i, Tensor):
            expanded.extend(nonzero(i, as_tuple=True))
        else:
            expanded.extend(np.nonzero(np.asarray(i)))
    return getitem(x, tuple(expanded))


def masked_select(input, mask):
    """The elements of input where mask is True, input and mask broadcast, as a 1-D tensor whose
    length is a fresh symbolic dim (NonZero + Transpose + GatherND)."""
    x, m = as_tensor(input), as_tensor(mask)
    if m.dtype != _BOOL:
        raise TypeError(f"masked_select: expected a boolean mask, got dtype {m.dtype}")
    x, m = _broadcast_pair(x, m)
    if x._shape == ():
        x, m = reshape(x, 1), reshape(m, 1)
    return _gather_mask(x, 0, m)


# ----- repetition and rotation ------------------------------------------------------------------
def _repeat_positions(reps, output_size=None):
    """[0] * r0 + [1] * r1 + ... for int64 repeats r (n,): ones scattered (add) at the cumulative ends
    into zeros of length sum(r) + 1, then CumSum, last entry dropped. O(n + sum(r))."""
    ends = apply("CumSum", [reps, const(0, _I64)], types=[(_I64, reps._shape)])
    total = apply("ReduceSum", [reps], {"keepdims": 1}, types=[(_I64, (1,))])
    marks = apply("ConstantOfShape", [add(total, 1)], {"value": np.zeros(1, _I64)}, types=[(_I64, (fresh_dim(),))])
    marks = apply("ScatterElements", [marks, ends, ones_of(ends)], {"axis": 0, "reduction": "add"},
                  types=[(_I64, marks._shape)])
    counts = apply("CumSum", [marks, const(0, _I64)], types=[(_I64, marks._shape)])
    size = output_size if output_size is not None else fresh_dim()
    return apply("Slice", [counts, const([0], _I64), const([-1], _I64), const([0], _I64)], types=[(_I64, (size,))])


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Repeat each element (each slice along `dim`; of the flattened input when dim is None). An int
    repeats is Unsqueeze + Expand + Reshape; a list is a constant Gather; a tensor repeats computes its
    Gather positions in the graph (the output length is then symbolic unless output_size is given).
    `repeat_interleave(repeats)` alone repeats 0, 1, ... as torch."""
    if repeats is None:
        reps = _i64(input)
        if len(reps._shape) != 1:
            raise ValueError(f"repeat_interleave: repeats must be a 1-D tensor, got shape {_fmt(reps._shape)}")
        return repeat_interleave(_arange(reps.shape[0]), reps, 0, output_size=output_size)
    x = as_tensor(input)
    if dim is None:
        x, d = reshape(x, -1), 0
    else:
        d = _norm_dim(dim, len(x._shape))
    shp = x.shape
    n = shp[d] if shp else 1
    if _is_int(repeats) or (not isinstance(repeats, Tensor) and np.size(repeats) == 1 and n != 1):
        r = int(np.asarray(repeats).reshape(-1)[0])
        if r < 0:
            raise ValueError(f"repeat_interleave: repeats can not be negative, got {r}")
        if not shp:
            x, shp, d = reshape(x, 1), (1,), 0
        if r == 0:
            return getitem(x, (slice(None),) * d + (slice(0, 0),))
        y = expand(unsqueeze(x, d + 1), *shp[:d + 1], r, *shp[d + 1:])
        return reshape(y, *shp[:d], shp[d] * r if isinstance(shp[d], int) else -1, *shp[d + 1:])
    if not isinstance(repeats, Tensor):  # a list or array: the positions are a constant
        reps = np.asarray(repeats).astype(np.int64).reshape(-1)
        _check_repeats(reps, n)
        return index_select(x, d, const(np.repeat(np.arange(len(reps)), reps), _I64))
    reps = _i64(repeats)
    if reps._shape in ((), (1,)):
        reps = expand(reshape(reps, 1), n)
    elif len(reps._shape) != 1:
        raise ValueError(f"repeat_interleave: repeats must be 0-dim or 1-dim, got shape {_fmt(reps._shape)}")
    known = concrete_value(reps)
    _check_repeats(known if known is not None else (), n, reps._shape[0])
    return index_select(x, d, _repeat_positions(reps, output_size))


def _check_repeats(reps, n, count=None):
    """torch's errors: one repeat per slice along dim, none negative (checked where values are known)."""
    count = len(reps) if count is None else count
    if isinstance(n, int) and isinstance(count, int) and count != n:
        raise ValueError(f"repeat_interleave: repeats must have the same size as input along dim, but got "
                         f"repeats.size(0) = {count} and input.size(0) = {n}")
    if np.size(reps) and np.min(reps) < 0:
        raise ValueError("repeat_interleave: repeats can not be negative")


def roll(input, shifts, dims=None):
    """Rotate along `dims` (the flattened tensor when None): Slice + Concat on static dims, a Gather
    with (i - shift) mod n positions on symbolic ones."""
    x = as_tensor(input)
    shifts = list(shifts) if isinstance(shifts, (list, tuple)) else [shifts]
    if dims is None:
        if len(shifts) != 1:
            raise ValueError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: 0")
        return reshape(roll(reshape(x, -1), shifts[0], 0), *x.shape)
    dims = list(dims) if isinstance(dims, (list, tuple)) else [dims]
    if len(dims) != len(shifts):
        raise ValueError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: {len(dims)}")
    for s, d in zip(shifts, dims):
        d = _norm_dim(d, len(x._shape))
        n = x._shape[d]
        if isinstance(n, int):
            s = int(s) % n if n else 0
            if s:
                x = cat([narrow(x, d, n - s, s), narrow(x, d, 0, n - s)], d)
        else:
            size = x.shape[d]
            x = index_select(x, d, remainder(sub(_arange(size), int(s)), reshape(size.tensor(), ())))
    return x


# ----- counting and encoding --------------------------------------------------------------------
def one_hot(tensor, num_classes=-1):
    """int64 one-hot encoding along a new last dim (one OneHot). num_classes=-1 takes max + 1, which
    needs the input's values: it is evaluated when it does not depend on a graph input."""
    x = as_tensor(tensor)
    if x.dtype != _I64:
        raise TypeError(f"one_hot is only applicable to index tensor of type int64 (LongTensor), got {x.dtype}")
    num_classes = int(num_classes)
    known = concrete_value(x, evaluate=num_classes == -1)
    if num_classes == -1:
        if known is None:
            raise ValueError("one_hot: num_classes=-1 needs the input's values to count the classes, but the input "
                             "depends on a graph input (ok.Input); pass num_classes explicitly")
        if known.size == 0:
            raise ValueError("one_hot: can not infer total number of classes from empty tensor")
        num_classes = int(known.max()) + 1
    if num_classes < 0:
        raise ValueError(f"one_hot: num_classes must be -1 or non-negative, got {num_classes}")
    if known is not None and known.size:
        if known.min() < 0:
            raise ValueError("one_hot: class values must be non-negative")
        if known.max() >= num_classes:
            raise ValueError(f"one_hot: class values must be smaller than num_classes ({num_classes}), got "
                             f"{int(known.max())}")
    return apply("OneHot", [x, const(num_classes, _I64), const([0, 1], _I64)], {"axis": -1},
                 types=[(_I64, tuple(x._shape) + (num_classes,))])


def bincount(input, weights=None, minlength=0):
    """Occurrences of each value 0..max(input) (at least `minlength` bins): ScatterElements(add) into
    zeros whose length max + 1 is computed in the graph (a fresh symbolic dim). int64 counts, or sums
    of the weights (their float dtype; float64 for integer weights, as torch)."""
    x = as_tensor(input)
    if x._shape is None or len(x._shape) != 1 or x.dtype.kind not in "iu":
        raise ValueError(f"bincount only supports 1-d non-negative integral inputs, got shape "
                         f"{_fmt(x._shape or ())} and dtype {x.dtype}")
    known = concrete_value(x)
    if known is not None and known.size and known.min() < 0:
        raise ValueError("bincount only supports 1-d non-negative integral inputs, got a negative value")
    if minlength < 0:
        raise ValueError(f"bincount: minlength should be >= 0, got {minlength}")
    x = _i64(x)
    if weights is None:
        upd = ones_of(x, _I64)
    else:
        w = as_tensor(weights)
        if w._shape is None or len(w._shape) != 1 or (isinstance(w._shape[0], int) and isinstance(x._shape[0], int)
                                                      and w._shape[0] != x._shape[0]):
            raise ValueError(f"bincount: weights should be 1-d and have the same length as input, got shapes "
                             f"{_fmt(w._shape or ())} and {_fmt(x._shape)}")
        upd = cast(w, w.dtype if dtypes.is_floating(w.dtype) else np.float64)
    top = apply("ReduceMax", [x], {"keepdims": 1}, types=[(_I64, (1,))])  # the lowest int64 when empty
    length = maximum(add(top, 1), const([int(minlength)], _I64))
    zeros = apply("ConstantOfShape", [length], {"value": np.zeros(1, upd.dtype)}, types=[(upd.dtype, (fresh_dim(),))])
    return apply("ScatterElements", [zeros, x, upd], {"axis": 0, "reduction": "add"}, types=[(upd.dtype, zeros._shape)])


# ----- index_* ----------------------------------------------------------------------------------
def _index_args(input, dim, index, what):
    x = as_tensor(input)
    if not x._shape:
        raise ValueError(f"{what}: input must have at least 1 dimension")
    idx = _i64(index)
    if len(idx._shape) > 1:
        raise ValueError(f"{what}: index should be a vector (0-D or 1-D), got shape {_fmt(idx._shape)}")
    return x, _norm_dim(dim, len(x._shape)), reshape(idx, -1) if idx._shape == () else idx


def _scatter_along(x, d, idx, source, reduction, what):
    """ScatterElements of `source` (x's shape except len(index) along d) at index along d."""
    src = cast(as_tensor(source), x.dtype)
    r = len(x._shape)
    if len(src._shape) != r:
        raise ValueError(f"{what}: source should have the same number of dimensions as input, got "
                         f"{_fmt(src._shape)} and {_fmt(x._shape)}")
    for a, (p, q) in enumerate(zip(src._shape, x._shape)):
        want = idx._shape[0] if a == d else q
        if isinstance(p, int) and isinstance(want, int) and p != want:
            raise ValueError(f"{what}: source of shape {_fmt(src._shape)} does not match input {_fmt(x._shape)} "
                             f"with {want} entries along dim {d}")
    full = expand(reshape(idx, *([1] * d), -1, *([1] * (r - d - 1))), src.shape)
    attrs = {"axis": d, "reduction": reduction} if reduction else {"axis": d}
    return apply("ScatterElements", [x, full, src], attrs, types=[(x.dtype, x._shape)])


def index_add(input, dim, index, source, *, alpha=1):
    """input with alpha * source[i] added at position index[i] along dim; repeated indices accumulate
    (ScatterElements, reduction add)."""
    x, d, idx = _index_args(input, dim, index, "index_add")
    src = as_tensor(source)
    return _scatter_along(x, d, idx, src if alpha == 1 else mul(src, alpha), "add", "index_add")


def index_copy(input, dim, index, source):
    """input with source[i] written at position index[i] along dim (ScatterElements)."""
    x, d, idx = _index_args(input, dim, index, "index_copy")
    return _scatter_along(x, d, idx, source, None, "index_copy")


def index_fill(input, dim, index, value):
    """input with `value` at the positions `index` along dim: a Where with the mask of the indexed
    positions (Range == index), so repeated indices are harmless."""
    x, d, idx = _index_args(input, dim, index, "index_fill")
    n = x.shape[d]
    idx = where(lt(idx, 0), add(idx, n if isinstance(n, int) else reshape(n.tensor(), ())), idx)
    hit = any_(eq(unsqueeze(_arange(n), 1), unsqueeze(idx, 0)), 1)
    others = [a for a in range(len(x._shape)) if a != d]
    mask = unsqueeze(hit, others) if others else hit
    return where(mask, _value_of(value, x.dtype, "index_fill"), x)


# ----- diagonals --------------------------------------------------------------------------------
def diagonal(input, offset=0, dim1=0, dim2=1):
    """The diagonal of the (dim1, dim2) planes as a new last dim: GatherND at constant positions
    (both dims must be static)."""
    x = as_tensor(input)
    r = len(x._shape)
    if r < 2:
        raise ValueError(f"diagonal: input must have at least 2 dimensions, got shape {_fmt(x._shape)}")
    a, b = _norm_dim(dim1, r), _norm_dim(dim2, r)
    if a == b:
        raise ValueError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    n, m = x._shape[a], x._shape[b]
    if not (isinstance(n, int) and isinstance(m, int)):
        raise ValueError(f"diagonal: dims {a} and {b} must be static, got shape {_fmt(x._shape)}")
    offset = int(offset)
    length = max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))
    pos = np.stack([np.arange(length) + max(-offset, 0), np.arange(length) + max(offset, 0)], 1)
    y = permute(x, [a, b] + [i for i in range(r) if i not in (a, b)])
    out = apply("GatherND", [y, const(pos.reshape(length, 2), _I64)], types=[(x.dtype, (length,) + y._shape[2:])])
    k = len(out._shape)
    return permute(out, list(range(1, k)) + [0])


_diagonal = diagonal  # diag's `diagonal` argument shadows the function


def _eye_mask(n):
    """(n, n) bool identity for a static or symbolic n."""
    if isinstance(n, int):
        return const(np.eye(n, dtype=bool), _BOOL)
    r = _arange(n)
    return eq(unsqueeze(r, 1), unsqueeze(r, 0))


def diag(input, diagonal=0):
    """A 1-D input becomes a square matrix with it on the `diagonal`-th diagonal (Where with an
    identity mask, then Pad); a 2-D input gives its diagonal (see `diagonal`)."""
    x = as_tensor(input)
    if len(x._shape) == 2:
        return _diagonal(x, diagonal)
    if len(x._shape) != 1:
        raise ValueError(f"diag(): supports 1-D or 2-D tensors, got shape {_fmt(x._shape)}")
    n, k = x.shape[0], int(diagonal)
    square = where(_eye_mask(n), unsqueeze(x, 1), const(0, x.dtype))
    if k == 0:
        return square
    a = abs(k)
    pads = [0, a, a, 0] if k > 0 else [a, 0, 0, a]  # (row, col) begins, then ends
    size = _key(n + a)
    return apply("Pad", [square, const(pads, _I64)], {"mode": "constant"}, types=[(x.dtype, (size, size))])


def trace(input):
    """Sum of the main diagonal of a matrix (integers sum in int64, as torch)."""
    x = as_tensor(input)
    if len(x._shape) != 2:
        raise ValueError(f"trace: expected a matrix, got shape {_fmt(x._shape)}")
    return sum_(diagonal(x))


def diagflat(input, offset=0):
    """The flattened input on diagonal `offset` of a square matrix (torch.diagflat)."""
    return diag(reshape(as_tensor(input), -1), offset)


# ----- scatters: writing into positions that selections read ------------------------------------------
def masked_scatter(input, mask, source):
    """input with the positions where mask is True (broadcast to input) taking source's elements in
    row-major order (torch.masked_scatter): a running count of the mask picks each one (Gather + Where)."""
    from .core import sub
    from .reduce import cumsum
    x = as_tensor(input)
    m = cast(as_tensor(mask), _BOOL)
    if m._shape != x._shape:
        m = expand(m, *x.shape)
    flat_m = reshape(m, -1)
    slot = sub(cumsum(flat_m, 0), 1)
    src = cast(reshape(as_tensor(source), -1), x.dtype)
    picked = apply("Gather", [src, where(flat_m, slot, const(0, _I64))], {"axis": 0}, types=[(x.dtype, flat_m._shape)])
    return where(m, reshape(picked, *x.shape), x)


def put(input, index, source, accumulate=False):
    """input (seen flat) with source written (or added, accumulate=True) at `index` (torch.put;
    ScatterElements on the flattened input)."""
    x = as_tensor(input)
    flat = reshape(x, -1)
    n = flat.shape[0]
    idx = reshape(_i64(index), -1)
    idx = where(lt(idx, 0), add(idx, n if isinstance(n, int) else reshape(n.tensor(), ())), idx)
    src = cast(reshape(as_tensor(source, x.dtype), -1), x.dtype)
    attrs = {"axis": 0, "reduction": "add"} if accumulate else {"axis": 0}
    out = apply("ScatterElements", [flat, idx, src], attrs, types=[(x.dtype, flat._shape)])
    return reshape(out, *x.shape)


def index_put(input, indices, values, accumulate=False):
    """input with input[indices] = values (torch.index_put; `indices` a tuple of index tensors), or
    values added there with accumulate=True (duplicates add up)."""
    from .item_assign import setitem, _positions
    x = as_tensor(input)
    idx = tuple(indices)
    if not accumulate:
        return setitem(x, idx, values)
    at = getitem(_positions(x), idx)
    v = cast(as_tensor(values, x.dtype), x.dtype)
    if v._shape != at._shape:
        v = expand(v, *at.shape)
    flat = reshape(x, -1)
    out = apply("ScatterND", [flat, unsqueeze(reshape(at, -1), -1), reshape(v, -1)], {"reduction": "add"},
                types=[(x.dtype, flat._shape)])
    return reshape(out, *x.shape)


def select_scatter(input, src, dim, index):
    """input with the slice at `index` along `dim` replaced by src (torch.select_scatter)."""
    x = as_tensor(input)
    d = _norm_dim(dim, len(x._shape))
    n = x._shape[d]
    index = int(index)
    if isinstance(n, int):
        if not -n <= index < n:
            raise IndexError(f"select_scatter(): index {index} out of range for tensor of size {n} at dim {d}")
        index %= n
    return index_copy(x, d, const([index], _I64), unsqueeze(as_tensor(src), d))


def slice_scatter(input, src, dim=0, start=None, end=None, step=1):
    """input with input[start:end:step] along `dim` replaced by src (torch.slice_scatter)."""
    x = as_tensor(input)
    d = _norm_dim(dim, len(x._shape))
    n = x._shape[d]
    if not isinstance(n, int):
        raise ValueError(f"slice_scatter: dim {dim} is symbolic ({n}); scatter along a static dim")
    pos = np.arange(n)[slice(start, end, step)]
    if len(pos) == 0:
        return x
    return index_copy(x, d, const(pos, _I64), src)


def _diagonal_positions(n, m, offset):
    length = max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))
    return np.stack([np.arange(length) + max(-offset, 0), np.arange(length) + max(offset, 0)], 1).reshape(length, 2)


def diagonal_scatter(input, src, offset=0, dim1=0, dim2=1):
    """input with its diagonal (offset, dim1, dim2), as torch.diagonal reads it, replaced by src
    (torch.diagonal_scatter; ScatterND over the two dims moved to the front)."""
    x = as_tensor(input)
    r = len(x._shape)
    a, b = _norm_dim(dim1, r), _norm_dim(dim2, r)
    if a == b:
        raise ValueError(f"diagonal_scatter: dim1 and dim2 cannot be equal, got {dim1} and {dim2}")
    n, m = x._shape[a], x._shape[b]
    if not isinstance(n, int) or not isinstance(m, int):
        raise ValueError("diagonal_scatter: the two diagonal dims must be static")
    pos = _diagonal_positions(n, m, int(offset))
    order = [a, b] + [i for i in range(r) if i not in (a, b)]
    y = permute(x, order)
    s = cast(as_tensor(src), x.dtype)
    k = len(s._shape)
    upd = permute(s, [k - 1] + list(range(k - 1))) if k > 1 else s
    if len(pos) == 0:
        return x
    out = apply("ScatterND", [y, const(pos, _I64), upd], types=[(x.dtype, y._shape)])
    inverse = [order.index(i) for i in range(r)]
    return permute(out, inverse)


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """A tensor whose diagonals (offset, over dims dim1 and dim2 of the result) hold the last dim of input,
    zeros elsewhere (torch.diag_embed)."""
    x = as_tensor(input)
    r = len(x._shape) + 1
    a, b = _norm_dim(dim1, r), _norm_dim(dim2, r)
    if a == b:
        raise ValueError(f"diag_embed: diagonal dimensions cannot be identical {dim1}, {dim2}")
    n = x._shape[-1]
    if not isinstance(n, int):
        raise ValueError("diag_embed: the last dim must be static")
    size = n + abs(int(offset))
    rest = list(x.shape[:-1])
    shape = []
    for i in range(r):
        shape.append(size if i in (a, b) else rest.pop(0))
    zeros = expand(const(np.zeros((), x.dtype), x.dtype), *shape)
    return diagonal_scatter(zeros, x, offset, a, b)


# ----- counting and index arithmetic -------------------------------------------------------------------
def histc(input, bins=100, min=0, max=0):
    """Counts of input in `bins` equal-width bins over [min, max] (the data's range when both are 0),
    the top edge in the last bin, values outside ignored; the input's dtype, as torch.histc."""
    from .core import sub, div, mul, floor, logical_and, ge, le, clamp, where as where_
    from .reduce import amin, amax, sum as sum_
    x = as_tensor(input)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"histc: expected a floating-point input, got {x.dtype}")
    bins = int(bins)
    if bins <= 0:
        raise ValueError("histc(): bins must be > 0")
    flat = reshape(x, -1)
    if float(min) == 0 and float(max) == 0 and flat._shape[0] != 0:
        lo, hi = amin(flat), amax(flat)
    else:
        lo, hi = const(float(min), x.dtype), const(float(max), x.dtype)
        if float(min) > float(max):
            raise ValueError(f"histc(): max must be larger than min, got min={min} max={max}")
    same = eq(lo, hi)  # a single value: torch widens the range by 1 on each side
    lo, hi = where_(same, sub(lo, 1.0), lo), where_(same, add(hi, 1.0), hi)
    inside = logical_and(ge(flat, lo), le(flat, hi))
    at = cast(floor(div(mul(sub(flat, lo), float(bins)), sub(hi, lo))), _I64)
    at = clamp(at, 0, bins - 1)
    hits = logical_and(eq(unsqueeze(at, 1), const(np.arange(bins), _I64)), unsqueeze(inside, 1))
    return sum_(cast(hits, x.dtype), 0)


def combinations(input, r=2, with_replacement=False):
    """The length-r combinations of a 1-D input's elements as rows, in itertools order (torch.combinations)."""
    import itertools
    from .shape import stack
    x = as_tensor(input)
    if len(x._shape) != 1:
        raise ValueError(f"Expect a 1D vector, but got shape {tuple(x._shape)}")
    n = x._shape[0]
    if not isinstance(n, int):
        raise ValueError("combinations: the input length must be static")
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    rows = np.array(list(pick(range(n), int(r))), np.int64).reshape(-1, int(r))
    if int(r) == 0 or len(rows) == 0:
        return const(np.zeros((0,) if int(r) == 0 else (0, int(r)), x.dtype), x.dtype)
    return stack([index_select(x, 0, const(rows[:, k], _I64)) for k in range(int(r))], 1)


def unravel_index(indices, shape):
    """The coordinates of flat `indices` in a tensor of `shape`, one int64 tensor per dim
    (torch.unravel_index)."""
    from .core import floor_divide
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    idx = _i64(indices)
    out, stride = [], 1
    for s in reversed(shape):
        out.append(remainder(floor_divide(idx, stride), s))
        stride *= s
    return tuple(reversed(out))


def vander(x, N=None, increasing=False):
    """The Vandermonde matrix of a 1-D x: columns x ** (N-1), ..., x ** 0 (reversed with increasing)."""
    from .core import pow_
    v = as_tensor(x)
    if len(v._shape) != 1:
        raise ValueError("x must be a one-dimensional tensor.")
    n = v._shape[0] if N is None else int(N)
    powers = np.arange(n) if increasing else np.arange(n)[::-1].copy()
    work = v if dtypes.is_floating(v.dtype) else cast(v, _I64)
    if n == 0:
        return const(np.zeros((v._shape[0], 0), work.dtype), work.dtype)
    return pow_(unsqueeze(work, 1), const(powers.astype(work.dtype), work.dtype))


Histogram = collections.namedtuple("histogram", ["hist", "bin_edges"])
HistogramDD = collections.namedtuple("histogramdd", ["hist", "bin_edges"])


def _binned(values, bins, value_range, dtype):
    """(bin index, inside the edges, edges) of 1-D values for histogram: `bins` equal bins over value_range
    (the data's range by default; one value gets +-0.5 as in torch) or the given edges. A bin holds its left
    edge, the last one both."""
    from .core import sub, logical_and, ge, le, mul as mul_
    from .reduce import amin, amax
    if isinstance(bins, Tensor) or not _is_int(bins):
        edges = cast(as_tensor(bins), dtype)
    else:
        k = int(bins)
        if value_range is not None:
            lo, hi = const(float(value_range[0]), dtype), const(float(value_range[1]), dtype)
        else:
            lo, hi = amin(values), amax(values)
            same = eq(lo, hi)
            lo, hi = where(same, sub(lo, 0.5), lo), where(same, add(hi, 0.5), hi)
        edges = add(lo, mul_(sub(hi, lo), const(np.arange(k + 1) / k, dtype)))
    n = edges._shape[0]
    inner = narrow(edges, 0, 1, n - 2)
    at = sum_(cast(ge(unsqueeze(values, 1), unsqueeze(inner, 0)), _I64), 1)
    inside = logical_and(ge(values, getitem(edges, (0,))), le(values, getitem(edges, (n - 1,))))
    return at, inside, edges


def _counted(at, inside, cells, weight, dtype):
    """Per-cell sums of weight (or counts) of the positions `at` that are inside."""
    from .core import logical_and, mul as mul_
    hits = cast(logical_and(eq(unsqueeze(at, 1), const(np.arange(cells), _I64)), unsqueeze(inside, 1)), dtype)
    if weight is not None:
        hits = mul_(hits, unsqueeze(reshape(cast(as_tensor(weight), dtype), -1), 1))
    return sum_(hits, 0)


def _widths(edges):
    from .core import sub
    n = edges._shape[0]
    return sub(narrow(edges, 0, 1, n - 1), narrow(edges, 0, 0, n - 1))


def histogram(input, bins, *, range=None, weight=None, density=False):
    """(hist, bin_edges) as torch.histogram: `bins` equal bins over `range` (the data's range by default)
    or the given increasing edges; each bin holds its left edge, the last one both; values outside the
    edges are ignored. Weights sum instead of counting; density divides by the total and the widths."""
    from .core import div, mul as mul_
    x = as_tensor(input)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"histogram: expected a floating-point input, got {x.dtype}")
    at, inside, edges = _binned(reshape(x, -1), bins, range, x.dtype)
    hist = _counted(at, inside, edges._shape[0] - 1, weight, x.dtype)
    if density:
        hist = div(hist, mul_(sum_(hist), _widths(edges)))
    return Histogram(hist, edges)


def histogramdd(input, bins=10, *, range=None, weight=None, density=False):
    """The D-dimensional histogram of the points in the rows of input (..., D), as torch.histogramdd: bins
    per dim (an int for all, a list of ints, or a list of edge tensors), range as [min0, max0, min1, ...]."""
    import builtins
    from .core import div, logical_and, mul as mul_
    x = as_tensor(input)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"histogramdd: expected a floating-point input, got {x.dtype}")
    dims = x._shape[-1]
    points = reshape(x, -1, dims)
    per_dim = list(bins) if isinstance(bins, (list, tuple)) else [bins] * dims
    if len(per_dim) != dims:
        raise ValueError(f"histogramdd: expected {dims} sequences of bin edges or bin counts, got {len(per_dim)}")
    flat, inside, edges, sizes = None, None, [], []
    for d, b in enumerate(per_dim):
        pair = None if range is None else (range[2 * d], range[2 * d + 1])
        at, ok_d, e = _binned(reshape(getitem(points, (slice(None), d)), -1), b, pair, x.dtype)
        size = e._shape[0] - 1
        flat = at if flat is None else add(mul(flat, size), at)
        inside = ok_d if inside is None else logical_and(inside, ok_d)
        edges.append(e)
        sizes.append(size)
    hist = reshape(_counted(flat, inside, int(np.prod(sizes)), weight, x.dtype), *sizes)
    if density:
        volume = None
        for d, e in enumerate(edges):
            w = reshape(_widths(e), *[-1 if a == d else 1 for a in builtins.range(len(edges))])
            volume = w if volume is None else mul_(volume, w)
        hist = div(div(hist, sum_(hist)), volume)
    return HistogramDD(hist, tuple(edges))


# ----- scatter with a reduction: a dense (positions x targets) mask, reduced with the Reduce* ops -----------
_REDUCTIONS = {"sum": "ReduceSum", "prod": "ReduceProd", "mean": "ReduceSum", "amax": "ReduceMax",
               "amin": "ReduceMin"}


def _identity(reduce, dtype):
    """The value that leaves `reduce` unchanged, for the masked-out entries."""
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    big = np.inf if dtypes.is_floating(dtype) else np.iinfo(dtype).max
    return -big if reduce == "amax" else big


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """input with src's elements reduced ('sum', 'prod', 'mean', 'amax', 'amin') into the positions
    `index` names along `dim` (torch.scatter_reduce). Written as a dense mask [.., j, p, ..] = index[j] == p
    over a Where and one Reduce*, so gradients come from those rules (ties in amax/amin share evenly, as
    torch's); O(len(index) * size) memory along dim."""
    from .core import div, gt
    from .reduce import _reduce, _positions
    if reduce not in _REDUCTIONS:
        raise ValueError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    x = as_tensor(input)
    r = len(x._shape)
    d = _norm_dim(dim, r)
    idx = _i64(index)
    s = cast(as_tensor(src), x.dtype)
    if len(idx._shape) != r or len(s._shape) != r:
        raise ValueError("scatter_reduce: index and src must have as many dims as input")
    extent = list(idx._shape)
    if list(s._shape) != extent:
        s = getitem(s, tuple(slice(0, e) for e in extent))
    region = tuple(slice(None) if a == d or extent[a] == x._shape[a] else slice(0, extent[a]) for a in range(r))
    partial = any(sl != slice(None) for sl in region)
    base = getitem(x, region) if partial else x
    n = x.shape[d]
    idx = where(lt(idx, 0), add(idx, n if isinstance(n, int) else reshape(n.tensor(), ())), idx)
    targets = reshape(_positions(n), *[-1 if a == d + 1 else 1 for a in range(r + 1)])
    hit = eq(unsqueeze(idx, d + 1), targets)  # [.., j, p, ..]
    fill = const(np.asarray(_identity(reduce, x.dtype), x.dtype), x.dtype)
    values = where(hit, unsqueeze(s, d + 1), fill)
    if include_self:
        values = cat([unsqueeze(base, d), values], d)
    out = _reduce(_REDUCTIONS[reduce], values, d, False)
    count = sum_(cast(hit, _I64), d)
    if reduce == "mean":
        total = add(count, 1) if include_self else maximum(count, const(1, _I64))
        out = div(out, cast(total, x.dtype)) if dtypes.is_floating(x.dtype) else \
            div(out, cast(total, x.dtype), rounding_mode="floor")
    if not include_self:
        out = where(gt(count, 0), out, base)
    if partial:
        from .item_assign import setitem
        return setitem(x, region, out)
    return out


def index_reduce(input, dim, index, source, reduce, *, include_self=True):
    """input with source's slices reduced ('prod', 'mean', 'amax', 'amin') into the slices along `dim`
    that the 1-D index names (torch.index_reduce)."""
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise ValueError(f"index_reduce(): Expected reduce to be one of prod, mean, amax or amin but got {reduce}.")
    x, d, idx = _index_args(input, dim, index, "index_reduce")
    s = as_tensor(source)
    full = expand(reshape(idx, *[-1 if a == d else 1 for a in range(len(s._shape))]), *s.shape)
    return scatter_reduce(x, d, full, s, reduce, include_self=include_self)


def nonzero_static(input, *, size, fill_value=-1):
    """nonzero(input) cut or padded (with fill_value rows) to exactly `size` rows (torch.nonzero_static)."""
    x = as_tensor(input)
    found = nonzero(x)
    r = max(len(x._shape), 0)
    padding = const(np.full((int(size), r), fill_value, np.int64), _I64)
    both = cat([found, padding], 0)
    return apply("Slice", [both, const([0], _I64), const([int(size)], _I64), const([0], _I64)],
                 types=[(_I64, (int(size), r))])


_EMPTY_SEGMENT = {"sum": 0.0, "mean": np.nan, "max": -np.inf, "min": np.inf, "prod": 1.0}


def segment_reduce(data, reduce, *, lengths=None, indices=None, offsets=None, axis=0, unsafe=False, initial=None):
    """Reduce ('sum', 'mean', 'max', 'min', 'prod') consecutive segments of data along `axis`, their sizes
    given by `lengths` (or `offsets`), as torch.segment_reduce: an empty segment gives `initial` (else
    0, NaN, -inf, inf, 1), and `initial` joins every segment's reduction."""
    from .core import div, sub
    if reduce not in _EMPTY_SEGMENT:
        raise ValueError(f"segment_reduce: reduce must be one of sum, mean, max, min, prod, got {reduce}")
    if indices is not None:
        raise NotImplementedError("segment_reduce(): indices based reduction is not supported yet.")
    x = as_tensor(data)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"segment_reduce: expected floating-point data, got {x.dtype}")
    if lengths is None:
        if offsets is None:
            raise ValueError("segment_reduce: lengths or offsets must be given")
        off = _i64(offsets)
        k = off._shape[0]
        lengths = sub(narrow(off, 0, 1, k - 1), narrow(off, 0, 0, k - 1))
    lens = _i64(lengths)
    if len(lens._shape) != 1:
        raise NotImplementedError("segment_reduce: only 1-D lengths (or offsets) are supported")
    d = _norm_dim(axis, len(x._shape))
    segments = lens._shape[0]
    ids = repeat_interleave(_arange(segments), lens, output_size=x._shape[d])
    index = expand(reshape(ids, *[-1 if a == d else 1 for a in range(len(x._shape))]), *x.shape)
    shape = list(x.shape)
    shape[d] = segments
    fill = _EMPTY_SEGMENT[reduce] if initial is None else float(initial)
    base = expand(const(np.asarray(fill, x.dtype), x.dtype), *shape)
    torch_name = {"max": "amax", "min": "amin"}.get(reduce, reduce)
    if reduce != "mean" or initial is None:
        return scatter_reduce(base, d, index, x, torch_name, include_self=initial is not None)
    total = scatter_reduce(base, d, index, x, "sum", include_self=True)
    count = scatter_reduce(expand(const(np.zeros((), x.dtype), x.dtype), *shape), d, index, ones_of(x), "sum")
    return where(eq(count, 0.0), base, div(total, count))
