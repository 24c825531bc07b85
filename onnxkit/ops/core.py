"""Elementwise math with torch's broadcasting and type promotion. Each function emits one ONNX op
(plus Casts where operand dtypes differ)."""
import numbers

import numpy as np

from .. import dtypes
from ..tensor import Tensor, apply, const, tensor
from ..dims import Dim
from .autodiff_helpers import stop

_BOOL = np.dtype(np.bool_)


def _is_scalar(x):
    return isinstance(x, (bool, numbers.Number, np.generic)) and np.ndim(x) == 0


def _scalar_dtype(x):
    """torch's dtype for a scalar operand: Python floats float32, ints int64, numpy scalars their own."""
    if isinstance(x, (bool, np.bool_)):
        return _BOOL
    if isinstance(x, float):  # np.float64 included: it subclasses float
        return np.dtype(np.float32)
    return np.dtype(x.dtype) if isinstance(x, np.generic) else np.dtype(np.int64)


def as_tensor(x, like_dtype=None):
    """Tensors pass through; scalars become graph constants (of like_dtype when given); arrays
    become value leaves; symbolic dims become their Shape value."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, Dim):
        return x.tensor()
    if _is_scalar(x):
        return const(x, _scalar_dtype(x) if like_dtype is None else like_dtype)
    return tensor(x)


def cast(x, dtype):
    """x.to(dtype): one Cast node (none when the dtype already matches; constants fold)."""
    dtype = dtypes.as_dtype(dtype)
    x = as_tensor(x)
    if x.dtype == dtype:
        return x
    if x.kind == "const":
        return const(np.asarray(x._value).astype(dtype), dtype)
    return apply("Cast", [x], {"to": dtypes.to_onnx(dtype)}, types=[(dtype, x._shape)])


def promote_operands(a, b):
    """Both operands as Tensors of torch's promoted dtype."""
    sa, sb = _is_scalar(a), _is_scalar(b)
    da = _scalar_dtype(a) if sa else as_tensor(a).dtype
    db = _scalar_dtype(b) if sb else as_tensor(b).dtype
    dt = dtypes.promote(da, db, sa, sb)
    return cast(as_tensor(a, dt if sa else None), dt), cast(as_tensor(b, dt if sb else None), dt)


_ON_BOOLS = {"Add": "Or", "Mul": "And", "Max": "Or", "Min": "And", "Sub": None, "Pow": None}  # torch's, on 2 bools


def _binary(op_type, what):
    on_bools = _ON_BOOLS.get(op_type, op_type)

    def fn(a, b):
        a, b = promote_operands(a, b)
        if on_bools != op_type and a.dtype == _BOOL:  # ONNX arithmetic has no bool kernels
            if on_bools is None:
                raise TypeError(f"{what} is not supported on two bool tensors (as in torch); convert one with .int()")
            return apply(on_bools, [a, b])
        return apply(op_type, [a, b])
    fn.__name__ = op_type.lower()
    fn.__doc__ = f"{what} with torch's broadcasting and type promotion (one ONNX {op_type})."
    return fn


add, sub, mul, pow_ = (_binary(o, w) for o, w in (("Add", "a + b"), ("Sub", "a - b"), ("Mul", "a * b"),
                                                 ("Pow", "a ** b")))
maximum, minimum = _binary("Max", "Elementwise maximum"), _binary("Min", "Elementwise minimum")
eq, lt, gt, le, ge = (_binary(o, f"a {w} b as bool") for o, w in (
    ("Equal", "=="), ("Less", "<"), ("Greater", ">"), ("LessOrEqual", "<="), ("GreaterOrEqual", ">=")))


def ne(a, b):
    """a != b as bool (Not of Equal)."""
    return logical_not(eq(a, b))


def _logical(op_type):
    def fn(a, b):
        return apply(op_type, [cast(a, _BOOL), cast(b, _BOOL)])
    fn.__name__ = f"logical_{op_type.lower()}"
    fn.__doc__ = f"Elementwise logical {op_type.lower()}; nonzero counts as True, as in torch (one ONNX {op_type})."
    return fn


