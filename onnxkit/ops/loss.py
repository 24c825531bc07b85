"""Loss functions with torch.nn.functional's names, signatures and numerics.

Every loss is a composite of ops that have gradient rules (LogSoftmax, Softplus, Equal/Cast
one-hots, GatherElements, Where, Relu/Clip, Reduce*), so gradients w.r.t. inputs, float targets
and variances come from autodiff. `size_average`/`reduce` are torch's legacy spellings of
`reduction`."""
import builtins
import math
import sys
import warnings

import numpy as np

from .. import dtypes
from ..tensor import apply, check_value, const
from .conv import fmt as _fmt, shape_error
from .autodiff_helpers import stop
from .core import (as_tensor, cast, where, eq, ne, gt, lt, le, abs_, exp, log, relu, clamp, logical_and,
                   logical_not, minimum, dim_size, sqrt)
from .distance import clamp_min_no_grad, pairwise_distance
from .reduce import sum, mean, amax, log_softmax, cumsum
from .shape import unsqueeze, squeeze, reshape, gather, index_select

__all__ = ["l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "cross_entropy", "nll_loss", "poisson_nll_loss",
           "gaussian_nll_loss", "kl_div", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "margin_ranking_loss", "hinge_embedding_loss", "multilabel_margin_loss", "soft_margin_loss",
           "multilabel_soft_margin_loss", "cosine_embedding_loss", "multi_margin_loss", "triplet_margin_loss"]

REDUCTIONS = ("none", "mean", "sum")
_REDUCE = {"none": lambda t: t, "mean": mean, "sum": sum}


def reduction_of(size_average=None, reduce=None, reduction="mean", valid=REDUCTIONS):
    """The reduction string (torch's legacy size_average/reduce win when given); raises
    ValueError naming the valid values."""
    if size_average is not None or reduce is not None:
        reduction = "mean" if (size_average is None or size_average) and (reduce is None or reduce) else \
            "sum" if reduce is None or reduce else "none"
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' "
                      "instead.", stacklevel=3)
    if reduction == "elementwise_mean":
        warnings.warn("reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.",
                      stacklevel=3)
        reduction = "mean"
    if reduction not in valid:
        raise ValueError(f"{reduction!r} is not a valid value for reduction; expected one of "
                         f"{', '.join(repr(v) for v in valid)}")
    return reduction


def _float(x):
    """x as a Tensor of a floating dtype (integer inputs become float32)."""
    x = as_tensor(x)
    return x if dtypes.is_floating(x.dtype) else cast(x, np.float32)


def _softplus(x):
    """log(1 + exp(x)): one ONNX Softplus."""
    return apply("Softplus", [x])


def _same_shape(a, b):
    """Shapes equal where both dims are static (symbolic dims are trusted)."""
    return len(a) == len(b) and all(x == y or not (isinstance(x, int) and isinstance(y, int)) for x, y in zip(a, b))


def _weighted(loss, weight, input, reduction, mean_by_weight=True):
    """torch's per-element `weight=` of l1/mse/huber: mean is sum(w*l)/sum(w) (l1, mse) or mean(w*l) (huber)."""
    if weight is None:
        return _REDUCE[reduction](loss)
    w = cast(as_tensor(weight), loss.dtype)
    if not _same_shape(w._shape, input._shape):
        raise ValueError(f"Weights and input must have the same size (weight {_fmt(w._shape)}, "
                         f"input {_fmt(input._shape)})")
    loss = loss * w
    if reduction == "mean" and mean_by_weight:
        return sum(loss) / sum(w)
    return _REDUCE[reduction](loss)


