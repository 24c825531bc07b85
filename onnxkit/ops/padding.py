"""pad (torch.nn.functional.pad): ONNX Pad in modes constant/reflect/edge/wrap; negative pads crop with a Slice."""
import numpy as np

from ..tensor import apply, const
from .core import as_tensor
from .shape import getitem

__all__ = ["pad"]

_ONNX_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _per_dim(pad, rank):
    """torch's flat pad list (last dim first) as per-dim (before, after) lists over all dims."""
    before, after = [0] * rank, [0] * rank
    for i in range(len(pad) // 2):
        before[rank - 1 - i], after[rank - 1 - i] = pad[2 * i], pad[2 * i + 1]
    return before, after


def _crop(x, before, after):
    """Remove -before / -after elements where those are negative (a Slice)."""
    if all(b >= 0 and a >= 0 for b, a in zip(before, after)):
        return x
    return getitem(x, tuple(slice(max(-b, 0), a if a < 0 else None) for b, a in zip(before, after)))


def _check_sizes(x, before, after, mode):
    """torch's limits: reflect needs pad < size, circular pad <= size (wrapping around once)."""
    for dim, (b, a) in enumerate(zip(before, after)):
        n = x._shape[dim]
        if not isinstance(n, int):
            continue
        if mode == "reflect" and (b >= n or a >= n):
            raise ValueError(f"Padding size should be less than the corresponding input dimension, but got: "
                             f"padding ({b}, {a}) at dimension {dim} of input {tuple(x._shape)}")
        if mode == "circular" and (b > n or a > n):
            raise ValueError(f"Padding value causes wrapping around more than once: padding ({b}, {a}) at "
                             f"dimension {dim} of input {tuple(x._shape)}")


def _pad_positive(x, before, after, mode, value):
    if not any(before) and not any(after):
        return x
    shape = None
    if all(isinstance(d, int) or b + a == 0 for d, b, a in zip(x._shape, before, after)):
        shape = tuple(d + b + a if isinstance(d, int) else d for d, b, a in zip(x._shape, before, after))
    inputs = [x, const(before + after, np.int64)]
    if mode == "constant" and value:
        inputs.append(const(value, x.dtype))
    return apply("Pad", inputs, {"mode": _ONNX_MODE[mode]}, types=None if shape is None else [(x.dtype, shape)])


def pad(input, pad, mode="constant", value=None):
    """torch.nn.functional.pad: `pad` holds (before, after) pairs from the last dim backwards. One ONNX
    Pad (constant/reflect/edge/wrap); negative entries crop with a Slice (after padding, or before for
    circular, matching torch's index arithmetic)."""
    x = as_tensor(input)
    if mode not in _ONNX_MODE:
        raise ValueError(f"Unrecognised padding mode {mode!r}, expected one of {sorted(_ONNX_MODE)}")
    pad = [int(p) for p in pad]
    rank = len(x._shape)
    if len(pad) % 2:
        raise ValueError("Padding length must be divisible by 2")
    if len(pad) // 2 > rank:
        raise ValueError(f"Padding length should be less than or equal to two times the input dimension but got "
                         f"padding length {len(pad)} and input of dimension {rank}")
    if mode != "constant" and value not in (None, 0):
        raise ValueError(f'Padding mode "{mode}" doesn\'t take in value argument')
    before, after = _per_dim(pad, rank)
    _check_sizes(x, before, after, mode)
    grow_b, grow_a = [max(b, 0) for b in before], [max(a, 0) for a in after]
    if mode == "circular":
        return _pad_positive(_crop(x, before, after), grow_b, grow_a, mode, value)
    return _crop(_pad_positive(x, grow_b, grow_a, mode, value), before, after)
