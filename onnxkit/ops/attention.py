"""Attention (torch.nn.functional names): scaled_dot_product_attention and multi_head_attention_forward,
emitted from standard ops (MatMul, Softmax; masks as an additive bias through Where and Add).

Every layer goes through the same two helpers: `attention_bias` turns any mix of masks (bool or float
attn_mask in either convention, key_padding_mask, is_causal) into one additive float bias, and `attend`
applies the scale, the bias, softmax, dropout and the value product. As in torch, a query row whose keys
are all masked gives zeros on the scaled_dot_product_attention path and NaN on MultiheadAttention's
need_weights=True path (plain softmax)."""
import math

import numpy as np

from .. import dtypes
from ..tensor import apply, const
from .core import as_tensor, add, cast, mul, where, eq, gt
from .dropout import dropout
from .indexing import _arange, repeat_interleave
from .linalg import matmul
from .nn_linear import linear
from .padding import pad
from .reduce import amax, mean, softmax
from .shape import reshape, permute, transpose, unsqueeze, squeeze, expand, cat, split

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]  # helpers below are for the layers

_NEG_INF = float("-inf")


# ----- the one mask / scale helper ----------------------------------------------------------------
def _known(t):
    """t's value when it is a constant leaf (no graph input, no computation, no gradient), else None."""
    return t.numpy() if t.node is None and t.kind in ("value", "const") and not t.requires_grad else None


def canonical_mask(mask, dtype, true_is_masked, name="attn_mask"):
    """A mask as an additive float bias: 0 where attended, -inf where masked. Bool masks mean
    "masked" where True in torch.nn's convention (`true_is_masked`) and "attend" where True in
    scaled_dot_product_attention's; float masks are added as they are. A constant mask stays a constant."""
    if mask is None:
        return None
    m = as_tensor(mask)
    if m.dtype == np.bool_:
        value = _known(m)
        if value is not None:
            return const(np.where(value == true_is_masked, _NEG_INF, 0.0), dtype)
        masked, kept = (_NEG_INF, 0.0) if true_is_masked else (0.0, _NEG_INF)
        return where(m, const(masked, dtype), const(kept, dtype))
    if not dtypes.is_floating(m.dtype):
        raise TypeError(f"only bool and floating types of {name} are supported, got {m.dtype}")
    return cast(m, dtype)


def causal_bias(L, S, dtype):
    """-inf above the diagonal of an (L, S) grid (query i sees keys 0..i, top-left aligned as torch's
    is_causal): a constant for static sizes, else Greater over two Ranges and a Where."""
    if isinstance(L, int) and isinstance(S, int):
        return const(np.triu(np.full((L, S), _NEG_INF), 1), dtype)
    rows, cols = unsqueeze(_arange(L), 1), unsqueeze(_arange(S), 0)
    return where(gt(cols, rows), const(_NEG_INF, dtype), const(0.0, dtype))


def attention_bias(L, S, dtype, attn_mask=None, is_causal=False, key_padding_mask=None, true_is_masked=False):
    """The additive bias (None when nothing is masked) that combines is_causal, attn_mask (broadcast
    to (..., L, S)) and key_padding_mask ((N, S), shaped (N, 1, 1, S))."""
    parts = []
    if is_causal:
        parts.append(causal_bias(L, S, dtype))
    if attn_mask is not None:
        parts.append(canonical_mask(attn_mask, dtype, true_is_masked))
    if key_padding_mask is not None:
        kpm = canonical_mask(key_padding_mask, dtype, True, "key_padding_mask")
        parts.append(unsqueeze(kpm, [1, 2]) if len(kpm._shape) == 2 else kpm)
    values = [_known(p) for p in parts]
    if parts and all(v is not None for v in values):  # constant masks fold into one constant
        return const(sum(values[1:], values[0]), dtype)
    bias = None
    for p in parts:
        bias = p if bias is None else add(bias, p)
    return bias


def _may_mask_whole_rows(bias):
    """False when the bias is a known value with at least one attended key in every row (a causal or
    constant mask), so the guard against fully masked rows can be left out."""
    if bias is None:
        return False
    value = _known(bias)
    return True if value is None else bool(np.any(np.all(np.isneginf(value), axis=-1)))


