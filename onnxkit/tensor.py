"""The Tensor DAG: leaves (values, symbolic Inputs) and nodes whose op is an ONNX op.

A Tensor is lazy: building one records an ONNX node and infers its dtype and shape; `.numpy()`
runs the sub-DAG it depends on in onnxruntime (see runtime.evaluate)."""
import contextlib
import functools
import itertools
import threading

import numpy as np

from . import dtypes
from .dims import Dim, format_shape
from .infer import infer

_state = threading.local()


def _st():
    if not hasattr(_state, "grad_enabled"):
        _state.grad_enabled = True
        _state.scope = []
    return _state


def is_grad_enabled():
    """True when new nodes record gradients (torch.is_grad_enabled)."""
    return _st().grad_enabled


class set_grad_enabled:
    """Context manager (and decorator) that turns gradient recording on or off, as in torch."""

    def __init__(self, mode=True):
        self.mode = bool(mode)

    def __enter__(self):
        st = _st()
        self.prev, st.grad_enabled = st.grad_enabled, self.mode
        return self

    def __exit__(self, *exc):
        _st().grad_enabled = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(self.mode):
                return fn(*args, **kwargs)
        return wrapper


class no_grad(set_grad_enabled):
    """Stop recording gradients (torch.no_grad); also usable as a decorator."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Record gradients again inside a no_grad block (torch.enable_grad); also a decorator."""

    def __init__(self):
        super().__init__(True)


@contextlib.contextmanager
def name_scope(name):
    """Prefix for the names of nodes built inside (module paths such as `features.3`)."""
    st = _st()
    st.scope.append(name)
    try:
        yield
    finally:
        st.scope.pop()


def current_scope():
    """The module path of the nodes being built now (`features/3`), '' at top level."""
    return "/".join(s for s in _st().scope if s)


def _freeze(v):
    """Hashable form of an attribute value for the structure key."""
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, np.ndarray):
        return (v.dtype.str, v.shape, v.tobytes())
    if hasattr(v, "SerializeToString"):
        return v.SerializeToString()
    return v


class Node:
    """One ONNX op application: op type, domain, attributes (Python values), inputs, outputs.
    `effects` holds (leaf, Tensor) buffer updates applied when the node is first evaluated."""
    __slots__ = ("op_type", "domain", "attrs", "inputs", "outputs", "scope", "key", "effects", "outer", "n_out",
                 "custom", "seq")
    _ids = itertools.count()

    def __init__(self, op_type, inputs, attrs=None, domain="", outer=None, n_out=1):
        self.seq = next(Node._ids)  # build order: tells reads before an in-place update from reads after it
        self.op_type, self.domain, self.inputs = op_type, domain, list(inputs)
        self.attrs = {k: v for k, v in (attrs or {}).items() if v is not None}
        self.scope = current_scope()
        self.key = (domain, op_type, tuple(sorted((k, _freeze(v)) for k, v in self.attrs.items())))
        self.outputs = []
        self.effects = None
        self.outer = outer  # {outer-scope name: Tensor} referenced by subgraph attributes
        self.n_out = n_out
        self.custom = None  # (Function call, output index) for autodiff.Function outputs

    def __repr__(self):
        return f"Node({self.op_type}, scope={self.scope!r})"


