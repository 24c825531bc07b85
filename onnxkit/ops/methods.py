"""The Tensor methods and Python operators, bound in one table to the functional ops."""
import numpy as np

from .. import dtypes
from ..dims import Dim
from ..tensor import Tensor
from . import core, reduce, shape, linalg


def _r(fn):
    """The reflected operator: other OP self."""
    return lambda self, other: fn(other, self)


def _astype(self, dtype):
    return core.cast(self, dtype)


def _dtype_or_none(a):
    """a as a numpy dtype, None for what `.to()` also accepts but ignores (devices, flags)."""
    if a is None or isinstance(a, (bool, int)):
        return None
    try:
        return dtypes.as_dtype(a)
    except TypeError:  # "cpu", "cuda:0", torch.device(...)
        return None


def _to(self, *args, **kwargs):
    """.to(dtype) and .to(other) cast; devices are accepted and ignored (placement is per Session)."""
    for a in (*args, kwargs.get("dtype")):
        if isinstance(a, Tensor):
            return core.cast(self, a.dtype)
        dtype = _dtype_or_none(a)
        if dtype is not None:
            return core.cast(self, dtype)
    return self


def _view(self, *size):
    """view(*shape) reshapes; view(dtype) is torch's bit reinterpretation, which ONNX cannot express."""
    if len(size) == 1 and not isinstance(size[0], (tuple, list, int, np.integer, Dim)):
        dtype = dtypes.as_dtype(size[0])
        if dtype == self.dtype:
            return self
        raise NotImplementedError(f"view({dtype}) reinterprets the bits of a {self.dtype} tensor, which standard "
                                  f"ONNX cannot express; use .to({dtype}) to convert the values")
    return shape.reshape(self, *size)

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
    "astype": _astype, "type": _astype, "to": _to, "float": lambda s: core.cast(s, np.float32),
    "double": lambda s: core.cast(s, np.float64), "half": lambda s: core.cast(s, np.float16),
    "long": lambda s: core.cast(s, np.int64), "int": lambda s: core.cast(s, np.int32),
    "bool": lambda s: core.cast(s, np.bool_), "contiguous": lambda s: s, "clone": core.identity,
    "cpu": lambda s: s, "cuda": lambda s: s,
}

for _name, _fn in METHODS.items():
    setattr(Tensor, _name, _fn)
