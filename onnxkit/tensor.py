"""The Tensor DAG: leaves (values, symbolic Inputs) and nodes whose op is an ONNX op.

A Tensor is lazy: building one records an ONNX node and infers its dtype and shape; `.numpy()`
runs the sub-DAG it depends on in onnxruntime (see runtime.evaluate)."""
import contextlib
import functools
import itertools
import threading
import weakref

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


def check_value(t, check):
    """Run `check(t)`, a build-time check of an argument's value that raises on bad input, and while a
    compiled module traces its forward (nn.compiled), keep it to run again on every replay."""
    check(t)
    recorded = getattr(_st(), "value_checks", None)
    if recorded is not None:
        recorded.append((t, check))


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
    scope = _st().scope
    return "/".join(s for s in scope if s) if scope else ""


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
    `effects` holds (leaf, Tensor, seq) buffer updates made at seq, applied by the next evaluation."""
    __slots__ = ("op_type", "domain", "attrs", "inputs", "outputs", "scope", "key", "effects", "outer", "n_out",
                 "custom", "seq", "opset", "macro", "__weakref__")
    _ids = itertools.count()

    def __init__(self, op_type, inputs, attrs=None, domain="", outer=None, n_out=1):
        self.seq = next(Node._ids)  # build order: tells reads before an in-place update from reads after it
        self.op_type, self.domain, self.inputs = op_type, domain, list(inputs)
        if attrs:
            self.attrs = {k: v for k, v in attrs.items() if v is not None}
            self.key = (domain, op_type, tuple(sorted((k, _freeze(v)) for k, v in self.attrs.items())))
        else:
            self.attrs, self.key = {}, (domain, op_type, ())
        self.scope = current_scope()
        self.outputs = []
        self.effects = None
        self.outer = outer  # {outer-scope name: Tensor} referenced by subgraph attributes
        self.n_out = n_out
        self.custom = None  # (Function call, output index) for autodiff.Function outputs
        self.opset = None  # the default-domain opset a node replayed from a newer imported model needs
        self.macro = None  # for a macro node (onnxkit.macro): the function that builds what it stands for
        me = weakref.ref(self)
        for t in self.inputs:
            if t is not None:
                _add_consumer(t, me)
        for t in (outer or {}).values():
            _add_consumer(t, me)

    def __repr__(self):
        return f"Node({self.op_type}, scope={self.scope!r})"


def _add_consumer(t, ref):
    """Remember that the node behind `ref` reads `t` (weakly; dead entries are dropped as the list grows),
    so that an in-place change of `t` can leave that node reading the value it was built on."""
    c = t._consumers
    if c is None:
        t._consumers = [ref]
        return
    c.append(ref)
    n = len(c)
    if n >= 64 and not n & (n - 1):
        c[:] = [r for r in c if r() is not None]


class Tensor:
    """A node output or a leaf. Leaves hold a numpy value (`ok.tensor`, parameters, constants) or
    are symbolic graph inputs (`ok.Input`)."""
    __slots__ = ("node", "index", "_value", "_shape", "dtype", "requires_grad", "grad", "name", "kind",
                 "_zero", "_consumers", "_base", "_data_of", "_hooks", "__weakref__")
    __array_priority__ = 1000  # numpy defers to our reflected operators

    def __init__(self, dtype, shape, node=None, index=0, value=None, kind="op", name=None, requires_grad=False):
        self.node, self.index, self._value = node, index, value
        self.dtype = dtype if isinstance(dtype, np.dtype) and dtype.kind not in "USO" else dtypes.as_dtype(dtype)
        self._shape = None if shape is None else tuple(shape)
        self.kind, self.name, self.requires_grad, self.grad = kind, name, requires_grad, None
        self._zero = False
        self._consumers = None  # weak references to the nodes that read this tensor
        self._base = None  # for a snapshot of a leaf's earlier value: the leaf (gradients go to it)
        self._data_of = None  # for `t.data`: the tensor whose value in-place ops on this one change
        self._hooks = None  # gradient hooks (register_hook)

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

    # ----- in-place changes ----------------------------------------------------------------------
    # A tensor's value is the value as of when a reader was built: an in-place change first moves the
    # nodes built so far onto a snapshot of the old value (_split_version), then changes this tensor.
    def _assign(self, new):
        """Replace this leaf's value by `new` (a Tensor or array, cast and broadcast to this leaf),
        deferred until the next evaluation (see runtime.defer_assign)."""
        if self.node is not None or self.kind == "input":  # a computed tensor (an optimizer state slot)
            return self._rebind(new)
        from .runtime import defer_assign
        defer_assign(self, new)
        return self

    def copy_(self, src):
        """Copy `src` (cast and broadcast) into this tensor, as torch.Tensor.copy_."""
        return self._inplace(src, _copy_source)

    def zero_(self):
        """Fill with zeros now (grads: the next backward replaces a zeroed grad without reading it). A
        value leaf, or a computed tensor outside autograd (a `.grad`), just becomes zeros: the graph
        that computed it is dropped unless something built earlier reads it."""
        static = self._shape is not None and all(isinstance(d, int) for d in self._shape)
        if (self._data_of is not None or self.kind not in ("value", "op") or not static
                or (self.requires_grad and self.node is not None)):
            return self._inplace(None, lambda a, _: _filled(a, 0))
        from .runtime import flush_pending
        flush_pending()
        # a broadcast view: no allocation; the next backward replaces a zero grad without reading it
        self._become_value(np.broadcast_to(np.zeros((), self.dtype), [int(d) for d in self._shape]))
        self._zero = True
        return self

    def fill_(self, v):
        """Fill with the scalar `v` (torch.Tensor.fill_)."""
        return self._inplace(v, _filled)

    def _become_value(self, arr, built_before=None):
        """Hold `arr` from now on; nodes built before (all, or those with seq < built_before) keep the old value."""
        self._split_version(built_before)
        self.node, self.index, self.kind = None, 0, "value"
        self._value = arr
        self._shape = tuple(arr.shape)
        self._zero = False

    def _split_version(self, built_before=None):
        """Rewire the live nodes that read this tensor (built before `built_before`, a Node.seq; all when
        None) to a snapshot of its current version, which also takes over this tensor's producing node."""
        refs, self._consumers = self._consumers, None
        if not refs:
            return
        old, moved, keep = None, [], []
        for r in refs:
            n = r()
            if n is None:
                continue
            if built_before is not None and n.seq > built_before:
                keep.append(r)
                continue
            if old is None:
                old = Tensor(self.dtype, self._shape, node=self.node, index=self.index, value=self._value,
                             kind=self.kind, name=self.name, requires_grad=self.requires_grad)
                old._zero = self._zero
                if self.node is not None:
                    self.node.outputs[self.index] = old
                else:  # a leaf's gradient still belongs to the leaf
                    old._base = self if self._base is None else self._base
            n.inputs = [old if t is self else t for t in n.inputs]
            if n.outer:
                n.outer = {k: old if t is self else t for k, t in n.outer.items()}
            if n.custom:
                call = n.custom[0]
                call.args = tuple(old if a is self else a for a in call.args)
            moved.append(r)
        if old is not None:
            old._consumers = moved
        self._consumers = keep or None

    def _rebind(self, new, since=None):
        """Make this tensor the output of `new`'s node (an in-place op on a computed tensor or an Input, as
        torch records it: later readers and gradients see the new value, earlier readers the old one).
        Only a node built after `since` (a Node.seq) is taken over; an older `new` keeps its identity and
        this tensor becomes an Identity of it."""
        from . import ops
        if not isinstance(new, Tensor):
            new = ops.as_tensor(new, self.dtype)
        if new.dtype != self.dtype:
            new = ops.cast(new, self.dtype)
        elif new.node is None or since is None or new.node.seq <= since:
            new = ops.identity(new)
        self._split_version()
        self.node, self.index, self.kind, self._value = new.node, new.index, "op", None
        self._shape, self.requires_grad, self._zero = new._shape, new.requires_grad, False
        self._consumers = new._consumers
        new.node.outputs[new.index] = self
        return self

    def _inplace(self, other, fn):
        """`self.op_(other)` or `self op= other`, in place as in torch. A value leaf takes the result as its
        new value (deferred to the next evaluation); a computed tensor becomes the result's node, so
        gradients flow through the change; `t.data`'s in-place ops change `t` without recording."""
        if self._data_of is not None:
            with no_grad():
                new = fn(self, other)
                self._assign(new)
            self._data_of._take_untracked(new)
            return self
        if self.node is None and self.requires_grad and is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation; "
                               "wrap the update in `with ok.no_grad():` (or change `t.data`)")
        since = next(Node._ids)
        new = fn(self, other)
        if new._shape is not None and self._shape is not None and len(new._shape) != len(self._shape):
            raise RuntimeError(f"output with shape {format_shape(self._shape)} doesn't match the broadcast shape "
                               f"{format_shape(new._shape)} of the in-place operation")
        if self.requires_grad and not new.requires_grad:  # under no_grad, or a fill: the recorded path stays
            return self._take_untracked(new, keep_gradient=not is_grad_enabled())
        if self.node is None and self.kind == "value":
            if not new.requires_grad:
                return self._assign(new)
            # a plain leaf (`z = zeros(..); z[0] = w * 2`) becomes the recorded result, as in torch
            from .runtime import flush_if_pending
            flush_if_pending(self)
        return self._rebind(new, since)

    def _take_untracked(self, new, keep_gradient=True):
        """Take `new`'s value while gradients keep flowing along the path recorded so far (an in-place
        change under no_grad or through `.data`), or are zero along it (`h.fill_(1)`), as in torch."""
        if self.node is None and self.kind == "value":
            return self._assign(new)
        if not self.requires_grad:
            return self._rebind(new)
        from .autodiff.function import ValueOf
        since = next(Node._ids)
        with enable_grad():
            return self._rebind(ValueOf.apply(new, self, keep_gradient), since)

    def __iadd__(self, o): return self._inplace(o, lambda a, b: a + b)
    def __isub__(self, o): return self._inplace(o, lambda a, b: a - b)
    def __imul__(self, o): return self._inplace(o, lambda a, b: a * b)
    def __itruediv__(self, o): return self._inplace(o, lambda a, b: a / b)
    def add_(self, o, alpha=1): return self._inplace(o, lambda a, b: a + b * alpha if alpha != 1 else a + b)
    def sub_(self, o, alpha=1): return self._inplace(o, lambda a, b: a - b * alpha if alpha != 1 else a - b)
    def mul_(self, o): return self._inplace(o, lambda a, b: a * b)
    def div_(self, o): return self._inplace(o, lambda a, b: a / b)
    def clamp_(self, min=None, max=None): return self._inplace(None, lambda a, _: a.clamp(min, max))

    def __setitem__(self, idx, value):
        """`x[idx] = value`, recorded as a scatter (functional item assignment, as torch records it)."""
        from .ops.item_assign import setitem
        self._inplace(value, lambda a, v: setitem(a, idx, v))

    def uniform_(self, a=0.0, b=1.0):
        """Fill with draws from U(a, b) (onnxkit's seeded generator)."""
        return self._inplace(None, lambda t, _: _drawn(t, lambda s: _rng.uniform(a, b, s)))

    def normal_(self, mean=0.0, std=1.0):
        """Fill with draws from N(mean, std^2) (onnxkit's seeded generator)."""
        return self._inplace(None, lambda t, _: _drawn(t, lambda s: _rng.normal(mean, std, s)))

    def bernoulli_(self, p=0.5):
        """Fill with 0/1 draws that are 1 with probability p."""
        return self._inplace(None, lambda t, _: _drawn(t, lambda s: _rng.random(s) < p))

    def exponential_(self, lambd=1.0):
        return self._inplace(None, lambda t, _: _drawn(t, lambda s: _rng.exponential(1.0 / lambd, s)))

    @property
    def data(self):
        """This tensor's value without gradient tracking; in-place ops on it change this tensor (torch's .data)."""
        if self.kind == "input":
            return self.detach()
        value = self.numpy()  # torch's .data is eager too
        d = Tensor(self.dtype, value.shape, value=value, kind="value")
        d._data_of = self
        return d

    @data.setter
    def data(self, value):
        if getattr(value, "_data_of", None) is self:
            return
        if self.node is not None or self.kind != "value":
            raise RuntimeError("only a leaf tensor's .data can be assigned")
        with no_grad():
            self._assign(value)

    def register_hook(self, hook):
        """hook(grad) -> None or a new grad, called with the gradient w.r.t. this tensor when a backward
        pass computes it (torch.Tensor.register_hook); returns a handle with .remove()."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        from .nn.module import RemovableHandle
        if self._hooks is None:
            self._hooks = {}
        handle = RemovableHandle(self._hooks)
        self._hooks[handle.id] = hook
        return handle

    def __hash__(self):
        return id(self)


# torch's in-place variants `name_` of these methods: the out-of-place result, written in place
INPLACE_VARIANTS = ("abs", "neg", "exp", "log", "log1p", "sqrt", "rsqrt", "reciprocal", "square", "sigmoid", "tanh",
                    "relu", "sin", "cos", "floor", "ceil", "round", "trunc", "frac", "sign", "pow", "remainder",
                    "floor_divide", "clamp_min", "clamp_max", "clip", "lerp", "addcmul", "addcdiv", "masked_fill",
                    "index_fill", "index_add", "scatter", "scatter_add", "tril", "triu", "copysign", "fmod",
                    "hardtanh", "leaky_relu", "elu", "silu", "nan_to_num", "logical_not", "erf", "expm1",
                    "absolute", "negative", "acos", "acosh", "asin", "asinh", "atan", "atanh", "arccos", "arccosh",
                    "arcsin", "arcsinh", "arctan", "arctanh", "atan2", "arctan2", "cosh", "sinh", "tan", "sgn",
                    "fix", "exp2", "log2", "log10", "erfc", "deg2rad", "rad2deg", "sinc", "logit", "xlogy",
                    "hypot", "ldexp", "heaviside", "addbmm", "addmm", "addmv", "addr", "baddbmm", "cumsum",
                    "cumprod", "index_copy", "multiply", "divide", "true_divide", "subtract", "eq", "ne", "lt",
                    "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal", "not_equal",
                    "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
                    "bitwise_not", "bitwise_left_shift", "bitwise_right_shift", "masked_scatter", "put",
                    "index_put", "renorm", "scatter_reduce", "index_reduce", "gcd", "lcm", "i0",
                    "nextafter")


def attach_inplace_variants():
    """Give Tensor `name_` for every method in INPLACE_VARIANTS that exists (called once the ops are bound)."""
    for name in INPLACE_VARIANTS:
        if hasattr(Tensor, name) and not hasattr(Tensor, name + "_"):
            setattr(Tensor, name + "_", _inplace_variant(name))


def _inplace_variant(name):
    def method(self, *args, **kwargs):
        return self._inplace(None, lambda t, _: getattr(t, name)(*args, **kwargs))
    method.__name__, method.__doc__ = name + "_", f"In-place {name} (torch.Tensor.{name}_)."
    return method


def _filled(t, v):
    """A tensor of t's shape and dtype filled with the scalar v."""
    from . import ops
    return ops.expand(ops.as_tensor(v, t.dtype).astype(t.dtype), t.shape)


