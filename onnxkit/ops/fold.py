"""im2col and col2im with torch.nn.functional's signatures: unfold is a grouped Conv whose kernels are
one-hot (each output channel copies one kernel position of one input channel), fold is the matching
ConvTranspose (which sums overlapping patches). Both differentiate through the Conv/ConvTranspose rules."""
import numpy as np

from ..dims import format_shape as fmt
from ..tensor import const
from .conv import conv2d, conv_transpose2d, ntuple, shape_error
from .core import as_tensor
from .shape import reshape, squeeze, unsqueeze

__all__ = ["unfold", "fold"]


def _one_hot_kernels(channels, kernel, dtype):
    """(channels * kh * kw, 1, kh, kw): output channel c * K + k holds a 1 at kernel position k."""
    kh, kw = kernel
    k = kh * kw
    eye = np.eye(k, dtype=dtype).reshape(k, 1, kh, kw)
    return const(np.tile(eye, (channels, 1, 1, 1)), dtype)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding local blocks of a (N, C, H, W) or (C, H, W) input as columns: (N, C * kh * kw, L)."""
    x = as_tensor(input)
    if len(x._shape) not in (3, 4):
        raise shape_error(f"Input Error: Only 3D or 4D input Tensors are supported (got {len(x._shape)}D)")
    unbatched = len(x._shape) == 3
    if unbatched:
        x = unsqueeze(x, 0)
    kernel = ntuple(kernel_size, 2, "kernel_size")
    c = x._shape[1]
    if not isinstance(c, int):
        raise shape_error(f"unfold: the channel dim must be static, got {fmt(x._shape)}")
    cols = conv2d(x, _one_hot_kernels(c, kernel, x.dtype), None, stride, ntuple(padding, 2, "padding"),
                  ntuple(dilation, 2, "dilation"), c)
    out = reshape(cols, x.shape[0], c * kernel[0] * kernel[1], -1)
    return squeeze(out, 0) if unbatched else out


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Columns (N, C * kh * kw, L) or (C * kh * kw, L) back into an (N, C, *output_size) image, summing
    overlapping values (torch.nn.functional.fold, the adjoint of unfold)."""
    x = as_tensor(input)
    if len(x._shape) not in (2, 3):
        raise shape_error(f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are supported "
                          f"(got {len(x._shape)}D)")
    unbatched = len(x._shape) == 2
    if unbatched:
        x = unsqueeze(x, 0)
    size, kernel = ntuple(output_size, 2, "output_size"), ntuple(kernel_size, 2, "kernel_size")
    dil, pad, st = ntuple(dilation, 2, "dilation"), ntuple(padding, 2, "padding"), ntuple(stride, 2, "stride")
    blocks = [(o + 2 * p - d * (k - 1) - 1) // s + 1 for o, k, d, p, s in zip(size, kernel, dil, pad, st)]
    k = kernel[0] * kernel[1]
    ck, length = x._shape[1], x._shape[2]
    if not isinstance(ck, int) or ck % k:
        raise shape_error(f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, "
                          f"but got input.size(1)={ck} and kernel_size={kernel}")
    if isinstance(length, int) and length != blocks[0] * blocks[1]:
        raise shape_error(f"Given output_size={size}, kernel_size={kernel}, dilation={dil}, padding={pad}, "
                          f"stride={st}, expected size of input's dimension 2 to match the calculated number of "
                          f"sliding blocks {blocks[0]} * {blocks[1]} = {blocks[0] * blocks[1]}, but got "
                          f"input.size(2)={length}.")
    c = ck // k
    grid = reshape(x, x.shape[0], ck, blocks[0], blocks[1])
    reach = [(b - 1) * s - 2 * p + d * (kk - 1) + 1 for b, s, p, d, kk in zip(blocks, st, pad, dil, kernel)]
    out_pad = [o - r for o, r in zip(size, reach)]
    y = conv_transpose2d(grid, _one_hot_kernels(c, kernel, x.dtype), None, st, pad, out_pad, c, dil)
    return squeeze(y, 0) if unbatched else y
