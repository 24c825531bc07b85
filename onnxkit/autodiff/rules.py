"""Gradient rules for elementwise math, matrix products, reductions, softmax and shape ops.
Each rule gets the node and its output gradients and returns one gradient per input."""
import math

import numpy as np

from .. import ops
from ..tensor import apply, const
from .registry import register


def _x(node, i=0):
    return node.inputs[i]


def _y(node, i=0):
    return node.outputs[i]


def _like(op_type, inputs, like, dtype=None):
    """One node whose output has `like`'s shape (and dtype unless given): skips shape inference and
    promotion on the hot path of define-by-run loops, for operands already of matching types."""
    return apply(op_type, inputs, types=[(dtype or like.dtype, like._shape)])


def _needs(node, i):
    """Whether input i exists and wants a gradient."""
    t = node.inputs[i] if i < len(node.inputs) else None
    return t is not None and t.requires_grad


def _axes_of(node):
    """Axes of a Reduce* node as non-negative ints (None = all)."""
    x = node.inputs[0]
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        v = node.inputs[1]._value
        if v is None:
            raise NotImplementedError(f"{node.op_type} with computed axes has no gradient rule")
        axes = [int(a) for a in np.asarray(v).reshape(-1)]
    else:
        axes = node.attrs.get("axes")
    r = len(x._shape)
    if not axes:
        return None if not node.attrs.get("noop_with_empty_axes") else []
    return sorted(a % r for a in axes)


def _expand_back(node, g):
    """A reduction's output gradient broadcast back to the input shape (keepdims restored)."""
    x = node.inputs[0]
    axes = _axes_of(node)
    if axes is None:
        axes = list(range(len(x._shape)))
    if not node.attrs.get("keepdims", 1) and axes and g._shape != ():  # a scalar broadcasts as is
        g = ops.unsqueeze(g, axes)
    return _like("Expand", [g, ops.shape_of(x)], x, g.dtype)


def _out_keep(node):
    """The reduction output with reduced dims kept (for max/min masks and L2)."""
    y = node.outputs[0]
    axes = _axes_of(node)
    if axes is None:
        axes = list(range(len(node.inputs[0]._shape)))
    if not node.attrs.get("keepdims", 1) and axes:
        return ops.unsqueeze(y, axes)
    return y


# ----- arithmetic ----------------------------------------------------------------------------
@register("Add")
def _add(node, g):
    return [g[0], g[0]]


@register("Sub")
def _sub(node, g):
    return [g[0], -g[0] if _needs(node, 1) else None]


@register("Mul")
def _mul(node, g):
    a, b = node.inputs
    if a is b:  # x * x: one product instead of two summed by the engine
        return [g[0] * (a * 2.0), None]
    return [g[0] * b if _needs(node, 0) else None, g[0] * a if _needs(node, 1) else None]


@register("Div")
def _div(node, g):
    a, b = node.inputs
    return [g[0] / b if _needs(node, 0) else None, -g[0] * _y(node) / b if _needs(node, 1) else None]


def _pow_base_grad(node, g):
    """g * d(a**b)/da; a constant scalar exponent is folded at build time (x**2 -> g * 2x, x**0 -> 0,
    where b * a**(b-1) would give NaN at a = 0; torch gives 0)."""
    a, b = node.inputs
    if b.kind != "const" or b._value.size != 1 or len(b._shape) > len(a._shape):
        return ops.where(ops.eq(b, 0.0), 0.0, g * b * ops.pow(a, b - 1))
    e = float(b._value.reshape(-1)[0])
    if e == 1.0:
        return g
    if e == 0.0:
        return _like("Mul", [g, const(0.0, g.dtype)], g)
    da = _like("Mul", [a, const(e, a.dtype)], a) if e == 2.0 else \
        _like("Mul", [_like("Pow", [a, const(e - 1.0, b.dtype)], a), const(e, a.dtype)], a)
    return _like("Mul", [g, da], g)


@register("Pow")
def _pow(node, g):
    """d/db a**b = a**b log(a), taken as 0 where a = 0 and b >= 0 (torch: the limit, not NaN)."""
    a, b = node.inputs
    ga = _pow_base_grad(node, g[0]) if _needs(node, 0) else None
    gb = None
    if _needs(node, 1):
        at_zero = ops.logical_and(ops.eq(a, 0.0), ops.ge(b, 0.0))
        gb = ops.where(at_zero, 0.0, g[0] * _y(node) * ops.log(a))
    return [ga, gb]


