"""Pooling layers (torch/nn/modules/pooling.py): Max/Avg/LP pools, max unpooling and adaptive pools in
1d/2d/3d with torch's arguments; each forward calls the matching onnxkit.ops function."""
from .. import ops
from ..ops.conv import ntuple
from ..ops.pool import pool_args
from .module import Module, dim_variants

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
           "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
           "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "LPPool1d", "LPPool2d", "LPPool3d"]


def _fn(prefix, n):
    return getattr(ops, f"{prefix}{n}d")


class _MaxPoolNd(Module):
    """Arguments as given (stride defaults to kernel_size); checked at construction."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        pool_args(kernel_size, stride, padding, dilation, self._n)  # argument errors at construction
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):
        return _fn("max_pool", self._n)(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                        ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class _MaxUnpoolNd(Module):
    """Arguments kept as n-tuples, as torch's MaxUnpool layers keep them."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        n = self._n
        self.kernel_size = ntuple(kernel_size, n, "kernel_size")
        self.stride = ntuple(stride if stride is not None else kernel_size, n, "stride")
        self.padding = ntuple(padding, n, "padding")

    def forward(self, input, indices, output_size=None):
        return _fn("max_unpool", self._n)(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AvgPoolNd(Module):
    """Arguments as given (stride defaults to kernel_size); checked at construction."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        pool_args(kernel_size, stride, padding, 1, self._n)
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        extra = () if self._n == 1 else (self.divisor_override,)
        return _fn("avg_pool", self._n)(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                        self.count_include_pad, *extra)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AdaptiveMaxPoolNd(Module):
    """output_size: an int or a tuple whose None entries keep the input size."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):
        return _fn("adaptive_max_pool", self._n)(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class _AdaptiveAvgPoolNd(Module):
    """output_size: an int or a tuple whose None entries keep the input size."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return _fn("adaptive_avg_pool", self._n)(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class _LPPoolNd(Module):
    """norm_type p, kernel_size, stride (None: kernel_size) and ceil_mode, as torch keeps them."""

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        pool_args(kernel_size, stride, 0, 1, self._n)
        self.norm_type, self.kernel_size, self.stride, self.ceil_mode = norm_type, kernel_size, stride, ceil_mode

    def forward(self, input):
        return _fn("lp_pool", self._n)(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")


MaxPool1d, MaxPool2d, MaxPool3d = dim_variants(
    _MaxPoolNd, "MaxPool", "Max over windows of the last {n} dim(s): ONNX MaxPool (with Indices for return_indices).")
MaxUnpool1d, MaxUnpool2d, MaxUnpool3d = dim_variants(
    _MaxUnpoolNd, "MaxUnpool", "Inverse of MaxPool{n}d: values scattered to their indices, zeros elsewhere.")
AvgPool2d, AvgPool3d = dim_variants(
    _AvgPoolNd, "AvgPool", "Mean over windows of the last {n} dims: ONNX AveragePool.", dims=(2, 3))
AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d = dim_variants(
    _AdaptiveMaxPoolNd, "AdaptiveMaxPool", "Max over output_size bins of the last {n} dim(s).")
AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d = dim_variants(
    _AdaptiveAvgPoolNd, "AdaptiveAvgPool", "Mean over output_size bins of the last {n} dim(s).")
LPPool1d, LPPool2d, LPPool3d = dim_variants(
    _LPPoolNd, "LPPool", "Power-average pooling over the last {n} dim(s): (sum of x^p over a window)^(1/p).")


class AvgPool1d(_AvgPoolNd):
    """Mean over windows of the last dim: ONNX AveragePool (no divisor_override, as in torch)."""
    _n = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        # torch keeps AvgPool1d's arguments as 1-tuples
        self.kernel_size, self.stride, self.padding = (ntuple(v, 1, "") for v in (kernel_size, self.stride, padding))