def _drawn(t, draw):
    """A leaf of t's (concrete) shape and dtype filled by draw(shape) from the seeded generator."""
    return tensor(np.asarray(draw(tuple(int(d) for d in t.shape)), t.dtype))


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
class MadeLeaves:
    """The value leaves a compiled module's forward makes (nn.compiled): while it is traced, `leaves`
    collects them in order (`random`: the ids of dropout draws among them); while it is expanded,
    `queue` hands each tensor() call the leaf that stands for it."""

    def __init__(self, queue=None):
        self.leaves, self.random, self.queue = [], set(), queue


def made_leaves():
    """The MadeLeaves of the forward being traced or expanded now, or None."""
    return getattr(_state, "made", None)


@contextlib.contextmanager
def making(made):
    """Record (or substitute) the value leaves made inside into `made`."""
    saved, _state.made = getattr(_state, "made", None), made
    try:
        yield made
    finally:
        _state.made = saved


def tensor(data, dtype=None, requires_grad=False):
    """A leaf holding a copy of `data`, like torch.tensor: Python floats give float32, ints int64,
    numpy arrays keep their dtype; torch tensors are read without importing torch."""
    made = getattr(_state, "made", None)
    if made is not None and made.queue is not None:
        return next(made.queue)
    t = _tensor(data, dtype, requires_grad)
    if made is not None:
        made.leaves.append(t)
    return t