class Tensor:
    """A node output or a leaf. Leaves hold a numpy value (`ok.tensor`, parameters, constants) or
    are symbolic graph inputs (`ok.Input`)."""
    __slots__ = ("node", "index", "_value", "_shape", "dtype", "requires_grad", "grad", "name", "kind",
                 "_zero", "_version", "__weakref__")
    __array_priority__ = 1000  # numpy defers to our reflected operators

    def __init__(self, dtype, shape, node=None, index=0, value=None, kind="op", name=None, requires_grad=False):
        self.node, self.index, self._value = node, index, value
        self.dtype = dtypes.as_dtype(dtype)
        self._shape = None if shape is None else tuple(shape)
        self.kind, self.name, self.requires_grad, self.grad = kind, name, requires_grad, None
        self._zero = False
        self._version = 0

    # ----- introspection -------------------------------------------------------------------
    @property
    def shape(self):
        """Tuple of ints and symbolic `Dim`s; symbolic entries lower to Shape/Gather of this tensor."""
        if self._shape is None:
            raise ValueError(f"the rank of {self!r} is unknown at build time")
        return tuple(d if isinstance(d, int) else Dim(d, _dim_lowering(self, i)) for i, d in enumerate(self._shape))

    def size(self, dim=None):
        """The shape, or the size of one dim (torch.Tensor.size)."""
        return self.shape if dim is None else self.shape[dim]

    @property
    def ndim(self):
        return len(self.shape)

    def dim(self):
        return self.ndim

    def numel(self):
        """Number of elements: an int, or a symbolic Dim when a dim is symbolic."""
        n = 1
        for d in self.shape:
            n = n * d
        return n

    @property
    def is_leaf(self):
        return self.node is None or not self.requires_grad

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def __len__(self):
        d = self.shape[0]
        if isinstance(d, Dim):
            raise TypeError(f"len() of a tensor whose first dim is symbolic ({d})")
        return d

    def __repr__(self):
        shape = "?" if self._shape is None else format_shape(self._shape)
        what = {"op": f"{self.node.op_type}" if self.node else "", "input": f"Input {self.name!r}",
                "value": "value", "const": "const"}[self.kind]
        rg = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({what}, shape={shape}, dtype={self.dtype}{rg})"

    # ----- evaluation ----------------------------------------------------------------------
    def numpy(self):
        """Evaluate (runs the sub-DAG in onnxruntime) and return a numpy array."""
        if self._value is not None and self.kind != "input":
            from .runtime import flush_if_pending
            flush_if_pending(self)
            return self._value
        from .runtime import evaluate
        return evaluate([self])[0]

    def item(self):
        """The value of a one-element tensor as a Python number."""
        v = self.numpy()
        if v.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {v.shape}")
        return v.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        v = self.numpy()
        return v if dtype is None else v.astype(dtype)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self._shape is not None and any(d != 1 for d in self._shape):
            raise RuntimeError(f"Boolean value of a Tensor of shape {format_shape(self._shape)} is ambiguous; "
                               "reduce it first (.any(), .all()) or compare its .item()")
        return bool(self.item())

    def detach(self):
        """Same value, cut from the gradient graph (an Identity node, or a leaf sharing the value)."""
        if self.node is None:
            if self.kind == "value":
                from .runtime import flush_if_pending
                flush_if_pending(self)  # a pending `w -= ...` must reach the detached copy
            return Tensor(self.dtype, self._shape, value=self._value, kind=self.kind, name=self.name)
        from . import ops
        with no_grad():
            return ops.identity(self)

    def requires_grad_(self, flag=True):
        """Make a floating-point leaf record gradients (or stop); returns self."""
        if self.node is not None and flag:
            raise RuntimeError("requires_grad_ can only be set on leaf tensors")
        if flag and not dtypes.is_floating(self.dtype):
            raise RuntimeError(f"only floating-point tensors can require gradients, got {self.dtype}")
        self.requires_grad = flag
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad (torch semantics)."""
        from .autodiff import backward
        backward(self, gradient, create_graph=create_graph)

    # ----- in-place value replacement (leaves) ------------------------------------------------
    def _assign(self, new):
        """Replace this leaf's value by `new` (a Tensor or array, cast and broadcast to this leaf),
        deferred until the next evaluation (see runtime.defer_assign)."""
        from .runtime import defer_assign
        defer_assign(self, new)
        return self

    def copy_(self, src):
        """Copy `src` (cast and broadcast) into this tensor, as torch.Tensor.copy_."""
        return self._inplace(src, _copy_source)

    def zero_(self):
        """Fill with zeros now (grads: the next backward replaces a zeroed grad without reading it)."""
        from .runtime import flush_pending
        flush_pending()
        # a broadcast view: no allocation; the next backward replaces a zero grad without reading it
        self._become_value(np.broadcast_to(np.zeros((), self.dtype), [int(d) for d in self._shape]))
        self._zero = True
        return self

    def fill_(self, v):
        """Fill with the scalar `v` now."""
        from .runtime import flush_pending
        flush_pending()
        self._become_value(np.full([int(d) for d in self._shape], v, self.dtype))
        return self

    def _become_value(self, arr):
        self.node, self.index, self.kind = None, 0, "value"
        self._value = arr
        self._shape = tuple(arr.shape)
        self._zero = False
        self._version += 1

    def _inplace(self, other, fn, rebinds=False):
        """`self.op_(other)`, or `self op= other` (rebinds: Python binds the name to the result). A value
        leaf takes the result as its new value (deferred); a computed tensor's `op=` is the new node, so
        gradients flow through it; its `op_()` is evaluated and becomes a value leaf (no gradient)."""
        if self.node is None and self.requires_grad and is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation; "
                               "wrap the update in `with ok.no_grad():`")
        if self.node is None and self.kind == "value":
            return self._assign(fn(self, other))
        if rebinds and self.kind in ("op", "input"):
            return fn(self, other)
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError("an in-place method on a computed tensor that requires grad would cut it from the "
                               "gradient graph; use the out-of-place form (h = h.add(x)) or `h += x`")
        from .runtime import flush_pending
        flush_pending()
        with no_grad():
            new = fn(self, other).numpy()
        self._become_value(np.asarray(new, self.dtype))
        return self

    def __iadd__(self, o): return self._inplace(o, lambda a, b: a + b, rebinds=True)
    def __isub__(self, o): return self._inplace(o, lambda a, b: a - b, rebinds=True)
    def __imul__(self, o): return self._inplace(o, lambda a, b: a * b, rebinds=True)
    def __itruediv__(self, o): return self._inplace(o, lambda a, b: a / b, rebinds=True)
    def add_(self, o, alpha=1): return self._inplace(o, lambda a, b: a + b * alpha if alpha != 1 else a + b)
    def sub_(self, o, alpha=1): return self._inplace(o, lambda a, b: a - b * alpha if alpha != 1 else a - b)
    def mul_(self, o): return self._inplace(o, lambda a, b: a * b)
    def div_(self, o): return self._inplace(o, lambda a, b: a / b)
    def clamp_(self, min=None, max=None): return self._inplace(None, lambda a, _: a.clamp(min, max))

    def __hash__(self):
        return id(self)


def _copy_source(dst, src):
    """`src` as dst's dtype and shape (Tensor.copy_)."""
    from . import ops
    return ops.expand(ops.cast(ops.as_tensor(src, dst.dtype), dst.dtype), dst.shape)


