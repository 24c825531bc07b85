"""Sizes that may be symbolic: creation ops (zeros, full, arange, eye, linspace) and slice bounds
whose sizes are `Dim`s build Shape/ConstantOfShape/Range/Slice nodes, so a model with a dynamic
batch or sequence length exports with that dim kept symbolic."""
import numpy as np

from .. import dtypes
from ..dims import Dim, format_shape, simplify
from ..infer import fresh_dim
from ..tensor import apply, const
from .core import add, cast, maximum, mul, sub

_INT64 = np.dtype(np.int64)


def symbolic_dims(values):
    """The symbolic entries of a size list (empty when every size is a concrete int)."""
    return [v for v in values if isinstance(v, Dim)]


def require_concrete(shape, what):
    """Raise, naming the symbolic dims, where an op needs its size at build time (random draws happen
    on the host from onnxkit's seeded generator, never in the graph; see DESIGN.md "Randomness")."""
    syms = symbolic_dims(shape)
    if syms:
        names = ", ".join(str(d) for d in syms)
        raise ValueError(f"{what}: size {format_shape(shape)} has symbolic dim(s) {names}; random values are drawn "
                         "on the host from onnxkit's seeded generator and need a concrete size (draw a fixed-size "
                         "tensor and slice it, or make the noise a graph input)")


def key(d):
    """A size as a shape entry: an int or a dim name."""
    return d.name if isinstance(d, Dim) else int(d)


def size_tensor(dims):
    """A 1-D int64 tensor from ints and Dims: a constant when all are ints, else Concat of the Dims'
    Shape values and constant runs."""
    if not symbolic_dims(dims):
        return const([int(d) for d in dims], _INT64)
    parts, run = [], []
    for d in dims:
        if isinstance(d, Dim):
            if run:
                parts.append(const(run, _INT64))
                run = []
            parts.append(d.tensor())
        else:
            run.append(int(d))
    if run:
        parts.append(const(run, _INT64))
    if len(parts) == 1:
        return parts[0]
    return apply("Concat", parts, {"axis": 0}, types=[(_INT64, (len(dims),))])


def scalar(v, dtype):
    """A Dim or a number as a 0-d tensor of `dtype` (Range takes scalars)."""
    dtype = dtypes.as_dtype(dtype)
    if not isinstance(v, Dim):
        return const(v, dtype)
    t = apply("Reshape", [v.tensor(), const(np.zeros(0, np.int64), _INT64)], types=[(_INT64, ())])
    return cast(t, dtype)


def filled(shape, value, dtype):
    """A tensor of (possibly symbolic) `shape` filled with `value`: one ConstantOfShape."""
    dtype = dtypes.as_dtype(dtype)
    return apply("ConstantOfShape", [size_tensor(shape)], {"value": np.full((1,), value, dtype)},
                 types=[(dtype, tuple(key(d) for d in shape))])


def _difference(end, start):
    """end - start as a shape entry: an int where the names cancel (`T - (T - 1)` is 1), else a dim name."""
    if not (isinstance(end, Dim) or isinstance(start, Dim)):
        return int(end) - int(start)
    return simplify(key(end - start))


def arange(start, end, step, dtype):
    """torch.arange with symbolic bounds: one Range (its length named end - start when step is 1)."""
    dtype = dtypes.as_dtype(dtype)
    plain = all(isinstance(v, (int, np.integer, Dim)) and not isinstance(v, bool) for v in (start, end))
    n = _difference(end, start) if plain and not isinstance(step, Dim) and step == 1 else fresh_dim()
    return apply("Range", [scalar(start, dtype), scalar(end, dtype), scalar(step, dtype)], types=[(dtype, (n,))])


def eye(n, m, dtype):
    """torch.eye with symbolic sizes: EyeLike of an (n, m) ConstantOfShape."""
    dtype = dtypes.as_dtype(dtype)
    m = n if m is None else m
    return apply("EyeLike", [filled((n, m), 0, dtype)], {"dtype": dtypes.to_onnx(dtype)},
                 types=[(dtype, (key(n), key(m)))])


def linspace(start, end, steps, dtype):
    """torch.linspace with a symbolic number of steps: start + i * (end - start) / max(steps - 1, 1)."""
    dtype = dtypes.as_dtype(dtype)
    work = dtype if dtypes.is_floating(dtype) else np.dtype(np.float32)
    i = arange(0, steps, 1, work)
    width = maximum(sub(scalar(steps, work), const(1, work)), const(1, work))
    span = sub(const(end, work), const(start, work))
    return cast(add(const(start, work), mul(i, span / width)), dtype)


# ----- slicing by symbolic bounds (used by shape.getitem) -------------------------------------
def slice_bound(v):
    """A slice start/stop for Slice's inputs: an int, or a symbolic Dim kept as it is."""
    return v if isinstance(v, Dim) else int(v)


def slice_len(n, s):
    """Length of x[s] along a dim of size n: exact for ints, the dim's or stop's name where a symbolic
    slice keeps it (`[:T]` has length T), else a fresh name."""
    bounds = (s.start, s.stop, s.step)
    if isinstance(n, int) and not symbolic_dims(bounds):
        return len(range(*s.indices(n)))
    if s.step not in (None, 1) or isinstance(s.step, Dim):
        return fresh_dim()
    start = 0 if s.start is None else s.start
    if isinstance(start, int) and start < 0 or isinstance(s.stop, int) and (s.stop < 0 or not isinstance(n, int)):
        return fresh_dim()  # counts from the end, or may be clipped by, a dim we only know by name
    stop = s.stop if s.stop is not None else (Dim(n) if isinstance(n, str) else n)
    return _difference(stop, start)
