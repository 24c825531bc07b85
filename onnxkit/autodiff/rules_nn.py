"""Gradient rules for convolution, pooling, normalization, resize and the other NN ops.

Every rule is written with the Tensor API, so the gradient graph is differentiable again. Shapes
that decide the geometry (spatial sizes, kernels, channels) must be static; batch dims may be
symbolic. Formulations follow ../shared/PERF_NOTES.md where it names a fast one; the conv and max-pool
choices are timed in bench/conv_grad_formulations.py."""
import math

import numpy as np
from onnx import numpy_helper

from .. import ops
from ..tensor import apply, const
from .registry import register

_BIG = np.iinfo(np.int64).max


# ----- helpers -------------------------------------------------------------------------------
def _needs(node, i):
    t = node.inputs[i] if i < len(node.inputs) else None
    return t is not None and t.requires_grad


def _input(node, i):
    return node.inputs[i] if i < len(node.inputs) else None


def _static(dims, what, node):
    """dims as ints; raises naming the op when one is symbolic."""
    if dims is None or not all(isinstance(d, int) for d in dims):
        raise NotImplementedError(f"{node.op_type} gradient needs static {what}, got {dims}")
    return tuple(dims)


def _values(t, what, node):
    """The constant value of an attribute-like input (pads, scales, axes) as a numpy array."""
    if t._value is None:
        raise NotImplementedError(f"{node.op_type} gradient needs a constant {what} input")
    return np.asarray(t._value)


def _filled(shape, value, dtype):
    """A constant-filled tensor of a static shape (ConstantOfShape: tiny in the graph)."""
    return apply("ConstantOfShape", [const(list(shape), np.int64)],
                 {"value": numpy_helper.from_array(np.full((1,), value, np.dtype(dtype)))},
                 types=[(np.dtype(dtype), tuple(shape))])


def _per_channel(v, rank):
    """A (C,) tensor shaped (C, 1, ..., 1) to broadcast against (N, C, *spatial)."""
    return ops.reshape(v, v.shape[0], *([1] * (rank - 2)))


def _slice(t, axes, starts, ends):
    return apply("Slice", [t, const(starts, np.int64), const(ends, np.int64), const(axes, np.int64)])


def _pad_crop(t, begins, ends, first_axis=2):
    """Per axis (from first_axis): negative amounts crop (Slice), positive ones add zeros (Pad)."""
    axes = [first_axis + i for i in range(len(begins))]
    crop = [(a, max(-b, 0), -max(-e, 0) or _BIG) for a, b, e in zip(axes, begins, ends) if b < 0 or e < 0]
    if crop:
        t = _slice(t, [c[0] for c in crop], [c[1] for c in crop], [c[2] for c in crop])
    if any(b > 0 for b in begins) or any(e > 0 for e in ends):
        r = len(t._shape)
        pads = [0] * (2 * r)
        for a, b, e in zip(axes, begins, ends):
            pads[a], pads[a + r] = max(b, 0), max(e, 0)
        t = apply("Pad", [t, const(pads, np.int64)], {"mode": "constant"})
    return t


def _axis_matrix(t, axis, a):
    """Contract dim `axis` of t (size m) with the static (m, n) matrix `a`: MatMul (no Transpose
    for the last two axes)."""
    r = len(t._shape)
    axis %= r
    a = const(a, t.dtype)
    if axis == r - 1:
        return ops.matmul(t, a)
    if axis == r - 2:
        return ops.matmul(ops.t(a), t)
    moved = ops.movedim(t, axis, -1)
    return ops.movedim(ops.matmul(moved, a), -1, axis)