def _tensor(data, dtype, requires_grad):
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
    """Sizes given as `f(2, 3)`, `f((2, 3))` or `f(x.shape)`: ints, with symbolic `Dim`s kept as they are."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(s if isinstance(s, Dim) else int(s) for s in size)


def _size_of_call(sizes, size):
    """The size of a creation call, positional (`zeros(2, 3)`, `zeros((2, 3))`) or torch's `size=`."""
    if size is not None:
        if sizes:
            raise TypeError("give the size positionally or as size=, not both")
        sizes = (size,)
    return _shape_arg(sizes)


def _is_symbolic(shape):
    return shape is None or any(not isinstance(d, (int, np.integer)) for d in shape)


def _graph_built(what, shape, requires_grad, random=False):
    """The checks before a creation call with symbolic sizes becomes graph nodes (ConstantOfShape, Range):
    random fills need a concrete size, and a computed tensor cannot be a leaf that requires grad."""
    from .ops import symbolic
    if random:
        symbolic.require_concrete(shape, f"ok.{what}")
    if requires_grad:
        raise ValueError(f"ok.{what}(..., requires_grad=True): the size {format_shape(shape)} is symbolic, so the "
                         "result is computed in the graph and cannot be a leaf that requires grad; give concrete sizes")
    return symbolic


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


