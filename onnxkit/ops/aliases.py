"""torch's other entry points to ops onnxkit already has: the functional in-place activations (F.relu_,
...), the *_with_indices pools, convolution and conv_tbc, constant_pad_nd, the native_* internals that
return their saved statistics, feature dropout, gumbel_softmax and affine_grid."""
import numpy as np

from .. import dtypes
from ..tensor import const
from .activation import celu, elu, hardtanh, leaky_relu, rrelu, selu, threshold
from .conv import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d
from .dropout import _check_p, _dropout, keep_mask
from .norm import layer_norm
from .padding import pad as _pad
from .pool import (adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d, max_pool1d, max_pool2d,
                   max_pool3d)
from .vision import channel_shuffle
from .core import add, as_tensor, div, log, mul, neg, relu, sqrt, sub, clamp
from .reduce import mean, var, norm as norm_
from .shape import permute, reshape

__all__ = ["relu_", "elu_", "selu_", "celu_", "leaky_relu_", "hardtanh_", "threshold_", "rrelu_",
           "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices",
           "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices",
           "adaptive_max_pool3d_with_indices", "convolution", "conv_tbc", "constant_pad_nd", "native_layer_norm",
           "native_group_norm", "native_norm", "native_dropout", "feature_dropout", "native_channel_shuffle",
           "gumbel_softmax", "affine_grid", "affine_grid_generator", "assert_int_or_pair", "grid_sampler",
           "grid_sampler_2d", "grid_sampler_3d"]


# ----- functional in-place activations: the activation written into the input (Tensor._inplace) -----------
def _inplace(name, fn):
    def op(input, *args, **kwargs):
        return input._inplace(None, lambda t, _: fn(t, *args, **kwargs))
    op.__name__, op.__doc__ = name, f"In-place {name[:-1]} (torch.nn.functional.{name}): the input takes the result."
    return op


relu_ = _inplace("relu_", relu)
elu_ = _inplace("elu_", elu)
selu_ = _inplace("selu_", selu)
celu_ = _inplace("celu_", celu)
leaky_relu_ = _inplace("leaky_relu_", leaky_relu)
hardtanh_ = _inplace("hardtanh_", hardtanh)
threshold_ = _inplace("threshold_", threshold)
rrelu_ = _inplace("rrelu_", rrelu)


# ----- pools that always return indices -----------------------------------------------------------------
def _with_indices(name, fn):
    def op(input, *args, **kwargs):
        kwargs.pop("return_indices", None)
        return fn(input, *args, return_indices=True, **kwargs)
    op.__name__, op.__doc__ = name, f"{fn.__name__} with return_indices=True: (output, indices)."
    return op


max_pool1d_with_indices = _with_indices("max_pool1d_with_indices", max_pool1d)
max_pool2d_with_indices = _with_indices("max_pool2d_with_indices", max_pool2d)
max_pool3d_with_indices = _with_indices("max_pool3d_with_indices", max_pool3d)
adaptive_max_pool1d_with_indices = _with_indices("adaptive_max_pool1d_with_indices", adaptive_max_pool1d)
adaptive_max_pool2d_with_indices = _with_indices("adaptive_max_pool2d_with_indices", adaptive_max_pool2d)
adaptive_max_pool3d_with_indices = _with_indices("adaptive_max_pool3d_with_indices", adaptive_max_pool3d)


# ----- convolution entry points ---------------------------------------------------------------------------
def convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    """torch.convolution: conv{n}d or conv_transpose{n}d by the weight's rank and `transposed`."""
    w = as_tensor(weight)
    n = len(w._shape) - 2
    if n not in (1, 2, 3):
        raise ValueError(f"convolution: expected a 3-D, 4-D or 5-D weight, got {len(w._shape)}-D")
    if transposed:
        fn = {1: conv_transpose1d, 2: conv_transpose2d, 3: conv_transpose3d}[n]
        return fn(input, w, bias, stride, padding, output_padding, groups, dilation)
    fn = {1: conv1d, 2: conv2d, 3: conv3d}[n]
    return fn(input, w, bias, stride, padding, dilation, groups)


def conv_tbc(input, weight, bias, pad=0):
    """1-D convolution of a (time, batch, channels) input with a (kernel, in, out) weight and padding `pad`
    (torch.conv_tbc)."""
    x = permute(as_tensor(input), [1, 2, 0])
    w = permute(as_tensor(weight), [2, 1, 0])
    y = conv1d(x, w, bias, 1, int(pad))
    return permute(y, [2, 0, 1])


def constant_pad_nd(input, pad, value=0):
    """F.pad with mode='constant' (torch.constant_pad_nd)."""
    return _pad(input, list(pad), mode="constant", value=value)


# ----- native_* internals: results with the statistics torch saves for backward ----------------------------
def native_layer_norm(input, normalized_shape, weight, bias, eps):
    """(layer_norm, mean, rstd) with mean and rstd kept over the normalized dims (torch.native_layer_norm)."""
    x = as_tensor(input)
    k = len(tuple(normalized_shape))
    dims = list(range(len(x._shape) - k, len(x._shape)))
    m = mean(x, dims, keepdim=True)
    rstd = div(1.0, sqrt(add(var(x, dims, keepdim=True, correction=0), float(eps))))
    return layer_norm(x, normalized_shape, weight, bias, eps), m, rstd


