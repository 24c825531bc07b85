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
    if x.__class__ in (float, int, bool):  # the common case, without the ABC check
        return True
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
    if a.__class__ is Tensor and b.__class__ is Tensor and a.dtype == b.dtype:
        return a, b
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


_add, _sub, mul, pow_ = (_binary(o, w) for o, w in (("Add", "a + b"), ("Sub", "a - b"), ("Mul", "a * b"),
                                                   ("Pow", "a ** b")))


def add(input, other, *, alpha=1):
    """input + alpha * other with torch's broadcasting and type promotion (one ONNX Add)."""
    return _add(input, other if alpha == 1 else mul(other, alpha))


def sub(input, other, *, alpha=1):
    """input - alpha * other with torch's broadcasting and type promotion (one ONNX Sub)."""
    return _sub(input, other if alpha == 1 else mul(other, alpha))
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
    no_strings(a, "Div")
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


def no_strings(x, what):
    """x, unless it is a string tensor: arithmetic would otherwise Cast the text to a number."""
    if x.dtype == dtypes.STRING:
        raise TypeError(f"{what} is not defined on string tensors (dtype object, ONNX STRING)")
    return x


def _unary(op_type, float_only=True):
    def fn(x):
        x = no_strings(as_tensor(x), op_type)
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


def where(condition, x=None, y=None):
    """torch.where(cond, x, y) with broadcasting and promotion of x and y; bool operands go through
    uint8 (onnxruntime has no bool Where). `where(cond)` alone is nonzero(cond, as_tuple=True)."""
    if x is None and y is None:
        from .indexing import nonzero
        return nonzero(condition, as_tuple=True)
    if x is None or y is None:
        raise TypeError("where() takes a condition and both x and y, or the condition alone")
    x, y = promote_operands(x, y)
    if x.dtype == _BOOL:
        return cast(apply("Where", [cast(condition, _BOOL), cast(x, np.uint8), cast(y, np.uint8)]), _BOOL)
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
    """a + weight * (b - a) where weight < 0.5, else b - (b - a) * (1 - weight): torch.lerp's two-sided
    formula, exact at both ends (and NaN, as torch's, for an infinite end reached from the other side)."""
    diff = sub(b, a)
    if _is_scalar(weight):
        return add(a, mul(weight, diff)) if weight < 0.5 else sub(b, mul(diff, 1.0 - weight))
    return where(lt(weight, 0.5), add(a, mul(weight, diff)), sub(b, mul(diff, sub(1.0, weight))))


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


# ----- torch's aliases and small compositions ---------------------------------------------------
absolute, negative, multiply = abs_, neg, mul
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne
subtract = sub
arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh
sgn = sign


def true_divide(input, other):
    """input / other as floats (torch.true_divide = div without rounding)."""
    return div(input, other)


divide = div


def clamp_min(input, min):
    """max(input, min) (torch.clamp_min: Clip, or Max for a tensor bound)."""
    return clamp(input, min=min)


def clamp_max(input, max):
    """min(input, max) (torch.clamp_max: Clip, or Min for a tensor bound)."""
    return clamp(input, max=max)


def _floating(x):
    """x as a Tensor of a floating dtype (integers and bools become float32, as torch's float ops)."""
    x = as_tensor(x)
    return x if dtypes.is_floating(x.dtype) else cast(x, np.float32)


def exp2(input):
    """2 ** input (one Pow with a constant base); integers become float32."""
    x = _floating(input)
    return apply("Pow", [const(2.0, x.dtype), x])


def trunc(input):
    """Round toward zero: Ceil below zero, Floor elsewhere (integers are returned as they are)."""
    x = as_tensor(input)
    if not dtypes.is_floating(x.dtype):
        return x
    return where(lt(x, 0), ceil(x), floor(x))


fix = trunc


def frac(input):
    """input - trunc(input): the fractional part, with input's sign; gradient 1 as torch's."""
    x = as_tensor(input)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"frac needs a floating-point tensor, got {x.dtype}")
    return sub(x, trunc(x))


