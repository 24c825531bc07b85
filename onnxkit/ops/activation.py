"""Activation functions with torch.nn.functional's names, arguments and boundary gradients.

A function is one ONNX op where that op has a gradient rule whose boundaries agree with torch
(Elu, Selu, Celu, LeakyRelu, PRelu, HardSigmoid, HardSwish, Softsign); otherwise it is composed
from primitives so autodiff needs nothing new. `inplace=` is accepted and ignored: graphs are
pure. relu, sigmoid, tanh, softmax, log_softmax and softmin live in core.py / reduce.py."""
import math

import numpy as np

from .. import dtypes
from ..tensor import apply, const
from .conv import shape_error
from .core import as_tensor, cast, where, gt, lt, logical_and, clamp, abs_, sigmoid, tanh, erf, neg, mul
from .reduce import _axes
from .shape import split

__all__ = ["relu6", "elu", "selu", "celu", "gelu", "silu", "mish", "prelu", "leaky_relu", "rrelu", "threshold",
           "hardtanh", "hardsigmoid", "hardswish", "hardshrink", "logsigmoid", "softplus", "softshrink",
           "softsign", "tanhshrink", "glu"]


def _float(x):
    """x as a Tensor of a floating dtype (integers become float32, as torch's activations require floats)."""
    x = as_tensor(x)
    return x if dtypes.is_floating(x.dtype) else cast(x, np.float32)


def _hardtanh_fn():
    """Clip forward; torch's hardtanh backward passes the gradient only strictly inside (lo, hi),
    while the Clip rule (like torch.clamp) also passes it at the bounds. Built on first use so
    `import onnxkit` does not load autodiff."""
    global _HARDTANH
    if _HARDTANH is None:
        from ..autodiff.function import Function

        class Hardtanh(Function):
            @staticmethod
            def forward(ctx, x, lo, hi):
                ctx.x, ctx.lo, ctx.hi = x, lo, hi
                return apply("Clip", [x, const(lo, x.dtype), const(hi, x.dtype)], types=[(x.dtype, x._shape)])

            @staticmethod
            def backward(ctx, g):
                inside = logical_and(gt(ctx.x, ctx.lo), lt(ctx.x, ctx.hi))
                return where(inside, g, const(0.0, g.dtype)), None, None
        _HARDTANH = Hardtanh
    return _HARDTANH


_HARDTANH = None


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """Clamp to [min_val, max_val] (Clip); the gradient is zero at the bounds, as torch's."""
    x = _float(input)
    if max_val <= min_val:
        raise ValueError(f"hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
    return _hardtanh_fn().apply(x, float(min_val), float(max_val))


def relu6(input, inplace=False):
    """min(max(0, x), 6): hardtanh(x, 0, 6), one Clip."""
    return hardtanh(input, 0.0, 6.0)


def elu(input, alpha=1.0, inplace=False):
    """x if x > 0 else alpha*(exp(x)-1): one Elu."""
    return apply("Elu", [_float(input)], {"alpha": float(alpha)})


def selu(input, inplace=False):
    """scale*elu(x, alpha) with torch's constants: one Selu (ONNX's defaults are the same constants)."""
    return apply("Selu", [_float(input)])


def celu(input, alpha=1.0, inplace=False):
    """max(0,x) + min(0, alpha*(exp(x/alpha)-1)): one Celu for float32 (the only type ONNX Celu
    takes), alpha*Elu(x/alpha) otherwise."""
    x = _float(input)
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0 (ZeroDivisionError in torch)")
    if x.dtype == np.float32:
        return apply("Celu", [x], {"alpha": float(alpha)})
    return elu(x / float(alpha)) * float(alpha)


_SQRT_2 = math.sqrt(2.0)
_GELU_TANH_BETA = math.sqrt(2.0 / math.pi)


def gelu(input, approximate="none"):
    """x*Phi(x). Composed from Div, Erf, Add, Mul ('none') or Mul, Tanh, Add ('tanh') rather than the
    opset-20 Gelu op: the primitives already have gradient rules (to any order), and onnxruntime's
    optimizer fuses the erf pattern, written in this order, into its own Gelu kernel at session load."""
    x = _float(input)
    if approximate == "none":
        return x * (erf(x / _SQRT_2) + 1.0) * 0.5
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * _GELU_TANH_BETA
        return x * (tanh(inner) + 1.0) * 0.5
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input, inplace=False):
    """x*sigmoid(x): Sigmoid, Mul."""
    x = _float(input)
    return x * sigmoid(x)


