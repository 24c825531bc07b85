"""Convolutions with torch.nn.functional's signatures: conv1d/2d/3d emit ONNX Conv, conv_transpose1d/2d/3d
emit ONNX ConvTranspose. Shared helpers (argument tuples, unbatched inputs, shape errors) serve pool.py too."""
import numpy as np

from ..dims import format_shape as fmt
from ..tensor import apply
from .core import as_tensor, check_same_dtype
from .padding import pad as pad_fn
from .shape import reshape, squeeze, unsqueeze

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]


# ----- helpers shared with pool.py, activation.py and loss.py ---------------------------------------
def shape_error(msg):
    """A ShapeError (a ValueError; Module.__call__ prefixes the layer path), imported late: nn imports ops."""
    from ..nn.module import ShapeError
    return ShapeError(msg)


def ntuple(value, n, what):
    """An int or a sequence of n ints as a tuple of n ints (torch's _single/_pair/_triple)."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise ValueError(f"{what} must be an int or a tuple of {n} ints, got {value}")
    return value


def batched(x, n, name):
    """x with a batch dim: (C, *spatial) inputs get one (torch's unbatched form); returns (x, unbatched)."""
    x = as_tensor(x)
    rank = len(x._shape) if x._shape is not None else None
    if rank == n + 1:
        return unsqueeze(x, 0), True
    if rank != n + 2:
        got = fmt(x._shape) if x._shape is not None else "of unknown rank"
        raise shape_error(f"expected {n + 1}-D (unbatched) or {n + 2}-D (batched) input to {name}, got shape {got}")
    return x, False


def unbatch(y, unbatched):
    """Undo `batched`: drop the batch dim it added."""
    return squeeze(y, 0) if unbatched else y


def spatial_out(x, sizes):
    """Output shape (N, C, *sizes) where `sizes` entries None mean unknown (left to ONNX inference)."""
    return None if any(s is None for s in sizes) else tuple(x._shape[:2]) + tuple(sizes)


# ----- convolution ----------------------------------------------------------------------------------
def _conv_pads(padding, kernel, dilation, stride, n):
    """(begin, end) pads; 'same' puts the extra element at the end, as torch does."""
    if isinstance(padding, str):
        if padding == "valid":
            return [0] * n, [0] * n
        if padding != "same":
            raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
        if any(s != 1 for s in stride):
            raise ValueError("padding='same' is not supported for strided convolutions")
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return [t // 2 for t in total], [t - t // 2 for t in total]
    p = list(ntuple(padding, n, "padding"))
    if any(v < 0 for v in p):
        raise ValueError(f"negative padding is not supported, got {tuple(p)}")
    return p, p


def check_channels(x, expected, weight, groups):
    """ShapeError unless x (batched) has `expected` channels (symbolic channel counts pass)."""
    c = x._shape[1]
    if isinstance(c, int) and c != expected:
        raise shape_error(f"expected {expected} input channels, got {c} (input shape {fmt(x._shape)}, "
                          f"weight shape {fmt(weight._shape)}, groups={groups})")


def _conv(x, weight, bias, stride, padding, dilation, groups, n):
    """Conv over n spatial dims; torch's unbatched inputs, channel checks and 'same'/'valid' padding."""
    name = f"conv{n}d"
    x, unb = batched(x, n, name)
    weight = as_tensor(weight)
    check_same_dtype(name, x, weight, None if bias is None else as_tensor(bias))
    stride, dilation = ntuple(stride, n, "stride"), ntuple(dilation, n, "dilation")
    if any(s <= 0 for s in stride):
        raise ValueError(f"non-positive stride is not supported, got {stride}")
    if groups <= 0:
        raise ValueError("groups must be a positive integer")
    kernel = tuple(weight._shape[2:])
    check_channels(x, weight._shape[1] * groups, weight, groups)
    begin, end = _conv_pads(padding, kernel, dilation, stride, n)
    padded = [L + b + e if isinstance(L, int) else None for L, b, e in zip(x._shape[2:], begin, end)]
    if any(P is not None and P < d * (k - 1) + 1 for P, k, d in zip(padded, kernel, dilation)):
        raise shape_error(f"padded input size per channel {fmt(padded)} is smaller than the kernel size "
                          f"{fmt(kernel)} (dilation {fmt(dilation)}); input shape {fmt(x._shape)}")
    sizes = [None if P is None else (P - d * (k - 1) - 1) // s + 1
             for P, k, s, d in zip(padded, kernel, stride, dilation)]
    out = spatial_out(x, sizes)
    out = None if out is None else (out[0], weight._shape[0]) + out[2:]
    attrs = {"kernel_shape": list(kernel), "strides": list(stride), "pads": begin + end,
             "dilations": list(dilation), "group": int(groups)}
    inputs = [x, weight] + ([as_tensor(bias)] if bias is not None else [])
    y = apply("Conv", inputs, attrs, types=None if out is None else [(x.dtype, out)])
    return unbatch(y, unb)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv1d: one ONNX Conv."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d: one ONNX Conv."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv3d: one ONNX Conv."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 3)


# ----- transposed convolution -------------------------------------------------------------------------
def _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, n):
    """ConvTranspose over n spatial dims; weight (C_in, C_out / groups, *kernel) as in torch."""
    name = f"conv_transpose{n}d"
    x, unb = batched(x, n, name)
    weight = as_tensor(weight)
    check_same_dtype(name, x, weight, None if bias is None else as_tensor(bias))
    if isinstance(padding, str):
        raise ValueError(f"{name} does not support string padding ({padding!r}); give ints")
    stride, dilation = ntuple(stride, n, "stride"), ntuple(dilation, n, "dilation")
    pad, out_pad = ntuple(padding, n, "padding"), ntuple(output_padding, n, "output_padding")
    if any(s <= 0 for s in stride):
        raise ValueError(f"non-positive stride is not supported, got {stride}")
    if groups <= 0:
        raise ValueError("groups must be a positive integer")
    if any(op >= s and op >= d for op, s, d in zip(out_pad, stride, dilation)):
        raise ValueError(f"output padding must be smaller than either stride or dilation, got output_padding="
                         f"{out_pad}, stride={stride}, dilation={dilation}")
    kernel = tuple(weight._shape[2:])
    check_channels(x, weight._shape[0], weight, groups)
    sizes = []
    for L, k, s, d, p, op in zip(x._shape[2:], kernel, stride, dilation, pad, out_pad):
        size = (L - 1) * s - 2 * p + d * (k - 1) + op + 1 if isinstance(L, int) else None
        if size is not None and size <= 0:
            raise shape_error(f"{name}: output size {size} is too small for input shape {fmt(x._shape)}, "
                              f"kernel {fmt(kernel)}, stride {stride}, padding {pad}")
        sizes.append(size)
    out = spatial_out(x, sizes)
    out = None if out is None else (out[0], weight._shape[1] * groups) + out[2:]
    attrs = {"kernel_shape": list(kernel), "strides": list(stride), "pads": list(pad) * 2,
             "dilations": list(dilation), "group": int(groups), "output_padding": list(out_pad)}
    if any(op >= s for op, s in zip(out_pad, stride)):
        return unbatch(_wide_output_padding(x, weight, bias, attrs, pad, out_pad, out), unb)
    inputs = [x, weight] + ([as_tensor(bias)] if bias is not None else [])
    y = apply("ConvTranspose", inputs, attrs, types=None if out is None else [(x.dtype, out)])
    return unbatch(y, unb)


def _wide_output_padding(x, weight, bias, attrs, pad, out_pad, out):
    """torch allows output_padding < dilation, onnxruntime only < stride: crop less at the end (asymmetric
    pads), zero-pad what the full output lacks, then add the bias."""
    n = len(pad)
    grow = [max(op - p, 0) for p, op in zip(pad, out_pad)]
    attrs = dict(attrs, pads=list(pad) + [max(p - op, 0) for p, op in zip(pad, out_pad)], output_padding=[0] * n)
    inner = None if out is None else out[:2] + tuple(v - g for v, g in zip(out[2:], grow))
    y = apply("ConvTranspose", [x, weight], attrs, types=None if inner is None else [(x.dtype, inner)])
    y = pad_fn(y, [v for g in reversed(grow) for v in (0, g)])
    return y if bias is None else y + reshape(as_tensor(bias), -1, *([1] * n))


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose1d: one ONNX ConvTranspose."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 1)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose2d: one ONNX ConvTranspose."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 2)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose3d: one ONNX ConvTranspose."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 3)