def fmod(input, other):
    """C-style remainder (sign of the dividend): one Mod(fmod=1); for floats the value is Mod's and
    the gradient that of input - trunc(input / other) * other, as torch's."""
    a, b = promote_operands(input, other)
    exact = apply("Mod", [a, b], {"fmod": 1})
    if not dtypes.is_floating(a.dtype) or not (a.requires_grad or b.requires_grad):
        return exact
    return _precise_forward(sub(a, mul(trunc(apply("Div", [a, b])), b)), exact)


def addcmul(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 * tensor2 (torch.addcmul)."""
    prod = mul(tensor1, tensor2)
    return add(input, prod if value == 1 else mul(prod, value))


def addcdiv(input, tensor1, tensor2, *, value=1):
    """input + value * tensor1 / tensor2 (torch.addcdiv)."""
    q = div(tensor1, tensor2)
    return add(input, q if value == 1 else mul(q, value))


def hypot(input, other):
    """sqrt(input**2 + other**2) elementwise; floating point only, as torch."""
    a, b = promote_operands(input, other)
    if not dtypes.is_floating(a.dtype):
        raise TypeError(f"hypot needs floating-point tensors, got {a.dtype}")
    return sqrt(add(mul(a, a), mul(b, b)))


def _signbit(x):
    """True where x is negative, -0.0 included (x < 0, or x == 0 with 1/x = -inf)."""
    return logical_or(lt(x, 0.0), logical_and(eq(x, 0.0), lt(reciprocal(x), 0.0)))


def copysign(input, other):
    """|input| with the sign of other, -0.0 counting as negative (Where on the sign bit); integers
    become float32, as torch."""
    a, b = promote_operands(input, other)
    if not dtypes.is_floating(a.dtype):
        a, b = cast(a, np.float32), cast(b, np.float32)
    mag = abs_(a)
    return where(_signbit(b), neg(mag), mag)


_ATAN2 = None


def _atan2_fn():
    """atan2 as an autodiff Function: the quadrant-corrected forward has Wheres whose branches
    divide by zero at x = 0; the gradient is the closed form (x dy - y dx) / (x^2 + y^2), as torch's."""
    global _ATAN2
    if _ATAN2 is None:
        from ..autodiff.function import Function

        class Atan2(Function):
            @staticmethod
            def forward(ctx, y, x):
                ctx.save_for_backward(y, x)
                def c(v):
                    return const(v, y.dtype)
                zero_x, neg_y = eq(x, 0.0), _signbit(y)
                base = atan(div(y, where(zero_x, 1.0, x)))
                half = where(neg_y, c(-np.pi / 2), c(np.pi / 2))
                signed_pi = where(neg_y, c(-np.pi), c(np.pi))
                on_axis = where(eq(y, 0.0), where(_signbit(x), signed_pi, y), half)  # x == +-0
                out = where(zero_x, on_axis, where(lt(x, 0.0), add(base, signed_pi), base))
                return where(logical_or(isnan(x), isnan(y)), add(x, y), out)

            @staticmethod
            def backward(ctx, g):
                y, x = ctx.saved_tensors
                r2 = add(mul(x, x), mul(y, y))
                return div(mul(g, x), r2), neg(div(mul(g, y), r2))
        _ATAN2 = Atan2
    return _ATAN2


def atan2(input, other):
    """Elementwise arctangent of input / other in the quadrant of (other, input), with torch's
    signed-zero conventions; integers become float32."""
    y, x = promote_operands(input, other)
    if not dtypes.is_floating(y.dtype):
        y, x = cast(y, np.float32), cast(x, np.float32)
    return _atan2_fn().apply(y, x)


arctan2 = atan2


def isfinite(input):
    """True where input is neither inf nor NaN (Not(Or(IsInf, IsNaN))); always True for integers."""
    x = as_tensor(input)
    if not dtypes.is_floating(x.dtype):
        return ones_of(x, _BOOL)
    return logical_not(logical_or(apply("IsInf", [x]), apply("IsNaN", [x])))


def _inf_test(x, positive):
    x = as_tensor(x)
    if not dtypes.is_floating(x.dtype):
        return zeros_of(x, _BOOL)
    return apply("IsInf", [x], {"detect_positive": int(positive), "detect_negative": int(not positive)})


def isposinf(input):
    """True where input is +inf (IsInf with detect_negative=0)."""
    return _inf_test(input, True)


def isneginf(input):
    """True where input is -inf (IsInf with detect_positive=0)."""
    return _inf_test(input, False)


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """NaN, +inf and -inf replaced by `nan`, `posinf` and `neginf` (the dtype's largest and lowest
    finite values by default), as torch.nan_to_num."""
    x = as_tensor(input)
    if not dtypes.is_floating(x.dtype):
        return x
    info = np.finfo(x.dtype)
    x = where(isnan(x), const(nan, x.dtype), x)
    x = where(isposinf(x), const(info.max if posinf is None else posinf, x.dtype), x)
    return where(isneginf(x), const(info.min if neginf is None else neginf, x.dtype), x)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol * |other| elementwise, equal infinities close, NaN close to NaN
    only with equal_nan (torch.isclose); both tensors must have one dtype, as in torch."""
    a = as_tensor(input)
    if isinstance(other, Tensor) and other.dtype != a.dtype:
        raise TypeError(f"isclose: input dtype {a.dtype} does not match other dtype {other.dtype}; convert one "
                        "with .to(...)")
    b = cast(as_tensor(other, a.dtype), a.dtype)
    if rtol < 0 or atol < 0:
        raise ValueError(f"isclose: rtol ({rtol}) and atol ({atol}) must be non-negative")
    close = eq(a, b)
    floating = dtypes.is_floating(a.dtype)
    if equal_nan and floating:
        close = logical_or(close, logical_and(isnan(a), isnan(b)))
    if a.dtype == _BOOL or (rtol == 0 and atol == 0):
        return close
    af, bf = (a, b) if floating else (cast(a, np.float32), cast(b, np.float32))
    allowed = add(abs_(mul(bf, float(rtol))), float(atol))
    actual = abs_(sub(af, bf))
    within = le(actual, allowed)
    if floating:
        within = logical_and(isfinite(actual), within)
    return logical_or(close, within)


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether every element is close (isclose); evaluates and returns a Python bool, as torch."""
    from .reduce import all as all_
    return bool(all_(isclose(input, other, rtol, atol, equal_nan)).item())


def equal(input, other):
    """True when both tensors have the same shape and elements (evaluates; a Python bool, as torch.equal)."""
    a, b = as_tensor(input), as_tensor(other)
    if a._shape is not None and b._shape is not None and len(a._shape) != len(b._shape):
        return False
    av, bv = a.numpy(), b.numpy()
    return av.shape == bv.shape and bool(np.array_equal(av, bv))


def is_tensor(obj):
    """Whether obj is an onnxkit Tensor (torch.is_tensor)."""
    return isinstance(obj, Tensor)


def is_floating_point(input):
    """Whether input's dtype is a floating-point type."""
    return dtypes.is_floating(as_tensor(input).dtype)


def numel(input):
    """Number of elements: an int, or a symbolic Dim when a dim is symbolic (torch.numel)."""
    return as_tensor(input).numel()


def from_numpy(ndarray):
    """A leaf holding the array's values with its dtype (torch.from_numpy). Unlike torch the data is
    copied: evaluation is lazy, so a shared buffer changed later would leak into results."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(ndarray).__name__}")
    return tensor(ndarray)


# ----- more of torch's elementwise functions (compositions of the ops above) -------------------------
def _integer_operands(a, b, what):
    a, b = promote_operands(a, b)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{what} needs integer tensors, got {a.dtype}")
    return a, b


def _power_of_two(shift):
    """2 ** shift for an int64 tensor of shift counts (a BitShift of 1 in uint64, back to int64)."""
    one = const(np.ones((), np.uint64), np.uint64)
    return cast(apply("BitShift", [one, cast(shift, np.uint64)], {"direction": "LEFT"}), np.int64)


def _shift(a, b, direction, what):
    a, b = _integer_operands(a, b, what)
    if a.dtype.kind == "u":  # ONNX BitShift takes unsigned integers only
        return apply("BitShift", [a, b], {"direction": direction})
    wide, scale = cast(a, np.int64), _power_of_two(cast(b, np.int64))
    out = mul(wide, scale) if direction == "LEFT" else div(wide, scale, rounding_mode="floor")
    return cast(out, a.dtype)


def bitwise_left_shift(input, other):
    """input << other: BitShift for unsigned integers, a product with 2 ** other for signed ones (as torch)."""
    return _shift(input, other, "LEFT", "bitwise_left_shift")


def bitwise_right_shift(input, other):
    """input >> other: BitShift for unsigned integers; for signed ones an arithmetic shift (floor division by
    2 ** other), as torch."""
    return _shift(input, other, "RIGHT", "bitwise_right_shift")


def deg2rad(input):
    """Degrees to radians (integers become float32)."""
    return mul(_floating(input), float(np.pi / 180.0))


def rad2deg(input):
    """Radians to degrees (integers become float32)."""
    return mul(_floating(input), float(180.0 / np.pi))


# Numerical Recipes' erfc (fractional error < 1.2e-7) for the tail where 1 - erf(x) cancels
_ERFC_POLY = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
              -0.82215223, 0.17087277)


def _erfc_tail(x):
    z = abs_(x)
    t = reciprocal(add(mul(z, 0.5), 1.0))
    acc = const(_ERFC_POLY[-1], x.dtype)
    for c in reversed(_ERFC_POLY[:-1]):
        acc = add(mul(acc, t), c)
    ans = mul(t, exp(sub(acc, mul(z, z))))
    return where(ge(x, 0.0), ans, sub(2.0, ans))


def erfc(input):
    """1 - erf(x) without its cancellation for large x (a rational approximation in the tail, accurate to
    float32 precision); the gradient is -2/sqrt(pi) exp(-x^2), as torch's."""
    x = _floating(input)
    naive = sub(1.0, erf(x))
    limit = 0.5 if x.dtype != np.float64 else 3.0
    return _precise_forward(naive, where(lt(x, limit), naive, _erfc_tail(x)))


def float_power(input, exponent):
    """input ** exponent in float64 (torch.float_power)."""
    a = cast(as_tensor(input), np.float64)
    b = cast(as_tensor(exponent, np.float64), np.float64)
    return apply("Pow", [a, b])


def _nan_ignoring(a, b, keep_a):
    a, b = promote_operands(a, b)
    if not dtypes.is_floating(a.dtype):
        return maximum(a, b) if keep_a is ge else minimum(a, b)
    return where(logical_or(keep_a(a, b), isnan(b)), a, b)


def fmax(input, other):
    """Elementwise maximum that ignores NaN (NaN only where both are NaN); ties send the gradient to input,
    as torch.fmax."""
    return _nan_ignoring(input, other, ge)


def fmin(input, other):
    """Elementwise minimum that ignores NaN (NaN only where both are NaN), as torch.fmin."""
    return _nan_ignoring(input, other, le)


def heaviside(input, values):
    """0 where input < 0, `values` where input == 0, 1 where input > 0 (torch.heaviside)."""
    x, v = as_tensor(input), as_tensor(values)
    if v.dtype != x.dtype:
        raise TypeError(f"heaviside is not yet implemented for tensors with different dtypes: {x.dtype} and "
                        f"{v.dtype}")
    return where(eq(x, 0), v, cast(gt(x, 0), x.dtype))


def _log_add(a, b, log1p_of_exp):
    a, b = promote_operands(a, b)
    if not dtypes.is_floating(a.dtype):
        a, b = cast(a, np.float32), cast(b, np.float32)
    first = ge(a, b)
    hi, lo = where(first, a, b), where(first, b, a)  # ties split the gradient evenly, as torch
    out = add(hi, log1p_of_exp(sub(lo, where(isinf(hi), 0.0, hi))))
    return where(logical_and(isinf(a), eq(a, b)), a, out)


def logaddexp(input, other):
    """log(exp(input) + exp(other)) without overflow: max + log1p(exp(min - max))."""
    return _log_add(input, other, lambda d: log1p(exp(d)))


def logaddexp2(input, other):
    """log2(2**input + 2**other) without overflow: max + log1p(2**(min - max)) / ln 2."""
    return _log_add(input, other, lambda d: mul(log1p(exp2(d)), float(1.0 / np.log(2.0))))


def logit(input, eps=None):
    """log(p / (1 - p)), with p clamped to [eps, 1 - eps] when eps is given (torch.logit)."""
    x = _floating(input)
    if eps is not None:
        x = clamp(x, float(eps), 1.0 - float(eps))
    return log(div(x, sub(1.0, x)))


def positive(input):
    """input itself (torch.positive); bool tensors are refused, as in torch."""
    x = as_tensor(input)
    if x.dtype == _BOOL:
        raise TypeError("The `+` operator, on a bool tensor is not supported.")
    return x


def signbit(input):
    """True where the sign bit is set (negative numbers and -0.0), as a bool tensor."""
    x = as_tensor(input)
    if x.dtype == _BOOL or x.dtype.kind == "u":
        return zeros_of(x, _BOOL)
    if not dtypes.is_floating(x.dtype):
        return lt(x, 0)
    return _signbit(x)


def sinc(input):
    """sin(pi x) / (pi x), 1 at 0 (gradient 0 there), as torch.sinc; integers become float32."""
    x = _floating(input)
    zero = eq(x, 0.0)
    px = mul(where(zero, 1.0, x), float(np.pi))
    return where(zero, const(1.0, x.dtype), div(sin(px), px))


_XLOGY = None


def _xlogy_fn():
    """xlogy as an autodiff Function with torch's gradients: d/dx = log(y) (0 where y == 0), d/dy = x / y."""
    global _XLOGY
    if _XLOGY is None:
        from ..autodiff.function import Function

        class XLogY(Function):
            @staticmethod
            def forward(ctx, x, y):
                ctx.save_for_backward(x, y)
                zero = eq(x, 0.0)
                out = where(zero, const(0.0, x.dtype), mul(x, log(where(zero, 1.0, y))))
                return where(isnan(y), y, out)

            @staticmethod
            def backward(ctx, g):
                x, y = ctx.saved_tensors
                y_zero = eq(y, 0.0)
                log_y = where(y_zero, const(0.0, y.dtype), log(where(y_zero, 1.0, y)))
                return mul(g, log_y), div(mul(g, x), y)
        _XLOGY = XLogY
    return _XLOGY


def xlogy(input, other):
    """input * log(other), 0 where input == 0 (unless other is NaN), as torch.xlogy, with torch's gradients;
    integers become float32."""
    a, b = promote_operands(input, other)
    if not dtypes.is_floating(a.dtype):
        a, b = cast(a, np.float32), cast(b, np.float32)
    return _xlogy_fn().apply(a, b)


def ldexp(input, other):
    """input * 2 ** other (torch.ldexp); the result is floating point."""
    x = _floating(input)
    return mul(x, exp2(cast(as_tensor(other), x.dtype) if isinstance(other, Tensor) else float(other)))


def rsub(input, other, *, alpha=1):
    """other - alpha * input (torch.rsub)."""
    return sub(other, input, alpha=alpha)


def clone(input, *, memory_format=None):
    """A copy of input that records gradients like it (torch.clone; one Identity)."""
    return identity(input)


def detach(input):
    """input's value cut from the gradient graph (torch.detach)."""
    return as_tensor(input).detach()


def is_signed(input):
    """Whether input's dtype is signed (floating point or signed integers), as torch.is_signed."""
    return as_tensor(input).dtype.kind in "if"


def is_same_size(input, other):
    """Whether both tensors have the same shape (symbolic dims compare by name)."""
    a, b = as_tensor(input), as_tensor(other)
    return tuple(map(str, a._shape)) == tuple(map(str, b._shape))


def is_nonzero(input):
    """The truth of a one-element tensor (evaluates); other sizes raise, as torch.is_nonzero."""
    x = as_tensor(input)
    v = x.numpy()
    if v.size == 0:
        raise RuntimeError("Boolean value of Tensor with no values is ambiguous")
    if v.size > 1:
        raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
    return bool(v.reshape(()) != 0)


def isreal(input):
    """True everywhere: onnxkit tensors are real (torch.isreal)."""
    return ones_of(as_tensor(input), _BOOL)


def is_inference(input):
    """False: onnxkit has no inference-mode tensors (torch.is_inference)."""
    return False


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad=False):
    """obj as a Tensor (torch.asarray): Tensors pass through (cast to dtype; copied with copy=True), anything
    else becomes a value leaf with torch's default dtypes (float32 for Python floats)."""
    if isinstance(obj, Tensor):
        out = obj if dtype is None else cast(obj, dtype)
        return identity(out) if copy and out is obj else out
    if dtype is None:
        arr = np.asarray(obj)
        if arr.dtype == np.float64 and not isinstance(obj, np.ndarray):
            arr = arr.astype(np.float32)
        return tensor(arr, requires_grad=requires_grad)
    return tensor(np.asarray(obj), dtype=dtype, requires_grad=requires_grad)