def attend(q, k, v, bias=None, scale=None, dropout_p=0.0, zero_masked_rows=True, may_mask_rows=None):
    """softmax(q k^T * scale + bias) v with dropout on the weights; returns (output, weights).
    scale defaults to 1/sqrt(head dim). zero_masked_rows: rows whose keys are all masked give zero
    weights (torch's scaled_dot_product_attention) instead of softmax's NaN (its need_weights path)."""
    q, k, v = as_tensor(q), as_tensor(k), as_tensor(v)
    if scale is None:
        scale = 1.0 / math.sqrt(q._shape[-1])
    scores = matmul(mul(q, float(scale)), transpose(k, -2, -1))
    guard = zero_masked_rows and (_may_mask_whole_rows(bias) if may_mask_rows is None else may_mask_rows)
    if bias is not None:
        if guard:  # finite bias keeps softmax and its gradient finite; dead rows are zeroed after it
            dead = eq(amax(bias, dim=-1, keepdim=True), _NEG_INF)
            bias = apply("Max", [bias, const(np.finfo(bias.dtype).min, bias.dtype)])
        scores = add(scores, bias)
    weights = softmax(scores, dim=-1)
    if bias is not None and guard:
        weights = where(dead, const(0.0, weights.dtype), weights)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return matmul(weights, v), weights


