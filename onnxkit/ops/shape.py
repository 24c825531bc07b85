"""Shape ops: reshape/view, transpose/permute, squeeze/unsqueeze, expand, cat/stack/split,
indexing. Shapes may hold symbolic dims; those lower to Shape nodes only when needed."""
import numpy as np

from .. import dtypes
from ..dims import Dim, dim_divide, dim_product, format_shape as _fmt
from ..infer import broadcast_shapes, fresh_dim
from ..tensor import Tensor, apply, check_value, const
from .core import as_tensor, cast
from .symbolic import size_tensor, slice_bound, slice_len


def _norm_dim(d, rank, what="dim"):
    """d as a non-negative dim of a rank-`rank` tensor (0-d tensors accept 0 and -1), or IndexError."""
    if not -rank <= d < max(rank, 1):
        raise IndexError(f"{what} {d} is out of range for a tensor of rank {rank} (expected in [{-rank}, {rank - 1}])")
    return d % max(rank, 1)


def _sizes(args):
    """Sizes given as `f(2, 3)` or `f((2, 3))`."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _key(d):
    return d.name if isinstance(d, Dim) else int(d)


def shape_tensor(dims):
    """A 1-D int64 tensor from ints and symbolic Dims (const when all are ints)."""
    if all(not isinstance(d, Dim) for d in dims):
        return const([int(d) for d in dims], np.int64)
    parts, run = [], []
    for d in dims:
        if isinstance(d, Dim):
            if run:
                parts.append(const(run, np.int64))
                run = []
            parts.append(d.tensor())
        else:
            run.append(int(d))
    if run:
        parts.append(const(run, np.int64))
    return parts[0] if len(parts) == 1 else apply("Concat", parts, {"axis": 0}, types=[(np.dtype(np.int64), (len(dims),))])


def reshape(x, *shape):
    """view/reshape with one -1 allowed. A symbolic dim equal to the input's dim at the same
    position is emitted as 0 (ONNX "copy") so a symbolic batch needs no Shape node."""
    x = as_tensor(x)
    shape = _sizes(shape)
    in_shape = x._shape
    out = [_key(d) for d in shape]
    if out.count(-1) > 1:
        raise ValueError(f"reshape: only one dimension can be -1, got {_fmt(shape)}")
    allowzero = any(isinstance(d, int) and d == 0 for d in out)  # torch's 0 means an empty dim
    emitted = [0 if isinstance(d, Dim) and not allowzero and i < len(in_shape) and str(in_shape[i]) == d.name
               else d for i, d in enumerate(shape)]
    total = dim_product(in_shape)
    if -1 in out:
        known = dim_product([d for d in out if d != -1])
        rest = dim_divide(total, known) if total is not None and known not in (None, 0) else None
        if rest is None and isinstance(total, int) and isinstance(known, int):
            raise ValueError(f"reshape: shape {_fmt(shape)} is invalid for input of shape {_fmt(in_shape)}")
        out[out.index(-1)] = rest if rest is not None else fresh_dim()
    else:
        prod_out = dim_product(out)
        if isinstance(total, int) and isinstance(prod_out, int) and total != prod_out:
            raise ValueError(f"reshape: shape {_fmt(shape)} is invalid for input of shape {_fmt(in_shape)} "
                             f"({prod_out} vs {total} elements)")
    if tuple(out) == tuple(in_shape):
        return x
    return apply("Reshape", [x, shape_tensor(emitted)], {"allowzero": 1} if allowzero else {},
                 types=[(x.dtype, tuple(out))])


view = reshape


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim into one: Flatten for flatten(1), else Reshape."""
    x = as_tensor(x)
    r = len(x._shape)
    if r == 0:
        return reshape(x, 1)
    s, e = _norm_dim(start_dim, r), _norm_dim(end_dim, r)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {_fmt(x._shape)}")
    shp = x.shape
    if s == e:
        return x
    mid = 1
    for d in shp[s:e + 1]:
        mid = mid * d
    if s == 1 and e == r - 1:  # the common x.flatten(1): ONNX Flatten keeps the batch symbolic
        return apply("Flatten", [x], {"axis": 1}, types=[(x.dtype, (x._shape[0], _key(mid)))])
    if s == 0 and e == r - 1:
        return reshape(x, -1)
    return reshape(x, *shp[:s], -1 if isinstance(mid, Dim) else mid, *shp[e + 1:])