# ----- integer number theory, float decomposition ------------------------------------------------------------
_EUCLID_STEPS = {1: 14, 2: 26, 4: 48, 8: 94}  # Euclid's worst case (consecutive Fibonacci numbers) per itemsize


def gcd(input, other):
    """Greatest common divisor of integers, non-negative (torch.gcd): Euclid's algorithm unrolled for the
    dtype's worst case, as standard ONNX has no loop-free alternative."""
    a, b = _integer_operands(input, other, "gcd")
    dtype, steps = a.dtype, _EUCLID_STEPS[a.dtype.itemsize]
    a, b = abs_(cast(a, np.int64)), abs_(cast(b, np.int64))  # onnxruntime's Where and Mod want wide ints
    one, zero = const(1, a.dtype), const(0, a.dtype)
    for _ in range(steps):
        done = eq(b, 0)
        a, b = where(done, a, b), where(done, zero, apply("Mod", [a, where(done, one, b)], {"fmod": 0}))
    return cast(a, dtype)


def lcm(input, other):
    """Least common multiple of integers, non-negative, 0 when either is 0 (torch.lcm)."""
    a, b = _integer_operands(input, other, "lcm")
    g = gcd(a, b)
    zero = eq(g, 0)
    return abs_(mul(div(a, where(zero, const(1, a.dtype), g), rounding_mode="trunc"), b))


