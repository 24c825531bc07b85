"""The Tensor methods and Python operators, bound in one table to the functional ops."""
import numpy as np

from ..tensor import Tensor
from . import core, reduce, shape, linalg


def _r(fn):
    return lambda self, other: fn(other, self)


def _astype(self, dtype):
    return core.cast(self, dtype)


def _to(self, *args, **kwargs):
    """.to(dtype) casts; a device argument is accepted and ignored (placement is per Session)."""
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, (np.dtype, type)) or (isinstance(a, str) and a not in ("cpu", "cuda", "auto")) or "torch." in str(a):
            try:
                return core.cast(self, a)
            except TypeError:
                pass
    return self


def _view(self, *shape):
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int)) and not hasattr(shape[0], "name"):
        return core.cast(self, shape[0])
    return shape_mod.reshape(self, *shape)


shape_mod = shape

METHODS = {
    "__add__": core.add, "__radd__": _r(core.add), "__sub__": core.sub, "__rsub__": _r(core.sub),
    "__mul__": core.mul, "__rmul__": _r(core.mul), "__truediv__": core.div, "__rtruediv__": _r(core.div),
    "__floordiv__": core.floor_divide, "__rfloordiv__": _r(core.floor_divide),
    "__mod__": core.remainder, "__rmod__": _r(core.remainder),
    "__pow__": core.pow_, "__rpow__": _r(core.pow_), "__matmul__": linalg.matmul, "__rmatmul__": _r(linalg.matmul),
    "__neg__": core.neg, "__pos__": lambda x: x, "__abs__": core.abs_, "__invert__": core.logical_not,
    "__eq__": core.eq, "__ne__": core.ne, "__lt__": core.lt, "__le__": core.le, "__gt__": core.gt, "__ge__": core.ge,
    "__and__": core.logical_and, "__or__": core.logical_or, "__xor__": core.logical_xor,
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
    "remainder": core.remainder, "floor_divide": core.floor_divide, "isnan": core.isnan, "lerp": core.lerp,
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