# ----- scaled_dot_product_attention ----------------------------------------------------------------
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(Q K^T * scale + mask) V over the last two dims, torch's semantics: a bool attn_mask
    marks the keys to attend (True), a float one is added; is_causal masks keys after each query;
    dropout applies whenever dropout_p > 0; enable_gqa repeats key/value heads (dim -3) to match
    the query's. Rows with every key masked give zeros."""
    q, k, v = as_tensor(query), as_tensor(key), as_tensor(value)
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    if enable_gqa and len(q._shape) >= 3:
        hq, hk = q._shape[-3], k._shape[-3]
        if isinstance(hq, int) and isinstance(hk, int) and hq != hk:
            if hq % hk:
                raise ValueError(f"scaled_dot_product_attention: number of query heads ({hq}) must be divisible "
                                 f"by the number of key/value heads ({hk}) with enable_gqa=True")
            k, v = repeat_interleave(k, hq // hk, dim=-3), repeat_interleave(v, hq // v._shape[-3], dim=-3)
    bias = attention_bias(q.shape[-2], k.shape[-2], q.dtype, attn_mask, is_causal)
    may_mask_rows = False if (is_causal and attn_mask is None) else None
    out, _ = attend(q, k, v, bias, scale, dropout_p, zero_masked_rows=True, may_mask_rows=may_mask_rows)
    return out


# ----- multi_head_attention_forward ------------------------------------------------------------------
def rows_linear(x, weight, bias=None):
    """linear over the last dim with the leading dims flattened into one: a 2-D Gemm whose weight
    gradient is one GEMM, not a batched product reduced over the batch."""
    x = as_tensor(x)
    if len(x._shape) == 2:
        return linear(x, weight, bias)
    y = linear(reshape(x, -1, x._shape[-1]), weight, bias)
    return reshape(y, *x.shape[:-1], y._shape[-1])


def _in_projection(query, key, value, E, w, b, w_q=None, w_k=None, w_v=None):
    """q, k, v projections: packed (one GEMM + Split for self-attention, q + kv for a shared key and
    value) or separate weights (kdim/vdim), with in_proj_bias split in three."""
    if w_q is not None:
        b_q, b_k, b_v = (None, None, None) if b is None else split(b, E)
        return rows_linear(query, w_q, b_q), rows_linear(key, w_k, b_k), rows_linear(value, w_v, b_v)
    if key is value and query is key:
        return split(rows_linear(query, w, b), E, dim=-1)
    w_q, w_kv = split(w, [E, 2 * E])
    b_q, b_kv = (None, None) if b is None else split(b, [E, 2 * E])
    if key is value:
        return (rows_linear(query, w_q, b_q),) + split(rows_linear(key, w_kv, b_kv), E, dim=-1)
    w_k, w_v = split(w_kv, E)
    b_k, b_v = (None, None) if b is None else split(b_kv, E)
    return rows_linear(query, w_q, b_q), rows_linear(key, w_k, b_k), rows_linear(value, w_v, b_v)


def _to_heads(x, heads, head_dim, batch_first):
    """(L, N, E) or (N, L, E) -> (N, heads, L, head_dim)."""
    s = x.shape
    if batch_first:
        return permute(reshape(x, s[0], s[1], heads, head_dim), 0, 2, 1, 3)
    return permute(reshape(x, s[0], s[1], heads, head_dim), 1, 2, 0, 3)


def _from_heads(x, batch_first):
    """(N, heads, L, head_dim) -> (L, N, E) or (N, L, E)."""
    s = x.shape
    if batch_first:
        return reshape(permute(x, 0, 2, 1, 3), s[0], s[2], s[1] * s[3])
    return reshape(permute(x, 2, 0, 1, 3), s[2], s[0], s[1] * s[3])


def _static_kv(t, N, heads, head_dim, what):
    t = as_tensor(t)
    if isinstance(t._shape[-1], int) and t._shape[-1] != head_dim:
        raise ValueError(f"expecting {what}.size(2) of {head_dim}, but got {t._shape[-1]}")
    return reshape(t, N, heads, -1, head_dim)


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False, *, batch_first=False):
    """torch.nn.functional.multi_head_attention_forward: (L, N, E) query, (S, N, E) key and value, or
    unbatched (L, E); batch_first=True (keyword, onnxkit's) takes (N, L, E) without transposes.
    Returns (output, weights averaged over heads or per head, or None without need_weights)."""
    q_in, k_in, v_in = as_tensor(query), as_tensor(key), as_tensor(value)
    k_in = q_in if key is query else k_in
    v_in = k_in if value is key else v_in
    batched = len(q_in._shape) == 3
    if len(q_in._shape) not in (2, 3):
        raise ValueError(f"query should be unbatched 2D or batched 3D tensor but received {len(q_in._shape)}-D "
                         f"query tensor")
    if not batched:
        same_k, same_v = k_in is q_in, v_in is k_in
        q_in = unsqueeze(q_in, 1)
        k_in = q_in if same_k else unsqueeze(k_in, 1)
        v_in = k_in if same_v else unsqueeze(v_in, 1)
        if key_padding_mask is not None:
            key_padding_mask = unsqueeze(as_tensor(key_padding_mask), 0)
        batch_first = False
    b_ax, s_ax = (0, 1) if batch_first else (1, 0)
    L, N, E = q_in.shape[s_ax], q_in.shape[b_ax], q_in._shape[2]
    if isinstance(E, int) and E != embed_dim_to_check:
        raise ValueError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {E}")
    head_dim = embed_dim_to_check // num_heads
    if head_dim * num_heads != embed_dim_to_check:
        raise ValueError(f"embed_dim {embed_dim_to_check} not divisible by num_heads {num_heads}")
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    causal = is_causal and key_padding_mask is None and not need_weights  # torch then ignores attn_mask
    if causal:
        attn_mask = None
    if use_separate_proj_weight:
        q, k, v = _in_projection(q_in, k_in, v_in, embed_dim_to_check, None, in_proj_bias,
                                 q_proj_weight, k_proj_weight, v_proj_weight)
    else:
        q, k, v = _in_projection(q_in, k_in, v_in, embed_dim_to_check, in_proj_weight, in_proj_bias)
    dt = q.dtype
    am = canonical_mask(attn_mask, dt, True)
    kpm = canonical_mask(key_padding_mask, dt, True, "key_padding_mask")
    if am is not None:
        if len(am._shape) == 3:
            am = reshape(am, N, num_heads, L, -1)
        elif len(am._shape) != 2:
            raise RuntimeError(f"attn_mask's dimension {len(am._shape)} is not supported")
    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise ValueError("bias cannot be added to static key or value.")
        one = [1, 1]
        one[b_ax] = N
        k = cat([k, expand(bias_k, *one, embed_dim_to_check)], dim=s_ax)
        v = cat([v, expand(bias_v, *one, embed_dim_to_check)], dim=s_ax)
        am = None if am is None else pad(am, (0, 1))
        kpm = None if kpm is None else pad(kpm, (0, 1))
    elif (bias_k is None) != (bias_v is None):
        raise ValueError("bias_k and bias_v must both be set or both be None")
    q = _to_heads(q, num_heads, head_dim, batch_first)
    k = _static_kv(static_k, N, num_heads, head_dim, "static_k") if static_k is not None else \
        _to_heads(k, num_heads, head_dim, batch_first)
    v = _static_kv(static_v, N, num_heads, head_dim, "static_v") if static_v is not None else \
        _to_heads(v, num_heads, head_dim, batch_first)
    if add_zero_attn:
        k, v = pad(k, (0, 0, 0, 1)), pad(v, (0, 0, 0, 1))
        am = None if am is None else pad(am, (0, 1))
        kpm = None if kpm is None else pad(kpm, (0, 1))
    S = k.shape[2]
    bias = attention_bias(L, S, dt, am, causal, kpm, true_is_masked=True)
    p = dropout_p if training else 0.0
    out, weights = attend(q, k, v, bias, None, p, zero_masked_rows=not need_weights,
                          may_mask_rows=False if (causal and kpm is None) else None)
    out = rows_linear(_from_heads(out, batch_first), out_proj_weight, out_proj_bias)
    if not need_weights:
        return (out if batched else squeeze(out, 1)), None
    if average_attn_weights:
        weights = mean(weights, 1)
    if not batched:
        return squeeze(out, 1), squeeze(weights, 0)
    return out, weights