logical_and, logical_or, logical_xor = _logical("And"), _logical("Or"), _logical("Xor")


def logical_not(x):
    """Elementwise not; nonzero counts as True (one ONNX Not)."""
    return apply("Not", [cast(x, _BOOL)])


def _bitwise(op_type, logical_op, symbol):
    """torch's `&`, `|`, `^`: logical on bools, bitwise on integers (ONNX Bitwise*), an error on floats."""
    def fn(a, b):
        a, b = promote_operands(a, b)
        if a.dtype == _BOOL:
            return apply(logical_op, [a, b])
        if a.dtype.kind not in "iu":
            raise TypeError(f"{symbol} needs bool or integer tensors, got {a.dtype}; compare first (x > 0) "
                            "or use ok.logical_and/logical_or/logical_xor")
        return apply(op_type, [a, b])
    fn.__name__ = f"bitwise_{logical_op.lower()}"
    fn.__doc__ = f"a {symbol} b: logical on bool tensors ({logical_op}), bitwise on integers ({op_type})."
    return fn


bitwise_and, bitwise_or, bitwise_xor = (_bitwise("BitwiseAnd", "And", "&"), _bitwise("BitwiseOr", "Or", "|"),
                                        _bitwise("BitwiseXor", "Xor", "^"))


def bitwise_not(x):
    """~x: logical not on bool tensors (Not), bitwise not on integers (BitwiseNot)."""
    x = as_tensor(x)
    if x.dtype == _BOOL:
        return apply("Not", [x])
    if x.dtype.kind not in "iu":
        raise TypeError(f"~ needs a bool or integer tensor, got {x.dtype}; use ok.logical_not")
    return apply("BitwiseNot", [x])


_ROUNDING_MODES = (None, "floor", "trunc")


def div(a, b, rounding_mode=None):
    """True division (ints promote to float32, as in torch); rounding_mode 'floor'/'trunc'."""
    if rounding_mode not in _ROUNDING_MODES:
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"{rounding_mode!r}")
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
    """a // b, rounding toward minus infinity (torch.floor_divide)."""
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
    fn.__doc__ = f"Elementwise {op_type} (one ONNX {op_type}{'; integers become float32' if float_only else ''})."
    return fn


exp, log, sqrt, sigmoid, tanh, erf = (_unary(o) for o in ("Exp", "Log", "Sqrt", "Sigmoid", "Tanh", "Erf"))
sin, cos, tan, atan, asin, acos = (_unary(o) for o in ("Sin", "Cos", "Tan", "Atan", "Asin", "Acos"))
sinh, cosh, asinh, acosh, atanh = (_unary(o) for o in ("Sinh", "Cosh", "Asinh", "Acosh", "Atanh"))
reciprocal = _unary("Reciprocal")
neg, abs_, sign = (_unary(o, False) for o in ("Neg", "Abs", "Sign"))
floor, ceil, round_ = (_unary(o, False) for o in ("Floor", "Ceil", "Round"))
isnan, isinf = _unary("IsNaN"), _unary("IsInf")


def relu(x, inplace=False):
    """max(x, 0): one Relu node (`inplace` accepted for torch compatibility; graphs are pure)."""
    return apply("Relu", [as_tensor(x)])


def rsqrt(x):
    """1 / sqrt(x) (Reciprocal of Sqrt)."""
    return reciprocal(sqrt(x))


def square(x):
    """x * x (one Mul; its gradient rule emits one product)."""
    return mul(x, x)


def _precise_forward(approx, precise):
    """`precise`'s value with `approx`'s gradient: approx + stop(precise - approx). Where `precise` is a
    cancellation-free formula whose own gradient would divide by zero, as in log1p and expm1."""
    return add(approx, stop(sub(precise, approx)))


