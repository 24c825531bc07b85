"""Gradient clipping (torch.nn.utils.clip_grad_norm_, clip_grad_value_, get_total_norm,
clip_grads_with_norm_), in the graph: the `.grad` Tensors are replaced by lazy expressions, so a
torch-style loop still runs forward, backward, clipping and the update in one onnxruntime call, and
training graphs use the same functions on their gradient Tensors."""
import numpy as np

from ... import ops
from ...ops.reduce import norm as _vector_norm
from ...tensor import Tensor, no_grad, tensor

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_",
           "clip_by_total_norm"]


def _as_list(tensors):
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm of the per-tensor norms (= the norm of all elements together): ReduceL2 / ReduceL1 /
    ReduceMax(Abs) per tensor, stacked and reduced again. error_if_nonfinite evaluates it."""
    tensors = [t for t in _as_list(tensors) if t is not None]
    norm_type = float(norm_type)
    if not tensors:
        return tensor(np.float32(0.0))
    with no_grad():
        dtype = tensors[0].dtype
        norms = [ops.cast(_vector_norm(t, norm_type), dtype) for t in tensors]
        total = _vector_norm(ops.stack(norms), norm_type) if len(norms) > 1 else norms[0]
    if error_if_nonfinite and not np.isfinite(total.numpy()):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                           "so it cannot be clipped. To disable this error and scale the gradients by the "
                           "non-finite norm anyway, set `error_if_nonfinite=False`")
    return total


def clip_by_total_norm(tensors, max_norm, total_norm):
    """tensors * min(max_norm / (total_norm + 1e-6), 1): Div, Clip, then one Mul per tensor."""
    with no_grad():
        coef = ops.clamp(max_norm / (total_norm + 1e-6), max=1.0)
        casts = {}
        out = []
        for t in tensors:
            if t.dtype not in casts:
                casts[t.dtype] = ops.cast(coef, t.dtype)
            out.append(t * casts[t.dtype])
        return out


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the .grad of `parameters` by min(max_norm / (total_norm + 1e-6), 1)."""
    params = [p for p in _as_list(parameters) if p.grad is not None]
    for p, g in zip(params, clip_by_total_norm([p.grad for p in params], float(max_norm), total_norm)):
        p.grad = g


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Clip the gradients' joint norm to max_norm; returns the total norm before clipping (a Tensor)."""
    params = _as_list(parameters)
    total = get_total_norm([p.grad for p in params if p.grad is not None], norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The older name of clip_grad_norm_ (as in the seed and torch)."""
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element to [-clip_value, clip_value] (one Clip per gradient)."""
    v = float(clip_value)
    with no_grad():
        for p in _as_list(parameters):
            if p.grad is not None:
                p.grad = ops.clamp(p.grad, -v, v)
