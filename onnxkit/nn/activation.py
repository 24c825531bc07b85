"""Activation layers (torch/nn/modules/activation.py): torch's names, constructor arguments and
defaults. `inplace` is accepted and ignored (graphs are pure). Each layer calls onnxkit.ops."""
import inspect

import numpy as np

from .. import dtypes, ops
from . import init as nn_init
from .module import Module, ShapeError
from .parameter import Parameter

__all__ = ["ReLU", "ReLU6", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "PReLU", "LeakyReLU", "RReLU",
           "Threshold", "Hardtanh", "Hardsigmoid", "Hardswish", "Hardshrink", "Sigmoid", "Tanh", "LogSigmoid",
           "Softplus", "Softshrink", "Softsign", "Tanhshrink", "Softmin", "Softmax", "Softmax2d", "LogSoftmax",
           "GLU"]

_REQUIRED = inspect.Parameter.empty


class _Activation(Module):
    """An elementwise layer: stores its constructor arguments and calls `_fn(x, **arguments)`
    (without `inplace`, which the functional forms ignore anyway)."""
    _fn = None
    _params = ()  # (name, default) in torch's order; _REQUIRED marks an argument without default

    def __init__(self, *args, **kwargs):
        super().__init__()
        bound = self._signature().bind(*args, **kwargs)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            setattr(self, name, value)

    @classmethod
    def _signature(cls):
        return inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
                                  for n, d in cls._params])

    def forward(self, input):
        return type(self)._fn(input, **{n: getattr(self, n) for n, _ in self._params if n != "inplace"})

    def extra_repr(self):
        return ", ".join(f"{n}={getattr(self, n)!r}" for n, _ in self._params if n != "inplace" or self.inplace)


def _activation(name, fn, *params, doc="", extra_repr=None):
    """An _Activation subclass calling `fn`, with torch's constructor arguments `params`."""
    attrs = {"_fn": staticmethod(fn), "_params": params, "__doc__": doc, "__module__": __name__}
    if extra_repr is not None:
        attrs["extra_repr"] = extra_repr
    cls = type(name, (_Activation,), attrs)
    cls.__init__ = _with_signature(_Activation.__init__, cls)
    return cls


def _with_signature(init, cls):
    """`init` wrapped so that inspect.signature shows the class's own arguments."""
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + list(cls._signature().parameters.values()))
    return __init__


_INPLACE = ("inplace", False)


def _lambd_repr(self):
    """torch prints Hardshrink's and Softshrink's lambd alone: `Hardshrink(0.5)`."""
    return f"{self.lambd}"


# name: (functional, (argument, torch default), ...)
ReLU = _activation("ReLU", ops.relu, _INPLACE, doc="max(0, x): Relu.")
ReLU6 = _activation("ReLU6", ops.relu6, _INPLACE, doc="min(max(0, x), 6): Clip.")
ELU = _activation("ELU", ops.elu, ("alpha", 1.0), _INPLACE, doc="Elu.")
SELU = _activation("SELU", ops.selu, _INPLACE, doc="Selu.")
CELU = _activation("CELU", ops.celu, ("alpha", 1.0), _INPLACE, doc="Celu.")
GELU = _activation("GELU", ops.gelu, ("approximate", "none"), doc="x*Phi(x) ('none': Erf, 'tanh': Tanh).")
SiLU = _activation("SiLU", ops.silu, _INPLACE, doc="x*sigmoid(x).")
Mish = _activation("Mish", ops.mish, _INPLACE, doc="x*tanh(softplus(x)).")
LeakyReLU = _activation("LeakyReLU", ops.leaky_relu, ("negative_slope", 0.01), _INPLACE, doc="LeakyRelu.")
Threshold = _activation("Threshold", ops.threshold, ("threshold", _REQUIRED), ("value", _REQUIRED), _INPLACE,
                        doc="x if x > threshold else value.")
Hardsigmoid = _activation("Hardsigmoid", ops.hardsigmoid, _INPLACE, doc="relu6(x+3)/6: HardSigmoid.")
Hardswish = _activation("Hardswish", ops.hardswish, _INPLACE, doc="x*relu6(x+3)/6: HardSwish.")
Hardshrink = _activation("Hardshrink", ops.hardshrink, ("lambd", 0.5), doc="x where |x| > lambd, else 0.",
                         extra_repr=_lambd_repr)
Sigmoid = _activation("Sigmoid", ops.sigmoid, doc="Sigmoid.")
Tanh = _activation("Tanh", ops.tanh, doc="Tanh.")
LogSigmoid = _activation("LogSigmoid", ops.logsigmoid, doc="-softplus(-x).")
Softplus = _activation("Softplus", ops.softplus, ("beta", 1.0), ("threshold", 20.0),
                       doc="log(1+exp(beta*x))/beta, linear above threshold.")
Softshrink = _activation("Softshrink", ops.softshrink, ("lambd", 0.5), doc="x - clamp(x, -lambd, lambd).",
                         extra_repr=_lambd_repr)
Softsign = _activation("Softsign", ops.softsign, doc="x/(1+|x|): Softsign.")
Tanhshrink = _activation("Tanhshrink", ops.tanhshrink, doc="x - tanh(x).")
Softmin = _activation("Softmin", ops.softmin, ("dim", None), doc="softmax(-x, dim).")
Softmax = _activation("Softmax", ops.softmax, ("dim", None), doc="Softmax over dim.")
LogSoftmax = _activation("LogSoftmax", ops.log_softmax, ("dim", None), doc="LogSoftmax over dim.")
GLU = _activation("GLU", ops.glu, ("dim", -1), doc="a*sigmoid(b) over the two halves of dim.")


class Hardtanh(_Activation):
    """Clamp to [min_val, max_val]; `min_value`/`max_value` are torch's deprecated spellings."""
    _fn = staticmethod(ops.hardtanh)
    _params = (("min_val", -1.0), ("max_val", 1.0), _INPLACE)

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, min_value=None, max_value=None):
        min_val = min_val if min_value is None else min_value
        max_val = max_val if max_value is None else max_value
        if max_val <= min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
        super().__init__(min_val, max_val, inplace)


class Softmax2d(Module):
    """Softmax over the channel dim (-3) of a (N, C, H, W) or (C, H, W) input."""

    def forward(self, input):
        r = len(ops.as_tensor(input)._shape)
        if r not in (3, 4):
            raise ShapeError(f"Softmax2d: expected input to be 3D or 4D, got {r}D instead")
        return ops.softmax(input, -3)


class PReLU(Module):
    """max(0,x) + weight*min(0,x); `weight` has num_parameters entries (1 or the channel count), init 0.25."""

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(np.empty((num_parameters,), dtypes.as_dtype(dtype or np.float32)))
        self.reset_parameters()

    def reset_parameters(self):
        """Every slope = init (torch's default 0.25)."""
        nn_init.constant_(self.weight, self.init)

    def forward(self, input):
        return ops.prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class RReLU(Module):
    """Randomized leaky ReLU: slope (lower+upper)/2 in eval, a fresh uniform slope per element and
    call in train mode (drawn from onnxkit.random, seeded by ok.manual_seed)."""

    def __init__(self, lower=1.0 / 8, upper=1.0 / 3, inplace=False):
        super().__init__()
        if lower > upper:
            raise ValueError(f"RReLU: lower bound ({lower}) must be less than or equal to the upper bound ({upper})")
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def forward(self, input):
        return ops.rrelu(input, self.lower, self.upper, self.training)

    def extra_repr(self):
        return f"lower={self.lower}, upper={self.upper}" + (", inplace=True" if self.inplace else "")
