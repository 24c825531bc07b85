"""Normalization ops (torch.nn.functional names). layer_norm is one LayerNormalization node; the other
per-instance statistics are composed from ReduceMean, Sub, Pow, Add, Sqrt and Div, so their gradients
come from the core rules; batch norm is one BatchNormalization node (on the batch statistics in training,
with one rule through them, autodiff.rules_nn._batch_statistics).
Running-stat updates are buffer effects on the output node, applied by the next evaluation of anything
(runtime.evaluate), as torch updates the statistics when the forward runs."""
import weakref

import numpy as np

from ..emit import topo
from ..tensor import Node, apply, const, no_grad
from .core import as_tensor, cast, add, sub, mul, div, sqrt, pow_, square, clamp
from .linalg import matmul
from .reduce import mean, norm  # norm: re-exported so `from .norm import *` rebinds onnxkit.ops.norm to the
#                                 function (importing this submodule sets that attribute to the module)
from .shape import reshape, permute, squeeze

__all__ = ["batch_norm", "instance_norm", "layer_norm", "rms_norm", "group_norm", "local_response_norm", "norm",
           "normalize"]

_latest_update = {}  # id(buffer) -> (weakref to buffer, the output whose node holds its last update): held
#                      until applied, since an update stands whether or not the forward's result is used


_chain = {}  # id(buffer) -> train-mode calls in a row that continued from a pending update of it
CHAIN_LIMIT = 16  # then the updates are applied (one run), so the forwards they hold can be freed


def buffer_value(buf):
    """The value `buf` will hold once pending updates apply: a second train-mode call built before
    the first is evaluated continues from the first's update, which it then supersedes. A long run of
    such calls (a statistics pass whose outputs nobody reads) applies the updates every CHAIN_LIMIT."""
    out, value = pending_update(buf)
    if out is None:
        _chain.pop(id(buf), None)
        return buf
    depth = _chain.get(id(buf), 0) + 1
    if depth >= CHAIN_LIMIT:
        from ..runtime import flush_pending
        flush_pending()
        _chain.pop(id(buf), None)
        return buf
    _chain[id(buf)] = depth
    out.node.effects = [e for e in out.node.effects if e[0] is not buf]
    return value


def pending_update(buf):
    """(the output whose node holds buf's pending update, the new value), or (None, buf)."""
    buf_ref, out = _latest_update.get(id(buf), (lambda: None, None))
    out = out if buf_ref() is buf else None
    if out is None or not out.node.effects:
        return None, buf
    mine = [v for b, v, _ in out.node.effects if b is buf]
    if not mine or _in_traced_graph(out):
        return None, buf  # an update in a traced graph (symbolic inputs: export, Trainer) is never applied here
    return out, mine[-1]


def _in_traced_graph(out):
    """Whether out's graph reads a symbolic input (export, the Trainer's tracing)."""
    return any(t.kind == "input" for t in topo([out], cut_evaluated=True)[1])


def add_buffer_updates(out, updates):
    """Attach (buffer, new value) updates to out's node, to be applied by the next evaluation
    (runtime.evaluate); values are cast to the buffer's dtype. Nodes built from now on that read a
    buffer read its new value, as in torch."""
    updates = [(b, cast(v, b.dtype)) for b, v in updates]
    seq = next(Node._ids)  # when the update happens: readers built before it keep the old value
    out.node.effects = (out.node.effects or []) + [(b, v, seq) for b, v in updates]
    for b, _ in updates:
        _latest_update[id(b)] = (weakref.ref(b), out)
    return out


def unapplied_updates(skip):
    """Nodes outside `skip` (node ids) that hold updates not applied yet, from train-mode forwards
    whose results nothing evaluated; updates in traced graphs and applied ones are forgotten."""
    found = []
    for key, (buf_ref, out) in list(_latest_update.items()):
        if buf_ref() is None or not out.node.effects:
            del _latest_update[key]
            continue
        n = out.node
        if id(n) in skip or any(m is n for m in found):
            continue
        if _in_traced_graph(out):
            del _latest_update[key]
            continue
        found.append(n)
    return found


def normalize_over(x, axes, eps):
    """(x - mean) / sqrt(var + eps) over `axes`, biased variance; returns (y, mean, var) with kept dims."""
    m = mean(x, axes, keepdim=True)
    d = sub(x, m)
    var = mean(pow_(d, 2.0), axes, keepdim=True)
    return div(d, sqrt(add(var, eps))), m, var


def _count(x, axes):
    """Number of elements per statistic: an int, or a float tensor when a dim is symbolic."""
    n = 1
    for a in axes:
        n = n * x.shape[a]
    return n if isinstance(n, int) else cast(n.tensor(), x.dtype)