def unflatten(x, dim, sizes):
    """Split dim `dim` into `sizes` (one -1 allowed): Reshape."""
    x = as_tensor(x)
    r = len(x._shape)
    d = _norm_dim(dim, r)
    shp = x.shape
    return reshape(x, *shp[:d], *sizes, *shp[d + 1:])


def permute(x, *dims):
    """Reorder the dims (one Transpose; none for the identity order)."""
    x = as_tensor(x)
    dims = _sizes(dims)
    r = len(x._shape)
    perm = [_norm_dim(d, r) for d in dims]
    if sorted(perm) != list(range(r)):
        raise ValueError(f"permute: {tuple(dims)} is not a permutation of the {r} dims of shape {_fmt(x._shape)}")
    if perm == list(range(r)):
        return x
    return apply("Transpose", [x], {"perm": perm})


def transpose(x, dim0, dim1):
    """Swap two dims (Transpose)."""
    x = as_tensor(x)
    r = len(x._shape)
    perm = list(range(r))
    a, b = _norm_dim(dim0, r), _norm_dim(dim1, r)
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, perm)


swapaxes = swapdims = transpose


def t(x):
    """Transpose a matrix; vectors and scalars are returned as they are (torch.t)."""
    x = as_tensor(x)
    if len(x._shape) > 2:
        raise ValueError(f"t() expects a tensor with <= 2 dims, got shape {_fmt(x._shape)}")
    return x if len(x._shape) < 2 else transpose(x, 0, 1)


def movedim(x, source, destination):
    """Move dims `source` to positions `destination`, keeping the others in order (Transpose)."""
    x = as_tensor(x)
    r = len(x._shape)
    src = [_norm_dim(s, r) for s in (source if isinstance(source, (list, tuple)) else [source])]
    dst = [_norm_dim(s, r) for s in (destination if isinstance(destination, (list, tuple)) else [destination])]
    if len(src) != len(dst):
        raise ValueError(f"movedim: source {source} and destination {destination} must have the same number of dims")
    order = [i for i in range(r) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(x, order)


moveaxis = movedim


def ravel(x):
    """The flattened tensor (Reshape to -1)."""
    return reshape(x, -1)


def squeeze(x, dim=None):
    """Drop size-1 dims (all, or those in `dim`; torch ignores listed dims of other sizes): Squeeze."""
    x = as_tensor(x)
    r = len(x._shape)
    if dim is None:
        axes = [i for i, d in enumerate(x._shape) if d == 1]
    else:
        dims = dim if isinstance(dim, (tuple, list)) else [dim]
        axes = [a for a in (_norm_dim(d, r) for d in dims) if x._shape[a] == 1]  # torch ignores non-1 dims
    if not axes:
        return x
    out = tuple(d for i, d in enumerate(x._shape) if i not in axes)
    return apply("Squeeze", [x, const(axes, np.int64)], types=[(x.dtype, out)])


def unsqueeze(x, dim):
    """Insert a size-1 dim at `dim` (an int, or a list: an onnxkit extension): Unsqueeze."""
    x = as_tensor(x)
    r = len(x._shape) + 1
    dims = dim if isinstance(dim, (tuple, list)) else [dim]
    axes = sorted(_norm_dim(d, r + len(dims) - 1) for d in dims)
    out = list(x._shape)
    for a in axes:
        out.insert(a, 1)
    return apply("Unsqueeze", [x, const(axes, np.int64)], types=[(x.dtype, tuple(out))])


def expand(x, *sizes):
    """Broadcast to `sizes`; -1 keeps a dim (torch.Tensor.expand)."""
    x = as_tensor(x)
    sizes = _sizes(sizes)
    r = len(sizes)
    if r < len(x._shape):
        raise ValueError(f"expand: the number of sizes ({r}) must be >= the tensor's rank ({len(x._shape)})")
    pad = r - len(x._shape)
    xs = x.shape
    full, out = [], []
    for i, s in enumerate(sizes):
        cur = xs[i - pad] if i >= pad else 1
        if not isinstance(s, Dim) and int(s) == -1:
            s = cur
        if isinstance(cur, int) and cur != 1 and not isinstance(s, Dim) and int(s) != cur:
            raise ValueError(f"expand: the expanded size {s} must match the existing size {cur} at dim {i} "
                             f"(shape {_fmt(x._shape)} -> {_fmt(sizes)})")
        full.append(s)
        out.append(_key(s))
    if tuple(out) == tuple(x._shape):
        return x
    return apply("Expand", [x, shape_tensor(full)], types=[(x.dtype, tuple(out))])


def expand_as(x, other):
    """expand to other's shape."""
    return expand(x, as_tensor(other).shape)


def broadcast_to(x, shape):
    """expand to `shape` (torch.broadcast_to)."""
    return expand(x, shape)


def repeat(x, *sizes):
    """torch.Tensor.repeat: Tile after unsqueezing to len(sizes) dims."""
    x = as_tensor(x)
    sizes = [int(s) for s in _sizes(sizes)]
    if len(sizes) < len(x._shape):
        raise ValueError(f"repeat: number of repeat dims ({len(sizes)}) can not be smaller than the rank ({len(x._shape)})")
    extra = len(sizes) - len(x._shape)
    if extra:
        x = reshape(x, *([1] * extra), *x.shape)
    out = tuple(_tiled(d, s) for d, s in zip(x._shape, sizes))
    return apply("Tile", [x, const(sizes, np.int64)], types=[(x.dtype, out)])


def _tiled(d, reps):
    """Size of a dim of size d repeated `reps` times (canonical '2*N' when symbolic)."""
    n = dim_product([reps, d])
    return fresh_dim() if n is None else n


def tile(x, dims):
    """torch.tile: repeat with missing leading repeats taken as 1 (Tile)."""
    x = as_tensor(x)
    dims = list(dims)
    if len(dims) < len(x._shape):
        dims = [1] * (len(x._shape) - len(dims)) + dims
    return repeat(x, dims)


def cat(tensors, dim=0):
    """torch.cat: promotes dtypes, Concat along dim."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    dt = tensors[0].dtype
    for t in tensors[1:]:
        dt = dtypes.promote(dt, t.dtype)
    tensors = [cast(t, dt) for t in tensors if not (t._shape == (0,) and len(tensors[0]._shape) > 1)]
    if len(tensors) == 1:
        return tensors[0]
    r = len(tensors[0]._shape)
    return apply("Concat", tensors, {"axis": _norm_dim(dim, r)})


concat = concatenate = cat


def stack(tensors, dim=0):
    """Join equal-shaped tensors along a new dim (Unsqueeze each + Concat)."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {t._shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack expects each tensor to be equal size, got {' and '.join(_fmt(s) for s in shapes)}")
    r = len(tensors[0]._shape) + 1
    d = _norm_dim(dim, r)
    return cat([unsqueeze(t, d) for t in tensors], d)