@register("Neg")
def _neg(node, g):
    return [-g[0]]


@register("Identity")
def _identity(node, g):
    return [g[0]]


@register("Cast")
def _cast(node, g):
    return [ops.cast(g[0], node.inputs[0].dtype)]


@register("Exp")
def _exp(node, g):
    return [g[0] * _y(node)]


@register("Log")
def _log(node, g):
    return [g[0] / _x(node)]


@register("Sqrt")
def _sqrt(node, g):
    return [g[0] * 0.5 / _y(node)]


@register("Reciprocal")
def _reciprocal(node, g):
    y = _y(node)
    return [-g[0] * y * y]


@register("Abs")
def _abs(node, g):
    return [g[0] * ops.sign(_x(node))]


@register("Sin")
def _sin(node, g):
    return [g[0] * ops.cos(_x(node))]


@register("Cos")
def _cos(node, g):
    return [-g[0] * ops.sin(_x(node))]


@register("Tan")
def _tan(node, g):
    y = _y(node)
    return [g[0] * (y * y + 1)]


@register("Atan")
def _atan(node, g):
    x = _x(node)
    return [g[0] / (x * x + 1)]


@register("Asin")
def _asin(node, g):
    x = _x(node)
    return [g[0] / ops.sqrt(1.0 - x * x)]


@register("Acos")
def _acos(node, g):
    x = _x(node)
    return [-g[0] / ops.sqrt(1.0 - x * x)]


@register("Sinh")
def _sinh(node, g):
    return [g[0] * ops.cosh(_x(node))]


@register("Cosh")
def _cosh(node, g):
    return [g[0] * ops.sinh(_x(node))]


@register("Asinh")
def _asinh(node, g):
    x = _x(node)
    return [g[0] / ops.sqrt(x * x + 1.0)]


@register("Acosh")
def _acosh(node, g):
    x = _x(node)
    return [g[0] / ops.sqrt(x * x - 1.0)]


@register("Atanh")
def _atanh(node, g):
    x = _x(node)
    return [g[0] / (1.0 - x * x)]


@register("CastLike")
def _cast_like(node, g):
    return [ops.cast(g[0], node.inputs[0].dtype), None]


@register("ThresholdedRelu")
def _thresholded_relu(node, g):
    return [ops.where(ops.gt(_x(node), node.attrs.get("alpha", 1.0)), g[0], const(0.0, g[0].dtype))]


@register("Shrink")
def _shrink(node, g):
    lambd = node.attrs.get("lambd", 0.5)
    x = _x(node)
    return [ops.where(ops.logical_or(ops.lt(x, -lambd), ops.gt(x, lambd)), g[0], const(0.0, g[0].dtype))]


@register("Mish")
def _mish(node, g):
    """d/dx x tanh(softplus x) = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2)."""
    x = _x(node)
    t = ops.tanh(ops.log(ops.exp(x) + 1.0))
    return [g[0] * (t + x * ops.sigmoid(x) * (1.0 - t * t))]


@register("Gelu")
def _gelu(node, g):
    """Opset-20 Gelu (from imported models): exact or tanh approximation, as torch's GELU."""
    x = _x(node)
    if node.attrs.get("approximate", "none") == "tanh":
        c = math.sqrt(2.0 / math.pi)
        inner = (x + x * x * x * 0.044715) * c
        t = ops.tanh(inner)
        d_inner = (x * x * 3 * 0.044715 + 1.0) * c
        return [g[0] * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner)]
    cdf = (ops.erf(x * (1.0 / math.sqrt(2.0))) + 1.0) * 0.5
    pdf = ops.exp(x * x * -0.5) * (1.0 / math.sqrt(2.0 * math.pi))
    return [g[0] * (cdf + x * pdf)]


@register("Erf")
def _erf(node, g):
    x = _x(node)
    return [g[0] * (2.0 / math.sqrt(math.pi)) * ops.exp(-(x * x))]


@register("Min")
@register("Max")
def _maxmin(node, g):
    """Gradient to the selected operand; ties share it equally (torch.maximum/minimum)."""
    y = _y(node)
    hits = [ops.cast(ops.eq(x, y), y.dtype) for x in node.inputs]
    count = hits[0]
    for h in hits[1:]:
        count = count + h
    return [g[0] * h / count if _needs(node, i) else None for i, h in enumerate(hits)]