# Every creation function accepts and ignores torch's device=, layout=, pin_memory= (and memory_format= for
# the *_like ones): placement is where evaluation runs (onnxkit.device), and memory is never aliased.
def _factory(name, fill, doc, value=None):
    """A creation function: a value leaf for concrete sizes; for symbolic sizes one ConstantOfShape of
    `value` (zeros, ones), or an error naming the symbolic dims when the fill is random (value None)."""
    def make(*sizes, size=None, dtype=None, requires_grad=False, device=None, layout=None, pin_memory=False,
             generator=None):
        shape = _size_of_call(sizes, size)
        dtype = dtypes.as_dtype("float32" if dtype is None else dtype)
        if _is_symbolic(shape):
            return _graph_built(name, shape, requires_grad, random=value is None).filled(shape, value, dtype)
        return tensor(fill(shape, dtype), requires_grad=requires_grad)
    make.__name__, make.__doc__ = name, doc
    return make


randn = _factory("randn", lambda s, d: _rng.standard_normal(s).astype(d), "Standard-normal leaf (torch.randn).")
rand = _factory("rand", lambda s, d: _rng.random(s).astype(d), "Uniform [0, 1) leaf (torch.rand).")
zeros = _factory("zeros", np.zeros, "Leaf of zeros (torch.zeros); symbolic sizes give a ConstantOfShape.", 0)
ones = _factory("ones", np.ones, "Leaf of ones (torch.ones); symbolic sizes give a ConstantOfShape.", 1)
empty = zeros


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def randint(low, high=None, size=None, dtype="int64", *, generator=None, requires_grad=False, device=None,
            layout=None, pin_memory=False):
    """Uniform integers in [low, high), as torch.randint: `randint(high, size)` or `randint(low, high, size)`."""
    if size is None:
        if not isinstance(high, (tuple, list)):
            raise TypeError("randint() needs a size, e.g. ok.randint(10, (3,)) or ok.randint(0, 10, (3,))")
        low, high, size = 0, low, high
    shape = _shape_arg((size,))
    if _is_symbolic(shape):
        _graph_built("randint", shape, False, random=True)
    return tensor(_rng.integers(low, high, size=shape).astype(dtypes.as_dtype(dtype)))


