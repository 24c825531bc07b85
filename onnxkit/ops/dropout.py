"""Dropout family (torch.nn.functional names). In training a keep-mask is drawn once per call
(onnxkit.random.rand_like, seeded by ok.manual_seed) and multiplied in, so the forward result
and its gradient see the same mask; emits Less + Cast + Mul (+ Add for alpha dropout)."""
import math

import numpy as np

from .. import random
from ..tensor import apply
from .core import as_tensor, cast, lt, mul, div, add, sub
from .shape import shape_tensor

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"]

_SELU_ALPHA = 1.7580993408473766  # SELU's -alpha * scale: the value alpha dropout drops to


def keep_mask(x, p, feature_dims=None):
    """0/1 mask in x's dtype, 1 with probability 1 - p. Shaped like x, or like x's first
    `feature_dims` dims followed by ones (whole channels for the feature variants)."""
    template = x if feature_dims is None else _feature_template(x, feature_dims)
    return cast(lt(random.rand_like(template), 1.0 - p), x.dtype)


def _feature_template(x, keep):
    """A tensor of shape x.shape[:keep] + (1, ...): only its shape is read (ConstantOfShape when symbolic)."""
    from onnx import numpy_helper
    dims = list(x.shape[:keep]) + [1] * (len(x._shape) - keep)
    value = numpy_helper.from_array(np.zeros((1,), x.dtype))
    shape = tuple(d if isinstance(d, int) else d.name for d in dims)
    return apply("ConstantOfShape", [shape_tensor(dims)], {"value": value}, types=[(x.dtype, shape)])


def _check_p(p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _dropout(x, p, training, feature_dims=None, alpha=False):
    """torch's _dropout_impl: identity when p == 0 or not training, x * 0 when p == 1."""
    x = as_tensor(x)
    _check_p(p)
    if not training or p == 0:
        return x
    if p == 1:
        return mul(x, 0.0)
    mask = keep_mask(x, p, feature_dims)
    if not alpha:
        return mul(x, div(mask, 1.0 - p))
    a = 1.0 / math.sqrt((_SELU_ALPHA ** 2 * p + 1) * (1 - p))
    shift = add(mul(sub(mask, 1.0), _SELU_ALPHA * a), _SELU_ALPHA * a * p)  # -alpha' where dropped, 0 where kept
    return add(mul(x, mul(mask, a)), shift)


def _feature_rank_check(name, x, ranks):
    r = len(as_tensor(x)._shape)
    if r not in ranks:
        raise ValueError(f"{name}: expected {' or '.join(f'{k}D' for k in ranks)} input, got a {r}D input")
    return r == max(ranks)  # batched


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p)."""
    return _dropout(input, p, training)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) or (C, L) input."""
    batched = _feature_rank_check("dropout1d", input, (2, 3))
    return _dropout(input, p, training, 2 if batched else 1)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels (dims 0 and 1 pick the mask, as torch does for 3-D and 4-D input)."""
    x = as_tensor(input)
    if len(x._shape) < 2:
        raise ValueError(f"dropout2d: expected 3D or 4D input, got a {len(x._shape)}D input")
    return _dropout(x, p, training, 2)


def dropout3d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) input."""
    batched = _feature_rank_check("dropout3d", input, (4, 5))
    return _dropout(input, p, training, 2 if batched else 1)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout for SELU networks: dropped values take SELU's saturation value, then an affine
    correction keeps zero mean and unit variance."""
    return _dropout(input, p, training, alpha=True)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Alpha dropout of whole channels (the mask is drawn over dims 0 and 1)."""
    x = as_tensor(input)
    if len(x._shape) < 2:
        raise ValueError(f"feature_alpha_dropout: expected at least 2D input, got a {len(x._shape)}D input")
    return _dropout(x, p, training, 2, alpha=True)