@register("Sum")
def _sum_variadic(node, g):
    return [g[0]] * len(node.inputs)


@register("Mean")
def _mean_variadic(node, g):
    return [g[0] / float(len(node.inputs))] * len(node.inputs)


@register("Where")
def _where(node, g):
    c, a, b = node.inputs
    z = const(0.0, g[0].dtype)
    return [None, ops.where(c, g[0], z) if _needs(node, 1) else None, ops.where(c, z, g[0]) if _needs(node, 2) else None]


# ----- activations that are single ONNX ops ---------------------------------------------------
@register("Relu")
def _relu(node, g):
    """g * (x > 0) as Mul(Cast(Greater)): onnxruntime's Where is ~2x slower on conv-sized tensors
    (bench: 314 vs 160 us at 64x6x28x28). Unlike torch, a non-finite g where x <= 0 gives NaN, not 0."""
    return [g[0] * ops.cast(ops.gt(_x(node), 0.0), g[0].dtype)]


@register("Tanh")
def _tanh(node, g):
    y = _y(node)
    return [g[0] * (1.0 - y * y)]


@register("Sigmoid")
def _sigmoid(node, g):
    y = _y(node)
    return [g[0] * y * (1.0 - y)]


@register("LeakyRelu")
def _leaky_relu(node, g):
    alpha = node.attrs.get("alpha", 0.01)
    return [ops.where(ops.gt(_x(node), 0.0), g[0], g[0] * alpha)]


@register("Elu")
def _elu(node, g):
    alpha = node.attrs.get("alpha", 1.0)
    return [ops.where(ops.gt(_x(node), 0.0), g[0], g[0] * (_y(node) + alpha))]


@register("Selu")
def _selu(node, g):
    alpha = node.attrs.get("alpha", 1.67326319217681884765625)
    gamma = node.attrs.get("gamma", 1.05070102214813232421875)
    return [ops.where(ops.gt(_x(node), 0.0), g[0] * gamma, g[0] * (_y(node) + alpha * gamma))]


@register("Celu")
def _celu(node, g):
    alpha = node.attrs.get("alpha", 1.0)
    x = _x(node)
    return [ops.where(ops.gt(x, 0.0), g[0], g[0] * ops.exp(x / alpha))]


@register("PRelu")
def _prelu(node, g):
    x, slope = node.inputs
    pos = ops.gt(x, 0.0)
    zero = const(0.0, g[0].dtype)
    return [ops.where(pos, g[0], g[0] * slope) if _needs(node, 0) else None,
            ops.where(pos, zero, g[0] * x) if _needs(node, 1) else None]


@register("Softplus")
def _softplus(node, g):
    return [g[0] * ops.sigmoid(_x(node))]


@register("Softsign")
def _softsign(node, g):
    d = ops.abs(_x(node)) + 1.0
    return [g[0] / (d * d)]


@register("HardSigmoid")
def _hard_sigmoid(node, g):
    alpha, beta = node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5)
    z = _x(node) * alpha + beta
    inside = ops.logical_and(ops.gt(z, 0.0), ops.lt(z, 1.0))
    return [ops.where(inside, g[0] * alpha, const(0.0, g[0].dtype))]


@register("HardSwish")
def _hard_swish(node, g):
    """torch: 0 for x <= -3, x/3 + 0.5 in between, 1 for x >= 3 (boundaries as torch 2.x's kernel)."""
    x = _x(node)
    mid = g[0] * (x / 3.0 + 0.5)
    return [ops.where(ops.le(x, -3.0), const(0.0, g[0].dtype), ops.where(ops.lt(x, 3.0), mid, g[0]))]


@register("Clip")
def _clip(node, g):
    """Gradient passes where lo <= x <= hi, as torch.clamp; tensor bounds get none."""
    x = node.inputs[0]
    keep = None
    for i, cmp in ((1, "GreaterOrEqual"), (2, "LessOrEqual")):
        if i < len(node.inputs) and node.inputs[i] is not None:
            k = _like(cmp, [x, node.inputs[i]], x, np.dtype(np.bool_))  # Clip's bounds are scalars of x's type
            keep = k if keep is None else ops.logical_and(keep, k)
    if keep is None:
        return [g[0]]
    return [_like("Where", [keep, g[0], const(0.0, g[0].dtype)], g[0]), None, None]