def frexp(input):
    """(mantissa, exponent) with input = mantissa * 2 ** exponent and 0.5 <= |mantissa| < 1 (0, inf and NaN
    keep mantissa = input, exponent 0), as torch.frexp; exponent is int32."""
    x = as_tensor(input)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"torch.frexp() only supports floating-point dtypes, got {x.dtype}")
    special = logical_or(eq(x, 0.0), logical_not(isfinite(x)))

    def scaled(v, e):  # v / 2**e in two halves, so that 2**e itself never overflows
        half = floor(mul(e, 0.5))
        return div(div(v, exp2(half)), exp2(sub(e, half)))
    mag = where(special, const(1.0, x.dtype), abs_(x))
    e = add(floor(log2(mag)), 1.0)
    m = scaled(mag, e)
    e = where(ge(m, 1.0), add(e, 1.0), where(lt(m, 0.5), sub(e, 1.0), e))  # log2's rounding near powers of 2
    e = where(special, const(0.0, x.dtype), e)
    return where(special, x, scaled(x, e)), cast(e, np.int32)


# ----- modified Bessel functions of order 0 and 1 (Abramowitz & Stegun 9.8.1-9.8.4) ---------------------------
_I0_SMALL = (1.0, 3.5156229, 3.0899424, 1.2067492, 0.2659732, 0.0360768, 0.0045813)  # in (x / 3.75)^2
_I1_SMALL = (0.5, 0.87890594, 0.51498869, 0.15084934, 0.02658733, 0.00301532, 0.00032411)
_I0_LARGE = (0.39894228, 0.01328592, 0.00225319, -0.00157565, 0.00916281, -0.02057706, 0.02635537, -0.01647633,
             0.00392377)  # in 3.75 / |x|, times exp(|x|) / sqrt(|x|)