def full(size, fill_value, dtype=None, requires_grad=False, *, device=None, layout=None, pin_memory=False):
    """Leaf filled with `fill_value`; the dtype follows it as in torch (bool, int64, else float32).
    Symbolic sizes give a ConstantOfShape."""
    if dtype is None:
        is_bool = isinstance(fill_value, (bool, np.bool_))
        dtype = np.bool_ if is_bool else np.int64 if _is_int(fill_value) else np.float32
    dtype, shape = dtypes.as_dtype(dtype), _shape_arg((size,))
    if _is_symbolic(shape):
        return _graph_built("full", shape, requires_grad).filled(shape, fill_value, dtype)
    return tensor(np.full(shape, fill_value, dtype), requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, *, device=None, layout=None, pin_memory=False):
    """torch.arange: int64 when start, end and step are all integers, else float32. Symbolic bounds
    (`ok.arange(x.size(1))`) give one Range node."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = np.int64 if all(_is_int(v) or isinstance(v, Dim) for v in (start, end, step)) else np.float32
    if any(isinstance(v, Dim) for v in (start, end, step)):
        return _graph_built("arange", (start, end, step), requires_grad).arange(start, end, step, dtype)
    return tensor(np.arange(start, end, step).astype(dtypes.as_dtype(dtype)), requires_grad=requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False, *, device=None, layout=None, pin_memory=False):
    """Identity matrix leaf (torch.eye); symbolic sizes give EyeLike of a ConstantOfShape."""
    dtype = dtypes.as_dtype("float32" if dtype is None else dtype)
    if isinstance(n, Dim) or isinstance(m, Dim):
        return _graph_built("eye", (n, n if m is None else m), requires_grad).eye(n, m, dtype)
    return tensor(np.eye(n, m, dtype=dtype), requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False, *, device=None, layout=None, pin_memory=False):
    """`steps` evenly spaced values from start to end inclusive (torch.linspace); a symbolic `steps`
    gives a Range scaled in the graph."""
    dtype = dtypes.as_dtype("float32" if dtype is None else dtype)
    if isinstance(steps, Dim):
        return _graph_built("linspace", (steps,), requires_grad).linspace(start, end, steps, dtype)
    return tensor(np.linspace(start, end, steps).astype(dtype), requires_grad=requires_grad)


def _like(factory, value=None):
    """factory_like(t): t's shape and dtype; a symbolic shape gives ConstantOfShape(Shape(t)) for
    zeros/ones and an error naming the symbolic dims for random fills (value None)."""
    name = f"{factory.__name__}_like"

    def like(t, dtype=None, requires_grad=False, *, device=None, layout=None, memory_format=None):
        t = t if isinstance(t, Tensor) else tensor(t)
        dtype = t.dtype if dtype is None else dtypes.as_dtype(dtype)
        if _is_symbolic(t._shape):
            _graph_built(name, t.shape if value is None or t._shape is not None else (), requires_grad,
                         random=value is None)
            from .ops.core import _filled_like
            return _filled_like(t, value, dtype)
        return factory(*t._shape, dtype=dtype, requires_grad=requires_grad)
    like.__name__, like.__doc__ = name, f"{factory.__name__} with t's shape and dtype (torch.{name})."
    return like


zeros_like, ones_like, randn_like, rand_like = _like(zeros, 0), _like(ones, 1), _like(randn), _like(rand)
empty_like = zeros_like


def full_like(t, fill_value, dtype=None, requires_grad=False, *, device=None, layout=None, memory_format=None):
    """full with t's shape and dtype; a symbolic shape gives ConstantOfShape(Shape(t))."""
    t = t if isinstance(t, Tensor) else tensor(t)
    dtype = t.dtype if dtype is None else dtypes.as_dtype(dtype)
    if _is_symbolic(t._shape):
        _graph_built("full_like", t.shape if t._shape is not None else (), requires_grad)
        from .ops.core import _filled_like
        return _filled_like(t, fill_value, dtype)
    return full(t._shape, fill_value, dtype=dtype, requires_grad=requires_grad)


OPSET = 21


def apply(op_type, inputs, attrs=None, n_out=1, domain="", types=None, outer=None):
    """Record one ONNX node and return its output Tensor(s). `types` ([(dtype, shape)] per output)
    skips inference when the caller already knows the result."""
    node = Node(op_type, inputs, attrs, domain, outer, n_out)
    res = types if types is not None else infer(node, n_out, OPSET)
    rg = is_grad_enabled() and (any(t is not None and t.requires_grad for t in inputs)
                                or (outer is not None and any(t.requires_grad for t in outer.values())))
    node.outputs = [Tensor(d, s, node, i, requires_grad=rg and dtypes.is_floating(d)) for i, (d, s) in enumerate(res)]
    return node.outputs[0] if n_out == 1 else node.outputs
