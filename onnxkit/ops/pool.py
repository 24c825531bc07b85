"""Pooling with torch.nn.functional's signatures and numerics: max/avg pools (ONNX MaxPool/AveragePool),
max unpooling (ScatterElements), adaptive pools (AveragePool/MaxPool when the bins tile the input, else
static per-dim averaging matrices or a bin table + ArgMax) and power-average pools (composed like torch)."""
import math

import numpy as np
from onnx import numpy_helper

from ..tensor import apply, const
from .core import abs_, mul, pow_, relu, sign
from .conv import batched, fmt, ntuple, shape_error, spatial_out, unbatch
from .linalg import matmul
from .padding import pad
from .shape import reshape, shape_tensor

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d",
           "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
           "adaptive_max_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
           "lp_pool1d", "lp_pool2d", "lp_pool3d"]

_INT64 = np.dtype(np.int64)


# ----- argument checks and output sizes -----------------------------------------------------------------
def _kernel_and_stride(kernel_size, stride, n):
    """(kernel, stride) n-tuples; a stride of None or [] means the kernel size, as in torch."""
    k = ntuple(kernel_size, n, "kernel_size")
    return k, k if stride is None or (isinstance(stride, (list, tuple)) and not stride) else ntuple(stride, n, "stride")


def pool_args(kernel_size, stride, padding, dilation, n):
    """(kernel, stride, padding, dilation) tuples with torch's checks; stride None/[] means kernel_size."""
    k, s = _kernel_and_stride(kernel_size, stride, n)
    p, d = ntuple(padding, n, "padding"), ntuple(dilation, n, "dilation")
    if any(v <= 0 for v in k):
        raise ValueError(f"kernel size should be greater than zero, got {k}")
    if any(v <= 0 for v in s):
        raise ValueError(f"stride should be greater than zero, got {s}")
    if any(v <= 0 for v in d):
        raise ValueError(f"dilation should be greater than zero, got {d}")
    if any(v < 0 or v > kk // 2 for v, kk in zip(p, k)):
        raise ValueError(f"pad should be at most half of kernel size, but got pad={p} and kernel_size={k}")
    return k, s, p, d


def _out_size(L, k, s, p, d, ceil_mode):
    """torch's pooling_output_shape: ceil mode drops a last window that starts in the right padding."""
    out = (L + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= L + p:
        out -= 1
    return out


def _pool_plan(x, k, s, p, d, ceil_mode):
    """(output shape, ONNX pads, ONNX ceil_mode, extra end pads, spill) giving torch's windows. ceil_mode
    becomes extra end padding, because ONNX shape inference keeps a last window that starts in the right
    padding (torch and onnxruntime drop it). onnxruntime needs pads < kernel: the rest of the extra (`spill`,
    only with dilation) must be padded explicitly. Symbolic spatial sizes keep ceil_mode and leave the shape
    to ONNX inference."""
    n = len(k)
    spatial = x._shape[2:]
    if not all(isinstance(L, int) for L in spatial):
        return None, list(p) * 2, int(ceil_mode), (0,) * n, (0,) * n
    sizes = [_out_size(L, *a, ceil_mode) for L, *a in zip(spatial, k, s, p, d)]
    if any(v <= 0 for v in sizes):
        given = "x".join(str(v) for v in x._shape[1:])
        got = "x".join(str(v) for v in [x._shape[1]] + sizes)
        raise shape_error(f"Given input size: ({given}). Calculated output size: ({got}). Output size is too small "
                          f"(kernel_size={k}, stride={s}, padding={p}, dilation={d})")
    out = spatial_out(x, sizes)
    extra = tuple(max((o - 1) * ss + dd * (kk - 1) + 1 - (L + 2 * pp), 0)  # beyond the padded input
                  for L, o, kk, ss, pp, dd in zip(spatial, sizes, k, s, p, d))
    end = [min(pp + e, kk - 1) for pp, e, kk in zip(p, extra, k)]
    spill = tuple(pp + e - v for pp, e, v in zip(p, extra, end))
    return out, list(p) + end, 0, extra, spill


def _plane_size(x):
    """Elements per (n, c) plane: a constant, or ReduceProd of the spatial part of Shape(x)."""
    spatial = x._shape[2:]
    if all(isinstance(v, int) for v in spatial):
        return const(int(np.prod(spatial)), np.int64)
    dims = apply("Shape", [x], {"start": 2}, types=[(_INT64, (len(spatial),))])
    return apply("ReduceProd", [dims], {"keepdims": 0}, types=[(_INT64, ())])


# ----- max pooling ----------------------------------------------------------------------------------------
def _max_pool(x, k, s, p, d, ceil_mode, return_indices):
    """MaxPool on a batched input; with Indices turned into torch's per-plane flat indices (Mod plane size)."""
    out, pads, ceil, _, spill = _pool_plan(x, k, s, p, d, ceil_mode)
    attrs = {"kernel_shape": list(k), "strides": list(s), "pads": pads, "dilations": list(d), "ceil_mode": ceil}
    xp = pad(x, [v for e in reversed(spill) for v in (0, e)], value=float("-inf")) if any(spill) else x
    if not return_indices:
        return apply("MaxPool", [xp], attrs, types=None if out is None else [(x.dtype, out)])
    y, idx = apply("MaxPool", [xp], attrs, n_out=2, types=None if out is None else [(x.dtype, out), (_INT64, out)])
    idx = apply("Mod", [idx, _plane_size(xp)], {"fmod": 0}, types=[(_INT64, idx._shape)])
    return y, _unpad_index(idx, xp._shape[2:], x._shape[2:]) if any(spill) else idx


def _unpad_index(idx, padded, spatial):
    """Flat plane indices into the end-padded sizes `padded` as flat indices into `spatial`."""
    flat = None
    for axis in range(len(spatial)):
        inner = int(np.prod(padded[axis + 1:]))
        coord = apply("Mod", [apply("Div", [idx, const(inner, np.int64)]), const(padded[axis], np.int64)],
                      {"fmod": 0})
        term = apply("Mul", [coord, const(int(np.prod(spatial[axis + 1:])), np.int64)])
        flat = term if flat is None else apply("Add", [flat, term])
    return flat


def _max_pool_nd(n, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    """max_pool{n}d: torch's argument checks and unbatched inputs around _max_pool."""
    x, unb = batched(x, n, f"max_pool{n}d")
    res = _max_pool(x, *pool_args(kernel_size, stride, padding, dilation, n), ceil_mode, return_indices)
    return tuple(unbatch(r, unb) for r in res) if return_indices else unbatch(res, unb)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """torch.nn.functional.max_pool1d: ONNX MaxPool (+ Indices and a Mod when return_indices)."""
    return _max_pool_nd(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """torch.nn.functional.max_pool2d: ONNX MaxPool (+ Indices and a Mod when return_indices)."""
    return _max_pool_nd(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """torch.nn.functional.max_pool3d: ONNX MaxPool (+ Indices and a Mod when return_indices)."""
    return _max_pool_nd(3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


# ----- max unpooling --------------------------------------------------------------------------------------
def unpool_output_size(in_sizes, k, s, p, output_size):
    """torch's _unpool_output_size: the default (L-1)*s - 2p + k, or output_size (with or without the
    N, C entries) when it lies within one stride of the default."""
    default = [(L - 1) * ss - 2 * pp + kk for L, kk, ss, pp in zip(in_sizes, k, s, p)]
    if output_size is None:
        return default
    output_size = [int(v) for v in output_size]
    n = len(k)
    if len(output_size) == n + 2:
        output_size = output_size[2:]
    if len(output_size) != n:
        raise ValueError(f"output_size should be a sequence containing {n} or {n + 2} elements, "
                         f"but it has a length of '{len(output_size)}'")
    for i, (want, base, ss) in enumerate(zip(output_size, default, s)):
        if not base - ss < want < base + ss:
            raise ValueError(f'invalid output_size "{tuple(output_size)}" (dim {i} must be between '
                             f"{base - ss} and {base + ss})")
    return output_size


def _max_unpool_nd(n, x, indices, kernel_size, stride, padding, output_size):
    """Scatter x into zeros at torch's per-plane indices: ScatterElements over the flattened planes."""
    x, unb = batched(x, n, f"max_unpool{n}d")
    indices, _ = batched(indices, n, f"max_unpool{n}d")
    if indices._shape != x._shape and all(isinstance(v, int) for v in tuple(x._shape) + tuple(indices._shape)):
        raise shape_error(f"expected indices of the input's shape {fmt(x._shape)}, got {fmt(indices._shape)}")
    k, s = _kernel_and_stride(kernel_size, stride, n)
    p = ntuple(padding, n, "padding")
    if any(not isinstance(L, int) for L in x._shape[2:]):
        raise ValueError(f"max_unpool{n}d needs static spatial sizes, got input shape {fmt(x._shape)}")
    out = unpool_output_size(x._shape[2:], k, s, p, output_size)
    N, C = x.shape[:2]
    plane = int(np.prod(out))
    flat, flat_idx = reshape(x, N, C, -1), reshape(indices, N, C, -1)
    zero = numpy_helper.from_array(np.zeros((1,), x.dtype))
    zeros = apply("ConstantOfShape", [shape_tensor([N, C, plane])], {"value": zero},
                  types=[(x.dtype, (x._shape[0], x._shape[1], plane))])
    y = apply("ScatterElements", [zeros, flat_idx, flat], {"axis": 2}, types=[(x.dtype, zeros._shape)])
    return unbatch(reshape(y, N, C, *out), unb)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch.nn.functional.max_unpool1d: ScatterElements into zeros."""
    return _max_unpool_nd(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch.nn.functional.max_unpool2d: ScatterElements into zeros."""
    return _max_unpool_nd(2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch.nn.functional.max_unpool3d: ScatterElements into zeros."""
    return _max_unpool_nd(3, input, indices, kernel_size, stride, padding, output_size)


# ----- average pooling ------------------------------------------------------------------------------------
def _window_sizes(x, k, s, p, out):
    """torch's count_include_pad divisors: windows clipped to the padded input (ceil_mode's last ones)."""
    sizes = np.ones((), np.float64)
    for L, kk, ss, pp, o in zip(x._shape[2:], k, s, p, out[2:]):
        starts = np.arange(o) * ss - pp
        sizes = np.multiply.outer(sizes, np.minimum(starts + kk, L + pp) - starts)
    return sizes


def _avg_pool(x, k, s, p, ceil_mode, count_include_pad, divisor_override):
    """AveragePool with torch's divisors: ceil_mode's extra end padding is rescaled to torch's clipped
    window sizes; divisor_override rescales the full-kernel average."""
    if divisor_override is not None and int(divisor_override) == 0:
        raise ValueError("divisor must be not zero")
    out, pads, ceil, extra, _ = _pool_plan(x, k, s, p, (1,) * len(k), ceil_mode)  # no spill: d = 1
    include_pad = count_include_pad or divisor_override is not None
    if ceil and divisor_override is not None:
        raise ValueError("avg_pool with ceil_mode and divisor_override needs static spatial sizes, "
                         f"got input shape {fmt(x._shape)}")
    attrs = {"kernel_shape": list(k), "strides": list(s), "pads": pads, "ceil_mode": ceil,
             "count_include_pad": int(include_pad)}
    y = apply("AveragePool", [x], attrs, types=None if out is None else [(x.dtype, out)])
    volume = float(np.prod(k))
    if divisor_override is not None:
        return mul(y, volume / int(divisor_override))
    if count_include_pad and any(extra):
        return mul(y, const(volume / _window_sizes(x, k, s, p, out), x.dtype))
    return y


def _avg_pool_nd(n, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """avg_pool{n}d: torch's argument checks and unbatched inputs around _avg_pool."""
    x, unb = batched(x, n, f"avg_pool{n}d")
    k, s, p, _ = pool_args(kernel_size, stride, padding, 1, n)
    return unbatch(_avg_pool(x, k, s, p, ceil_mode, count_include_pad, divisor_override), unb)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """torch.nn.functional.avg_pool1d: one ONNX AveragePool."""
    return _avg_pool_nd(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """torch.nn.functional.avg_pool2d: ONNX AveragePool (times a constant for divisor_override)."""
    return _avg_pool_nd(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """torch.nn.functional.avg_pool3d: ONNX AveragePool (times a constant for divisor_override)."""
    return _avg_pool_nd(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


# ----- adaptive pooling -----------------------------------------------------------------------------------
def adaptive_sizes(x, output_size, n, name):
    """Output sizes with torch's None entries (keep the input size)."""
    if isinstance(output_size, (int, np.integer)) or output_size is None:
        output_size = (output_size,) * n
    output_size = tuple(output_size)
    if len(output_size) != n:
        raise ValueError(f"{name}: output_size must be {n}, got {output_size}")
    sizes = tuple(L if o is None else int(o) for L, o in zip(x._shape[2:], output_size))
    if any(isinstance(o, int) and o <= 0 for o in sizes):
        raise ValueError(f"{name}: elements of output_size must be greater than zero, got {output_size}")
    return sizes


def _bins(L, out):
    """torch's adaptive bins: [floor(i*L/out), ceil((i+1)*L/out)) for i < out."""
    return [((i * L) // out, -((-(i + 1) * L) // out)) for i in range(out)]


def _tiles(x, sizes):
    """Kernel (= stride) when every dim's bins tile it exactly (input divisible by output), else None."""
    spatial = x._shape[2:]
    if all(L == o for L, o in zip(spatial, sizes)):
        return (1,) * len(sizes)
    if not all(isinstance(L, int) and isinstance(o, int) and L % o == 0 for L, o in zip(spatial, sizes)):
        return None
    return tuple(L // o for L, o in zip(spatial, sizes))


def _need_static(x, name):
    """ValueError unless x's spatial sizes are static (the bin matrices and tables are built here)."""
    if not all(isinstance(L, int) for L in x._shape[2:]):
        raise ValueError(f"{name} with bins that do not tile the input needs static spatial sizes, "
                         f"got input shape {fmt(x._shape)}")


def _adaptive_avg(x, sizes, name):
    """ReduceMean for 1x..x1 outputs, AveragePool when bins tile the input, else one MatMul per pooled
    dim with a static bin-averaging matrix (averages over boxes are separable)."""
    n = len(sizes)
    if all(o == 1 for o in sizes):
        return apply("ReduceMean", [x, const(list(range(2, n + 2)), np.int64)], {"keepdims": 1})
    k = _tiles(x, sizes)
    if k is not None:
        if all(v == 1 for v in k):
            return x
        return apply("AveragePool", [x], {"kernel_shape": list(k), "strides": list(k)},
                     types=[(x.dtype, tuple(x._shape[:2]) + tuple(sizes))])
    _need_static(x, name)
    N, C = x.shape[:2]
    spatial = list(x._shape[2:])
    y = x
    for axis in reversed(range(n)):
        L, o = spatial[axis], sizes[axis]
        if L == o:
            continue
        avg = np.zeros((o, L), np.float64)
        for i, (a, b) in enumerate(_bins(L, o)):
            avg[i, a:b] = 1.0 / (b - a)
        if axis == n - 1:
            y = matmul(y, const(avg.T, x.dtype))
        else:  # (o, L) @ (N, C, *before, L, prod(after)): the later dims flattened
            y = matmul(const(avg, x.dtype), reshape(y, N, C, *spatial[:axis], L, int(np.prod(spatial[axis + 1:]))))
        spatial[axis] = o
    return reshape(y, N, C, *spatial)


def _bin_table(spatial, sizes):
    """(prod(sizes), K) plane indices of each output bin's elements, row-major; short bins repeat their
    first element (a repeat never changes the max or the first-max position)."""
    ranges = [_bins(L, o) for L, o in zip(spatial, sizes)]
    strides = np.cumprod([1] + list(spatial[::-1]))[:-1][::-1]
    rows = []
    for combo in np.ndindex(*sizes):
        grids = np.meshgrid(*[np.arange(*ranges[d][i]) for d, i in enumerate(combo)], indexing="ij")
        rows.append(sum(g * st for g, st in zip(grids, strides)).reshape(-1))
    width = max(len(r) for r in rows)
    return np.stack([np.concatenate([r, np.full(width - len(r), r[0])]) for r in rows]).astype(np.int64)


def _adaptive_max(x, sizes, return_indices, name):
    """MaxPool when bins tile the input; else Gather of a static bin table, ArgMax (torch's first max) and
    GatherElements, so the gradient reaches exactly the chosen element as in torch."""
    k = _tiles(x, sizes)
    if k is not None:
        return _max_pool(x, k, k, (0,) * len(k), (1,) * len(k), False, return_indices)
    _need_static(x, name)
    N, C = x.shape[:2]
    table = _bin_table(x._shape[2:], sizes)
    q, width = table.shape
    flat = reshape(x, N, C, -1)
    windows = apply("Gather", [flat, const(table, np.int64)], {"axis": 2},
                    types=[(x.dtype, (x._shape[0], x._shape[1], q, width))])
    pick = apply("ArgMax", [windows], {"axis": 3, "keepdims": 0, "select_last_index": 0},
                 types=[(_INT64, (x._shape[0], x._shape[1], q))])
    pick = apply("Add", [pick, const(np.arange(q) * width, np.int64)], types=[(_INT64, pick._shape)])
    idx = apply("Gather", [const(table.reshape(-1), np.int64), pick], {"axis": 0}, types=[(_INT64, pick._shape)])
    y = apply("GatherElements", [flat, idx], {"axis": 2}, types=[(x.dtype, idx._shape)])
    y = reshape(y, N, C, *sizes)
    return (y, reshape(idx, N, C, *sizes)) if return_indices else y


def _adaptive_nd(n, kind, x, output_size, return_indices=False):
    """adaptive_{kind}_pool{n}d: torch's unbatched inputs and None output sizes, then the pool."""
    name = f"adaptive_{kind}_pool{n}d"
    x, unb = batched(x, n, name)
    sizes = adaptive_sizes(x, output_size, n, name)
    if kind == "avg":
        return unbatch(_adaptive_avg(x, sizes, name), unb)
    res = _adaptive_max(x, sizes, return_indices, name)
    return tuple(unbatch(r, unb) for r in res) if return_indices else unbatch(res, unb)


def adaptive_avg_pool1d(input, output_size):
    """torch.nn.functional.adaptive_avg_pool1d: ReduceMean / AveragePool / MatMul with a bin matrix."""
    return _adaptive_nd(1, "avg", input, output_size)


def adaptive_avg_pool2d(input, output_size):
    """torch.nn.functional.adaptive_avg_pool2d: ReduceMean / AveragePool / MatMuls with bin matrices."""
    return _adaptive_nd(2, "avg", input, output_size)


def adaptive_avg_pool3d(input, output_size):
    """torch.nn.functional.adaptive_avg_pool3d: ReduceMean / AveragePool / MatMuls with bin matrices."""
    return _adaptive_nd(3, "avg", input, output_size)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """torch.nn.functional.adaptive_max_pool1d: MaxPool, or Gather + ArgMax + GatherElements over bins."""
    return _adaptive_nd(1, "max", input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """torch.nn.functional.adaptive_max_pool2d: MaxPool, or Gather + ArgMax + GatherElements over bins."""
    return _adaptive_nd(2, "max", input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """torch.nn.functional.adaptive_max_pool3d: MaxPool, or Gather + ArgMax + GatherElements over bins."""
    return _adaptive_nd(3, "max", input, output_size, return_indices)


# ----- power-average pooling ------------------------------------------------------------------------------
def _lp_pool_nd(n, x, norm_type, kernel_size, stride, ceil_mode):
    """torch's lp_pool: (sign(a) * relu(|a|) * prod(kernel)) ** (1/p) with a = avg_pool(x ** p)."""
    x, unb = batched(x, n, f"lp_pool{n}d")
    k, s, p, _ = pool_args(kernel_size, stride, 0, 1, n)
    a = _avg_pool(pow_(x, norm_type), k, s, p, ceil_mode, True, None)
    y = pow_(mul(mul(sign(a), relu(abs_(a))), float(math.prod(k))), 1.0 / float(norm_type))
    return unbatch(y, unb)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """torch.nn.functional.lp_pool1d: Pow, AveragePool, Sign/Abs/Relu, Pow."""
    return _lp_pool_nd(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """torch.nn.functional.lp_pool2d: Pow, AveragePool, Sign/Abs/Relu, Pow."""
    return _lp_pool_nd(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """torch.nn.functional.lp_pool3d: Pow, AveragePool, Sign/Abs/Relu, Pow."""
    return _lp_pool_nd(3, input, norm_type, kernel_size, stride, ceil_mode)