# ----- regression -----------------------------------------------------------------------------
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """|input - target| (Sub, Abs), reduced."""
    reduction = reduction_of(size_average, reduce, reduction)
    x = _float(input)
    return _weighted(abs_(x - target), weight, x, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """(input - target)^2 (Sub, Mul), reduced."""
    reduction = reduction_of(size_average, reduce, reduction)
    x = _float(input)
    d = x - target
    return _weighted(d * d, weight, x, reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5*d^2 where |d| < delta, else delta*(|d| - 0.5*delta): Abs, Less, Where."""
    reduction = reduction_of(reduction=reduction)
    x = _float(input)
    d = x - target
    a = abs_(d)
    loss = where(lt(a, float(delta)), d * d * 0.5, (a - 0.5 * delta) * float(delta))
    return _weighted(loss, weight, x, reduction, mean_by_weight=False)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5*d^2/beta where |d| < beta, else |d| - 0.5*beta; beta=0 is the L1 loss (as torch)."""
    reduction = reduction_of(size_average, reduce, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss does not support negative values for beta, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    d = _float(input) - target
    a = abs_(d)
    return _REDUCE[reduction](where(lt(a, float(beta)), d * d * (0.5 / beta), a - 0.5 * beta))


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    """exp(x) - t*x (log_input) or x - t*log(x+eps); `full` adds the Stirling term where t > 1."""
    reduction = reduction_of(size_average, reduce, reduction)
    x, t = _float(input), _float(target)
    loss = exp(x) - t * x if log_input else x - t * log(x + float(eps))
    if full:
        stirling = t * log(t) - t + log(t * (2 * math.pi)) * 0.5
        loss = loss + where(le(t, 1.0), const(0.0, loss.dtype), stirling)
    return _REDUCE[reduction](loss)


def _gaussian_var(var, x):
    """var broadcastable to input as torch allows (same shape, one dim short, or one dim of size 1)."""
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        return const(float(var), x.dtype)
    var = _float(var)
    check_value(var, _check_var)
    xs, vs = tuple(x._shape), tuple(var._shape)
    if vs == xs:
        return var
    if xs[:-1] == vs:
        return unsqueeze(var, -1)
    if len(xs) == len(vs) and builtins.sum(v for a, v in zip(xs, vs) if a != v) == 1:
        return var
    raise shape_error(f"var is of incorrect size: {_fmt(vs)} for input of shape {_fmt(xs)}")


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """0.5*(log(var) + (x-t)^2/var) (+ 0.5*log(2*pi) if full); var is clamped to eps without
    affecting its gradient, as torch does under no_grad."""
    reduction = reduction_of(reduction=reduction)
    x = _float(input)
    v = clamp_min_no_grad(_gaussian_var(var, x), eps)
    d = x - target
    loss = (log(v) + d * d / v) * 0.5
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _REDUCE[reduction](loss)


# ----- classification -------------------------------------------------------------------------
def _check_var(var):
    if var._value is not None and var.kind != "input" and (np.asarray(var._value) < 0).any():
        raise ValueError("var has negative entry/entries")


def _check_class_range(t, c, ignore_index):
    """IndexError for a class index outside [0, c) other than ignore_index, as torch raises, when the
    target holds a value (eager); a symbolic target (a graph input) is not checked."""
    if t.kind == "input" or t._value is None:
        return
    runtime = sys.modules.get("onnxkit.runtime")  # not loaded: nothing can be pending
    if runtime is not None and id(t) in runtime._pending:
        return  # an in-place change not applied yet: its value is not known without a run
    v = np.asarray(t._value)
    bad = v[((v < 0) | (v >= c)) & (v != ignore_index)]
    if bad.size:
        raise IndexError(f"Target {bad.flat[0]} is out of bounds: expected class indices in [0, {c - 1}] "
                         f"for an input with {c} classes (or ignore_index={ignore_index})")


def _class_targets(logp, target, weight, ignore_index, label_smoothing, reduction):
    """Weighted negative log-likelihood of class-index targets, from log-probabilities.

    One-hot by Equal(target, arange(C)) + Cast; ignore_index is removed from the class list, so
    ignored targets hit no class. loss_i = -sum_c q_ic * w_c * logp_ic with
    q = (1-eps)*onehot + eps/C (label smoothing, ignored rows zero); mean divides by sum_i w_{t_i}."""
    r = len(logp._shape)
    class_dim = 0 if r == 1 else 1
    c = logp._shape[class_dim]
    if not isinstance(c, int):
        raise shape_error(f"the class dim of the input must be static, got shape {_fmt(logp._shape)}")
    t = as_tensor(target)
    if dtypes.is_floating(t.dtype):
        raise TypeError(f"expected an integer class-index target (int64 or int32), got {t.dtype}")
    check_value(t, lambda v: _check_class_range(v, c, ignore_index))
    if t.dtype not in (np.int64, np.int32):
        t = cast(t, np.int64)
    expected = logp._shape[:1] + logp._shape[2:] if r > 1 else ()
    if not _same_shape(t._shape, expected):
        raise shape_error(f"expected target of shape {_fmt(expected)} for input of shape {_fmt(logp._shape)}, "
                          f"got {_fmt(t._shape)}")
    if weight is None and not label_smoothing:
        return _picked_nll(logp, t, class_dim, ignore_index, reduction)
    classes = np.arange(c, dtype=t.dtype)
    if 0 <= ignore_index < c:
        classes[ignore_index] = np.iinfo(t.dtype).min
    along = (c,) + (1,) * (r - class_dim - 1)
    hit = cast(eq(unsqueeze(t, class_dim), const(classes.reshape(along), t.dtype)), logp.dtype)
    w_c = None
    if weight is not None:
        w = as_tensor(weight)
        if tuple(w._shape) != (c,):
            raise shape_error(f"weight must have {c} entries (one per class), got shape {_fmt(w._shape)}")
        w_c = reshape(cast(w, logp.dtype), *along)
    w_hit = hit if w_c is None else hit * w_c
    q = w_hit
    if label_smoothing:
        smooth = sum(hit, class_dim, keepdim=True) * (label_smoothing / c)
        q = w_hit * (1.0 - label_smoothing) + (smooth if w_c is None else smooth * w_c)
    if reduction == "none":
        return -sum(q * logp, class_dim)
    total = -sum(q * logp)
    return total / sum(w_hit) if reduction == "mean" else total


def _picked_nll(logp, t, class_dim, ignore_index, reduction):
    """-logp at each target class, picked by GatherElements: per-row work instead of a one-hot over the
    classes (its gradient scatters into the class dim). Rows whose target is ignore_index count for nothing."""
    keep = ne(t, ignore_index)
    counted = cast(keep, logp.dtype)
    picked = gather(logp, class_dim, unsqueeze(where(keep, t, const(0, t.dtype)), class_dim))
    losses = -(squeeze(picked, class_dim) * counted)
    if reduction == "none":
        return losses
    return sum(losses) / sum(counted) if reduction == "mean" else sum(losses)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood of class indices from log-probabilities (N, C) / (C,) / (N, C, d1, ...)."""
    reduction = reduction_of(size_average, reduce, reduction)
    return _class_targets(_float(input), target, weight, ignore_index, 0.0, reduction)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """LogSoftmax over the class dim, then the NLL of class indices (int64/int32, same shape as the
    input without dim 1) or of class probabilities (float, same shape as the input)."""
    reduction = reduction_of(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    x, t = _float(input), as_tensor(target)
    class_dim = 0 if len(x._shape) == 1 else 1
    logp = log_softmax(x, class_dim)
    if tuple(t._shape) != tuple(x._shape):
        return _class_targets(logp, t, weight, ignore_index, label_smoothing, reduction)
    if not dtypes.is_floating(t.dtype):
        raise TypeError(f"expected a floating point target for class probabilities (target shape equals the "
                        f"input shape {_fmt(x._shape)}), got {t.dtype}")
    if ignore_index >= 0:
        raise ValueError("ignore_index is not supported for floating point (class probability) targets")
    c = x._shape[class_dim]
    q = t * (1.0 - label_smoothing) + label_smoothing / c if label_smoothing else t
    if weight is not None:
        q = q * reshape(cast(as_tensor(weight), x.dtype), *((c,) + (1,) * (len(x._shape) - class_dim - 1)))
    return _REDUCE[reduction](-sum(q * logp, class_dim))


def _check_same_size(input, target, what):
    """ShapeError unless target's shape equals input's (symbolic dims are trusted)."""
    if not _same_shape(target._shape, input._shape):
        raise shape_error(f"{what}: target size {_fmt(target._shape)} must be the same as input size "
                          f"{_fmt(input._shape)}")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-(t*log(x) + (1-t)*log(1-x)) * weight, each log clamped at -100 as torch (Log, Clip)."""
    reduction = reduction_of(size_average, reduce, reduction)
    x, t = _float(input), _float(target)
    _check_same_size(x, t, "binary_cross_entropy")
    loss = -(t * clamp(log(x), min=-100.0) + (1.0 - t) * clamp(log(1.0 - x), min=-100.0))
    if weight is not None:
        loss = loss * cast(as_tensor(weight), x.dtype)
    return _REDUCE[reduction](loss)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """(1-t)*x + lw*softplus(-x), lw = 1 + (pos_weight-1)*t: torch's stable form (Softplus)."""
    reduction = reduction_of(size_average, reduce, reduction)
    x, t = _float(input), _float(target)
    _check_same_size(x, t, "binary_cross_entropy_with_logits")
    neg_log_sigmoid = _softplus(-x)
    if pos_weight is not None:
        neg_log_sigmoid = neg_log_sigmoid * ((cast(as_tensor(pos_weight), x.dtype) - 1.0) * t + 1.0)
    loss = (1.0 - t) * x + neg_log_sigmoid
    if weight is not None:
        loss = loss * cast(as_tensor(weight), x.dtype)
    return _REDUCE[reduction](loss)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """t*(log t - x) (xlogy(t, t) - t*x) or exp(t)*(t - x) with log_target; 'batchmean' divides the
    sum by the batch size."""
    legacy = size_average is not None or reduce is not None
    reduction = reduction_of(size_average, reduce, reduction, valid=REDUCTIONS + ("batchmean",))
    if reduction == "mean" and not legacy:
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size. "
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition.",
                      stacklevel=2)
    x, t = _float(input), _float(target)
    if log_target:
        loss = exp(t) * (t - x)
    else:
        loss = where(eq(t, 0.0), const(0.0, t.dtype), t * log(t)) - t * x
    if reduction != "batchmean":
        return _REDUCE[reduction](loss)
    if not x._shape:
        return sum(loss)
    n = x._shape[0]
    return sum(loss) / (float(n) if isinstance(n, int) else reshape(cast(dim_size(x, 0), x.dtype), ()))


# ----- margins and embeddings ---------------------------------------------------------------------
def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """max(0, -t*(x1 - x2) + margin) (Clip)."""
    reduction = reduction_of(size_average, reduce, reduction)
    x1, x2, t = _float(input1), _float(input2), as_tensor(target)
    if not len(x1._shape) == len(x2._shape) == len(t._shape):
        raise shape_error(f"margin_ranking_loss: all input tensors should have the same number of dimensions, got "
                          f"input1 {_fmt(x1._shape)}, input2 {_fmt(x2._shape)}, target {_fmt(t._shape)}")
    return _REDUCE[reduction](clamp(-cast(t, x1.dtype) * (x1 - x2) + float(margin), min=0.0))


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """x where t == 1, max(0, margin - x) where t == -1 (torch's where-sum, so other targets count both)."""
    reduction = reduction_of(size_average, reduce, reduction)
    x, t = _float(input), as_tensor(target)
    zero = const(0.0, x.dtype)
    loss = where(ne(t, 1), clamp(float(margin) - x, min=0.0), zero) + where(ne(t, -1), x, zero)
    return _REDUCE[reduction](loss)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-t*x)) as Softplus(-t*x); no gradient w.r.t. the target (as torch)."""
    reduction = reduction_of(size_average, reduce, reduction)
    x = _float(input)
    t = stop(cast(as_tensor(target), x.dtype))
    return _REDUCE[reduction](_softplus(-t * x))


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Mean over classes of t*softplus(-x) + (1-t)*softplus(x) (times weight), per sample."""
    reduction = reduction_of(size_average, reduce, reduction)
    x, t = _float(input), _float(target)
    loss = t * _softplus(-x) + (1.0 - t) * _softplus(x)
    if weight is not None:
        loss = loss * cast(as_tensor(weight), x.dtype)
    c = x._shape[-1]
    return _REDUCE[reduction](sum(loss, -1) / float(c))


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """sum over target classes j (up to the first -1) and non-target classes i of
    max(0, 1 - (x[j] - x[i])), divided by C. Built as a (.., J, I) hinge grid with masks."""
    reduction = reduction_of(size_average, reduce, reduction)
    x, t = _float(input), as_tensor(target)
    if len(x._shape) not in (1, 2) or not _same_shape(t._shape, x._shape):
        raise shape_error(f"multilabel_margin_loss: expected a 1-D or 2-D input and a target of the same shape, "
                          f"got input {_fmt(x._shape)} and target {_fmt(t._shape)}")
    c = x._shape[-1]
    t = cast(t, np.int64)
    valid = logical_not(gt(cumsum(cast(lt(t, 0), np.int64), -1), 0))    # before the first -1
    safe = where(valid, t, const(0, np.int64))
    member = logical_and(eq(unsqueeze(safe, -1), const(np.arange(c), np.int64)), unsqueeze(valid, -1))
    is_target = amax(cast(member, x.dtype), -2)                          # (.., C): class i is a target
    x_j = gather(x, -1, safe)                                            # (.., J)
    hinge = relu(unsqueeze(x, -2) - unsqueeze(x_j, -1) + 1.0)            # (.., J, I)
    mask = unsqueeze(cast(valid, x.dtype), -1) * unsqueeze(1.0 - is_target, -2)
    return _REDUCE[reduction](sum(hinge * mask, [-2, -1]) / float(c))


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """1 - cos(x1, x2) where t == 1, max(0, cos - margin) where t == -1 (torch's formula, eps 1e-12)."""
    reduction = reduction_of(size_average, reduce, reduction)
    x1, x2, t = _float(input1), _float(input2), as_tensor(target)
    td = len(t._shape)
    if td not in (0, 1) or len(x1._shape) != td + 1 or len(x2._shape) != td + 1:
        raise shape_error(f"cosine_embedding_loss: a {td}-D target expects {td + 1}-D inputs (0-D or 1-D target), "
                          f"got input1 {_fmt(x1._shape)}, input2 {_fmt(x2._shape)}, target {_fmt(t._shape)}")
    prod = sum(x1 * x2, td)
    mag1 = sum(x1 * x1, td) + 1e-12
    mag2 = sum(x2 * x2, td) + 1e-12
    cos = prod / sqrt(mag1 * mag2)
    zero = const(0.0, x1.dtype)
    loss = where(eq(t, 1), 1.0 - cos, zero) + where(eq(t, -1), clamp(cos - float(margin), min=0.0), zero)
    return _REDUCE[reduction](loss)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None, reduction="mean"):
    """sum over i != y of max(0, margin - x[y] + x[i])^p * weight[y], divided by C (GatherElements, Relu)."""
    reduction = reduction_of(size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError(f"only p == 1 and p == 2 supported, got p={p}")
    x, t = _float(input), cast(as_tensor(target), np.int64)
    if weight is not None and len(as_tensor(weight)._shape) != 1:
        raise ValueError(f"weight must be one-dimensional, got shape {_fmt(as_tensor(weight)._shape)}")
    if len(x._shape) not in (1, 2) or not _same_shape(t._shape, x._shape[:-1]):
        raise shape_error(f"multi_margin_loss: expected input (N, C) or (C,) and target (N,) or (), got input "
                          f"{_fmt(x._shape)} and target {_fmt(t._shape)}")
    c = x._shape[-1]
    ty = unsqueeze(t, -1)
    z = relu(x - gather(x, -1, ty) + float(margin))
    if p == 2:
        z = z * z
    z = where(eq(ty, const(np.arange(c), np.int64)), const(0.0, x.dtype), z)
    if weight is not None:
        z = z * unsqueeze(index_select(cast(as_tensor(weight), x.dtype), 0, t), -1)
    return _REDUCE[reduction](sum(z, -1) / float(c))


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """max(0, margin + d(a, p) - d(a, n)) with pairwise p-norm distances; swap uses min(d(a, n), d(p, n))."""
    reduction = reduction_of(size_average, reduce, reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    a, pos, neg = _float(anchor), _float(positive), _float(negative)
    if not len(a._shape) == len(pos._shape) == len(neg._shape):
        raise shape_error(f"triplet_margin_loss: the anchor, positive and negative tensors are expected to have "
                          f"the same number of dimensions, got {_fmt(a._shape)}, {_fmt(pos._shape)}, "
                          f"{_fmt(neg._shape)}")
    d_pos = pairwise_distance(a, pos, p, eps)
    d_neg = pairwise_distance(a, neg, p, eps)
    if swap:
        d_neg = minimum(d_neg, pairwise_distance(pos, neg, p, eps))
    return _REDUCE[reduction](clamp(d_pos - d_neg + float(margin), min=0.0))
