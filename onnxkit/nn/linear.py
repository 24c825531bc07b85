"""Identity, Linear, Bilinear, Flatten, Unflatten (torch/nn/modules/linear.py, flatten.py)."""
import math

import numpy as np

from .. import ops
from . import init
from .module import Module, ShapeError
from .parameter import Parameter

__all__ = ["Identity", "Linear", "Bilinear", "LazyLinear", "Flatten", "Unflatten"]


def _empty(*shape, dtype=None):
    return Parameter(np.zeros(shape, dtype=np.dtype(dtype or np.float32)))


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features), torch's kaiming-uniform init."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty(out_features, in_features, dtype=dtype)
        self.bias = _empty(out_features, dtype=dtype) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        x = ops.as_tensor(x)
        if not x._shape or x._shape[-1] != self.in_features and isinstance(x._shape[-1], int):
            raise ShapeError(f"expected input with last dim {self.in_features} (in_features), got shape "
                             f"{tuple(x._shape) if x._shape is not None else '?'}")
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class LazyLinear(Linear):
    def __init__(self, out_features, bias=True, device=None, dtype=None):
        Module.__init__(self)
        self.in_features, self.out_features, self._has_bias = 0, out_features, bias
        self.weight = None
        self.bias = None

    def forward(self, x):
        if self.weight is None:
            Linear.__init__(self, int(x._shape[-1]), self.out_features, self._has_bias)
        return Linear.forward(self, x)


class Bilinear(Module):
    """y = x1^T A x2 + b; weight (out, in1, in2), init uniform(+-1/sqrt(in1))."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        self.weight = _empty(out_features, in1_features, in2_features, dtype=dtype)
        self.bias = _empty(out_features, dtype=dtype) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.in1_features)
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x1, x2):
        for x, n, name in ((x1, self.in1_features, "input1"), (x2, self.in2_features, "input2")):
            if isinstance(x._shape[-1], int) and x._shape[-1] != n:
                raise ShapeError(f"expected {name} with last dim {n}, got shape {tuple(x._shape)}")
        return ops.bilinear(x1, x2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return ops.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        return ops.unflatten(x, self.dim, self.unflattened_size)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