def _dim_lowering(t, i):
    """How symbolic dim i of t becomes a value: a Shape node over t, built on first use."""
    def lower():
        from . import ops
        return ops.dim_size(t, i)
    return lower


# ----- leaves -------------------------------------------------------------------------------
def tensor(data, dtype=None, requires_grad=False):
    """A leaf holding a copy of `data`, like torch.tensor: Python floats give float32, ints int64,
    numpy arrays keep their dtype; torch tensors are read without importing torch."""
    if isinstance(data, Tensor):
        data = data.numpy()
    elif hasattr(data, "detach") and hasattr(data, "cpu") and not isinstance(data, np.ndarray):
        data = data.detach().cpu().numpy()
    if dtype is None and not isinstance(data, (np.ndarray, np.generic)):
        arr = np.asarray(data)
        arr = arr.astype(np.float32 if arr.dtype == np.float64 else np.int64 if arr.dtype.kind in "iu" else arr.dtype)
    else:  # a copy: evaluation is lazy, so a shared array changed later would leak into results
        arr = np.array(data, dtype=None if dtype is None else dtypes.as_dtype(dtype), order="C")
    t = Tensor(arr.dtype, arr.shape, value=arr, kind="value")
    if requires_grad:
        t.requires_grad_(True)
    return t


def const(value, dtype):
    """A small constant embedded in the graph (part of the structure key), never fed."""
    arr = np.asarray(value, dtype=dtypes.as_dtype(dtype))
    return Tensor(arr.dtype, arr.shape, value=arr, kind="const")


def Input(name, shape, dtype="float32"):
    """A symbolic graph input; string entries of `shape` are named dims (`("N", 4)`)."""
    if shape is None:
        raise ValueError("Input needs a shape; use strings for symbolic dims, e.g. ('N', 4)")
    shp = tuple(d if isinstance(d, str) else (d.name if isinstance(d, Dim) else int(d)) for d in shape)
    return Tensor(dtype, shp, kind="input", name=name)


