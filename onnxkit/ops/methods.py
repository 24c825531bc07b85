"""The Tensor methods and Python operators, bound in one table to the functional ops."""
import numpy as np

from .. import dtypes
from ..dims import Dim
from ..tensor import Tensor, apply, tensor
from . import core, reduce, shape, linalg, indexing, sorting, random_ops
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
}

for _name, _fn in METHODS.items():
    setattr(Tensor, _name, _fn)