def _auto_pads(node, in_sp, kernel, strides, dilations):
    """Explicit (begin, end) pads of a Conv/pool node, resolving auto_pad from static sizes."""
    n = len(kernel)
    mode = node.attrs.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        pads = list(node.attrs.get("pads") or [0] * (2 * n))
        return pads[:n], pads[n:]
    if mode == "VALID":
        return [0] * n, [0] * n
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise NotImplementedError(f"{node.op_type}: auto_pad={mode!r} has no gradient rule")
    in_sp = _static(in_sp, "spatial sizes for auto_pad", node)
    total = [max((-(-h // s) - 1) * s + d * (k - 1) + 1 - h, 0)
             for h, k, s, d in zip(in_sp, kernel, strides, dilations)]
    small = [t // 2 for t in total]
    big = [t - s for t, s in zip(total, small)]
    return (small, big) if mode == "SAME_UPPER" else (big, small)


def _geometry(node, in_sp, kernel):
    """(strides, dilations, pads_begin, pads_end) with ONNX defaults."""
    n = len(kernel)
    strides = list(node.attrs.get("strides") or [1] * n)
    dilations = list(node.attrs.get("dilations") or [1] * n)
    pb, pe = _auto_pads(node, in_sp, kernel, strides, dilations)
    return strides, dilations, pb, pe


# ----- convolution ---------------------------------------------------------------------------
def _conv_weight_grad(x, gy, kernel, strides, dilations, pb, pe, group):
    """dL/dW of y = Conv(x, W): a grouped Conv over the batch axis, x and gy with batch and
    channels swapped, stride and dilation exchanged. Returns (M, C/group, *kernel)."""
    nsp = len(kernel)
    pe = list(pe)
    x_sp, y_sp = x._shape[2:], gy._shape[2:]
    if all(isinstance(d, int) for d in x_sp + y_sp):
        # trailing input rows no window reaches are dropped, so the result is exactly the kernel
        crop = []
        for i in range(nsp):
            spare = x_sp[i] + pb[i] + pe[i] - dilations[i] * (kernel[i] - 1) - 1 - strides[i] * (y_sp[i] - 1)
            cut = min(spare, pe[i])
            pe[i] -= cut
            crop.append(spare - cut)
        if any(crop):
            x = _pad_crop(x, [0] * nsp, [-c for c in crop])
    c = x._shape[1]
    static = all(isinstance(d, int) for d in x_sp + y_sp)
    if group == 1 and c == 1 and nsp == 2 and static and y_sp[0] > 1:
        return _weight_grad_row_halves(x, gy, kernel, strides, dilations, pb, pe)
    if group == 1 and c > 1 and static:
        return _weight_grad_im2col(x, gy, kernel, strides, dilations, pb, pe)
    if group == 1:
        xs = ops.transpose(x, 0, 1)
    else:
        shp = x.shape
        xs = ops.reshape(ops.permute(ops.reshape(x, shp[0], group, c // group, *shp[2:]), 2, 1, 0, *range(3, 3 + nsp)),
                         c // group, -1, *shp[2:])
    gys = ops.transpose(gy, 0, 1)
    gw = apply("Conv", [xs, gys], {"strides": dilations, "dilations": strides, "pads": list(pb) + pe,
                                   "group": group if group != 1 else None})
    if gw._shape is None or tuple(gw._shape[2:]) != tuple(kernel):
        gw = _slice(gw, list(range(2, 2 + nsp)), [0] * nsp, list(kernel))
    return ops.transpose(gw, 0, 1)


def _weight_grad_im2col(x, gy, kernel, strides, dilations, pb, pe):
    """_conv_weight_grad as im2col + batched MatMul + ReduceSum over the batch (group 1, static spatial
    dims): the columns come from a grouped Conv with one-hot kernels (a 1x1 kernel needs none: a strided
    Slice). ResNet-8's 3x3 and 1x1 weight gradients, batch 32: 23-30 ms against 37-60 ms for the
    swapped Conv, which runs a batch-1 Conv on one thread (issue #12's measurements)."""
    n_sp = len(kernel)
    c, m = x._shape[1], gy._shape[1]
    k = math.prod(kernel)
    length = math.prod(gy._shape[2:])
    if k == 1 and not any(pb) and not any(pe):
        cols = _slice(x, list(range(2, 2 + n_sp)), [0] * n_sp, [1 + s * (o - 1) for s, o in zip(strides, gy._shape[2:])])
        if any(s != 1 for s in strides):
            cols = apply("Slice", [cols, const([0] * n_sp, np.int64), const([2 ** 62] * n_sp, np.int64),
                                   const(list(range(2, 2 + n_sp)), np.int64), const(list(strides), np.int64)],
                         types=[(x.dtype, tuple(x._shape[:2]) + tuple(gy._shape[2:]))])
    else:
        eye = np.tile(np.eye(k).reshape(k, 1, *kernel), (c, 1) + (1,) * n_sp)
        cols = apply("Conv", [x, const(eye, x.dtype)], {"strides": list(strides), "dilations": list(dilations),
                                                         "pads": list(pb) + list(pe), "group": c})
    n = x.shape[0]
    cols = ops.reshape(cols, n, c * k, length)
    per_item = ops.matmul(ops.reshape(gy, n, m, length), ops.transpose(cols, 1, 2))  # (N, M, C*k)
    return ops.reshape(ops.sum(per_item, 0), m, c, *kernel)


def _weight_grad_row_halves(x, gy, kernel, strides, dilations, pb, pe):
    """_conv_weight_grad for one input channel (2-D, group 1), where the swapped Conv has a single batch
    item and onnxruntime runs it on one thread: the output rows split in two halves (gy zero-padded to
    an even count), each half's x rows stacked on the channel axis, one Conv with group=2, halves summed.
    LeNet conv1 (64x1x28x28, 5x5, pad 2): 0.71 vs 0.86 ms alone (bench/conv_grad_formulations.py), and
    the LeNet training step 4.40 -> 4.13 ms."""
    (s, sw), (d, dw), (k, kw) = strides, dilations, kernel
    oh = gy._shape[2]
    a = -(-oh // 2)
    gy = _pad_crop(gy, [0, 0], [2 * a - oh, 0])
    rows = (a - 1) * s + d * (k - 1) + 1  # x rows one half of gy's rows reads
    xp = _pad_crop(x, [pb[0], pb[1]], [max(pe[0], a * s + rows - x._shape[2] - pb[0]), pe[1]])
    xs = ops.transpose(xp, 0, 1)
    xs2 = ops.cat([_slice(xs, [2], [0], [rows]), _slice(xs, [2], [a * s], [a * s + rows])], 1)
    n, m, ow = gy.shape[0], gy._shape[1], gy._shape[3]
    gs2 = ops.reshape(ops.permute(ops.reshape(gy, n, m, 2, a, ow), 2, 1, 0, 3, 4), 2 * m, n, a, ow)  # halves, M, N
    gw = apply("Conv", [xs2, gs2], {"strides": [d, dw], "dilations": [s, sw], "group": 2})
    if tuple(gw._shape[2:]) != (k, kw):
        gw = _slice(gw, [2, 3], [0, 0], [k, kw])
    return ops.sum(ops.reshape(gw, 2, m, 1, k, kw), [0])


def _prefer_transpose(group, strides, kernel, channels):
    """PERF_NOTES: ConvTranspose for strided input grads and small-channel or >3x3 stride-1 ones;
    a flipped Conv for stride 1, <=3x3, >=16 channels. Grouped input grads always use the flipped
    Conv: onnx.reference's grouped ConvTranspose is wrong when groups have several channels."""
    if group != 1:
        return False
    return any(s > 1 for s in strides) or math.prod(kernel) > 9 or channels < 16


_COL2IM_MAX = 65536  # largest per-image column matrix (C*kh*kw x OH*OW elements) of the Col2Im input gradient


def _col2im_fits(gy, w, x_sp, group):
    """MatMul + Col2Im replaces ConvTranspose for float32 2-D convs whose per-image column matrix is small:
    one batched MatMul instead of onnxruntime's per-image GEMM loop, which slows down ~2x with spinning
    threads. Measured (ms, spinning on/off; bench/conv_grad_formulations.py): LeNet conv2 64x16x10x10 ->
    6x14x14 0.45/0.55 vs ConvTranspose 1.13/0.56; 32x64x8x8 -> 32x16x16 stride 2: 0.88/0.74 vs 0.98/1.02.
    At 16x32x24x24 -> 32x28x28, 5x5 (460K elements per image) ConvTranspose wins with spinning (3.2 vs
    4.2). onnxruntime's Col2Im has no float64 kernel."""
    dims = tuple(w._shape[1:]) + tuple(gy._shape[2:]) + tuple(x_sp)
    return group == 1 and len(x_sp) == 2 and gy.dtype == np.float32 and all(isinstance(d, int) for d in dims) \
        and math.prod(w._shape[1:]) * math.prod(gy._shape[2:]) <= _COL2IM_MAX


def _col2im_input_grad(gy, w, x_sp, strides, dilations, pb, pe):
    """dL/dx as the columns W^T @ gy (one MatMul over the batch) folded back by Col2Im with the conv's
    geometry (strides, dilations, pads: the output_padding case needs nothing extra)."""
    m, kernel = w._shape[0], list(w._shape[2:])
    cols = ops.matmul(ops.t(ops.reshape(w, m, -1)), ops.reshape(gy, gy.shape[0], m, -1))
    return apply("Col2Im", [cols, const(list(x_sp), np.int64), const(kernel, np.int64)],
                 {"strides": strides, "dilations": dilations, "pads": list(pb) + list(pe)},
                 types=[(gy.dtype, (gy._shape[0], w._shape[1]) + tuple(x_sp))])


def _zero_insert(t, axis, s):
    """s-1 zeros after every element along `axis` (length O -> O*s): Unsqueeze + Pad + Reshape."""
    r = len(t._shape)
    u = ops.unsqueeze(t, axis + 1)
    pads = [0] * (2 * (r + 1))
    pads[axis + 1 + r + 1] = s - 1
    u = apply("Pad", [u, const(pads, np.int64)], {"mode": "constant"})
    shp = list(t.shape)
    shp[axis] = shp[axis] * s
    return ops.reshape(u, *shp)


def _conv_input_grad(gy, w, x_sp, strides, dilations, pb, pe, group, node):
    """dL/dx of y = Conv(x, W), sized exactly like x."""
    kernel = _static(w._shape[2:], "kernel sizes", node)
    nsp = len(kernel)
    if any(s > 1 for s in strides):
        x_sp = _static(x_sp, "input spatial sizes (strided conv)", node)
        rem = [(h + b + e - d * (k - 1) - 1) % s
               for h, b, e, d, k, s in zip(x_sp, pb, pe, dilations, kernel, strides)]
    else:
        rem = [0] * nsp
    if _prefer_transpose(group, strides, kernel, w._shape[0]):
        if _col2im_fits(gy, w, x_sp, group):
            return _col2im_input_grad(gy, w, x_sp, strides, dilations, pb, pe)
        return apply("ConvTranspose", [gy, w], {"strides": strides, "dilations": dilations, "pads": list(pb) + list(pe),
                                                "output_padding": rem if any(rem) else None})
    z = gy
    for i, s in enumerate(strides):
        if s > 1:
            z = _zero_insert(z, 2 + i, s)
    begins = [d * (k - 1) - b for d, k, b in zip(dilations, kernel, pb)]
    ends = [d * (k - 1) - e + r - (s - 1) for d, k, e, r, s in zip(dilations, kernel, pe, rem, strides)]
    z = _pad_crop(z, [min(b, 0) for b in begins], [min(e, 0) for e in ends])
    m, cg = w._shape[0], w._shape[1]
    if group == 1:
        wt = ops.transpose(w, 0, 1)
    else:
        wt = ops.reshape(ops.permute(ops.reshape(w, group, m // group, cg, *kernel), 0, 2, 1, *range(3, 3 + nsp)),
                         group * cg, m // group, *kernel)
    wt = ops.flip(wt, list(range(2, 2 + nsp)))
    pads = [max(b, 0) for b in begins] + [max(e, 0) for e in ends]
    return apply("Conv", [z, wt], {"dilations": dilations, "pads": pads, "group": group if group != 1 else None})


def _bias_grad(g):
    return ops.sum(g, [0] + list(range(2, len(g._shape))))


def _checked(grad, like, node, what):
    """The gradient, after checking at build time that its static dims match the input's."""
    if grad is not None and grad._shape is not None and like._shape is not None and any(
            isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(grad._shape, like._shape)):
        raise RuntimeError(f"{node.op_type} gradient rule built a {what} gradient of shape {grad._shape} "
                           f"for an input of shape {like._shape}")
    return grad


@register("Conv")
def _conv(node, g):
    """x: MatMul + Col2Im or ConvTranspose with the forward weight, or a flipped Conv; W: swapped grouped Conv
    (split in 2 row groups for one input channel); B: sum."""
    x, w = node.inputs[:2]
    kernel = _static(w._shape[2:], "kernel sizes", node)
    group = node.attrs.get("group", 1)
    strides, dilations, pb, pe = _geometry(node, x._shape[2:], kernel)
    gx = _conv_input_grad(g[0], w, x._shape[2:], strides, dilations, pb, pe, group, node) if _needs(node, 0) else None
    gw = _conv_weight_grad(x, g[0], kernel, strides, dilations, pb, pe, group) if _needs(node, 1) else None
    gb = _bias_grad(g[0]) if _needs(node, 2) else None
    return [_checked(gx, x, node, "input"), _checked(gw, w, node, "weight"), gb]


@register("ConvTranspose")
def _conv_transpose(node, g):
    """ConvTranspose is the adjoint of Conv: x gets Conv(g, W), W the swapped Conv with x and g exchanged."""
    x, w = node.inputs[:2]
    kernel = _static(w._shape[2:], "kernel sizes", node)
    n = len(kernel)
    if node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID") or node.attrs.get("output_shape"):
        raise NotImplementedError("ConvTranspose gradient needs explicit pads (auto_pad NOTSET/VALID, no output_shape)")
    group = node.attrs.get("group", 1)
    strides = list(node.attrs.get("strides") or [1] * n)
    dilations = list(node.attrs.get("dilations") or [1] * n)
    pads = [0] * (2 * n) if node.attrs.get("auto_pad") == "VALID" else list(node.attrs.get("pads") or [0] * (2 * n))
    gx = gw = None
    if _needs(node, 0):
        gx = apply("Conv", [g[0], w], {"strides": strides, "dilations": dilations, "pads": pads,
                                       "group": group if group != 1 else None})
        if gx._shape is not None and all(isinstance(d, int) for d in gx._shape[2:] + x._shape[2:]) \
                and gx._shape[2:] != x._shape[2:]:
            gx = _slice(gx, list(range(2, 2 + n)), [0] * n, list(x._shape[2:]))
    if _needs(node, 1):
        gw = _conv_weight_grad(g[0], x, kernel, strides, dilations, pads[:n], pads[n:], group)
    gb = _bias_grad(g[0]) if _needs(node, 2) else None
    return [_checked(gx, x, node, "input"), _checked(gw, w, node, "weight"), gb]


@register("Col2Im")
def _col2im(node, g):
    """The adjoint of Col2Im is im2col: a grouped Conv of g with one-hot (identity) kernels, one group per
    image channel, with Col2Im's strides, dilations and pads. (Col2Im appears in Conv input gradients, so
    this makes them differentiable again.)"""
    cols = node.inputs[0]
    block = [int(v) for v in _values(node.inputs[2], "block_shape", node)]
    k = math.prod(block)
    c = _static(cols._shape[1:2], "column count", node)[0] // k
    n = len(block)
    eye = np.tile(np.eye(k).reshape(k, 1, *block), (c, 1) + (1,) * n)
    attrs = {a: node.attrs.get(a) for a in ("strides", "dilations", "pads")}
    gc = apply("Conv", [g[0], const(eye, g[0].dtype)], dict(attrs, group=c if c != 1 else None))
    return [ops.reshape(gc, g[0].shape[0], c * k, -1), None, None]


# ----- pooling -------------------------------------------------------------------------------
def _pool_geometry(node):
    """Static pool geometry with the end padding `pe` adjusted so a floor-mode Conv over the input
    yields exactly the node's output windows (ceil_mode folded in); `extra` = ConvTranspose output_padding."""
    x, y = node.inputs[0], node.outputs[0]
    kernel = list(node.attrs["kernel_shape"])
    in_sp = _static(x._shape[2:], "input spatial sizes", node)
    out_sp = _static(y._shape[2:], "output spatial sizes", node)
    strides, dilations, pb, _ = _geometry(node, in_sp, kernel)
    pe = [(o - 1) * s + d * (k - 1) + 1 - h - b
          for o, s, d, k, h, b in zip(out_sp, strides, dilations, kernel, in_sp, pb)]
    extra = [max(-e, 0) for e in pe]
    return kernel, strides, dilations, pb, [max(e, 0) for e in pe], extra


def _window_sum_t(g, x, geo):
    """Transpose of the sliding-window sum (every window adds its gradient to its inputs):
    ConvTranspose with a ones kernel, channels folded into the batch."""
    kernel, strides, dilations, pb, pe, extra = geo
    gf = ops.reshape(g, -1, 1, *g.shape[2:])
    ones = _filled([1, 1] + kernel, 1.0, g.dtype)
    gx = apply("ConvTranspose", [gf, ones], {"strides": strides, "dilations": dilations, "pads": pb + pe,
                                             "output_padding": extra if any(extra) else None})
    return ops.reshape(gx, *x.shape)


_ROW_BLOCK_MAX = 128  # widest kh*W row block of the tiling max-pool gradient (its MatMul costs numel*2*kh*W)


def _tiling_windows(node):
    """(kh, kw, out_h, out_w) when a 2-D MaxPool's windows tile the input without overlap (kernel = stride,
    no padding or dilation, the row block kh*W at most _ROW_BLOCK_MAX wide); None otherwise."""
    x, y = node.inputs[0], node.outputs[0]
    if x._shape is None or len(x._shape) != 4 or y._shape is None:
        return None
    kernel = list(node.attrs["kernel_shape"])
    dims = x._shape[2:] + y._shape[2:]
    if not all(isinstance(d, int) for d in dims):
        return None
    strides, dilations, pb, pe = _geometry(node, x._shape[2:], kernel)
    (h, w), (oh, ow), (kh, kw) = x._shape[2:], y._shape[2:], kernel
    if strides != kernel or any(d != 1 for d in dilations) or any(pb) or any(pe) \
            or oh * kh > h or ow * kw > w or kh * w > _ROW_BLOCK_MAX:
        return None
    return kh, kw, oh, ow


def _window_matrices(kh, kw, ow, dtype):
    """For a row block (kh image rows side by side, length kh*W with W = ow*kw): `spread` (ow, kh*W) copies
    a pooled value to its window's kh*kw places; `first` (kh*W, kh*W) = I - [i comes before j in j's window,
    row-major], so Relu(equal @ first) is 1 exactly at each window's first maximum."""
    r, col = np.divmod(np.arange(kh * ow * kw), ow * kw)
    win = col // kw
    spread = np.arange(ow)[:, None] == win[None, :]
    same = win[:, None] == win[None, :]
    before = (r[:, None] < r[None, :]) | ((r[:, None] == r[None, :]) & (col[:, None] < col[None, :]))
    return const(spread.astype(dtype), dtype), const(np.eye(len(r)) - (same & before), dtype)


def _max_pool_tiling(node, g, kh, kw, oh, ow):
    """Non-overlapping windows, no Indices or scatter: x seen as row blocks (N, C, oh, kh*W); y and g spread
    to their windows by MatMul with a 0/1 matrix; the first maximum of each window (torch's choice on ties)
    is Relu(Equal(x, spread y) @ (I - earlier)). gx = first * spread g; rows and columns no window covers
    (floor mode) get zeros. ~2x faster than MaxPool Indices + ScatterElements at LeNet sizes
    (bench/conv_grad_formulations.py). Non-finite pooled values make their row block's gradient NaN/0."""
    x, y = node.inputs[0], node.outputs[0]
    unused = [d - o * k for d, o, k in zip(x._shape[2:], (oh, ow), (kh, kw))]
    n, c = x.shape[:2]
    spread, first = _window_matrices(kh, kw, ow, x.dtype)
    rows = ops.reshape(_pad_crop(x, [0, 0], [-u for u in unused]), n, c, oh, kh * ow * kw)
    hit = ops.cast(ops.eq(rows, ops.matmul(y, spread)), x.dtype)
    gx = ops.relu(ops.matmul(hit, first)) * ops.matmul(g, spread)
    return _pad_crop(ops.reshape(gx, n, c, oh * kh, ow * kw), [0, 0], unused)


@register("MaxPool")
def _max_pool(node, g):
    """Tiling 2-D windows: MatMul spreads + first-max mask (_max_pool_tiling). Otherwise ScatterElements(add)
    of g into flat zeros at MaxPool's Indices (re-emitted with 2 outputs if needed)."""
    x = node.inputs[0]
    tiling = _tiling_windows(node) if g[0] is not None else None
    if tiling is not None:
        return [_max_pool_tiling(node, g[0], *tiling)]
    if node.n_out >= 2 and node.attrs.get("storage_order", 0) == 0:
        idx = node.outputs[1]
    else:
        attrs = dict(node.attrs, storage_order=None)
        idx = apply("MaxPool", [x], attrs, n_out=2)[1]
    flat = ops.reshape(x, -1)
    gx = apply("ScatterElements", [ops.zeros_of(flat), ops.reshape(idx, -1), ops.reshape(g[0], -1)],
               {"axis": 0, "reduction": "add"}, types=[(x.dtype, flat._shape)])
    return [ops.reshape(gx, *x.shape)]


@register("AveragePool")
def _average_pool(node, g):
    """Window-sum transpose of g / divisor. The divisor per window is read off the forward op itself
    (AveragePool of ones over the count of real inputs), so every count_include_pad/ceil_mode
    convention of the runtime is matched."""
    x = node.inputs[0]
    geo = _pool_geometry(node)
    kernel, strides, dilations, pb, pe, _ = geo
    in_sp = list(x._shape[2:])
    ones = _filled([1, 1] + in_sp, 1.0, g[0].dtype)
    avg = apply("AveragePool", [ones], node.attrs)
    count = apply("Conv", [ones, _filled([1, 1] + kernel, 1.0, g[0].dtype)],
                  {"strides": strides, "dilations": dilations, "pads": pb + pe})
    weight = avg / ops.maximum(count, const(1.0, g[0].dtype))
    return [_window_sum_t(g[0] * weight, x, geo)]


def _lp_grad(x, y_keep, g_keep, p, spread):
    """d/dx of (sum |x|^p)^(1/p): sign(x)|x|^(p-1) * spread(g * y^(1-p))."""
    if p == 1:
        return spread(g_keep) * ops.sign(x)
    if p == 2:
        return spread(g_keep / y_keep) * x
    return spread(g_keep * ops.pow(y_keep, float(1 - p))) * ops.pow(ops.abs(x), float(p - 1)) * ops.sign(x)


@register("LpPool")
def _lp_pool(node, g):
    x = node.inputs[0]
    geo = _pool_geometry(node)
    return [_lp_grad(x, node.outputs[0], g[0], node.attrs.get("p", 2), lambda t: _window_sum_t(t, x, geo))]


@register("GlobalAveragePool")
def _global_average_pool(node, g):
    x = node.inputs[0]
    n = math.prod(_static(x._shape[2:], "spatial sizes", node))
    return [ops.expand(g[0] * (1.0 / n), *x.shape)]


@register("GlobalMaxPool")
def _global_max_pool(node, g):
    """All of g to the first maximum of each map (as torch's max_pool): ArgMax + ScatterElements."""
    x = node.inputs[0]
    shp = x.shape
    flat = ops.reshape(x, shp[0], shp[1], -1)
    idx = apply("ArgMax", [flat], {"axis": 2, "keepdims": 1})
    gf = apply("ScatterElements", [ops.zeros_of(flat), idx, ops.reshape(g[0], shp[0], shp[1], 1)], {"axis": 2},
               types=[(x.dtype, flat._shape)])
    return [ops.reshape(gf, *shp)]


@register("GlobalLpPool")
def _global_lp_pool(node, g):
    x = node.inputs[0]
    return [_lp_grad(x, node.outputs[0], g[0], node.attrs.get("p", 2), lambda t: ops.expand(t, *x.shape))]


# ----- normalization -------------------------------------------------------------------------
def _standardize(x, axes, eps):
    """(x - mean) * invstd over `axes` (biased variance), and invstd, both with kept dims."""
    centered = x - ops.mean(x, axes, keepdim=True)
    invstd = ops.rsqrt(ops.mean(centered * centered, axes, keepdim=True) + eps)
    return centered * invstd, invstd


def _standardize_grad(gxhat, xhat, invstd, axes):
    """Gradient through xhat = standardize(x): invstd * (g - mean(g) - xhat * mean(g * xhat))."""
    return invstd * (gxhat - ops.mean(gxhat, axes, keepdim=True) - xhat * ops.mean(gxhat * xhat, axes, keepdim=True))


def _no_output_grads(node, g, names):
    for k, name in enumerate(names, 1):
        if len(g) > k and g[k] is not None:
            raise NotImplementedError(f"{node.op_type}: gradients flowing into its {name} output are not supported")


@register("BatchNormalization")
def _batch_norm(node, g):
    """training_mode=1: through the batch statistics; 0: mean/var are inputs like the others."""
    x, scale, bias, mean, var = node.inputs[:5]
    eps = node.attrs.get("epsilon", 1e-5)
    r = len(x._shape)
    axes = [0] + list(range(2, r))
    gy = g[0]
    _no_output_grads(node, g, ("running_mean", "running_var"))
    centered = _batch_statistics(x, mean, var, axes)
    if centered is not None:  # ops.batch_norm in training: one rule through the statistics as well
        n = _count(x, axes)
        invstd_c = ops.rsqrt(var + eps)
        xhat = centered * _per_channel(invstd_c, r)
        sum_gy = ops.sum(gy, axes) if _needs(node, 0) or _needs(node, 2) else None
        sum_gyx = ops.sum(gy * xhat, axes) if _needs(node, 0) or _needs(node, 1) else None
        gx = None
        if _needs(node, 0):
            gx = _per_channel(scale * invstd_c, r) * (gy - _per_channel(sum_gy / n, r)
                                                      - xhat * _per_channel(sum_gyx / n, r))
        return [gx, sum_gyx if _needs(node, 1) else None, sum_gy if _needs(node, 2) else None, None, None]
    scale_b = _per_channel(scale, r)
    if node.attrs.get("training_mode", 0):
        xhat, invstd = _standardize(x, axes, eps)
        gx = _standardize_grad(gy * scale_b, xhat, invstd, axes) if _needs(node, 0) else None
        gmean = gvar = None
    else:
        invstd_c = ops.rsqrt(var + eps)
        invstd = _per_channel(invstd_c, r)
        xhat = (x - _per_channel(mean, r)) * invstd
        gx = gy * (scale_b * invstd) if _needs(node, 0) else None
        gmean = -ops.sum(gy, axes) * scale * invstd_c if _needs(node, 3) else None
        gvar = ops.sum(gy * xhat, axes) * scale * invstd_c * invstd_c * -0.5 if _needs(node, 4) else None
    gscale = ops.sum(gy * xhat, axes) if _needs(node, 1) else None
    gbias = ops.sum(gy, axes) if _needs(node, 2) else None
    return [gx, gscale, gbias, gmean, gvar]


def _batch_statistics(x, mean, var, axes):
    """x - mean(x) when `mean` and `var` are x's batch statistics as ops.batch_norm builds them in training
    (Reshape(ReduceMean(x)), Reshape(ReduceMean(d * d)) with d = x - ReduceMean(x), over `axes`), else None.
    Recognized from the graph's structure, so the choice is the same for every graph of one structure."""
    def made(t, op):
        return t is not None and t.node is not None and t.node.op_type == op and t.node.inputs
    if not (made(mean, "Reshape") and made(var, "Reshape")):
        return None
    m_kept, v_kept = mean.node.inputs[0], var.node.inputs[0]
    if not (made(m_kept, "ReduceMean") and made(v_kept, "ReduceMean") and m_kept.node.inputs[0] is x):
        return None
    for reduced in (m_kept.node, v_kept.node):
        ax = reduced.inputs[1] if len(reduced.inputs) > 1 else None
        if ax is None or ax._value is None or sorted(np.asarray(ax._value).tolist()) != list(axes) \
                or not reduced.attrs.get("keepdims", 1):
            return None
    sq = v_kept.node.inputs[0]
    if not made(sq, "Mul") or sq.node.inputs[0] is not sq.node.inputs[1]:
        return None
    d = sq.node.inputs[0]
    if not made(d, "Sub") or d.node.inputs[0] is not x or d.node.inputs[1] is not m_kept:
        return None
    return d


@register("InstanceNormalization")
def _instance_norm(node, g):
    x, scale = node.inputs[:2]
    r = len(x._shape)
    spatial = list(range(2, r))
    xhat, invstd = _standardize(x, spatial, node.attrs.get("epsilon", 1e-5))
    gx = _standardize_grad(g[0] * _per_channel(scale, r), xhat, invstd, spatial) if _needs(node, 0) else None
    gscale = ops.sum(g[0] * xhat, [0] + spatial) if _needs(node, 1) else None
    gbias = _bias_grad(g[0]) if _needs(node, 2) else None
    return [gx, gscale, gbias]


def _count(x, axes):
    """Number of elements over `axes` as a float, or a float tensor for symbolic dims."""
    dims = [x._shape[a] for a in axes]
    if all(isinstance(d, int) for d in dims):
        return float(math.prod(dims))
    return ops.cast(ops.prod(ops.cat([ops.dim_size(x, a) for a in axes], 0)), x.dtype)


@register("LayerNormalization")
def _layer_norm(node, g):
    """Also takes gradients of the optional Mean and InvStdDev outputs (so it is differentiable twice)."""
    x, scale = node.inputs[:2]
    r = len(x._shape)
    axes = list(range(node.attrs.get("axis", -1) % r, r))
    xhat, invstd = _standardize(x, axes, node.attrs.get("epsilon", 1e-5))
    gy = g[0] if g[0] is not None else ops.zeros_of(x)
    gx = None
    if _needs(node, 0):
        gx = _standardize_grad(gy * scale, xhat, invstd, axes)
        g_mean = g[1] if len(g) > 1 else None
        g_inv = g[2] if len(g) > 2 else None
        if g_mean is not None or g_inv is not None:
            extra = ops.cast(g_mean, x.dtype) if g_mean is not None else 0.0
            if g_inv is not None:
                extra = extra - ops.cast(g_inv, x.dtype) * invstd * invstd * xhat
            gx = gx + extra / _count(x, axes)
    gscale = gy * xhat if _needs(node, 1) else None  # the engine sums over the broadcast dims
    return [gx, gscale, gy if _needs(node, 2) else None]


@register("GroupNormalization")
def _group_norm(node, g):
    """Opset 21: statistics per (sample, group), scale and bias per channel."""
    x, scale = node.inputs[:2]
    r = len(x._shape)
    groups = node.attrs["num_groups"]
    shp = x.shape
    xg = ops.reshape(x, shp[0], groups, -1)
    xhat_g, invstd = _standardize(xg, [2], node.attrs.get("epsilon", 1e-5))
    xhat = ops.reshape(xhat_g, *shp)
    gx = None
    if _needs(node, 0):
        gxhat = ops.reshape(g[0] * _per_channel(scale, r), shp[0], groups, -1)
        gx = ops.reshape(_standardize_grad(gxhat, xhat_g, invstd, [2]), *shp)
    gscale = ops.sum(g[0] * xhat, [0] + list(range(2, r))) if _needs(node, 1) else None
    return [gx, gscale, _bias_grad(g[0]) if _needs(node, 2) else None]


def _lrn_band(c, size):
    """(C, C) matrix: band[i, c] = 1 when channel i is in channel c's LRN window (ONNX: c - floor((size-1)/2)
    to c + ceil((size-1)/2))."""
    lo, hi = (size - 1) // 2, size // 2
    i, j = np.meshgrid(np.arange(c), np.arange(c), indexing="ij")
    return ((i >= j - lo) & (i <= j + hi)).astype(np.float64)


@register("LRN")
def _lrn(node, g):
    """y = x * d^-beta, d = bias + alpha/size * window_sum(x^2): window sums as a (C, C) band matrix."""
    x = node.inputs[0]
    alpha, beta = node.attrs.get("alpha", 1e-4), node.attrs.get("beta", 0.75)
    bias, size = node.attrs.get("bias", 1.0), node.attrs["size"]
    band = _lrn_band(_static(x._shape[1:2], "channels", node)[0], size)
    d = _axis_matrix(x * x, 1, band) * (alpha / size) + bias
    dpow = ops.pow(d, -beta)
    back = _axis_matrix(g[0] * x * dpow / d, 1, band.T)
    return [g[0] * dpow - x * back * (2.0 * alpha * beta / size)]


def _const_value(t):
    """The value of an embedded constant (None for computed or fed tensors, whose value can change)."""
    return None if t is None or t.kind != "const" else np.asarray(t._value)


@register("Dropout")
def _dropout(node, g):
    """g * mask / (1 - ratio) in training mode (needs the mask output), identity otherwise; a fed
    training_mode selects between the two with Where."""
    ratio, training = _input(node, 1), _input(node, 2)
    mode = _const_value(training)
    if training is None or (mode is not None and not mode.item()):
        return [g[0], None, None]
    if node.n_out < 2:
        raise NotImplementedError("Dropout in training mode is differentiable only when built with its mask output")
    gy = g[0]
    mask = ops.cast(node.outputs[1], gy.dtype)
    r = 0.5 if ratio is None else _const_value(ratio)
    keep = const(1.0 / (1.0 - float(r)), gy.dtype) if r is not None else \
        ops.reciprocal(1.0 - ops.cast(ratio, gy.dtype))
    gx = gy * mask * keep
    if mode is None:
        gx = ops.where(training, gx, gy)
    return [gx, None, None]


# ----- products and resampling ---------------------------------------------------------------
def _einsum_terms(node):
    eq = node.attrs["equation"].replace(" ", "")
    if "->" not in eq or "..." in eq:
        raise NotImplementedError(f"Einsum gradient needs an explicit equation without '...', got {eq!r}")
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    for t in terms + [out]:
        if len(set(t)) != len(t):
            raise NotImplementedError(f"Einsum gradient: repeated index in {t!r} of {eq!r} (a diagonal) "
                                      "is not supported")
    return terms, out


@register("Einsum")
def _einsum(node, g):
    """grad_i = einsum(g, other operands -> term_i); indices summed only inside operand i are broadcast back."""
    terms, out = _einsum_terms(node)
    grads = []
    for i, (x, term) in enumerate(zip(node.inputs, terms)):
        if not _needs(node, i):
            grads.append(None)
            continue
        others = [t for j, t in enumerate(terms) if j != i]
        seen = set(out).union(*others)
        kept = "".join(c for c in term if c in seen)
        eq = ",".join([out] + others) + "->" + kept
        gi = apply("Einsum", [g[0]] + [t for j, t in enumerate(node.inputs) if j != i], {"equation": eq})
        lost = [k for k, c in enumerate(term) if c not in seen]
        if lost:
            gi = ops.expand(ops.unsqueeze(gi, lost), *x.shape)
        grads.append(gi)
    return grads


def _resize_source(mode, y, scale, n_in, m_out, roi):
    """Source coordinate of output positions y (ONNX Resize coordinate_transformation_mode)."""
    length = scale * n_in
    table = {
        "half_pixel": lambda: (y + 0.5) / scale - 0.5,
        "pytorch_half_pixel": lambda: (y + 0.5) / scale - 0.5 if m_out != 1 else np.full_like(y, -0.5),
        "half_pixel_symmetric": lambda: n_in / 2 * (1 - m_out / length) + (y + 0.5) / scale - 0.5,
        # the output length, not scale * n_in (they differ for non-integer scales), as onnxruntime and torch
        "align_corners": lambda: y * (n_in - 1) / (m_out - 1) if m_out != 1 else np.zeros_like(y),
        "asymmetric": lambda: y / scale,
        "tf_crop_and_resize": lambda: (roi[0] * (n_in - 1) + (y * (roi[1] - roi[0]) * (n_in - 1) / (length - 1)
                                       if length != 1 else np.full_like(y, (roi[1] - roi[0]) * (n_in - 1) / 2))),
    }
    if mode not in table:
        raise NotImplementedError(f"Resize: coordinate_transformation_mode={mode!r} has no gradient rule")
    return table[mode]()


def _keys_cubic(a):
    def f(d):
        d = np.abs(d)
        return np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                        np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))
    return f


_NEAREST = {"round_prefer_floor": lambda r: r > 0.5, "round_prefer_ceil": lambda r: r >= 0.5,
            "floor": lambda r: r >= 1.0, "ceil": lambda r: r > 0.0}


def _resize_taps(attrs, scale, ratio):
    """(tap offsets from the left neighbour, (m, taps) weights) for ratio in (0, 1] (ONNX reference kernels)."""
    mode = attrs.get("mode", "nearest")
    s = min(scale, 1.0) if attrs.get("antialias", 0) else 1.0
    if mode == "nearest":
        right = _NEAREST[attrs.get("nearest_mode", "round_prefer_floor")](ratio)
        return np.arange(2), np.stack([~right, right], 1).astype(np.float64)
    if mode not in ("linear", "cubic"):
        raise NotImplementedError(f"Resize: mode={mode!r} has no gradient rule")
    reach = 1 if mode == "linear" else 2
    start = int(np.floor(-reach / s) + 1)
    taps = np.arange(start, 2 - start)
    d = (taps[None, :] - ratio[:, None]) * s
    w = np.clip(1 - np.abs(d), 0, 1) if mode == "linear" else _keys_cubic(attrs.get("cubic_coeff_a", -0.75))(d)
    return taps, (w / w.sum(1, keepdims=True) if s != 1.0 else w)


def _resize_matrix(attrs, scale, n_in, m_out, roi):
    """(m_out, n_in) matrix of one axis's interpolation (the ONNX reference's neighbours, edge clamping,
    exclude_outside and antialias), so the gradient is its transpose."""
    y = np.arange(m_out, dtype=np.float64)
    src = _resize_source(attrs.get("coordinate_transformation_mode", "half_pixel"), y, scale, n_in, m_out, roi)
    base = np.floor(src)
    ratio = src - base
    exact = ratio == 0
    base = np.where(exact, base - 1, base).astype(np.int64)  # the left neighbour is preferred: ratio in (0, 1]
    ratio = np.where(exact, 1.0, ratio)
    taps, w = _resize_taps(attrs, scale, ratio)
    idx = base[:, None] + taps[None, :]
    if attrs.get("exclude_outside", 0):
        w = np.where((idx < 0) | (idx >= n_in), 0.0, w)
        total = w.sum(1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        w[(src < 0) | (src > n_in - 1)] = 0.0  # extrapolated: a constant
    a = np.zeros((m_out, n_in))
    np.add.at(a, (np.repeat(np.arange(m_out), len(taps)), np.clip(idx, 0, n_in - 1).reshape(-1)), w.reshape(-1))
    return a


@register("Resize")
def _resize(node, g):
    """Resize is separable and linear: per resized axis, multiply by the transposed static
    (out, in) interpolation matrix built from the node's static shapes and scales (MatMul)."""
    x, y = node.inputs[0], node.outputs[0]
    roi, scales, sizes = (_input(node, i) for i in (1, 2, 3))
    r = len(x._shape)
    axes = [a % r for a in (node.attrs.get("axes") or range(r))]
    if scales is not None and np.asarray(scales._value if scales._value is not None else [0]).size:
        sv = _values(scales, "scales", node).astype(np.float64)
        scale = {a: float(s) for a, s in zip(axes, sv)}
    else:
        sz = _values(sizes, "sizes", node)
        in_sz = {a: _static([x._shape[a]], "resized dims", node)[0] for a in axes}
        scale = {a: int(s) / in_sz[a] for a, s in zip(axes, sz)}
        policy = node.attrs.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            scale = dict.fromkeys(axes, pick(scale.values()))
    roi_v = _values(roi, "roi", node).astype(np.float64).reshape(-1) if roi is not None and roi._value is not None \
        and np.asarray(roi._value).size else None
    gx = g[0]
    for k, a in enumerate(axes):
        n_in, m_out = _static([x._shape[a], y._shape[a]], "resized dims", node)
        axis_roi = None if roi_v is None else (roi_v[k], roi_v[k + len(axes)])
        if n_in == m_out and math.isclose(scale[a], 1.0) and (axis_roi is None or axis_roi == (0.0, 1.0)):
            continue
        gx = _axis_matrix(gx, a, _resize_matrix(node.attrs, scale[a], n_in, m_out, axis_roi))
    return [gx, None, None, None]


# ----- rearrangements ------------------------------------------------------------------------
@register("SpaceToDepth")
def _space_to_depth(node, g):
    return [apply("DepthToSpace", [g[0]], {"blocksize": node.attrs["blocksize"], "mode": "DCR"})]


@register("DepthToSpace")
def _depth_to_space(node, g):
    """DCR: SpaceToDepth; CRD: the inverse Reshape/Transpose."""
    b = node.attrs["blocksize"]
    if node.attrs.get("mode", "DCR") == "DCR":
        return [apply("SpaceToDepth", [g[0]], {"blocksize": b})]
    x = node.inputs[0]
    n, c, h, w = x.shape
    g6 = ops.reshape(g[0], n, c // (b * b), h, b, w, b)
    return [ops.reshape(ops.permute(g6, 0, 1, 3, 5, 2, 4), *x.shape)]


@register("MaxUnpool")
def _max_unpool(node, g):
    """Gather g at the flat indices the values were scattered to."""
    return [apply("Gather", [ops.reshape(g[0], -1), node.inputs[1]], {"axis": 0}), None, None]


@register("Trilu")
def _trilu(node, g):
    k = _input(node, 1)
    return [apply("Trilu", [g[0]] + ([k] if k is not None else []), {"upper": node.attrs.get("upper", 1)}), None]


@register("TopK")
def _topk(node, g):
    """ScatterElements of the values' gradient into zeros at the Indices output."""
    x = node.inputs[0]
    if g[0] is None:
        return [None, None]
    axis = node.attrs.get("axis", -1) % len(x._shape)
    return [apply("ScatterElements", [ops.zeros_of(x), node.outputs[1], g[0]], {"axis": axis},
                  types=[(x.dtype, x._shape)]), None]


_PAD_MODES = {"reflect": "reflect", "edge": "edge", "wrap": "wrap"}


@register("Pad")
def _pad(node, g):
    """constant: Slice (zeros where the pad cropped); reflect/edge/wrap: per padded axis a static
    one-hot (out, in) matrix applied with MatMul, so every copy of an element adds its gradient."""
    x = node.inputs[0]
    r = len(x._shape)
    pads = [int(p) for p in _values(node.inputs[1], "pads", node).reshape(-1)]
    axes_t = _input(node, 3)
    axes = [int(a) % r for a in _values(axes_t, "axes", node).reshape(-1)] if axes_t is not None else list(range(r))
    mode = node.attrs.get("mode", "constant")
    k = len(axes)
    gx = g[0]
    for a, b, e in zip(axes, pads[:k], pads[k:]):
        if b == 0 and e == 0:
            continue
        if mode == "constant":
            gx = _pad_crop(gx, [-b], [-e], first_axis=a)
            continue
        if mode not in _PAD_MODES:
            raise NotImplementedError(f"Pad: mode={mode!r} has no gradient rule")
        n = _static([x._shape[a]], "padded dims", node)[0]
        src = np.pad(np.arange(n), (max(b, 0), max(e, 0)), mode=_PAD_MODES[mode])
        src = src[max(-b, 0):len(src) - max(-e, 0)]
        gx = _axis_matrix(gx, a, np.eye(n)[src])
    gc = None
    if mode == "constant" and _needs(node, 2):
        value = node.inputs[2]
        gc = ops.reshape(ops.sum(g[0]) - ops.sum(gx), *value.shape)
    return [gx, None, gc, None]
