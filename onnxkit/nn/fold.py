"""Fold and Unfold (torch/nn/modules/fold.py): col2im and im2col as layers over ops.fold/ops.unfold."""
from .. import ops
from .module import Module, shape_errors

__all__ = ["Fold", "Unfold"]


class Fold(Module):
    """Combines sliding local blocks (N, C * prod(kernel_size), L) into an (N, C, *output_size) image,
    summing overlaps (torch.nn.Fold)."""

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input):
        with shape_errors():
            return ops.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


class Unfold(Module):
    """Extracts sliding local blocks of an (N, C, H, W) input as columns (N, C * prod(kernel_size), L)
    (torch.nn.Unfold)."""

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, input):
        with shape_errors():
            return ops.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, stride={self.stride}"