def split(x, split_size_or_sections, dim=0):
    """torch.split: an int chunk size or a list of sizes; returns a tuple."""
    x = as_tensor(x)
    r = len(x._shape)
    d = _norm_dim(dim, r)
    n = x._shape[d]
    if not isinstance(n, int):
        raise ValueError(f"split: dim {dim} is symbolic ({n}); split along a static dim")
    if _is_int(split_size_or_sections):
        k = int(split_size_or_sections)
        if k <= 0:
            raise ValueError(f"split: split_size must be positive, got {k}")
        sizes = [k] * (n // k) + ([n % k] if n % k else [])
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} sum to {sum(sizes)}, but dim {dim} has size {n}")
    if len(sizes) == 1:
        return (x,)
    types = []
    for s in sizes:
        shp = list(x._shape)
        shp[d] = s
        types.append((x.dtype, tuple(shp)))
    return tuple(apply("Split", [x, const(sizes, np.int64)], {"axis": d}, n_out=len(sizes), types=types))


def chunk(x, chunks, dim=0):
    """`chunks` near-equal pieces along a static dim, the last one smaller (Split)."""
    x = as_tensor(x)
    n = x._shape[_norm_dim(dim, len(x._shape))]
    if not isinstance(n, int):
        raise ValueError(f"chunk: dim {dim} is symbolic ({n}); chunk along a static dim")
    return split(x, -(-n // chunks), dim)


def unbind(x, dim=0):
    """The slices along `dim`, that dim removed (Split + Squeeze)."""
    return tuple(squeeze(p, dim) for p in split(x, 1, dim))


def narrow(x, dim, start, length):
    """x[..., start:start + length] along `dim`; a negative start counts from the end, as in torch."""
    x = as_tensor(x)
    d = _norm_dim(dim, len(x._shape))
    n = x._shape[d]
    if isinstance(n, int):
        start = start + n if start < 0 else start
        if not 0 <= start <= start + length <= n:
            raise IndexError(f"narrow: start {start} + length {length} exceeds dim {dim} of size {n}")
    stop = start + length
    idx = [slice(None)] * d + [slice(start, None if start < 0 <= stop else stop)]  # symbolic n: -k.. to the end
    return getitem(x, tuple(idx))


def flip(x, dims):
    """Reverse the order along `dims` (one Slice with step -1)."""
    x = as_tensor(x)
    r = len(x._shape)
    dims = [_norm_dim(d, r) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    big = np.iinfo(np.int64).max
    return apply("Slice", [x, const([-1] * len(dims), np.int64), const([-big] * len(dims), np.int64),
                           const(dims, np.int64), const([-1] * len(dims), np.int64)], types=[(x.dtype, x._shape)])


def gather(x, dim, index):
    """torch.gather: GatherElements."""
    x, index = as_tensor(x), cast(as_tensor(index), np.int64)
    if len(index._shape) != len(x._shape):
        raise ValueError(f"gather: index {_fmt(index._shape)} must have as many dims as the input {_fmt(x._shape)}")
    return apply("GatherElements", [x, index], {"axis": _norm_dim(dim, len(x._shape))},
                 types=[(x.dtype, index._shape)])


def index_select(x, dim, index):
    """The entries of `index` along `dim` (Gather); the index may have any rank."""
    x, index = as_tensor(x), cast(as_tensor(index), np.int64)
    d = _norm_dim(dim, len(x._shape))
    out = x._shape[:d] + index._shape + x._shape[d + 1:]
    return apply("Gather", [x, index], {"axis": d}, types=[(x.dtype, out)])


def take_along_dim(x, indices, dim):
    """torch.take_along_dim with a dim: gather."""
    return gather(x, dim, indices)


_SCATTER_REDUCTIONS = {"add": "add", "multiply": "mul", "sum": "add", "prod": "mul", "amax": "max", "amin": "min"}


def scatter(x, dim, index, src, reduce=None):
    """torch.scatter: x with src written at `index` along `dim` (ScatterElements); src may be a scalar;
    reduce 'add'/'multiply' (and scatter_reduce's 'sum', 'prod', 'amax', 'amin') combine instead."""
    x, index = as_tensor(x), cast(as_tensor(index), np.int64)
    src = cast(as_tensor(src, x.dtype), x.dtype)
    if len(src._shape) == 0:
        src = expand(src, index.shape)
    attrs = {"axis": _norm_dim(dim, len(x._shape))}
    if reduce:
        if reduce not in _SCATTER_REDUCTIONS:
            raise ValueError(f"scatter: reduce must be one of {sorted(_SCATTER_REDUCTIONS)}, got {reduce!r}")
        attrs["reduction"] = _SCATTER_REDUCTIONS[reduce]
    return apply("ScatterElements", [x, index, src], attrs, types=[(x.dtype, x._shape)])


def scatter_add(x, dim, index, src):
    """scatter with reduce='add'."""
    return scatter(x, dim, index, src, reduce="add")


# ----- indexing --------------------------------------------------------------------------------
_BIG = np.iinfo(np.int64).max


def _slice_len(n, s):
    """Length of x[s] along a dim of size n (a fresh name when n is symbolic and s is not `:`)."""
    if isinstance(n, int):
        return len(range(*s.indices(n)))
    if s.start in (None, 0) and s.stop is None and s.step in (None, 1):
        return n
    return fresh_dim()


def _is_int(i):
    return isinstance(i, (int, np.integer)) and not isinstance(i, bool)


def getitem(x, idx):
    """Indexing with ints, slices (steps, negatives), None, ..., integer arrays/tensors (one advanced
    index -> Gather; several -> broadcast, stack, GatherND) and boolean masks (see indexing.mask_getitem)."""
    x = as_tensor(x)
    if not isinstance(idx, tuple):
        idx = (idx,)
    for i in idx:
        if (isinstance(i, Tensor) and i.dtype == bool) or (isinstance(i, (np.ndarray, list)) and np.asarray(i).dtype == bool):
            from .indexing import mask_getitem  # x[mask]: NonZero + GatherND, a fresh symbolic dim
            return mask_getitem(x, idx)
    if sum(1 for i in idx if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    r = len(x._shape)
    consumed = sum(1 for i in idx if i is not None and i is not Ellipsis)
    if consumed > r:
        raise IndexError(f"too many indices for tensor of rank {r}")
    if Ellipsis in [i for i in idx if not isinstance(i, (Tensor, np.ndarray, list))]:
        k = next(j for j, i in enumerate(idx) if i is Ellipsis)
        idx = idx[:k] + (slice(None),) * (r - consumed) + idx[k + 1:]
    else:
        idx = idx + (slice(None),) * (r - consumed)
    entries = [i for i in idx if i is not None]
    starts, ends, axes, steps, sliced = [], [], [], [], list(x._shape)
    for axis, i in enumerate(entries):
        n = x._shape[axis]
        if isinstance(i, slice):
            step = 1 if i.step is None else int(i.step)
            if step == 0:
                raise ValueError("slice step cannot be zero")
            if (i.start, i.stop, step) != (None, None, 1):
                starts.append(slice_bound(i.start) if i.start is not None else (0 if step > 0 else -1))
                ends.append(slice_bound(i.stop) if i.stop is not None else (_BIG if step > 0 else -_BIG))
                axes.append(axis), steps.append(step)
            sliced[axis] = slice_len(n, i)
        elif _is_int(i):
            i = int(i)
            if isinstance(n, int) and not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for dimension {axis} with size {n}")
            starts.append(i), ends.append(i + 1 if i != -1 else _BIG), axes.append(axis), steps.append(1)
            sliced[axis] = 1
    y = x
    if axes:
        y = apply("Slice", [x, size_tensor(starts), size_tensor(ends), const(axes, np.int64),
                            const(steps, np.int64)], types=[(x.dtype, tuple(sliced))])
    int_axes = [a for a, i in enumerate(entries) if _is_int(i)]
    if int_axes:
        y = apply("Squeeze", [y, const(int_axes, np.int64)],
                  types=[(y.dtype, tuple(d for a, d in enumerate(y._shape) if a not in int_axes))])
    rest = [i for i in entries if not _is_int(i)]  # entries matching y's axes now
    adv = [(a, i) for a, i in enumerate(rest) if not isinstance(i, slice)]
    if len(adv) == 1:
        a, ix = adv[0]
        ix = _index_tensor(ix, y._shape[a], a)
        y = index_select(y, a, ix)
        adv_width = len(ix._shape)
    elif adv:
        y, adv_width = _multi_advanced(y, adv)
    if any(i is None for i in idx):
        if len(adv) > 1:
            raise IndexError("None together with several integer-array indices is not supported")
        width = {id(i): (adv_width if not isinstance(i, slice) else 1) for i in rest}
        pos, new_axes = 0, []
        for i in idx:
            if i is None:
                new_axes.append(pos)
                pos += 1
            elif not _is_int(i):
                pos += width[id(i)]
        y = unsqueeze(y, new_axes)
    return y


def _index_tensor(ix, n, axis):
    """An integer-array index as an int64 Tensor, bounds-checked when its values are known."""
    ix = cast(as_tensor(np.asarray(ix) if not isinstance(ix, Tensor) else ix), np.int64)
    if isinstance(n, int):
        check_value(ix, lambda t: _check_index_range(t, n, axis))
    return ix


def _check_index_range(ix, n, axis):
    if ix._value is not None and ix.kind != "input":
        v = np.asarray(ix._value)
        if v.size and (v.max() >= n or v.min() < -n):
            bad = int(v.max() if v.max() >= n else v.min())
            raise IndexError(f"index {bad} is out of bounds for dimension {axis} with size {n}")


def _multi_advanced(y, adv):
    """Several integer-array indices: broadcast, stack, GatherND over those axes moved to the front;
    torch keeps the result in place when the indexed axes are adjacent."""
    axes = [a for a, _ in adv]
    ixs = [_index_tensor(ix, y._shape[a], a) for a, ix in adv]
    bshape = broadcast_shapes(*(i._shape for i in ixs), what="index")
    others = [a for a in range(len(y._shape)) if a not in axes]
    y = permute(y, axes + others)
    ixs = [expand(i, [d if isinstance(d, int) else Dim(d) for d in bshape]) if i._shape != bshape else i for i in ixs]
    out = tuple(bshape) + tuple(y._shape[len(axes):])
    y = apply("GatherND", [y, stack(ixs, -1)], types=[(y.dtype, out)])
    if axes == list(range(axes[0], axes[0] + len(axes))) and axes[0] > 0:
        k = len(bshape)
        order = list(range(k, k + axes[0])) + list(range(k)) + list(range(k + axes[0], len(out)))
        y = permute(y, order)
    return y, len(bshape)


# ----- more of torch's shape functions (compositions of the ops above) -------------------------------
def fliplr(input):
    """Reverse the columns (dim 1) of a tensor with at least 2 dims."""
    x = as_tensor(input)
    if len(x._shape) < 2:
        raise ValueError("fliplr: input tensor must be at least 2-D")
    return flip(x, [1])


def flipud(input):
    """Reverse the rows (dim 0) of a tensor with at least 1 dim."""
    x = as_tensor(input)
    if len(x._shape) < 1:
        raise ValueError("flipud: input tensor must be at least 1-D")
    return flip(x, [0])


def rot90(input, k=1, dims=(0, 1)):
    """Rotate by 90 degrees k times in the plane of `dims`, from the first toward the second (torch.rot90)."""
    x = as_tensor(input)
    r = len(x._shape)
    if len(dims) != 2:
        raise ValueError(f"rot90: expected total rotation dims == 2, but got dims = {len(dims)}")
    a, b = _norm_dim(dims[0], r), _norm_dim(dims[1], r)
    if a == b:
        raise ValueError(f"rot90: expected rotation dims to be different, but got dim0 = {a} and dim1 = {b}")
    k = int(k) % 4
    if k == 1:
        return transpose(flip(x, [b]), a, b)
    if k == 2:
        return flip(x, [a, b])
    if k == 3:
        return flip(transpose(x, a, b), [b])
    return x


def select(input, dim, index):
    """The slice at `index` along `dim`, that dim removed (torch.select; x[..., index, ...])."""
    x = as_tensor(input)
    d = _norm_dim(dim, len(x._shape))
    return getitem(x, (slice(None),) * d + (int(index),))


def split_with_sizes(input, split_sizes, dim=0):
    """Pieces of the given sizes along `dim` (torch.split_with_sizes)."""
    return split(input, [int(s) for s in split_sizes], dim)


def _pieces(x, d, bounds):
    return tuple(getitem(x, (slice(None),) * d + (slice(lo, hi),)) for lo, hi in zip(bounds[:-1], bounds[1:]))


def tensor_split(input, indices_or_sections, dim=0):
    """torch.tensor_split: n near-equal pieces (the first n % size one longer), or pieces cut at the given
    indices; pieces may be empty."""
    x = as_tensor(input)
    d = _norm_dim(dim, len(x._shape))
    n = x._shape[d]
    if not isinstance(n, int):
        raise ValueError(f"tensor_split: dim {dim} is symbolic ({n}); split along a static dim")
    if isinstance(indices_or_sections, Tensor):
        v = np.asarray(indices_or_sections.numpy())
        indices_or_sections = int(v) if v.ndim == 0 else [int(i) for i in v]
    if _is_int(indices_or_sections):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError(f"tensor_split: number of sections must be larger than 0, got {k}")
        size, extra = divmod(n, k)
        bounds = [0]
        for i in range(k):
            bounds.append(bounds[-1] + size + (1 if i < extra else 0))
    else:
        cuts = [min(max(int(i) + n if int(i) < 0 else int(i), 0), n) for i in indices_or_sections]
        bounds = [0] + cuts + [n]  # a cut below the one before gives an empty piece, as Python slices do
    return _pieces(x, d, bounds)


def _split_family(name, dim, min_rank):
    def fn(input, indices_or_sections):
        x = as_tensor(input)
        if len(x._shape) < min_rank:
            raise ValueError(f"torch.{name} requires a tensor with at least {min_rank} dimension, but got a tensor "
                             f"with {len(x._shape)} dimensions!")
        d = 0 if name == "hsplit" and len(x._shape) == 1 else dim
        if _is_int(indices_or_sections) and x._shape[d] % int(indices_or_sections):
            raise ValueError(f"torch.{name} attempted to split along dimension {d}, but the size of the dimension "
                             f"{x._shape[d]} is not divisible by the split_size {indices_or_sections}!")
        return tensor_split(x, indices_or_sections, d)
    fn.__name__ = name
    fn.__doc__ = f"torch.{name}: tensor_split along dim {dim} (equal sections must divide the size)."
    return fn


hsplit, vsplit, dsplit = _split_family("hsplit", 1, 1), _split_family("vsplit", 0, 2), _split_family("dsplit", 2, 3)


def _at_least(t, rank):
    """t with 1s added as torch's atleast_Nd adds them: (n,) -> (1, n) -> (1, n, 1); (m, n) -> (m, n, 1)."""
    t = as_tensor(t)
    r = len(t._shape)
    if r >= rank:
        return t
    if r == 0:
        return reshape(t, *([1] * rank))
    if rank == 2 or r == 1:
        t = unsqueeze(t, 0) if r == 1 else t
    return unsqueeze(t, 2) if rank == 3 else t


def _atleast(rank):
    def fn(*tensors):
        if len(tensors) == 1 and not isinstance(tensors[0], (list, tuple)):
            return _at_least(tensors[0], rank)
        ts = tensors[0] if len(tensors) == 1 else tensors
        return tuple(_at_least(t, rank) for t in ts)
    fn.__name__ = f"atleast_{rank}d"
    fn.__doc__ = f"Each input viewed with at least {rank} dims, as torch.atleast_{rank}d."
    return fn


atleast_1d, atleast_2d, atleast_3d = _atleast(1), _atleast(2), _atleast(3)


def hstack(tensors):
    """cat along dim 1 (dim 0 for 1-D inputs), after atleast_1d."""
    ts = atleast_1d(*tensors)
    ts = ts if isinstance(ts, tuple) else (ts,)
    return cat(ts, 0 if len(ts[0]._shape) == 1 else 1)


def vstack(tensors):
    """cat along dim 0 after atleast_2d (torch.vstack; row_stack is its alias)."""
    ts = atleast_2d(*tensors)
    return cat(ts if isinstance(ts, tuple) else (ts,), 0)


row_stack = vstack


def dstack(tensors):
    """cat along dim 2 after atleast_3d."""
    ts = atleast_3d(*tensors)
    return cat(ts if isinstance(ts, tuple) else (ts,), 2)


def column_stack(tensors):
    """Columns side by side: 0-d and 1-d inputs become (n, 1) columns, then cat along dim 1."""
    cols = []
    for t in tensors:
        t = as_tensor(t)
        cols.append(reshape(t, -1, 1) if len(t._shape) <= 1 else t)
    return cat(cols, 1)


def broadcast_tensors(*tensors):
    """Every input expanded to their common broadcast shape (torch.broadcast_tensors)."""
    ts = [as_tensor(t) for t in (tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple))
                                 else tensors)]
    shape = broadcast_shapes(*(t._shape for t in ts))
    r = len(shape)

    def size_at(i):  # an int, or the symbolic Dim of an input that has it
        if isinstance(shape[i], int):
            return shape[i]
        return next(t.shape[i - r + len(t._shape)] for t in ts
                    if len(t._shape) >= r - i and str(t._shape[i - r + len(t._shape)]) == str(shape[i]))
    return tuple(t if t._shape == tuple(shape) else expand(t, *(size_at(i) for i in range(r))) for t in ts)


def meshgrid(*tensors, indexing=None):
    """Coordinate grids from 1-D tensors; indexing 'ij' (torch's default) or 'xy' (first two dims swapped)."""
    ts = [as_tensor(t) for t in (tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple))
                                 else tensors)]
    indexing = "ij" if indexing is None else indexing
    if indexing not in ("ij", "xy"):
        raise ValueError(f"torch.meshgrid: indexing must be one of 'xy' or 'ij', but received: {indexing}")
    ts = [reshape(t, -1) if len(t._shape) == 0 else t for t in ts]
    swap = indexing == "xy" and len(ts) >= 2
    order = [1, 0] + list(range(2, len(ts))) if swap else list(range(len(ts)))
    shape = [ts[i].shape[0] for i in order]
    out = []
    for i, t in enumerate(ts):
        pos = order.index(i)
        view = [1] * len(ts)
        view[pos] = -1
        out.append(expand(reshape(t, *view), *shape))
    return tuple(out)


