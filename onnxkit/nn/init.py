"""torch.nn.init: in-place initializers on Parameters, drawn from ok.manual_seed's stream."""
import math

import numpy as np

from ..tensor import rng as _rng


def _shape(t):
    return tuple(int(d) for d in t._shape)


def _set(t, arr):
    t._become_value(np.asarray(arr, dtype=t.dtype))
    return t


def calculate_gain(nonlinearity, param=None):
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(t):
    shape = _shape(t)
    if len(shape) < 2:
        raise ValueError("fan in and fan out can not be computed for a tensor with fewer than 2 dimensions")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(t, mode):
    fi, fo = _calculate_fan_in_and_fan_out(t)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported, use 'fan_in' or 'fan_out'")
    return fi if mode == "fan_in" else fo


def uniform_(t, a=0.0, b=1.0, generator=None):
    return _set(t, _rng().uniform(a, b, _shape(t)))


def normal_(t, mean=0.0, std=1.0, generator=None):
    return _set(t, _rng().normal(mean, std, _shape(t)))


def trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Normal(mean, std) resampled until inside [a, b]."""
    n = int(np.prod(_shape(t)))
    out = np.empty(0)
    while out.size < n:
        draw = _rng().normal(mean, std, max(n, 16) * 2)
        out = np.concatenate([out, draw[(draw >= a) & (draw <= b)]])
    return _set(t, out[:n].reshape(_shape(t)))


def constant_(t, val):
    return _set(t, np.full(_shape(t), val))


def zeros_(t):
    return constant_(t, 0.0)


def ones_(t):
    return constant_(t, 1.0)


def eye_(t):
    if len(_shape(t)) != 2:
        raise ValueError("eye_ only supports 2-D tensors")
    return _set(t, np.eye(*_shape(t)))


def dirac_(t, groups=1):
    shape = _shape(t)
    out = np.zeros(shape)
    per = shape[0] // groups
    for g in range(groups):
        for d in range(min(per, shape[1])):
            out[(g * per + d, d) + tuple(s // 2 for s in shape[2:])] = 1
    return _set(t, out)


def xavier_uniform_(t, gain=1.0, generator=None):
    fi, fo = _calculate_fan_in_and_fan_out(t)
    a = gain * math.sqrt(6.0 / (fi + fo))
    return uniform_(t, -a, a)


def xavier_normal_(t, gain=1.0, generator=None):
    fi, fo = _calculate_fan_in_and_fan_out(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fi + fo)))


def kaiming_uniform_(t, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan = _fan(t, mode)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan) if fan else 0.0
    return uniform_(t, -bound, bound)


def kaiming_normal_(t, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    fan = _fan(t, mode)
    return normal_(t, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0)


def orthogonal_(t, gain=1.0, generator=None):
    shape = _shape(t)
    if len(shape) < 2:
        raise ValueError("only tensors with 2 or more dimensions are supported")
    rows, cols = shape[0], int(np.prod(shape[1:]))
    flat = _rng().normal(0, 1, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _set(t, gain * q.reshape(shape))


def sparse_(t, sparsity, std=0.01, generator=None):
    rows, cols = _shape(t)
    out = _rng().normal(0, std, (rows, cols))
    k = int(math.ceil(sparsity * rows))
    for c in range(cols):
        out[_rng().permutation(rows)[:k], c] = 0
    return _set(t, out)


# torch's deprecated names (the seed's era)
uniform, normal, constant = uniform_, normal_, constant_
xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal, orthogonal = (
    xavier_uniform_, xavier_normal_, kaiming_uniform_, kaiming_normal_, orthogonal_)