def mish(input, inplace=False):
    """x*tanh(softplus(x)): Softplus, Tanh, Mul (ONNX Mish has no gradient rule here)."""
    x = _float(input)
    return x * tanh(apply("Softplus", [x]))


def prelu(input, weight):
    """max(0,x) + weight*min(0,x), weight per channel (dim 1) or shared: one PRelu with the
    slope reshaped to (C, 1, ..., 1) for ONNX's right-aligned broadcasting."""
    x, w = _float(input), as_tensor(weight)
    n = int(np.prod(w._shape))
    r = len(x._shape)
    channels = x._shape[1] if r >= 2 else 1
    if n != 1 and n != channels:
        raise shape_error(f"prelu: mismatch of parameter numbers and input channel size: found {n} parameters "
                          f"and {channels} channels (input shape {tuple(x._shape)})")
    slope = w.reshape(*([n] + [1] * (r - 2))) if r >= 2 and n > 1 else w.reshape(*([1] * min(r, 1)))
    return apply("PRelu", [x, cast(slope, x.dtype)], types=[(x.dtype, x._shape)])


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x if x > 0 else negative_slope*x: one LeakyRelu."""
    return apply("LeakyRelu", [_float(input)], {"alpha": float(negative_slope)})


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Randomized leaky ReLU. Eval: leaky_relu with slope (lower+upper)/2. Train: a slope uniform in
    [lower, upper) per element, drawn once per call by onnxkit.random.rand_like (seeded by
    ok.manual_seed; per step in training graphs), so the output and its gradient see the same slopes."""
    x = _float(input)
    if lower > upper:
        raise ValueError(f"rrelu: lower bound ({lower}) must be less than or equal to the upper bound ({upper})")
    if not training:
        return leaky_relu(x, (lower + upper) / 2.0)
    from .. import random
    slopes = random.rand_like(x) * float(upper - lower) + float(lower)
    return where(gt(x, 0.0), x, x * slopes)


def threshold(input, threshold, value, inplace=False):
    """x if x > threshold else value: Greater, Where."""
    x = as_tensor(input)
    return where(gt(x, threshold), x, const(value, x.dtype))


def hardsigmoid(input, inplace=False):
    """relu6(x+3)/6: one HardSigmoid(alpha=1/6); zero gradient at x = +-3, as torch."""
    return apply("HardSigmoid", [_float(input)], {"alpha": 1.0 / 6.0, "beta": 0.5})


def hardswish(input, inplace=False):
    """x*relu6(x+3)/6: one HardSwish."""
    return apply("HardSwish", [_float(input)])


def hardshrink(input, lambd=0.5):
    """x where |x| > lambd, else 0: Abs, Greater, Where."""
    x = _float(input)
    return where(gt(abs_(x), lambd), x, const(0.0, x.dtype))


def softshrink(input, lambd=0.5):
    """x - clamp(x, -lambd, lambd): Clip, Sub (gradient 0 on [-lambd, lambd], as torch)."""
    x = _float(input)
    if lambd < 0:
        raise ValueError(f"softshrink: lambd must be greater or equal to 0, got {lambd}")
    return x - clamp(x, -float(lambd), float(lambd))


def softplus(input, beta=1.0, threshold=20.0):
    """log(1+exp(beta*x))/beta, reverting to x where beta*x > threshold (as torch): Softplus, Where."""
    x = _float(input)
    bx = x * float(beta) if beta != 1 else x
    soft = apply("Softplus", [bx])
    if beta != 1:
        soft = soft / float(beta)
    return where(gt(bx, float(threshold)), x, soft)


def logsigmoid(input):
    """log(sigmoid(x)) computed stably as -softplus(-x): Neg, Softplus, Neg."""
    return neg(apply("Softplus", [neg(_float(input))]))


def softsign(input):
    """x/(1+|x|): one Softsign."""
    return apply("Softsign", [_float(input)])


def tanhshrink(input):
    """x - tanh(x)."""
    x = _float(input)
    return x - tanh(x)


def glu(input, dim=-1):
    """a*sigmoid(b) with a, b the two halves of `dim`: Split, Sigmoid, Mul."""
    x = _float(input)
    if not x._shape:
        raise shape_error("glu does not support scalars because halving size must be even")
    d = _axes(x, dim)[0]
    n = x._shape[d]
    if not isinstance(n, int) or n % 2:
        raise shape_error(f"glu: halving dimension must be even, but dimension {d} is size {n}")
    a, b = split(x, n // 2, d)
    return mul(a, sigmoid(b))
