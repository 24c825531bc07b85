"""Embedding lookups (torch.nn.functional.embedding, embedding_bag): one Gather of weight rows,
with torch's gradient rules for padding_idx and scale_grad_by_freq written as gradient-only
scalings (stop(y) + (y - stop(y)) * s), and max_norm's in-place renormalization of `weight`
as a buffer effect applied when the result is first evaluated."""
import numpy as np
from onnx import numpy_helper

from ..tensor import apply, check_value, const, no_grad
from .autodiff_helpers import stop
from .core import as_tensor, cast, add, sub, mul, div, eq, ne, gt, lt, where, maximum, logical_and, ones_of
from .norm import add_buffer_updates, buffer_value
from .reduce import sum as _sum, amax, norm
from .shape import index_select, reshape, unsqueeze, shape_tensor, getitem

__all__ = ["embedding", "embedding_bag"]

_RENORM_EPS = 1e-7  # torch's embedding_renorm_: scale = max_norm / (norm + 1e-7)


def _filled(dims, value, dtype):
    """ConstantOfShape: `value` everywhere, dims may be symbolic."""
    v = numpy_helper.from_array(np.full((1,), value, dtype))
    shape = tuple(d if isinstance(d, int) else d.name for d in dims)
    return apply("ConstantOfShape", [shape_tensor(dims)], {"value": v}, types=[(np.dtype(dtype), shape)])


def _grad_scaled(y, scale):
    """Value y, gradient scaled by `scale` (broadcast over y's last dim)."""
    y0 = stop(y)
    return add(y0, mul(sub(y, y0), scale))


def check_padding_idx(padding_idx, num_embeddings):
    """padding_idx as a row number in [0, num_embeddings) (negative counts from the end), or None."""
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"padding_idx must be within num_embeddings ({num_embeddings}), got {padding_idx}")
    return padding_idx % num_embeddings


def _renormed(weight, idx, rows, max_norm, norm_type):
    """torch's embedding_renorm_: rows referenced by idx whose norm exceeds max_norm are scaled to
    max_norm. The looked-up rows take the new values (gradient as a plain lookup) and `weight`
    gets them in place when the result is evaluated."""
    with no_grad():
        n = norm(rows, norm_type, -1, keepdim=True)
        shrunk = mul(rows, where(gt(n, max_norm), div(float(max_norm), add(n, _RENORM_EPS)), 1.0))
        base = buffer_value(weight)
        wn = norm(base, norm_type, -1, keepdim=True)
        flat = reshape(idx, -1)
        hits = apply("ScatterElements", [_filled([base.shape[0]], 0.0, base.dtype), flat, ones_of(flat, base.dtype)],
                     {"axis": 0, "reduction": "add"}, types=[(base.dtype, (base._shape[0],))])
        shrink = logical_and(gt(unsqueeze(hits, 1), 0.0), gt(wn, max_norm))
        new_weight = where(shrink, mul(base, div(float(max_norm), add(wn, _RENORM_EPS))), base)
    out = add(shrunk, sub(rows, stop(rows))) if rows.requires_grad else shrunk
    return out, (weight, new_weight)


def _freq_scale(all_idx, idx, num_embeddings, dtype):
    """1 / (count of each looked-up index among all_idx): torch's scale_grad_by_freq."""
    flat = reshape(cast(all_idx, np.int64), -1)
    counts = apply("ScatterElements", [_filled([num_embeddings], 0.0, dtype), flat, ones_of(flat, dtype)],
                   {"axis": 0, "reduction": "add"}, types=[(np.dtype(dtype), (num_embeddings,))])
    return div(1.0, unsqueeze(index_select(counts, 0, idx), -1))