@register("Softmax")
def _softmax(node, g):
    y, axis = _y(node), node.attrs.get("axis", -1)
    return [y * (g[0] - ops.sum(g[0] * y, axis, keepdim=True))]


@register("LogSoftmax")
def _log_softmax(node, g):
    y, axis = _y(node), node.attrs.get("axis", -1)
    return [g[0] - ops.exp(y) * ops.sum(g[0], axis, keepdim=True)]


# ----- matrix products -----------------------------------------------------------------------
def _mT(t):
    return ops.transpose(t, -1, -2)


def _gemm(a, b, trans_a=0, trans_b=0, alpha=1.0):
    """op(a) @ op(b) * alpha as one Gemm: transposes fold into the op, no copies."""
    shape = (a._shape[1 if trans_a else 0], b._shape[0 if trans_b else 1])
    return apply("Gemm", [a, b], {"transA": trans_a or None, "transB": trans_b or None,
                                  "alpha": alpha if alpha != 1.0 else None}, types=[(a.dtype, shape)])


@register("MatMul")
def _matmul(node, g):
    """numpy matmul: 2-D x 2-D uses Gemm with transpose flags; 1-D operands are lifted to 2-D;
    batch dims are summed by the engine."""
    a, b = node.inputs
    g0 = g[0]
    if len(a._shape) == 2 and len(b._shape) == 2:
        return [_gemm(g0, b, trans_b=1) if _needs(node, 0) else None,
                _gemm(a, g0, trans_a=1) if _needs(node, 1) else None]
    if len(a._shape) > 2 and len(b._shape) == 2 and all(isinstance(d, int) for d in b._shape):
        # an N-D input times a 2-D weight (Linear on sequences): the weight gradient is one Gemm over
        # all rows, not a batched MatMul summed over the batch dims
        k, n = b._shape
        ga = ops.matmul(g0, _mT(b)) if _needs(node, 0) else None
        gb = _gemm(ops.reshape(a, -1, k), ops.reshape(g0, -1, n), trans_a=1) if _needs(node, 1) else None
        return [ga, gb]
    a2 = ops.unsqueeze(a, 0) if len(a._shape) == 1 else a
    b2 = ops.unsqueeze(b, 1) if len(b._shape) == 1 else b
    if len(a._shape) == 1:
        g0 = ops.unsqueeze(g0, -2 if len(b._shape) > 1 else 0)
    if len(b._shape) == 1:
        g0 = ops.unsqueeze(g0, -1)
    ga = gb = None
    if _needs(node, 0):
        ga = ops.matmul(g0, _mT(b2))
        if len(a._shape) == 1:
            ga = ops.squeeze(ga, -2)
    if _needs(node, 1):
        gb = ops.matmul(_mT(a2), g0)
        if len(b._shape) == 1:
            gb = ops.squeeze(gb, -1)
    return [ga, gb]


@register("Gemm")
def _gemm_grad(node, g):
    """Y = alpha op(A) op(B) + beta C: each input gradient is one Gemm with transpose flags."""
    a, b = node.inputs[:2]
    alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
    ta, tb = node.attrs.get("transA", 0), node.attrs.get("transB", 0)
    g0 = g[0]
    ga = gb = gc = None
    if _needs(node, 0):
        ga = _gemm(g0, b, trans_b=1 - tb, alpha=alpha) if not ta else _gemm(b, g0, trans_a=tb, trans_b=1, alpha=alpha)
    if _needs(node, 1):
        gb = _gemm(a, g0, trans_a=1 - ta, alpha=alpha) if not tb else _gemm(g0, a, trans_a=1, trans_b=ta, alpha=alpha)
    if len(node.inputs) > 2 and _needs(node, 2):
        gc = g0 * beta if beta != 1.0 else g0
    return [ga, gb, gc]


# ----- reductions ----------------------------------------------------------------------------
@register("ReduceSum")
def _reduce_sum(node, g):
    return [_expand_back(node, g[0]), None]


@register("ReduceMean")
def _reduce_mean(node, g):
    x = node.inputs[0]
    axes = _axes_of(node)
    n = 1
    for a in (range(len(x._shape)) if axes is None else axes):
        n = n * x.shape[a]
    if isinstance(n, int):
        scale = 1.0 / n
    elif axes is None or len(axes) == len(x._shape):  # a full mean over symbolic dims: Size is one node
        scale = ops.reciprocal(ops.cast(apply("Size", [x], types=[(np.dtype(np.int64), ())]), g[0].dtype))
    else:
        scale = ops.squeeze(ops.reciprocal(ops.cast(n.tensor(), g[0].dtype)), 0)
    return [_expand_back(node, g[0] * scale), None]


