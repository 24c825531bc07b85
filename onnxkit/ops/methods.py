"""The Tensor methods and Python operators, bound in one table to the functional ops."""
import numpy as np

from .. import dtypes
from ..dims import Dim
from ..tensor import Tensor, apply, tensor
from . import core, reduce, shape, linalg, indexing, sorting, random_ops, activation
from ..device import (current as _current_device, device as _device_type, place as _place,
                      split_to_args as _split_to_args)


def _r(fn):
    """The reflected operator: other OP self."""
    return lambda self, other: fn(other, self)


def _astype(self, dtype):
    return core.cast(self, dtype)


def _to(self, *args, **kwargs):
    """.to(dtype), .to(device[, dtype]), .to(other): casts to the dtype; a CUDA device makes lazy evaluation
    run on the GPU (onnxkit.device.place); non_blocking= and memory_format= are accepted, copy=True copies."""
    dtype = _split_to_args(args, kwargs)
    out = self if dtype is None else core.cast(self, dtype)
    return core.identity(out) if kwargs.get("copy") and out is self else out


def _cuda(self, device=None, non_blocking=False, memory_format=None):
    """Evaluate on the GPU from now on (raises without a usable one, as torch does); returns self."""
    dev = _device_type("cuda" if device is None else device)
    if dev.type != "cuda":
        raise RuntimeError(f"Invalid device, must be cuda device, got {dev}")
    _place(dev)
    return self


def _cpu(self, memory_format=None):
    """self: values always come back to host memory, so .cpu() needs no copy and leaves evaluation where it is."""
    return self


def _device_of(self):
    """The device lazy evaluation runs on (onnxkit.device.current()); one setting for the process."""
    return _current_device()


def _view(self, *size):
    """view(*shape) reshapes; view(dtype) is torch's bit reinterpretation, which ONNX cannot express."""
    if len(size) == 1 and not isinstance(size[0], (tuple, list, int, np.integer, Dim)):
        dtype = dtypes.as_dtype(size[0])
        if dtype == self.dtype:
            return self
        raise NotImplementedError(f"view({dtype}) reinterprets the bits of a {self.dtype} tensor, which standard "
                                  f"ONNX cannot express; use .to({dtype}) to convert the values")
    return shape.reshape(self, *size)


def _new(self, size, fill, dtype, requires_grad):
    """A tensor of `size` filled with `fill`, self's dtype unless given (Tensor.new_*): a leaf, or
    ConstantOfShape when the size holds symbolic dims (x.new_zeros(x.shape[0], 4) in traced code)."""
    size = shape._sizes(size)
    dtype = self.dtype if dtype is None else dtypes.as_dtype(dtype)
    if any(isinstance(d, Dim) for d in size):
        if requires_grad:
            raise RuntimeError("requires_grad=True needs a leaf, and a tensor with symbolic dims is computed")
        return apply("ConstantOfShape", [shape.shape_tensor(size)], {"value": np.full(1, fill, dtype)},
                     types=[(dtype, tuple(shape._key(d) for d in size))])
    return tensor(np.full([int(d) for d in size], fill, dtype), requires_grad=requires_grad)


def _new_filler(fill, name):
    def make(self, *size, dtype=None, requires_grad=False, **_device):
        return _new(self, size, fill, dtype, requires_grad)
    make.__name__, make.__doc__ = name, f"A tensor of the given size filled with {fill}, of self's dtype unless given."
    return make


def _new_full(self, size, fill_value, *, dtype=None, requires_grad=False, **_device):
    """A tensor of `size` filled with `fill_value`, of self's dtype unless given (Tensor.new_full)."""
    return _new(self, size, fill_value, dtype, requires_grad)


def _new_tensor(self, data, *, dtype=None, requires_grad=False, **_device):
    """A leaf holding a copy of `data`, of self's dtype unless given (Tensor.new_tensor)."""
    return tensor(data, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)


def _mT(self):
    """The last two dims swapped (Tensor.mT; .mH is the same for real tensors)."""
    if self.ndim < 2:
        raise ValueError(f"tensor.mT is only supported on matrices or batches of matrices. Got {self.ndim}-D tensor.")
    return shape.transpose(self, -2, -1)