def _lookup(weight, idx, padding_idx, max_norm, norm_type, freq_idx):
    """Rows of weight at idx with torch's gradient semantics; returns (rows, weight update or None)."""
    rows = index_select(weight, 0, idx)
    update = None
    if max_norm is not None:
        rows, update = _renormed(weight, idx, rows, max_norm, norm_type)
    if not rows.requires_grad:
        return rows, update
    if freq_idx is not None:
        scale = _freq_scale(freq_idx, idx, weight._shape[0], weight.dtype)
        if padding_idx is not None:
            scale = mul(scale, unsqueeze(cast(ne(idx, padding_idx), weight.dtype), -1))
        return _grad_scaled(rows, scale), update
    if padding_idx is not None:
        return where(unsqueeze(eq(idx, padding_idx), -1), stop(rows), rows), update
    return rows, update


def _with_update(out, update):
    return add_buffer_updates(out, [update]) if update is not None else out


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    """weight[input] (one Gather). padding_idx: that row gets no gradient. max_norm: looked-up rows
    are renormalized to at most max_norm, in the output and (in place, as torch) in `weight`.
    scale_grad_by_freq: each row's gradient is divided by its count in `input`."""
    weight = as_tensor(weight)
    idx = cast(as_tensor(input), np.int64)
    padding_idx = check_padding_idx(padding_idx, weight._shape[0])
    rows, update = _lookup(weight, idx, padding_idx, max_norm, norm_type, idx if scale_grad_by_freq else None)
    return _with_update(rows, update)


_MODES = ("sum", "mean", "max")


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """Sums, means or maxima of bags of embedding rows. 2-D input: one bag per row (Gather + masked
    ReduceSum/ReduceMax). 1-D input with offsets (values may be computed or graph inputs): bag ids
    from the offsets (ScatterElements + CumSum), then ScatterND(add) per bag. padding_idx entries
    are left out of every bag; empty bags give zeros."""
    if mode not in _MODES:
        raise ValueError(f"embedding_bag: mode has to be one of {_MODES}, got {mode!r}")
    weight = as_tensor(weight)
    idx = cast(as_tensor(input), np.int64)
    padding_idx = check_padding_idx(padding_idx, weight._shape[0])
    if per_sample_weights is not None:
        if mode != "sum":
            raise ValueError(f"embedding_bag: per_sample_weights is only supported for mode='sum' (got mode={mode!r}); "
                             "use mode='sum'")
        per_sample_weights = cast(as_tensor(per_sample_weights), weight.dtype)
        if tuple(per_sample_weights._shape) != tuple(idx._shape):
            raise ValueError(f"embedding_bag: per_sample_weights of shape {tuple(per_sample_weights._shape)} must match "
                             f"input of shape {tuple(idx._shape)}")
    if len(idx._shape) == 2:
        if offsets is not None:
            raise ValueError("embedding_bag: if input is 2D, then offsets has to be None, as input is treated as a "
                             "mini-batch of fixed length sequences")
    elif len(idx._shape) == 1:
        if offsets is None:
            raise ValueError("embedding_bag: offsets has to be a 1D Tensor when input is 1D")
    else:
        raise ValueError(f"embedding_bag: input has to be 1D or 2D, got shape {tuple(idx._shape)}")
    rows, update = _lookup(weight, idx, None, max_norm, norm_type, idx if scale_grad_by_freq else None)
    valid = ne(idx, padding_idx) if padding_idx is not None else None
    if per_sample_weights is not None:
        rows = mul(rows, unsqueeze(per_sample_weights, -1))
    bag = _bag_rows if len(idx._shape) == 2 else _bag_segments
    out = bag(rows, valid, mode, offsets, include_last_offset)
    return _with_update(out, update)


def _bag_rows(rows, valid, mode, offsets, include_last_offset):
    """(B, L, D) rows, one bag per row."""
    if mode == "max":
        if valid is None:
            return amax(rows, 1)
        best = amax(where(unsqueeze(valid, -1), rows, float("-inf")), 1)
        return where(unsqueeze(_sum(valid, 1) > 0, -1), best, 0.0)
    kept = rows if valid is None else where(unsqueeze(valid, -1), rows, 0.0)
    total = _sum(kept, 1)
    if mode == "sum":
        return total
    count = float(rows._shape[1]) if valid is None else maximum(cast(_sum(valid, 1, keepdim=True), rows.dtype), 1.0)
    return div(total, count)