def diff(input, n=1, dim=-1, prepend=None, append=None):
    """n-th forward difference along `dim`, with prepend/append joined first (torch.diff); bools give xor."""
    x = as_tensor(input)
    d = _norm_dim(dim, len(x._shape))
    parts = [as_tensor(p) for p in (prepend,) if p is not None] + [x] + \
            [as_tensor(p) for p in (append,) if p is not None]
    parts = [expand(p, *[s if i != d else 1 for i, s in enumerate(x.shape)]) if len(p._shape) == 0 else p
             for p in parts]
    if len(parts) > 1:
        x = cat(parts, d)
    from .core import logical_xor, sub
    for _ in range(int(n)):
        m = x.shape[d]
        hi, lo = narrow(x, d, 1, m - 1), narrow(x, d, 0, m - 1)
        x = logical_xor(hi, lo) if x.dtype == np.bool_ else sub(hi, lo)
    return x


def _unfold_windows(input, dimension, size, step):
    """Tensor.unfold: windows of `size` every `step` along `dimension`, as a new last dim."""
    x = as_tensor(input)
    r = len(x._shape)
    d = _norm_dim(dimension, r)
    n = x._shape[d] if r else 1
    if r == 0:
        x, d, r = reshape(x, 1), 0, 1
    if not isinstance(n, int):
        raise ValueError(f"unfold: dim {dimension} is symbolic ({n}); unfold along a static dim")
    size, step = int(size), int(step)
    if size > n:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {n} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    count = (n - size) // step + 1
    idx = (np.arange(count)[:, None] * step + np.arange(size)[None, :]).reshape(-1)
    y = index_select(x, d, const(idx, np.int64))
    y = reshape(y, *x.shape[:d], count, size, *x.shape[d + 1:])
    return movedim(y, d + 1, -1)