_I1_LARGE = (0.39894228, -0.03988024, -0.00362018, 0.00163801, -0.01031555, 0.02282967, -0.02895312, 0.01787654,
             -0.00420059)


def _poly(t, coefs):
    acc = const(coefs[-1], t.dtype)
    for c in reversed(coefs[:-1]):
        acc = add(mul(acc, t), c)
    return acc


def _bessel(x, small, large, odd):
    """I0 (odd=False) or I1 (odd=True) of x: polynomials for |x| < 3.75, exp(|x|)/sqrt(|x|) times one beyond
    (relative error about 2e-7: float32 precision)."""
    ax = abs_(x)
    t = div(ax, 3.75)
    near = _poly(mul(t, t), small)
    if odd:
        near = mul(near, x)
    far_ax = where(lt(ax, 3.75), const(3.75, x.dtype), ax)
    far = mul(div(exp(far_ax), sqrt(far_ax)), _poly(div(3.75, far_ax), large))
    if odd:
        far = where(lt(x, 0.0), neg(far), far)
    return where(lt(ax, 3.75), near, far)


_I0 = None


def _i0_fn():
    """i0 as an autodiff Function: its derivative is I1 (computed the same way)."""
    global _I0
    if _I0 is None:
        from ..autodiff.function import Function

        class I0(Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return _bessel(x, _I0_SMALL, _I0_LARGE, False)

            @staticmethod
            def backward(ctx, g):
                x, = ctx.saved_tensors
                return mul(g, _bessel(x, _I1_SMALL, _I1_LARGE, True))
        _I0 = I0
    return _I0


def i0(input):
    """The modified Bessel function of the first kind of order 0 (torch.i0), accurate to float32 precision
    (Abramowitz & Stegun's approximations); its gradient is I1. Integers become float32."""
    return _i0_fn().apply(_floating(input))


def nextafter(input, other):
    """The next representable floating-point value after input toward other (torch.nextafter): input plus
    one unit in the last place, the unit read from frexp (halved toward zero at a power of two, the
    smallest subnormal at and below the subnormal range)."""
    x, y = promote_operands(input, other)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"nextafter needs floating-point tensors, got {x.dtype}")
    info = np.finfo(x.dtype)
    digits, tiny = info.nmant + 1, float(info.smallest_subnormal)
    mantissa, exponent = frexp(x)
    e = cast(exponent, x.dtype)
    away = logical_xor(gt(y, x), lt(x, 0.0))  # moving away from zero
    at_power_of_two = eq(abs_(mantissa), 0.5)
    unit = exp2(sub(e, float(digits)))
    unit = where(logical_and(logical_not(away), at_power_of_two), mul(unit, 0.5), unit)
    unit = maximum(unit, const(tiny, x.dtype))
    step = where(gt(y, x), unit, neg(unit))
    out = add(x, step)
    out = where(eq(x, 0.0), where(gt(y, x), const(tiny, x.dtype), const(-tiny, x.dtype)), out)
    out = where(isinf(x), where(gt(x, 0.0), const(info.max, x.dtype), const(-info.max, x.dtype)), out)
    out = where(eq(x, y), y, out)
    return where(logical_or(isnan(x), isnan(y)), add(x, y), out)