def _retains(self):
    """Whether retain_grad() was called on this non-leaf tensor (its hook is registered)."""
    return bool(self._hooks) and any(getattr(h, "_retains_grad", False) for h in self._hooks.values())


def _retain_grad(self):
    """Make .grad of this non-leaf tensor available after a backward pass (a gradient hook that keeps and
    accumulates the gradient, as torch's retain_grad); a no-op on leaves."""
    if not self.requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    if self.is_leaf or _retains(self):
        return None

    def keep(g):
        self.grad = g if self.grad is None else self.grad + g
    keep._retains_grad = True
    self.register_hook(keep)
    return None


def _sum_to_size(self, *size):
    """self summed down to `size`, which it must broadcast from (torch.Tensor.sum_to_size)."""
    from ..autodiff.engine import unbroadcast
    size = tuple(int(d) if not isinstance(d, Dim) else d for d in shape._sizes(size))
    return unbroadcast(self, tuple(shape._key(d) for d in size))


def _is_cpu(self):
    """Whether lazy evaluation runs on the CPU (onnxkit.device.current())."""
    return _current_device().type == "cpu"


def _cast_method(dtype):
    return lambda s, memory_format=None: core.cast(s, dtype)


def _fill_diagonal_(self, fill_value, wrap=False):
    """Write fill_value on the main diagonal in place (all dims equal, or a 2-D matrix; a tall matrix
    restarts the diagonal every columns + 1 rows with wrap=True), as torch.Tensor.fill_diagonal_."""
    dims = [int(d) for d in self.shape]
    if len(dims) < 2 or (len(dims) > 2 and len(set(dims)) != 1):
        raise RuntimeError("all dimensions of input must be of equal length (or the input a matrix)")
    total = int(np.prod(dims))
    if len(dims) == 2:
        n, m = dims
        end = total if wrap and n > m + 1 else min(n, m) * m
        flat = np.arange(0, end, m + 1)
    else:
        flat = np.arange(dims[0]) * sum(int(np.prod(dims[i + 1:])) for i in range(len(dims)))
    mask = np.zeros(total, bool)
    mask[flat] = True
    keep = tensor(mask.reshape(dims))
    def fill(t, _):
        return core.where(keep, core.cast(core.as_tensor(fill_value, t.dtype), t.dtype), t)
    return self._inplace(None, fill)


def _host_fill(draw):
    """An in-place fill from onnxkit's seeded generator: draw(generator, shape, dtype) -> array."""
    from ..tensor import rng
    def fill(self, *args, **kwargs):
        shape = tuple(int(d) for d in self.shape)
        values = np.asarray(draw(rng(), shape, self.dtype, *args, **kwargs)).astype(self.dtype)
        return self._inplace(None, lambda t, _: tensor(values))
    return fill


def _random_draw(g, shape, dtype, low=0, high=None, *, generator=None):
    if high is None:
        if low:
            low, high = 0, low
        elif np.dtype(dtype).kind == "f":
            high = 2 ** np.finfo(dtype).nmant + 1
        else:
            high = int(np.iinfo(dtype).max) if np.dtype(dtype) != np.bool_ else 2
    return g.integers(int(low), int(high), size=shape)


def _cauchy_draw(g, shape, dtype, median=0.0, sigma=1.0, *, generator=None):
    return median + sigma * np.tan(np.pi * (g.random(shape) - 0.5))


def _log_normal_draw(g, shape, dtype, mean=1.0, std=2.0, *, generator=None):
    return np.exp(g.normal(mean, std, shape))


def _geometric_draw(g, shape, dtype, p, *, generator=None):
    return g.geometric(p, shape)


def _host_map(self, fn, *others):
    """self's elements (with others' broadcast ones) through a Python callable, written in place (CPU
    tensors only in torch; here evaluated on the host)."""
    arrays = [np.broadcast_to(np.asarray(core.as_tensor(o).numpy()), tuple(int(d) for d in self.shape))
              for o in others]
    values = np.vectorize(fn, otypes=[self.dtype])(self.numpy(), *arrays) if self.numel() else self.numpy()
    return self._inplace(None, lambda t, _: tensor(np.asarray(values, self.dtype)))


