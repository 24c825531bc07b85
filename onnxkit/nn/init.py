"""torch.nn.init: in-place initializers of leaf Tensors (Parameters), drawn on the host from
ok.manual_seed's stream (or a numpy Generator passed as `generator`); no ONNX ops are emitted."""
import math
import warnings

import numpy as np

from ..tensor import rng as _global_rng
from .module import _set_value

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
           "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
           "sparse_"]

_GAINS = {  # nonlinearity -> gain(param)
    **{name: lambda p: 1.0 for name in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                                         "conv_transpose2d", "conv_transpose3d", "sigmoid")},
    "tanh": lambda p: 5.0 / 3,
    "relu": lambda p: math.sqrt(2.0),
    "leaky_relu": lambda p: math.sqrt(2.0 / (1 + p ** 2)),
    "selu": lambda p: 3.0 / 4,
}


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (torch's table); param is leaky_relu's negative slope."""
    if nonlinearity not in _GAINS:
        raise ValueError(f"Unsupported nonlinearity {nonlinearity}")
    if nonlinearity != "leaky_relu":
        return _GAINS[nonlinearity](param)
    if param is None:
        param = 0.01
    elif isinstance(param, bool) or not isinstance(param, (int, float)):
        raise ValueError(f"negative_slope {param} not a valid number")
    return _GAINS["leaky_relu"](param)


def _shape(t):
    """t's static shape; ValueError for symbolic or unknown shapes."""
    if t._shape is None or not all(isinstance(d, int) for d in t._shape):
        raise ValueError(f"init needs a tensor with a known shape, got {t!r}")
    return tuple(t._shape)


def _rng(generator):
    """`generator` (a numpy Generator) or, when None, the stream of ok.manual_seed."""
    return generator if generator is not None else _global_rng()


def _set(t, arr):
    """Replace t's value by arr (cast to t's dtype, after any pending in-place update of t)."""
    _set_value(t, np.reshape(arr, _shape(t)))
    return t


def _calculate_fan_in_and_fan_out(t):
    """(fan_in, fan_out) of a weight: dims 1 and 0 times the receptive field (torch's helper)."""
    shape = _shape(t)
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(t, mode):
    """fan_in or fan_out by `mode`."""
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    return fan_in if mode == "fan_in" else fan_out


def _is_empty(t):
    """Whether t has no elements (torch warns and leaves it as it is)."""
    if 0 in _shape(t):
        warnings.warn("Initializing zero-element tensors is a no-op")
        return True
    return False


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    return _set(tensor, _rng(generator).uniform(a, b, _shape(tensor)))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std^2)."""
    return _set(tensor, _rng(generator).normal(mean, std, _shape(tensor)))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std^2) truncated to [a, b] (absolute bounds), by rejection sampling."""
    n, gen = math.prod(_shape(tensor)), _rng(generator)
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=2)
    cdf = lambda v: 0.5 * (1 + math.erf((v - mean) / (std * math.sqrt(2))))  # noqa: E731
    accept = max(cdf(b) - cdf(a), 1e-4)
    kept, have = [], 0
    while have < n:
        draw = gen.normal(mean, std, int((n - have) / accept * 1.1) + 16)
        draw = draw[(draw >= a) & (draw <= b)]
        kept.append(draw)
        have += draw.size
    return _set(tensor, np.concatenate(kept)[:n])


def constant_(tensor, val):
    """Fill with val."""
    return _set(tensor, np.full(_shape(tensor), val))


def zeros_(tensor):
    """Fill with 0."""
    return constant_(tensor, 0.0)


def ones_(tensor):
    """Fill with 1."""
    return constant_(tensor, 1.0)


def eye_(tensor):
    """The identity matrix (2-D tensors), preserving the identity of the inputs in Linear layers."""
    if len(_shape(tensor)) != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _set(tensor, np.eye(*_shape(tensor)))


def dirac_(tensor, groups=1):
    """The Dirac delta (3/4/5-D conv weights), preserving the identity of the inputs in conv layers."""
    shape = _shape(tensor)
    if len(shape) not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    if shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    out, per = np.zeros(shape), shape[0] // groups
    centre = tuple(s // 2 for s in shape[2:])
    for g in range(groups):
        for d in range(min(per, shape[1])):
            out[(g * per + d, d) + centre] = 1
    return _set(tensor, out)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound), bound = gain * sqrt(3 / fan) (He et al.); mode picks fan_in or fan_out."""
    if _is_empty(tensor):
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))
    return uniform_(tensor, -math.sqrt(3.0) * std, math.sqrt(3.0) * std, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2), std = gain / sqrt(fan)."""
    if _is_empty(tensor):
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal draw, times gain;
    dims after the first are flattened."""
    shape = _shape(tensor)
    if len(shape) < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if math.prod(shape) == 0:
        return tensor
    rows, cols = shape[0], math.prod(shape[1:])
    flat = _rng(generator).normal(0, 1, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _set(tensor, gain * q)


def sparse_(tensor, sparsity, std=0.01, generator=None):
    """A 2-D N(0, std^2) matrix with ceil(sparsity * rows) zeros in every column (Martens)."""
    shape = _shape(tensor)
    if len(shape) != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    rows, cols = shape
    gen = _rng(generator)
    out = gen.normal(0, std, (rows, cols))
    n_zeros = int(math.ceil(sparsity * rows))
    for c in range(cols):
        out[gen.permutation(rows)[:n_zeros], c] = 0
    return _set(tensor, out)


def _deprecated(fn):
    """torch's old name of `fn` (without the trailing underscore), warning that it is deprecated."""
    def old(*args, **kwargs):
        warnings.warn(f"nn.init.{fn.__name__[:-1]} is now deprecated in favor of nn.init.{fn.__name__}.",
                      FutureWarning, stacklevel=2)
        return fn(*args, **kwargs)
    old.__name__, old.__doc__ = fn.__name__[:-1], f"Deprecated alias of {fn.__name__}."
    return old


# torch's deprecated names (the seed's era)
uniform, normal, constant, xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal, orthogonal, sparse = map(
    _deprecated, (uniform_, normal_, constant_, xavier_uniform_, xavier_normal_, kaiming_uniform_, kaiming_normal_,
                  orthogonal_, sparse_))