def _bag_segments(rows, valid, mode, offsets, include_last_offset):
    """(n, D) rows of a flat input; bag b spans offsets[b] .. offsets[b+1] (the last bag runs to
    the end unless include_last_offset, where offsets[-1] closes it)."""
    off = cast(as_tensor(offsets), np.int64)
    if len(off._shape) != 1:
        raise ValueError(f"embedding_bag: offsets has to be a 1D Tensor, got shape {tuple(off._shape)}")
    n = rows.shape[0]
    check_value(off, lambda t: _check_static_offsets(t, n))
    starts = getitem(off, slice(None, -1)) if include_last_offset else off
    if include_last_offset:
        valid = _before(off, n) if valid is None else logical_and(valid, _before(off, n))
    seg = _segment_ids(starts, n)
    bags = starts.shape[0]
    index = unsqueeze(seg, -1)
    out_type = [(rows.dtype, (starts._shape[0], rows._shape[1]))]

    def per_bag(values, reduction="add", init=0.0):
        """ScatterND of (n, D) values into (bags, D), reduced per bag."""
        return apply("ScatterND", [_filled([bags, rows.shape[1]], init, rows.dtype), index, values],
                     {"reduction": reduction}, types=out_type)

    mask = None if valid is None else unsqueeze(valid, -1)
    if mode == "max":  # the maxima, then the mean of the entries equal to them: differentiable with add-scatters
        with no_grad():
            masked = rows if mask is None else where(mask, rows, float("-inf"))
            best = per_bag(masked, "max", float("-inf"))
            hit = eq(masked, apply("GatherND", [best, index], types=[(rows.dtype, rows._shape)]))
            hit = hit if mask is None else logical_and(hit, mask)  # an all-padding bag's -inf "maximum"
        return div(per_bag(where(hit, rows, 0.0)), maximum(per_bag(cast(hit, rows.dtype)), 1.0))
    total = per_bag(rows if mask is None else where(mask, rows, 0.0))
    if mode == "sum":
        return total
    ones = _filled([n, 1], 1.0, rows.dtype) if mask is None else cast(mask, rows.dtype)
    count = apply("ScatterND", [_filled([bags, 1], 0.0, rows.dtype), index, ones], {"reduction": "add"},
                  types=[(rows.dtype, (starts._shape[0], 1))])
    return div(total, maximum(count, 1.0))


def _segment_ids(starts, n):
    """Bag id of every position: a running count (CumSum) of the bag starts after the first."""
    later = getitem(starts, slice(1, None))
    size = n + 1
    marks = apply("ScatterElements", [_filled([size], 0, np.int64), later, ones_of(later, np.int64)],
                  {"axis": 0, "reduction": "add"}, types=[(np.dtype(np.int64), (_key(size),))])
    seg = apply("CumSum", [marks, const(0, np.int64)], types=[(np.dtype(np.int64), marks._shape)])
    return getitem(seg, slice(None, -1))


def _before(off, n):
    """Positions before offsets[-1]: with include_last_offset, later positions belong to no bag."""
    limit = reshape(n.tensor(), ()) if hasattr(n, "tensor") else const(n, np.int64)
    pos = apply("Range", [const(0, np.int64), limit, const(1, np.int64)], types=[(np.dtype(np.int64), (_key(n),))])
    return lt(pos, getitem(off, -1))


def _key(d):
    return d if isinstance(d, int) else d.name


def _check_static_offsets(off, n):
    """torch's checks, when the offsets are known at build time."""
    if off._value is None or off.kind == "input":
        return
    v = np.asarray(off._value)
    if v.size and v[0] != 0:
        raise ValueError(f"embedding_bag: offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to "
                         f"start from position 0. However, got {int(v[0])}")
    if v.size and isinstance(n, int) and v[-1] > n:
        raise ValueError(f"embedding_bag: offsets[-1] can not be greater than input's length ({n}), but got {int(v[-1])}")
    if np.any(np.diff(v) < 0):
        raise ValueError(f"embedding_bag: offsets have to be non-decreasing, got {v.tolist()}")