@register("ReduceMin")
@register("ReduceMax")
def _reduce_maxmin(node, g):
    """Ties share the gradient equally, as torch.amax/amin."""
    x = node.inputs[0]
    mask = ops.cast(ops.eq(x, _out_keep(node)), g[0].dtype)
    count = ops.sum(mask, _axes_of(node), keepdim=True)
    return [_expand_back(node, g[0]) * mask / count, None]


@register("ReduceProd")
def _reduce_prod(node, g):
    """The product of the other elements, as torch: out / x without zeros; with one zero in a slice,
    its position gets the product of the non-zeros and the rest 0; with two or more, all 0."""
    x = node.inputs[0]
    axes = _axes_of(node)
    is_zero = ops.eq(x, 0.0)
    zeros = ops.sum(ops.cast(is_zero, x.dtype), axes, keepdim=True)
    nonzero_prod = ops.prod(ops.where(is_zero, const(1.0, x.dtype), x), axes, keepdim=True)
    others = ops.where(ops.eq(zeros, 0.0), nonzero_prod / ops.where(is_zero, const(1.0, x.dtype), x),
                       ops.where(ops.logical_and(ops.eq(zeros, 1.0), is_zero), nonzero_prod, const(0.0, x.dtype)))
    return [_expand_back(node, g[0]) * others, None]


@register("ReduceL1")
def _reduce_l1(node, g):
    return [_expand_back(node, g[0]) * ops.sign(node.inputs[0]), None]


@register("ReduceL2")
def _reduce_l2(node, g):
    """g x / ||x||; 0 for an all-zero slice (x / max(||x||, tiny)), as torch, instead of 0/0."""
    x = node.inputs[0]
    norm = _out_keep(node)
    safe = ops.maximum(norm, const(np.finfo(norm.dtype).tiny, norm.dtype))
    return [_expand_back(node, g[0]) * x / safe, None]


@register("ReduceSumSquare")
def _reduce_sum_square(node, g):
    return [_expand_back(node, g[0]) * node.inputs[0] * 2.0, None]


@register("ReduceLogSumExp")
def _reduce_logsumexp(node, g):
    return [_expand_back(node, g[0]) * ops.exp(node.inputs[0] - _out_keep(node)), None]


@register("ReduceLogSum")
def _reduce_logsum(node, g):
    return [_expand_back(node, g[0]) / ops.exp(_out_keep(node)), None]


@register("CumSum")
def _cumsum(node, g):
    attrs = {"exclusive": node.attrs.get("exclusive", 0), "reverse": 1 - node.attrs.get("reverse", 0)}
    return [apply("CumSum", [g[0], node.inputs[1]], attrs), None]


# ----- shape ops -----------------------------------------------------------------------------
def _reshape_back(node, g):
    return [ops.reshape(g[0], node.inputs[0].shape)] + [None] * (len(node.inputs) - 1)


for _op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
    register(_op)(_reshape_back)


@register("Expand")
def _expand(node, g):
    return [g[0], None]  # the engine sums over the broadcast dims


@register("Transpose")
def _transpose(node, g):
    perm = node.attrs.get("perm") or list(reversed(range(len(node.inputs[0]._shape))))
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return [ops.permute(g[0], inv)]


@register("Concat")
def _concat(node, g):
    axis = node.attrs["axis"] % len(node.outputs[0]._shape)
    sizes = [t._shape[axis] for t in node.inputs]
    if all(isinstance(s, int) for s in sizes):
        parts = ops.split(g[0], sizes, axis) if len(sizes) > 1 else (g[0],)
        return list(parts)
    out, start = [], None
    for t in node.inputs:  # symbolic sizes: Slice with offsets computed from the inputs' shapes
        n = ops.dim_size(t, axis)
        begin = start if start is not None else const([0], np.int64)
        end = begin + n
        out.append(apply("Slice", [g[0], begin, end, const([axis], np.int64)], types=[(g[0].dtype, t._shape)]))
        start = end
    return out


@register("Split")
def _split(node, g):
    gs = [gi if gi is not None else ops.zeros_of(t) for gi, t in zip(g, node.outputs)]
    return [ops.cat(gs, node.attrs.get("axis", 0)), None]