def log1p(x):
    """log(1 + x), accurate for tiny x as torch's: log(u) * x / (u - 1) with u = 1 + x (exactly x where
    u rounds to 1), gradient 1 / (1 + x)."""
    x = as_tensor(x)
    u = add(x, 1.0)
    naive = log(u)
    d = sub(u, 1.0)  # exact: the rounding error of u
    rounds_to_one = eq(d, 0.0)
    precise = where(rounds_to_one, x, mul(naive, div(x, where(rounds_to_one, 1.0, d))))
    return _precise_forward(naive, precise)


def expm1(x):
    """exp(x) - 1, accurate near 0 as torch's: 2t / (1 - t) with t = tanh(x / 2) for |x| < 0.5 (no
    cancellation), exp(x) - 1 elsewhere; gradient exp(x)."""
    x = as_tensor(x)
    naive = sub(exp(x), 1.0)
    t = tanh(mul(x, 0.5))
    precise = where(lt(abs_(x), 0.5), div(mul(t, 2.0), sub(1.0, t)), naive)
    return _precise_forward(naive, precise)


def log2(x):
    """log(x) / log(2)."""
    return div(log(x), float(np.log(2.0)))


def log10(x):
    """log(x) / log(10)."""
    return div(log(x), float(np.log(10.0)))


def identity(x):
    """x unchanged (one Identity; Tensor.clone)."""
    return apply("Identity", [as_tensor(x)])


def where(condition, x, y):
    """torch.where(cond, x, y) with broadcasting and promotion of x and y."""
    x, y = promote_operands(x, y)
    return apply("Where", [cast(condition, _BOOL), x, y])


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
    """a + weight * (b - a) (torch.lerp)."""
    return add(a, mul(weight, sub(b, a)))


def dim_size(t, i):
    """Size of dim i of t as a 1-element int64 tensor (Shape with start/end)."""
    r = len(t._shape)
    i = i % r
    return apply("Shape", [t], {"start": i, "end": i + 1}, types=[(np.dtype(np.int64), (1,))])


def shape_of(x):
    """x's shape as a 1-D int64 tensor: a constant when static, else one Shape node."""
    if x._shape is not None and all(isinstance(d, int) for d in x._shape):
        return const(x._shape, np.int64)
    return apply("Shape", [x], types=[(np.dtype(np.int64), None if x._shape is None else (len(x._shape),))])


def _filled_like(x, fill, dtype):
    """`fill` broadcast to x's (possibly symbolic) shape: ConstantOfShape of x's shape."""
    dtype = dtypes.as_dtype(dtype or x.dtype)
    return apply("ConstantOfShape", [shape_of(x)], {"value": np.full((1,), fill, dtype)}, types=[(dtype, x._shape)])


def zeros_of(x, dtype=None):
    """Zeros with x's (possibly symbolic) shape (ConstantOfShape)."""
    return _filled_like(x, 0, dtype)


def ones_of(x, dtype=None):
    """Ones with x's (possibly symbolic) shape (ConstantOfShape)."""
    return _filled_like(x, 1, dtype)


class DTypeError(TypeError):
    """Operands of different dtypes where torch refuses to promote; Module.__call__ prefixes the
    layer path, as for ShapeError."""

    def __init__(self, msg):
        super().__init__(msg)
        self.msg, self.path = msg, None


def check_same_dtype(what, *tensors, names=("input", "weight", "bias")):
    """torch's matmul/linear/conv refuse mixed dtypes instead of promoting; say which to convert."""
    ts = [t for t in tensors if t is not None]
    if len({t.dtype for t in ts}) > 1:
        got = ", ".join(f"{n} {t.dtype}" for n, t in zip(names, tensors) if t is not None)
        fix = (f"convert the input with .to({ts[1].dtype.name!r}) (or the module with .to({ts[0].dtype.name!r}))"
               if names[0] == "input" else "convert one operand with .to(...)")
        raise DTypeError(f"{what}: expected all operands to have the same dtype, got {got}; {fix}")
