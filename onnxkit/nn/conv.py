"""Conv1d/2d/3d and ConvTranspose1d/2d/3d (torch/nn/modules/conv.py): an N-d base class with torch's
arguments, parameter layouts and default init; the 1d/2d/3d classes only fix N."""
import math

import numpy as np

from .. import ops
from ..ops.conv import batched, check_channels, ntuple
from . import init
from .module import Module, dim_variants
from .parameter import Parameter

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """Shared constructor, init and repr; subclasses set `_n` (spatial dims) and `_transposed`."""
    _n = None
    _transposed = False

    def _setup(self, in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, groups,
               bias, padding_mode, dtype):
        n, name = self._n, type(self).__name__
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError(f"in_channels must be divisible by groups (in_channels={in_channels}, groups={groups})")
        if out_channels % groups != 0:
            raise ValueError(f"out_channels must be divisible by groups (out_channels={out_channels}, groups={groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {set(_PADDING_MODES)}, "
                             f"but got padding_mode={padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {name}')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = ntuple(kernel_size, n, "kernel_size")
        self.stride = ntuple(stride, n, "stride")
        self.dilation = ntuple(dilation, n, "dilation")
        if isinstance(padding, str):
            if self._transposed:
                raise ValueError(f"{name} does not support string padding ({padding!r})")
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = ntuple(padding, n, "padding")
        self.output_padding = ntuple(output_padding, n, "output_padding")
        self.transposed, self.groups, self.padding_mode = self._transposed, groups, padding_mode
        self._reversed_padding_repeated_twice = self._reversed_padding()
        shape = (in_channels, out_channels // groups) if self._transposed else (out_channels, in_channels // groups)
        dt = np.dtype(dtype or np.float32)
        self.weight = Parameter(np.zeros(shape + self.kernel_size, dt))
        if bias:
            self.bias = Parameter(np.zeros((out_channels,), dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _reversed_padding(self):
        """F.pad's argument for padding_mode != 'zeros' (last dim first; 'same' puts the extra at the end)."""
        return [p for pair in reversed(self._padding_tuple()) for p in pair]

    def _padding_tuple(self):
        if self.padding == "valid":
            return [(0, 0)] * self._n
        if self.padding == "same":
            return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(self.kernel_size, self.dilation)]
        return [(p, p) for p in self.padding]

    def reset_parameters(self):
        """torch's default: kaiming_uniform_(a=sqrt(5)) weights, bias uniform(+-1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    """torch's Conv arguments; padding modes other than 'zeros' pad explicitly (ONNX Pad) first."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, 0, groups, bias,
                    padding_mode, dtype)

    def forward(self, input):
        conv = _CONV[self._n]
        if self.padding_mode == "zeros":
            return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        x, _ = batched(input, self._n, f"conv{self._n}d")  # check before padding, so errors show the input
        check_channels(x, self.in_channels, self.weight, self.groups)
        padded = ops.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
        return conv(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _ConvTranspose(_ConvNd):
    """torch's ConvTranspose arguments; forward(input, output_size=None) picks the output_padding."""
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, groups,
                    bias, padding_mode, dtype)

    def _output_padding(self, input, x, output_size):
        """torch's _output_padding: the output_padding that makes the output `output_size` (spatial sizes,
        optionally preceded by the batch and channel entries)."""
        if output_size is None:
            return self.output_padding
        n = self._n
        output_size = [int(v) for v in output_size]
        rank = len(ops.as_tensor(input)._shape)
        non_spatial = rank - n
        if len(output_size) == rank:
            output_size = output_size[non_spatial:]
        if len(output_size) != n:
            raise ValueError(f"ConvTranspose{n}D: for {rank}D input, output_size must have {n} or "
                             f"{non_spatial + n} elements (got {len(output_size)})")
        spatial = x._shape[2:]
        smallest = [(L - 1) * s - 2 * p + d * (k - 1) + 1
                    for L, s, p, d, k in zip(spatial, self.stride, self.padding, self.dilation, self.kernel_size)]
        largest = [m + s - 1 for m, s in zip(smallest, self.stride)]
        if any(not lo <= want <= hi for want, lo, hi in zip(output_size, smallest, largest)):
            raise ValueError(f"requested an output size of {tuple(output_size)}, but valid sizes range from "
                             f"{smallest} to {largest} (for an input of {tuple(spatial)})")
        return tuple(want - lo for want, lo in zip(output_size, smallest))

    def forward(self, input, output_size=None):
        x, _ = batched(input, self._n, f"conv_transpose{self._n}d")
        output_padding = self._output_padding(input, x, output_size)
        return _CONV_T[self._n](input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                self.groups, self.dilation)


Conv1d, Conv2d, Conv3d = dim_variants(
    _Conv, "Conv", "Convolution over the last {n} dim(s) of (N, C_in, ...) input: ONNX Conv.")
ConvTranspose1d, ConvTranspose2d, ConvTranspose3d = dim_variants(
    _ConvTranspose, "ConvTranspose", "Transposed convolution over the last {n} dim(s): ONNX ConvTranspose.")

_CONV = {1: ops.conv1d, 2: ops.conv2d, 3: ops.conv3d}
_CONV_T = {1: ops.conv_transpose1d, 2: ops.conv_transpose2d, 3: ops.conv_transpose3d}
