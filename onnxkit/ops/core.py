"""Elementwise math with torch's broadcasting and type promotion. Each function emits one ONNX op
(plus Casts where operand dtypes differ)."""
import numbers

import numpy as np

from .. import dtypes
from ..tensor import Tensor, apply, const, tensor
from ..dims import Dim

_ONNX_TYPE = dtypes.to_onnx


def as_tensor(x, like_dtype=None):
    """Tensors pass through; Python scalars become graph constants; arrays become value leaves."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, Dim):
        return x.tensor()
    if isinstance(x, (bool, numbers.Number, np.generic)) and np.ndim(x) == 0:
        if like_dtype is not None:
            return const(x, like_dtype)
        return const(x, np.float32 if isinstance(x, float) else np.bool_ if isinstance(x, bool) else np.int64)
    return tensor(x)


def _is_scalar(x):
    return isinstance(x, (bool, numbers.Number, np.generic)) and not isinstance(x, Tensor) and np.ndim(x) == 0


def cast(x, dtype):
    """x.to(dtype): one Cast node (none when the dtype already matches)."""
    dtype = dtypes.as_dtype(dtype)
    x = as_tensor(x)
    if x.dtype == dtype:
        return x
    if x.kind == "const":
        return const(np.asarray(x._value).astype(dtype), dtype)
    return apply("Cast", [x], {"to": _ONNX_TYPE(dtype)}, types=[(dtype, x._shape)])


def promote_operands(a, b):
    """Both operands as Tensors of torch's promoted dtype."""
    sa, sb = _is_scalar(a), _is_scalar(b)
    da = np.asarray(a).dtype if sa else as_tensor(a).dtype
    db = np.asarray(b).dtype if sb else as_tensor(b).dtype
    if sa and isinstance(a, float):
        da = np.dtype(np.float32)
    if sb and isinstance(b, float):
        db = np.dtype(np.float32)
    dt = dtypes.promote(da, db, sa, sb)
    return cast(as_tensor(a, dt if sa else None), dt), cast(as_tensor(b, dt if sb else None), dt)


def _binary(op_type):
    def fn(a, b):
        a, b = promote_operands(a, b)
        return apply(op_type, [a, b])
    fn.__name__ = op_type.lower()
    return fn


add, sub, mul, pow_ = _binary("Add"), _binary("Sub"), _binary("Mul"), _binary("Pow")
maximum, minimum = _binary("Max"), _binary("Min")
eq, lt, gt, le, ge = (_binary(o) for o in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"))
logical_and, logical_or, logical_xor = _binary("And"), _binary("Or"), _binary("Xor")


def ne(a, b):
    return logical_not(eq(a, b))


def div(a, b, rounding_mode=None):
    """True division (ints promote to float32, as in torch); rounding_mode 'floor'/'trunc'."""
    a, b = promote_operands(a, b)
    if rounding_mode is None and not dtypes.is_floating(a.dtype):
        a, b = cast(a, np.float32), cast(b, np.float32)
    if rounding_mode == "floor":
        if dtypes.is_floating(a.dtype):
            return floor(apply("Div", [a, b]))
        return apply("Div", [sub(a, apply("Mod", [a, b], {"fmod": 0})), b])  # exact after removing the remainder
    if rounding_mode == "trunc" and dtypes.is_floating(a.dtype):
        q = apply("Div", [a, b])
        return where(lt(q, 0), ceil(q), floor(q))
    return apply("Div", [a, b])


def floor_divide(a, b):
    return div(a, b, rounding_mode="floor")


def remainder(a, b):
    """Python-style modulo (sign of the divisor), as torch.remainder."""
    a, b = promote_operands(a, b)
    if dtypes.is_floating(a.dtype):
        return sub(a, mul(floor(apply("Div", [a, b])), b))
    return apply("Mod", [a, b], {"fmod": 0})


def _unary(op_type, float_only=True):
    def fn(x):
        x = as_tensor(x)
        if float_only and not dtypes.is_floating(x.dtype):
            x = cast(x, np.float32)
        return apply(op_type, [x])
    fn.__name__ = op_type.lower()
    return fn


exp, log, sqrt, sigmoid, tanh, erf = (_unary(o) for o in ("Exp", "Log", "Sqrt", "Sigmoid", "Tanh", "Erf"))
sin, cos, tan, atan, asin, acos = (_unary(o) for o in ("Sin", "Cos", "Tan", "Atan", "Asin", "Acos"))
sinh, cosh, asinh, acosh, atanh = (_unary(o) for o in ("Sinh", "Cosh", "Asinh", "Acosh", "Atanh"))
reciprocal = _unary("Reciprocal")
neg, abs_, sign = (_unary(o, False) for o in ("Neg", "Abs", "Sign"))


def relu(x, inplace=False):
    """max(x, 0): one Relu node (`inplace` accepted for torch compatibility; graphs are pure)."""
    return apply("Relu", [as_tensor(x)])
floor, ceil, round_ = (_unary(o, False) for o in ("Floor", "Ceil", "Round"))
isnan, isinf = _unary("IsNaN"), _unary("IsInf")


def rsqrt(x):
    return reciprocal(sqrt(x))


def square(x):
    return mul(x, x)


def log1p(x):
    return log(add(x, 1.0))


def expm1(x):
    return sub(exp(x), 1.0)


def log2(x):
    return div(log(x), float(np.log(2.0)))


def log10(x):
    return div(log(x), float(np.log(10.0)))


def logical_not(x):
    return apply("Not", [cast(x, np.bool_)])


def identity(x):
    return apply("Identity", [as_tensor(x)])


def where(condition, x, y):
    """torch.where(cond, x, y) with broadcasting and promotion of x and y."""
    x, y = promote_operands(x, y)
    return apply("Where", [cast(condition, np.bool_), x, y])


def clamp(x, min=None, max=None):
    """Clip with scalar bounds; tensor bounds become Max/Min (torch allows both)."""
    x = as_tensor(x)
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = x
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    if not dtypes.is_floating(x.dtype) and (isinstance(min, float) or isinstance(max, float)):
        x = cast(x, np.float32)
    lo = const(min, x.dtype) if min is not None else None
    hi = const(max, x.dtype) if max is not None else None
    return apply("Clip", [x, lo, hi] if hi is not None else [x, lo])


clip = clamp


def lerp(a, b, weight):
    return add(a, mul(weight, sub(b, a)))


def dim_size(t, i):
    """Size of dim i of t as a 1-element int64 tensor (Shape with start/end)."""
    r = len(t._shape)
    i = i % r
    return apply("Shape", [t], {"start": i, "end": i + 1}, types=[(np.dtype(np.int64), (1,))])


def zeros_of(x, dtype=None):
    """Zeros with x's (possibly symbolic) shape: ConstantOfShape of x's shape."""
    from onnx import numpy_helper
    from .shape import shape_tensor
    dtype = dtypes.as_dtype(dtype or x.dtype)
    value = numpy_helper.from_array(np.zeros((1,), dtype))
    return apply("ConstantOfShape", [shape_tensor(x.shape)], {"value": value}, types=[(dtype, x._shape)])


def ones_of(x, dtype=None):
    from onnx import numpy_helper
    from .shape import shape_tensor
    dtype = dtypes.as_dtype(dtype or x.dtype)
    value = numpy_helper.from_array(np.ones((1,), dtype))
    return apply("ConstantOfShape", [shape_tensor(x.shape)], {"value": value}, types=[(dtype, x._shape)])