def _new_legacy(self, *args, **kwargs):
    """torch's legacy Tensor.new: new(*sizes) or new(size tuple) zeros of self's dtype, new(data) a copy of
    a list, array or tensor, new() an empty tensor."""
    if not args:
        return _new(self, (0,), 0, None, False)
    if len(args) == 1 and isinstance(args[0], (list, np.ndarray, Tensor)):
        return _new_tensor(self, args[0])
    return _new(self, args, 0, None, False)


def _float_power_(self, exponent):
    """In-place float_power: self must already be float64, as in torch."""
    if self.dtype != np.float64:
        raise RuntimeError(f"the base given to float_power_ has dtype {self.dtype} but the operation's result "
                           "requires dtype float64")
    return self._inplace(exponent, lambda t, e: core.float_power(t, e))


def _detach_(self):
    """Cut this tensor from the gradient graph in place (torch.Tensor.detach_)."""
    if self.node is None:
        self.requires_grad = False
        return self
    from ..tensor import no_grad
    with no_grad():
        new = core.identity(self)
    return self._rebind(new)


def _view_inplace(name, fn):
    """An in-place op that changes the shape (t_, transpose_, squeeze_, ...): a computed tensor becomes the
    op's result (gradients flow through it, earlier readers keep the old value); a value leaf takes the new
    array; a leaf that requires grad is refused, as torch refuses it."""
    from ..tensor import Node, is_grad_enabled

    def method(self, *args, **kwargs):
        if self.node is None and self.kind == "value":
            if self.requires_grad and is_grad_enabled():
                raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation")
            self._become_value(np.asarray(fn(self, *args, **kwargs).numpy()))
            return self
        since = next(Node._ids)
        return self._rebind(fn(self, *args, **kwargs), since)
    method.__name__, method.__doc__ = name, f"In-place {name[:-1]}: this tensor takes the new shape."
    return method


class _GradFn:
    """What torch's grad_fn shows: the backward of the op that made a tensor (name(), next_functions)."""
    __slots__ = ("node",)

    def __init__(self, node):
        self.node = node

    def name(self):
        custom = self.node.custom  # an autodiff.Function application: its class names the backward
        return f"{custom[0].cls.__name__}Backward" if custom else f"{self.node.op_type}Backward0"

    @property
    def next_functions(self):
        out = []
        for t in self.node.inputs:
            if t is None or not t.requires_grad:
                out.append((None, 0))
            elif t.node is None:
                out.append((_AccumulateGrad(t), 0))
            else:
                out.append((_GradFn(t.node), t.index))
        return tuple(out)

    def __repr__(self):
        return f"<{self.name()} object>"


class _AccumulateGrad:
    """The end of a backward path at a leaf (torch's AccumulateGrad); .variable is the leaf."""
    __slots__ = ("variable",)

    def __init__(self, leaf):
        self.variable = leaf

    def name(self):
        return "torch::autograd::AccumulateGrad"

    next_functions = ()

    def __repr__(self):
        return "<AccumulateGrad object>"


def _grad_fn(self):
    """None for leaves and tensors that need no gradient, else the backward node of the op that made self."""
    return _GradFn(self.node) if self.node is not None and self.requires_grad else None


