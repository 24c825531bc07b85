"""Identity, Linear, Bilinear, Flatten, Unflatten (torch/nn/modules/linear.py, flatten.py)."""
import math

import numpy as np

from .. import dtypes, ops
from ..dims import format_shape
from . import init
from .module import Module, ShapeError, _to_numpy
from .parameter import Parameter

__all__ = ["Identity", "Linear", "Bilinear", "LazyLinear", "Flatten", "Unflatten"]


def _weight_and_bias(module, weight_shape, bias, dtype):
    """Register zero `weight` of weight_shape and `bias` (weight_shape[0],) or None (bias=False), in
    `dtype` (float32 by default); reset_parameters then fills them."""
    dt = dtypes.as_dtype(dtype or np.float32)
    module.weight = Parameter(np.zeros(weight_shape, dt))
    module.register_parameter("bias", Parameter(np.zeros(weight_shape[:1], dt)) if bias else None)


def _fmt(shape):
    """A shape for error messages; `?` when the rank is unknown."""
    return "?" if shape is None else format_shape(shape)


class Identity(Module):
    """Returns its input; constructor arguments are accepted and ignored (torch.nn.Identity)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b (Gemm for 2-D inputs, else MatMul + Add); weight (out_features, in_features),
    torch's kaiming-uniform init."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        _weight_and_bias(self, (out_features, in_features), bias, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        x = ops.as_tensor(input)
        if not x._shape or (isinstance(x._shape[-1], int) and x._shape[-1] != self.in_features):
            raise ShapeError(f"expected input with last dim {self.in_features} (in_features), got shape {_fmt(x._shape)}")
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class LazyLinear(Linear):
    """A Linear whose in_features comes from the first input (or from a loaded state dict); it then
    becomes a plain Linear, as in torch."""
    cls_to_become = Linear

    def __init__(self, out_features, bias=True, device=None, dtype=None):
        Module.__init__(self)
        self.in_features, self.out_features = 0, out_features
        self._lazy = (bool(bias), dtype)
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)

    def reset_parameters(self):
        """Nothing to initialize before the first input (torch's LazyLinear skips it too)."""
        if self.weight is not None:
            super().reset_parameters()

    def _materialize(self, in_features):
        """Create weight (and bias) for `in_features` with torch's init, then become a Linear."""
        has_bias, dtype = self._lazy
        del self._lazy
        self.in_features = in_features
        _weight_and_bias(self, (self.out_features, in_features), has_bias, dtype)
        self.reset_parameters()
        self.__class__ = self.cls_to_become

    def forward(self, input):
        x = ops.as_tensor(input)
        if not x._shape or not isinstance(x._shape[-1], int):
            raise ShapeError(f"LazyLinear needs an input whose last dim is known, got shape {_fmt(x._shape)}")
        self._materialize(x._shape[-1])
        return Linear.forward(self, x)

    def _load_from_state_dict(self, state_dict, prefix, assign, missing, errors):
        """Take in_features from the checkpoint's weight, then load as a Linear."""
        if prefix + "weight" in state_dict:
            self._materialize(int(_to_numpy(state_dict[prefix + "weight"]).shape[-1]))
            return Module._load_from_state_dict(self, state_dict, prefix, assign, missing, errors)
        keys = [prefix + "weight"] + ([prefix + "bias"] if self._lazy[0] else [])
        missing.extend(k for k in keys if k not in state_dict)
        return keys

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self._lazy[0]}"


class Bilinear(Module):
    """y = x1^T A x2 + b (one Einsum + Add); weight (out, in1, in2), init uniform(+-1/sqrt(in1))."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        _weight_and_bias(self, (out_features, in1_features, in2_features), bias, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.weight._shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        x1, x2 = ops.as_tensor(input1), ops.as_tensor(input2)
        for x, n, name in ((x1, self.in1_features, "input1"), (x2, self.in2_features, "input2")):
            if not x._shape or (isinstance(x._shape[-1], int) and x._shape[-1] != n):
                raise ShapeError(f"expected {name} with last dim {n}, got shape {_fmt(x._shape)}")
        if len(x1._shape) != len(x2._shape) or any(isinstance(a, int) and isinstance(b, int) and a != b
                                                   for a, b in zip(x1._shape[:-1], x2._shape[:-1])):
            raise ShapeError(f"input1 and input2 must have the same batch dims, got shapes {_fmt(x1._shape)} "
                             f"and {_fmt(x2._shape)}")
        return ops.bilinear(x1, x2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Flatten(Module):
    """Flattens dims start_dim..end_dim into one (Flatten or Reshape)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return ops.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dim `dim` into `unflattened_size` (a Reshape; one entry may be -1)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if not isinstance(dim, int):
            raise TypeError(f"Unflatten: dim must be an int (named tensors are not supported), got {type(dim).__name__}")
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"unflattened_size must be a tuple of ints, but found type {type(unflattened_size).__name__}")
        for i, d in enumerate(unflattened_size):
            if not isinstance(d, int):
                raise TypeError(f"unflattened_size must be tuple of ints, but found element of type "
                                f"{type(d).__name__} at pos {i}")
        self.dim, self.unflattened_size = dim, unflattened_size

    def forward(self, input):
        x = ops.as_tensor(input)
        r = len(x._shape)
        if not -r <= self.dim < r:
            raise ShapeError(f"dim {self.dim} is out of range for an input of shape {_fmt(x._shape)}")
        n = x._shape[self.dim]
        known = math.prod(d for d in self.unflattened_size if d != -1)
        if isinstance(n, int) and (n % known if -1 in self.unflattened_size else n != known):
            raise ShapeError(f"unflattened_size {tuple(self.unflattened_size)} does not fit dim {self.dim} "
                             f"of size {n} (input shape {_fmt(x._shape)})")
        return ops.unflatten(x, self.dim, tuple(self.unflattened_size))

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