def _per_channel(v, x):
    """A (C,) vector shaped (C, 1, ..., 1) to broadcast over x's dims after the channel dim."""
    v = cast(as_tensor(v), x.dtype)
    return v if len(x._shape) <= 2 else reshape(v, -1, *([1] * (len(x._shape) - 2)))


def _affine(y, weight, bias, shape_fn):
    """y * weight + bias (either may be None), each reshaped by shape_fn to broadcast over y."""
    if weight is not None:
        y = mul(y, shape_fn(weight))
    if bias is not None:
        y = add(y, shape_fn(bias))
    return y


def _unbiased(var, n):
    """Biased -> unbiased variance (torch stores the unbiased one in running_var)."""
    return mul(var, n / (n - 1)) if isinstance(n, int) else div(mul(var, n), sub(n, 1.0))


def _blend(old, new, momentum):
    """(1 - momentum) * old + momentum * new; momentum may be a Tensor (the cumulative-average factor)."""
    old = cast(old, new.dtype)
    if hasattr(momentum, "node"):
        m = cast(momentum, new.dtype)
        return add(mul(old, sub(1.0, m)), mul(new, m))
    return add(mul(old, 1.0 - momentum), mul(new, float(momentum)))


def _normalize_per_channel(x, axes, weight, bias, eps, what):
    """x normalized over `axes` by its own statistics, then the per-channel affine. Returns
    (out, mean, biased variance, elements per statistic); one element per statistic is an error."""
    n = _count(x, axes)
    if isinstance(n, int) and n == 1:
        raise ValueError(f"Expected more than 1 {what} when training, got input size {tuple(x._shape)}")
    y, m, var = normalize_over(x, axes, eps)
    return _affine(y, weight, bias, lambda v: _per_channel(v, x)), m, var, n


def _update_running_stats(out, running_mean, running_var, mean, unbiased_var, momentum):
    """Attach the momentum updates of the running statistics to out's node (see add_buffer_updates)."""
    add_buffer_updates(out, [(running_mean, _blend(buffer_value(running_mean), mean, momentum)),
                             (running_var, _blend(buffer_value(running_var), unbiased_var, momentum))])


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalize over the batch and spatial dims per channel. Training: batch statistics (biased
    variance) and, given running stats, their update (unbiased variance) as buffer effects.
    Eval: BatchNormalization on the running statistics."""
    x = as_tensor(input)
    r = len(x._shape)
    if r < 2:
        raise ValueError(f"batch_norm: expected at least 2D input (N, C, ...), got shape {tuple(x._shape)}")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
        C = x._shape[1]
        scale = cast(weight, x.dtype) if weight is not None else const(np.ones(C), x.dtype)
        shift = cast(bias, x.dtype) if bias is not None else const(np.zeros(C), x.dtype)
        return apply("BatchNormalization", [x, scale, shift, cast(running_mean, x.dtype), cast(running_var, x.dtype)],
                     {"epsilon": float(eps)}, types=[(x.dtype, x._shape)])
    axes = [0] + list(range(2, r))
    n = _count(x, axes)
    if isinstance(n, int) and n == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x._shape)}")
    # the batch statistics (centered variance), then one BatchNormalization on them: a fused kernel
    # forward, and its gradient rule's lean per-channel terms backward. (BatchNormalization's own
    # training_mode is avoided: onnxruntime 1.31 may write its statistics outputs into input buffers
    # that its constant sharing made common to several nodes.)
    C = x._shape[1]
    m_kept = mean(x, axes, keepdim=True)
    d = sub(x, m_kept)
    m, var = reshape(m_kept, C), reshape(mean(mul(d, d), axes, keepdim=True), C)
    scale = cast(weight, x.dtype) if weight is not None else const(np.ones(C), x.dtype)
    shift = cast(bias, x.dtype) if bias is not None else const(np.zeros(C), x.dtype)
    out = apply("BatchNormalization", [x, scale, shift, m, var], {"epsilon": float(eps)}, types=[(x.dtype, x._shape)])
    if running_mean is not None and running_var is not None:
        with no_grad():
            _update_running_stats(out, running_mean, running_var, m, _unbiased(var, n), momentum)
    return out


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Normalize each (sample, channel) over its spatial dims; with running stats, update them with
    the batch average of the per-instance statistics (as torch does). use_input_stats=False:
    BatchNormalization on the running statistics."""
    x = as_tensor(input)
    r = len(x._shape)
    if r < 3:
        raise ValueError(f"instance_norm: expected at least 3D input (N, C, ...), got shape {tuple(x._shape)}")
    if not use_input_stats:
        return batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps)
    out, m, var, n = _normalize_per_channel(x, list(range(2, r)), weight, bias, eps, "spatial element")
    if running_mean is not None and running_var is not None:
        with no_grad():
            _update_running_stats(out, running_mean, running_var, mean(reshape(m, x.shape[:2]), 0),
                                  mean(_unbiased(reshape(var, x.shape[:2]), n), 0), momentum)
    return out