def take(input, index):
    """input flattened, gathered at `index` (negative indices count from the end); the result has index's shape."""
    x = reshape(as_tensor(input), -1)
    idx = cast(as_tensor(index), np.int64)
    n = x.shape[0]
    from .core import add, lt, where
    idx = where(lt(idx, 0), add(idx, n if isinstance(n, int) else reshape(n.tensor(), ())), idx)
    return apply("Gather", [x, idx], {"axis": 0}, types=[(x.dtype, idx._shape)])


def gradient(input, *, spacing=1, dim=None, edge_order=1):
    """Estimates of the derivative along each dim by central differences in the interior and one-sided ones
    (first or second order) at the edges, as torch.gradient: `spacing` is one scalar, a scalar per dim, or a
    1-D coordinate tensor per dim (non-uniform spacing, edge_order 1). Returns a tuple, one tensor per dim."""
    from .core import sub, mul, div, add, _floating
    x = _floating(input)
    r = len(x._shape)
    dims = list(range(r)) if dim is None else [dim] if isinstance(dim, int) else list(dim)
    dims = [_norm_dim(d, r) for d in dims]
    if edge_order not in (1, 2):
        raise ValueError(f"torch.gradient only supports edge_order=1 and edge_order=2, got {edge_order}")
    if not isinstance(spacing, (list, tuple)):
        spacing = [spacing] * len(dims)
    if len(spacing) != len(dims):
        raise ValueError(f"torch.gradient expected spacing to be unspecified, a scalar or a list of length "
                         f"{len(dims)}, but got a list of length {len(spacing)}")
    out = []
    for d, h in zip(dims, spacing):
        n = x._shape[d]
        if not isinstance(n, int) or n < edge_order + 1:
            raise RuntimeError("torch.gradient expected each dimension size to be at least edge_order+1")

        def at(lo, length=None, t=x, d=d, n=n):
            return narrow(t, d, lo, n - lo if length is None else length)
        if isinstance(h, Tensor) or isinstance(h, (np.ndarray, list)):
            c = cast(as_tensor(np.asarray(h) if not isinstance(h, Tensor) else h), x.dtype)
            c = reshape(c, *[-1 if a == d else 1 for a in range(r)])
            step = sub(narrow(c, d, 1, n - 1), narrow(c, d, 0, n - 1))
            hl, hr = narrow(step, d, 0, n - 2), narrow(step, d, 1, n - 2)
            interior = add(add(mul(at(0, n - 2), div(mul(hr, -1.0), mul(hl, add(hl, hr)))),
                               mul(at(1, n - 2), div(sub(hr, hl), mul(hl, hr)))),
                           mul(at(2), div(hl, mul(hr, add(hl, hr)))))
            first = div(sub(at(1, 1), at(0, 1)), narrow(step, d, 0, 1))
            last = div(sub(at(n - 1, 1), at(n - 2, 1)), narrow(step, d, n - 2, 1))
        else:
            h = float(h)
            interior = div(sub(at(2), at(0, n - 2)), 2.0 * h)
            if edge_order == 1:
                first = div(sub(at(1, 1), at(0, 1)), h)
                last = div(sub(at(n - 1, 1), at(n - 2, 1)), h)
            else:
                first = div(sub(sub(mul(at(1, 1), 4.0), mul(at(0, 1), 3.0)), at(2, 1)), 2.0 * h)
                last = div(add(sub(mul(at(n - 1, 1), 3.0), mul(at(n - 2, 1), 4.0)), at(n - 3, 1)), 2.0 * h)
        out.append(cat([first, interior, last], d))
    return tuple(out)