@register("Tile")
def _tile(node, g):
    """Fold each tiled dim (r*d) into (r, d) and sum over the repeats."""
    x, reps = node.inputs
    if reps._value is None:
        raise NotImplementedError("Tile with computed repeats has no gradient rule")
    reps = [int(r) for r in np.asarray(reps._value).reshape(-1)]
    shp = x.shape
    folded = []
    for r, d in zip(reps, shp):
        folded += [r, d]
    gx = ops.reshape(g[0], *folded)
    return [ops.sum(gx, [2 * i for i in range(len(reps))]), None]


def _static_slice_params(node):
    vals = []
    for i in range(1, 5):
        t = node.inputs[i] if i < len(node.inputs) else None
        if t is not None and t._value is None:
            return None
        vals.append(None if t is None else [int(v) for v in np.asarray(t._value).reshape(-1)])
    return vals


def _slice_by_positions(node, g):
    """The Slice gradient for any (also computed) starts, ends, axes and steps: slice a grid of x's
    flat positions the same way and scatter g there into zeros."""
    from ..ops.item_assign import _positions
    x = node.inputs[0]
    where = apply("Slice", [_positions(x)] + list(node.inputs[1:]), types=[(np.dtype(np.int64), g._shape)])
    flat = ops.reshape(ops.zeros_of(x, g.dtype), -1)
    out = apply("ScatterND", [flat, ops.unsqueeze(ops.reshape(where, -1), -1), ops.reshape(g, -1)],
                types=[(g.dtype, flat._shape)])
    return ops.reshape(out, x.shape)


@register("Slice")
def _slice(node, g):
    """Scatter the slice back, one sliced axis at a time: Gather from [g, 0] with a position map
    (static from numpy slicing on static dims, computed from a sliced Range on symbolic dims; any
    start and step); Pad for the common unit-step, non-negative-start case on symbolic dims."""
    x = node.inputs[0]
    params = _static_slice_params(node)
    if params is None:  # computed starts/ends (Hugging Face's Slice(position_ids, 0, Shape(x)[1]))
        return [_slice_by_positions(node, g[0])] + [None] * (len(node.inputs) - 1)
    starts, ends, axes, steps = params
    r = len(x._shape)
    axes = [a % r for a in (axes or range(len(starts)))]
    steps = steps or [1] * len(starts)
    gx = g[0]
    for s, e, a, st in zip(starts, ends, axes, steps):
        n = x._shape[a]
        if isinstance(n, int):
            pos = np.arange(n)[slice(s, e, st)]
            if len(pos) == n and st > 0:
                continue
            src = np.full(n, len(pos), np.int64)  # index len(pos) reads the zero slab
            src[pos] = np.arange(len(pos))
            src = const(src, np.int64)
        elif st == 1 and s >= 0:
            after = ops.dim_size(x, a) - ops.dim_size(gx, a) - const([s], np.int64)
            pads = [const([0], np.int64)] * (2 * r)
            pads[a] = const([s], np.int64)
            pads[a + r] = after
            gx = apply("Pad", [gx, ops.cat(pads, 0)], {"mode": "constant"}, types=[(gx.dtype, _with_dim(gx, a, n))])
            continue
        else:
            src = _slice_source_map(x, gx, a, s, e, st)
        padded = ops.cat([gx, _zero_slab(gx, a)], a)
        gx = apply("Gather", [padded, src], {"axis": a}, types=[(gx.dtype, _with_dim(gx, a, n))])
    return [gx] + [None] * (len(node.inputs) - 1)


def _with_dim(t, axis, d):
    return tuple(d if i == axis else s for i, s in enumerate(t._shape))


def _slice_source_map(x, gx, axis, start, end, step):
    """int64 (n,): for each position of x along `axis`, its index in the slice, or m (the slice's
    length, pointing past it) when not selected. Computed in the graph for a symbolic n, by slicing
    Range(0, n) exactly as the forward Slice did."""
    i64 = np.int64
    n = ops.squeeze(ops.dim_size(x, axis), 0)
    m = ops.squeeze(ops.dim_size(gx, axis), 0)
    every = apply("Range", [const(0, i64), n, const(1, i64)], types=[(np.dtype(i64), (x._shape[axis],))])
    pos = apply("Slice", [every, const([start], i64), const([end], i64), const([0], i64), const([step], i64)],
                types=[(np.dtype(i64), (gx._shape[axis],))])
    rank = apply("Range", [const(0, i64), m, const(1, i64)], types=[(np.dtype(i64), (gx._shape[axis],))])
    unset = ops.zeros_of(every) + m
    return apply("ScatterElements", [unset, pos, rank], {"axis": 0}, types=[(np.dtype(i64), (x._shape[axis],))])