_LAYER_NORM_DTYPES = {np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)}  # onnxruntime's kernels


def _normalized_dims(x, normalized_shape, what):
    """normalized_shape as a tuple, checked against x's trailing dims (torch's error otherwise)."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    trailing = x._shape[len(x._shape) - k:] if len(x._shape) >= k else None
    if trailing is None or any(isinstance(d, int) and d != n for d, n in zip(trailing, normalized_shape)):
        raise ValueError(f"{what}: expected input with trailing shape {normalized_shape}, got {tuple(x._shape)}")
    return normalized_shape


def _layer_normalization(x, scale, shift, axis, eps):
    """One LayerNormalization node: a fused forward kernel, and the op's lean rule backward."""
    return apply("LayerNormalization", [x, scale, shift], {"axis": axis, "epsilon": float(eps)},
                 types=[(x.dtype, x._shape)])


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the trailing `normalized_shape` dims, then the elementwise affine."""
    x = as_tensor(input)
    normalized_shape = _normalized_dims(x, normalized_shape, "layer_norm")
    k = len(normalized_shape)
    if x.dtype in _LAYER_NORM_DTYPES:  # one fused op instead of seven (causal LM step -6 %)
        scale = cast(as_tensor(weight), x.dtype) if weight is not None else const(np.ones(normalized_shape), x.dtype)
        shift = cast(as_tensor(bias), x.dtype) if bias is not None else const(np.zeros(normalized_shape), x.dtype)
        return _layer_normalization(x, scale, shift, -k, eps)
    y, _, _ = normalize_over(x, list(range(len(x._shape) - k, len(x._shape))), eps)
    return _affine(y, weight, bias, lambda v: cast(as_tensor(v), x.dtype))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2 over the trailing `normalized_shape` dims) + eps) * weight; eps defaults to
    the dtype's machine epsilon, as torch (ReduceMean, Add, Sqrt, Div, Mul)."""
    x = as_tensor(input)
    k = len(_normalized_dims(x, normalized_shape, "rms_norm"))
    eps = float(np.finfo(x.dtype).eps) if eps is None else float(eps)
    ms = mean(square(x), list(range(len(x._shape) - k, len(x._shape))), keepdim=True)
    y = div(x, sqrt(add(ms, eps)))
    return y if weight is None else mul(y, cast(as_tensor(weight), x.dtype))


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalize over groups of channels (and the spatial dims) per sample, then a per-channel affine."""
    x = as_tensor(input)
    if len(x._shape) < 2:
        raise ValueError(f"group_norm: expected at least 2D input (N, C, ...), got shape {tuple(x._shape)}")
    C = x._shape[1]
    if isinstance(C, int) and C % num_groups:
        raise ValueError(f"group_norm: {C} channels are not divisible into {num_groups} groups")
    grouped = reshape(x, x.shape[0], num_groups, -1)
    per_group = grouped._shape[2]
    if x.dtype in _LAYER_NORM_DTYPES and isinstance(per_group, int):  # LayerNormalization over each group
        y = _layer_normalization(grouped, const(np.ones(per_group), x.dtype), const(np.zeros(per_group), x.dtype), -1, eps)
    else:
        y, _, _ = normalize_over(grouped, [2], eps)
    return _affine(reshape(y, x.shape), weight, bias, lambda v: _per_channel(v, x))


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """x / (k + alpha/size * sum of x^2 over a window of `size` channels)^beta, the window of channel
    c spanning [c - size//2, c + (size-1)//2] as in torch (ONNX LRN centres even windows the
    other way). The window sum is one MatMul with a static band matrix over the channel axis."""
    x = as_tensor(input)
    r = len(x._shape)
    if r < 3:
        raise ValueError(f"local_response_norm: expected 3D or higher input (N, C, ...), got shape {tuple(x._shape)}")
    C = x._shape[1]
    if not isinstance(C, int):
        raise ValueError("local_response_norm: the channel dim must be static")
    c = np.arange(C)
    band = ((c[None, :] >= c[:, None] - size // 2) & (c[None, :] <= c[:, None] + (size - 1) // 2)).astype(x.dtype)
    to_last = [0] + list(range(2, r)) + [1]
    window = matmul(permute(square(x), to_last), const(band.T * (alpha / size), x.dtype))
    back = [0, r - 1] + list(range(1, r - 1))
    return div(x, pow_(add(permute(window, back), float(k)), float(beta)))


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p over dim, eps), as torch.nn.functional.normalize (ReduceL2 for p=2;
    the norm's gradient passes where it is >= eps, as torch's clamp_min)."""
    if out is not None:
        raise ValueError("normalize: out= is not supported; graphs are pure, use the returned tensor")
    x = as_tensor(input)
    return div(x, clamp(norm(x, p, dim, keepdim=True), min=float(eps)))