METHODS = {
    "__add__": core.add, "__radd__": _r(core.add), "__sub__": core.sub, "__rsub__": _r(core.sub),
    "__mul__": core.mul, "__rmul__": _r(core.mul), "__truediv__": core.div, "__rtruediv__": _r(core.div),
    "__floordiv__": core.floor_divide, "__rfloordiv__": _r(core.floor_divide),
    "__mod__": core.remainder, "__rmod__": _r(core.remainder),
    "__pow__": core.pow_, "__rpow__": _r(core.pow_), "__matmul__": linalg.matmul, "__rmatmul__": _r(linalg.matmul),
    "__neg__": core.neg, "__pos__": lambda x: x, "__abs__": core.abs_, "__invert__": core.bitwise_not,
    "__eq__": core.eq, "__ne__": core.ne, "__lt__": core.lt, "__le__": core.le, "__gt__": core.gt, "__ge__": core.ge,
    "__and__": core.bitwise_and, "__or__": core.bitwise_or, "__xor__": core.bitwise_xor,
    "__rand__": _r(core.bitwise_and), "__ror__": _r(core.bitwise_or), "__rxor__": _r(core.bitwise_xor),
    "__getitem__": shape.getitem,
    "add": lambda s, o, alpha=1: core.add(s, core.mul(o, alpha) if alpha != 1 else o),
    "sub": lambda s, o, alpha=1: core.sub(s, core.mul(o, alpha) if alpha != 1 else o),
    "mul": core.mul, "div": core.div, "pow": core.pow_, "neg": core.neg, "abs": core.abs_, "exp": core.exp,
    "log": core.log, "log1p": core.log1p, "log2": core.log2, "sqrt": core.sqrt, "rsqrt": core.rsqrt,
    "reciprocal": core.reciprocal, "sigmoid": core.sigmoid, "tanh": core.tanh, "relu": core.relu,
    "sin": core.sin, "cos": core.cos, "floor": core.floor, "ceil": core.ceil, "round": core.round_,
    "sign": core.sign, "square": core.square, "erf": core.erf, "clamp": core.clamp, "clip": core.clamp,
    "maximum": core.maximum, "minimum": core.minimum, "eq": core.eq, "ne": core.ne, "lt": core.lt,
    "le": core.le, "gt": core.gt, "ge": core.ge, "logical_not": core.logical_not, "where": lambda s, c, o: core.where(c, s, o),
    "remainder": core.remainder, "floor_divide": core.floor_divide, "isnan": core.isnan, "isinf": core.isinf,
    "lerp": core.lerp, "expm1": core.expm1, "log10": core.log10, "logical_and": core.logical_and,
    "logical_or": core.logical_or, "logical_xor": core.logical_xor,
    "sum": reduce.sum, "mean": reduce.mean, "prod": reduce.prod, "max": reduce.max, "min": reduce.min,
    "amax": reduce.amax, "amin": reduce.amin, "argmax": reduce.argmax, "argmin": reduce.argmin,
    "logsumexp": reduce.logsumexp, "var": reduce.var, "std": reduce.std, "norm": reduce.norm,
    "softmax": reduce.softmax, "log_softmax": reduce.log_softmax, "cumsum": reduce.cumsum,
    "all": reduce.all, "any": reduce.any,
    "reshape": shape.reshape, "view": _view, "flatten": shape.flatten, "unflatten": shape.unflatten,
    "permute": shape.permute, "transpose": shape.transpose, "t": shape.t, "movedim": shape.movedim,
    "squeeze": shape.squeeze, "unsqueeze": shape.unsqueeze, "expand": shape.expand, "expand_as": shape.expand_as,
    "repeat": shape.repeat, "tile": shape.tile, "split": shape.split, "chunk": shape.chunk, "unbind": shape.unbind,
    "narrow": shape.narrow, "flip": shape.flip, "gather": shape.gather, "index_select": shape.index_select,
    "scatter": shape.scatter, "scatter_add": shape.scatter_add, "view_as": lambda s, o: shape.reshape(s, o.shape),
    "reshape_as": lambda s, o: shape.reshape(s, o.shape),
    "mm": linalg.mm, "matmul": linalg.matmul, "bmm": linalg.bmm, "mv": linalg.mv, "dot": linalg.dot,
    # torch's everyday tensor API (aliases, selection, sorting, indexing, sampling)
    "absolute": core.absolute, "negative": core.negative, "true_divide": core.true_divide,
    "subtract": core.subtract, "multiply": core.multiply, "divide": core.divide, "greater": core.greater,
    "less": core.less, "greater_equal": core.greater_equal, "less_equal": core.less_equal,
    "not_equal": core.not_equal, "clamp_min": core.clamp_min, "clamp_max": core.clamp_max, "exp2": core.exp2,
    "trunc": core.trunc, "fix": core.fix, "frac": core.frac, "fmod": core.fmod, "addcmul": core.addcmul,
    "addcdiv": core.addcdiv, "hypot": core.hypot, "copysign": core.copysign, "atan2": core.atan2,
    "arctan2": core.arctan2,
    "isfinite": core.isfinite, "isposinf": core.isposinf, "isneginf": core.isneginf, "nan_to_num": core.nan_to_num,
    "isclose": core.isclose, "allclose": core.allclose, "equal": core.equal, "sgn": core.sgn,
    "tan": core.tan, "atan": core.atan, "asin": core.asin, "acos": core.acos, "sinh": core.sinh, "cosh": core.cosh,
    "asinh": core.asinh, "acosh": core.acosh, "atanh": core.atanh, "arcsin": core.arcsin, "arccos": core.arccos,
    "arctan": core.arctan, "arcsinh": core.arcsinh, "arccosh": core.arccosh, "arctanh": core.arctanh,
    "is_floating_point": core.is_floating_point, "type_as": lambda s, o: core.cast(s, o.dtype),
    "element_size": lambda s: s.dtype.itemsize, "nelement": lambda s: s.numel(), "ndimension": lambda s: s.ndim,
    "count_nonzero": reduce.count_nonzero, "cumprod": reduce.cumprod,
    "ravel": shape.ravel, "swapaxes": shape.swapaxes, "swapdims": shape.swapdims, "moveaxis": shape.moveaxis,
    "broadcast_to": shape.broadcast_to, "take_along_dim": shape.take_along_dim,
    "outer": linalg.outer, "addmm": linalg.addmm, "baddbmm": linalg.baddbmm, "addmv": linalg.addmv,
    "addbmm": linalg.addbmm,
    "masked_fill": indexing.masked_fill, "masked_select": indexing.masked_select, "tril": indexing.tril,
    "triu": indexing.triu, "nonzero": indexing.nonzero, "argwhere": indexing.argwhere,
    "repeat_interleave": indexing.repeat_interleave, "roll": indexing.roll, "bincount": indexing.bincount,
    "index_add": indexing.index_add, "index_copy": indexing.index_copy, "index_fill": indexing.index_fill,
    "diag": indexing.diag, "diagonal": indexing.diagonal, "trace": indexing.trace,
    "topk": sorting.topk, "sort": sorting.sort, "argsort": sorting.argsort, "msort": sorting.msort,
    "kthvalue": sorting.kthvalue, "median": sorting.median, "unique": sorting.unique,
    "multinomial": random_ops.multinomial, "bernoulli": random_ops.bernoulli,
    "new_zeros": _new_filler(0, "new_zeros"), "new_ones": _new_filler(1, "new_ones"),
    "new_empty": _new_filler(0, "new_empty"), "new_full": _new_full, "new_tensor": _new_tensor,
    "mT": property(_mT), "mH": property(_mT),
    "astype": _astype, "type": _astype, "to": _to, "float": lambda s: core.cast(s, np.float32),
    "double": lambda s: core.cast(s, np.float64), "half": lambda s: core.cast(s, np.float16),
    "long": lambda s: core.cast(s, np.int64), "int": lambda s: core.cast(s, np.int32),
    "bool": lambda s: core.cast(s, np.bool_), "contiguous": lambda s: s, "clone": core.identity,
    "cpu": _cpu, "cuda": _cuda, "device": property(_device_of),
    # more of torch's tensor API (bitwise, elementwise, running reductions, splits, products)
    "bitwise_and": core.bitwise_and, "bitwise_or": core.bitwise_or, "bitwise_xor": core.bitwise_xor,
    "bitwise_not": core.bitwise_not, "bitwise_left_shift": core.bitwise_left_shift,
    "bitwise_right_shift": core.bitwise_right_shift, "__lshift__": core.bitwise_left_shift,
    "__rshift__": core.bitwise_right_shift, "__rlshift__": _r(core.bitwise_left_shift),
    "__rrshift__": _r(core.bitwise_right_shift),
    "byte": _cast_method(np.uint8), "char": _cast_method(np.int8), "short": _cast_method(np.int16),
    "deg2rad": core.deg2rad, "rad2deg": core.rad2deg, "erfc": core.erfc, "float_power": core.float_power,
    "fmax": core.fmax, "fmin": core.fmin, "heaviside": core.heaviside, "logaddexp": core.logaddexp,
    "logaddexp2": core.logaddexp2, "logit": core.logit, "positive": core.positive, "signbit": core.signbit,
    "sinc": core.sinc, "xlogy": core.xlogy, "ldexp": core.ldexp, "is_signed": core.is_signed,
    "is_same_size": core.is_same_size, "is_nonzero": core.is_nonzero, "isreal": core.isreal,
    "is_inference": lambda s: False, "is_cpu": property(_is_cpu),
    "retain_grad": _retain_grad, "retains_grad": property(_retains),
    "hardshrink": activation.hardshrink, "prelu": activation.prelu,
    "aminmax": reduce.aminmax, "cummax": reduce.cummax, "cummin": reduce.cummin,
    "logcumsumexp": reduce.logcumsumexp, "nansum": reduce.nansum, "nanmean": reduce.nanmean,
    "fliplr": shape.fliplr, "flipud": shape.flipud, "rot90": shape.rot90, "select": shape.select,
    "split_with_sizes": shape.split_with_sizes, "tensor_split": shape.tensor_split, "hsplit": shape.hsplit,
    "vsplit": shape.vsplit, "dsplit": shape.dsplit, "diff": shape.diff, "unfold": shape._unfold_windows,
    "take": shape.take, "sum_to_size": _sum_to_size, "diagflat": indexing.diagflat,
    "cross": linalg.cross, "kron": linalg.kron, "inner": linalg.inner, "vdot": linalg.vdot, "ger": linalg.ger,
    "addr": linalg.addr, "matrix_power": linalg.matrix_power, "dist": linalg.dist,
    "unique_consecutive": sorting.unique_consecutive, "quantile": sorting.quantile,
    "nanquantile": sorting.nanquantile, "nanmedian": sorting.nanmedian,
    "masked_scatter": indexing.masked_scatter, "put": indexing.put, "index_put": indexing.index_put,
    "select_scatter": indexing.select_scatter, "slice_scatter": indexing.slice_scatter,
    "diagonal_scatter": indexing.diagonal_scatter, "diag_embed": indexing.diag_embed,
    "renorm": reduce.renorm, "histc": indexing.histc, "histogram": indexing.histogram, "mode": sorting.mode,
    "fill_diagonal_": _fill_diagonal_, "random_": _host_fill(_random_draw), "cauchy_": _host_fill(_cauchy_draw),
    "log_normal_": _host_fill(_log_normal_draw), "geometric_": _host_fill(_geometric_draw),
    "apply_": lambda s, fn: _host_map(s, fn), "map_": lambda s, other, fn: _host_map(s, fn, other),
    "map2_": lambda s, x, y, fn: _host_map(s, fn, x, y), "new": _new_legacy, "detach_": _detach_,
    "output_nr": property(lambda s: s.index if s.node is not None else 0),
    "volatile": property(lambda s: False),
    "cov": linalg.cov, "corrcoef": linalg.corrcoef, "scatter_reduce": indexing.scatter_reduce,
    "index_reduce": indexing.index_reduce, "gcd": core.gcd, "lcm": core.lcm, "frexp": core.frexp,
    "nonzero_static": indexing.nonzero_static, "float_power_": _float_power_, "grad_fn": property(_grad_fn),
    "t_": _view_inplace("t_", shape.t), "transpose_": _view_inplace("transpose_", shape.transpose),
    "swapaxes_": _view_inplace("swapaxes_", shape.transpose), "swapdims_": _view_inplace("swapdims_", shape.transpose),
    "squeeze_": _view_inplace("squeeze_", shape.squeeze), "unsqueeze_": _view_inplace("unsqueeze_", shape.unsqueeze),
    "det": linalg.det, "slogdet": linalg.slogdet, "logdet": linalg.logdet, "i0": core.i0,
    "nextafter": core.nextafter,
}

for _name, _fn in METHODS.items():
    setattr(Tensor, _name, _fn)