def native_group_norm(input, weight, bias, N, C, HxW, group, eps):
    """(group_norm, mean, rstd) with mean and rstd of shape (N, group) (torch.native_group_norm)."""
    from .norm import group_norm
    x = as_tensor(input)
    grouped = reshape(x, int(N), int(group), -1)
    m = mean(grouped, 2)
    rstd = div(1.0, sqrt(add(var(grouped, 2, correction=0), float(eps))))
    return group_norm(x, int(group), weight, bias, eps), m, rstd


def native_norm(input, p=2):
    """The p-norm of all elements (torch.native_norm)."""
    return norm_(as_tensor(input), p)


def native_dropout(input, p, train):
    """(dropout(input), keep mask as bool) in training; (input, all-True mask) otherwise (torch.native_dropout)."""
    from .core import ones_of, gt
    x = as_tensor(input)
    if not train or p == 0:
        return x, ones_of(x, np.bool_)
    _check_p(p)
    mask = keep_mask(x, p)
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    return mul(x, mul(mask, scale)), gt(mask, 0.0)


def feature_dropout(input, p, train):
    """Dropout of whole channels (dims 0 and 1 pick the mask), as torch.feature_dropout."""
    return _dropout(input, p, train, 2)


def native_channel_shuffle(input, groups):
    """channel_shuffle (torch.native_channel_shuffle)."""
    return channel_shuffle(input, groups)


# ----- sampling and grids ------------------------------------------------------------------------------------
def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """softmax((logits + Gumbel noise) / tau) along dim; with hard=True the one-hot of its argmax in the
    forward pass and the soft sample's gradient (straight-through), as torch's. The noise is drawn from
    onnxkit's generator (onnxkit.random), once per call."""
    from .. import random
    from .reduce import softmax, argmax
    from .autodiff_helpers import stop
    x = as_tensor(logits)
    u = clamp(random.rand_like(x), float(np.finfo(x.dtype).tiny), float(1.0 - np.finfo(x.dtype).eps))
    gumbels = neg(log(neg(log(u))))
    soft = softmax(div(add(x, gumbels), float(tau)), dim)
    if not hard:
        return soft
    d = dim % len(x._shape)
    index = argmax(soft, d, keepdim=True)
    from .shape import scatter
    from .core import zeros_of
    hard_y = scatter(zeros_of(soft), d, index, 1.0)
    return add(sub(hard_y, stop(soft)), soft)


def affine_grid(theta, size, align_corners=None):
    """The sampling grid (N, H, W, 2) or (N, D, H, W, 3) of an affine transform theta (N, 2, 3) or (N, 3, 4)
    over an output of `size`, as torch.nn.functional.affine_grid (align_corners False by default)."""
    from .linalg import matmul
    t = as_tensor(theta)
    if not dtypes.is_floating(t.dtype):
        raise TypeError(f"Expected theta to have floating point type, but got {t.dtype}")
    align = bool(align_corners)
    size = [int(s) for s in size]
    spatial = size[2:]
    if len(spatial) == 2 and tuple(t._shape[1:]) != (2, 3):
        raise ValueError(f"Expected a batch of 2D affine matrices of shape Nx2x3 for size {size}. Got "
                         f"{tuple(t._shape)}.")
    if len(spatial) == 3 and tuple(t._shape[1:]) != (3, 4):
        raise ValueError(f"Expected a batch of 3D affine matrices of shape Nx3x4 for size {size}. Got "
                         f"{tuple(t._shape)}.")
    if len(spatial) not in (2, 3):
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
                                  f"respectively. Got size {size}.")

    def coords(n):
        if n <= 1:
            return np.zeros(max(n, 1))
        c = np.linspace(-1.0, 1.0, n)
        return c if align else c * (n - 1) / n
    axes = [coords(n) for n in reversed(spatial)]  # x (width) first, as torch's grid
    mesh = np.meshgrid(*axes[::-1], indexing="ij")[::-1]
    base = np.stack(list(mesh) + [np.ones_like(mesh[0])], -1).reshape(-1, len(spatial) + 1)
    grid = matmul(const(base.astype(t.dtype), t.dtype), permute(t, [0, 2, 1]))  # (N, P, k)
    return reshape(grid, size[0], *spatial, len(spatial))


affine_grid_generator = affine_grid  # torch.affine_grid_generator(theta, size, align_corners)


def assert_int_or_pair(arg, arg_name, message):
    """torch's argument check: arg must be an int or a pair."""
    assert isinstance(arg, int) or len(arg) == 2, message.format(arg_name)


_GRID_MODES, _GRID_PADDINGS = ("bilinear", "nearest", "bicubic"), ("zeros", "border", "reflection")


def grid_sampler(input, grid, interpolation_mode, padding_mode, align_corners):
    """grid_sample with torch's integer codes (0 bilinear, 1 nearest; 0 zeros, 1 border, 2 reflection)."""
    from .grid_sample import grid_sample
    return grid_sample(input, grid, _GRID_MODES[interpolation_mode], _GRID_PADDINGS[padding_mode], align_corners)


grid_sampler_2d = grid_sampler_3d = grid_sampler