def _zero_slab(t, axis):
    """Zeros shaped like t with dim `axis` set to 1 (all of t's zeros when that dim is symbolic)."""
    return ops.zeros_of(ops.narrow(t, axis, 0, 1)) if isinstance(t._shape[axis], int) and t._shape[axis] > 0 else \
        ops.zeros_of(t)


@register("Gather")
def _gather(node, g):
    """ScatterND(add) into zeros with the gathered axis moved to the front."""
    x, idx = node.inputs
    r = len(x._shape)
    axis = node.attrs.get("axis", 0) % r
    n = ops.dim_size(x, axis) if not isinstance(x._shape[axis], int) else x._shape[axis]
    static_nonneg = idx.kind == "const" and (np.asarray(idx._value) >= 0).all()  # fed values may change
    idx = idx if static_nonneg else ops.where(ops.lt(idx, 0), idx + n, idx)
    idx = ops.cast(idx, np.int64)
    k = len(idx._shape)
    g0 = g[0]
    if axis:
        # g: x[:axis] + I + x[axis+1:] -> I + x[:axis] + x[axis+1:]
        perm = list(range(axis, axis + k)) + list(range(axis)) + list(range(axis + k, len(g0._shape)))
        g0 = ops.permute(g0, perm)
        xperm = [axis] + [i for i in range(r) if i != axis]
        zeros = ops.zeros_of(ops.permute(x, xperm))
    else:
        zeros = ops.zeros_of(x)
    gx = apply("ScatterND", [zeros, ops.unsqueeze(idx, -1), g0], {"reduction": "add"}, types=[(x.dtype, zeros._shape)])
    if axis:
        inv = [0] * r
        for i, p in enumerate([axis] + [i for i in range(r) if i != axis]):
            inv[p] = i
        gx = ops.permute(gx, inv)
    return [gx, None]


@register("GatherElements")
def _gather_elements(node, g):
    x, idx = node.inputs
    axis = node.attrs.get("axis", 0) % len(x._shape)
    n = ops.dim_size(x, axis) if not isinstance(x._shape[axis], int) else x._shape[axis]
    idx = ops.where(ops.lt(idx, 0), idx + n, idx)
    return [apply("ScatterElements", [ops.zeros_of(x), idx, g[0]], {"axis": axis, "reduction": "add"},
                  types=[(x.dtype, x._shape)]), None]


@register("GatherND")
def _gather_nd(node, g):
    x, idx = node.inputs
    if node.attrs.get("batch_dims", 0):
        raise NotImplementedError("GatherND with batch_dims has no gradient rule")
    return [apply("ScatterND", [ops.zeros_of(x), idx, g[0]], {"reduction": "add"}, types=[(x.dtype, x._shape)]), None]


@register("ScatterElements")
def _scatter_elements(node, g):
    data, idx, upd = node.inputs
    axis = node.attrs.get("axis", 0)
    red = node.attrs.get("reduction", "none")
    if red not in ("none", "add"):
        raise NotImplementedError(f"ScatterElements with reduction={red!r} has no gradient rule")
    gd = g[0] if red == "add" else apply("ScatterElements", [g[0], idx, ops.zeros_of(upd)], {"axis": axis},
                                         types=[(g[0].dtype, g[0]._shape)])
    gu = apply("GatherElements", [g[0], idx], {"axis": axis}, types=[(g[0].dtype, idx._shape)])
    return [gd if _needs(node, 0) else None, None, gu if _needs(node, 2) else None]


@register("ScatterND")
def _scatter_nd(node, g):
    data, idx, upd = node.inputs
    red = node.attrs.get("reduction", "none")
    if red not in ("none", "add"):
        raise NotImplementedError(f"ScatterND with reduction={red!r} has no gradient rule")
    gd = g[0] if red == "add" else apply("ScatterND", [g[0], idx, ops.zeros_of(upd)], types=[(g[0].dtype, g[0]._shape)])
    gu = apply("GatherND", [g[0], idx], types=[(g[0].dtype, upd._shape)])
    return [gd if _needs(node, 0) else None, None, gu if _needs(node, 2) else None]