def _shape_arg(size):
    """Sizes given as `f(2, 3)` or `f((2, 3))`, as ints."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Seed every random source onnxkit uses (initializers, ok.randn, dropout masks)."""
    global _rng
    _rng = np.random.default_rng(int(seed))
    from . import random as _random
    _random.seed(int(seed))


def rng():
    """The numpy Generator behind initializers and ok.randn (reseeded by manual_seed)."""
    return _rng


def _factory(name, fill, doc):
    def make(*size, dtype=None, requires_grad=False):
        arr = fill(_shape_arg(size), dtypes.as_dtype(dtype or "float32"))
        return tensor(arr, requires_grad=requires_grad)
    make.__name__, make.__doc__ = name, doc
    return make


randn = _factory("randn", lambda s, d: _rng.standard_normal(s).astype(d), "Standard-normal leaf (torch.randn).")
rand = _factory("rand", lambda s, d: _rng.random(s).astype(d), "Uniform [0, 1) leaf (torch.rand).")
zeros = _factory("zeros", np.zeros, "Leaf of zeros (torch.zeros).")
ones = _factory("ones", np.ones, "Leaf of ones (torch.ones).")
empty = zeros


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def randint(low, high=None, size=None, dtype="int64"):
    """Uniform integers in [low, high), as torch.randint: `randint(high, size)` or `randint(low, high, size)`."""
    if size is None:
        if not isinstance(high, (tuple, list)):
            raise TypeError("randint() needs a size, e.g. ok.randint(10, (3,)) or ok.randint(0, 10, (3,))")
        low, high, size = 0, low, high
    return tensor(_rng.integers(low, high, size=_shape_arg((size,))).astype(dtypes.as_dtype(dtype)))


def full(size, fill_value, dtype=None, requires_grad=False):
    """Leaf filled with `fill_value`; the dtype follows it as in torch (bool, int64, else float32)."""
    if dtype is None:
        is_bool = isinstance(fill_value, (bool, np.bool_))
        dtype = np.bool_ if is_bool else np.int64 if _is_int(fill_value) else np.float32
    return tensor(np.full(_shape_arg((size,)), fill_value, dtypes.as_dtype(dtype)), requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """torch.arange: int64 when start, end and step are all integers, else float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = np.int64 if all(_is_int(v) for v in (start, end, step)) else np.float32
    return tensor(np.arange(start, end, step).astype(dtypes.as_dtype(dtype)), requires_grad=requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    """Identity matrix leaf (torch.eye)."""
    return tensor(np.eye(n, m, dtype=dtypes.as_dtype(dtype or "float32")), requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    """`steps` evenly spaced values from start to end inclusive (torch.linspace)."""
    arr = np.linspace(start, end, steps).astype(dtypes.as_dtype(dtype or "float32"))
    return tensor(arr, requires_grad=requires_grad)


def _like(factory):
    def like(t, dtype=None, requires_grad=False):
        return factory(*[int(d) for d in t.shape], dtype=dtype or t.dtype, requires_grad=requires_grad)
    like.__name__, like.__doc__ = f"{factory.__name__}_like", f"{factory.__name__} with t's shape and dtype."
    return like


zeros_like, ones_like, randn_like, rand_like = _like(zeros), _like(ones), _like(randn), _like(rand)


def full_like(t, fill_value, dtype=None):
    """full with t's shape and dtype."""
    return full(tuple(int(d) for d in t.shape), fill_value, dtype=dtype or t.dtype)


OPSET = 21


def apply(op_type, inputs, attrs=None, n_out=1, domain="", types=None, outer=None):
    """Record one ONNX node and return its output Tensor(s). `types` ([(dtype, shape)] per output)
    skips inference when the caller already knows the result."""
    node = Node(op_type, inputs, attrs, domain, outer, n_out)
    res = types if types is not None else infer(node, n_out, OPSET)
    rg = is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
    node.outputs = [Tensor(d, s, node=node, index=i, requires_grad=rg and dtypes.is_floating(d))
                    for i, (d, s) in enumerate(res)]
    return node.outputs[0] if n_out == 1 else node.outputs
