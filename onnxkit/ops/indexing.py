"""Indexing ops with torch's names: masked_fill, tril/triu, nonzero and boolean masks, masked_select,
repeat_interleave, roll, one_hot, bincount, index_add/index_copy/index_fill, diag/diagonal/trace.

Data-dependent sizes (NonZero, repeats from a tensor, bincount) get a fresh symbolic dim; sizes
that only need a concrete value (one_hot's num_classes=-1, numpy masks) are read at build time."""
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
           "one_hot", "bincount", "index_add", "index_copy", "index_fill", "diag", "diagonal", "trace"]

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
