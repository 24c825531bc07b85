"""Normalization layers (torch/nn/modules/batchnorm.py, instancenorm.py, normalization.py): torch's
parameters (weight, bias) and buffers (running_mean, running_var, num_batches_tracked)."""
import numpy as np

from .. import ops
from ..ops.norm import add_buffer_updates, buffer_value
from ..tensor import no_grad
from .module import Module, ShapeError, shape_errors
from .parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
           "LayerNorm", "RMSNorm", "GroupNorm", "LocalResponseNorm"]


def _float(dtype):
    return np.dtype(dtype or np.float32)


def _affine_parameters(module, affine, bias, shape, dtype):
    """Register `weight` (ones) and `bias` (zeros; None when bias=False) of `shape` when affine,
    else both as None, as torch's normalization layers do."""
    dt = _float(dtype)
    module.register_parameter("weight", Parameter(np.ones(shape, dt)) if affine else None)
    module.register_parameter("bias", Parameter(np.zeros(shape, dt)) if affine and bias else None)


class _NormBase(Module):
    """weight (ones) and bias (zeros) when affine; running_mean/var and num_batches_tracked when tracking."""
    _ranks = ()  # accepted input ranks
    _unbatched_rank = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dt = _float(dtype)
        _affine_parameters(self, affine, bias, (num_features,), dtype)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dt))
            self.register_buffer("running_var", np.ones(num_features, dt))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            self.weight.fill_(1.0)
            if self.bias is not None:
                self.bias.zero_()

    def _check_input(self, x):
        r = len(x._shape)
        if r not in self._ranks:
            raise ShapeError(f"expected {' or '.join(f'{k}D' for k in self._ranks)} input (got {r}D input)")
        c = x._shape[1 if r != self._unbatched_rank else 0]
        if isinstance(c, int) and c != self.num_features:
            raise ShapeError(f"expected {self.num_features} channels (num_features), got {c} "
                             f"in input of shape {tuple(x._shape)}")

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    """Train mode (or no running stats): batch statistics, and the running-stat update as buffer
    effects applied when the result is first evaluated; eval mode: the running statistics."""

    def forward(self, input):
        x = ops.as_tensor(input)
        self._check_input(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        update = self.training and self.track_running_stats
        if update:
            with no_grad():
                count = buffer_value(self.num_batches_tracked) + 1
                if self.momentum is None:  # cumulative moving average: factor 1 / batches seen
                    momentum = ops.reciprocal(ops.cast(count, x.dtype))
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        with shape_errors():  # one value per channel in training: name the layer
            out = ops.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                                 self.weight, self.bias, use_batch_stats, momentum, self.eps)
        if update:
            add_buffer_updates(out, [(self.num_batches_tracked, count)])
        return out


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) input."""
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) input."""
    _ranks = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalization of (N, C, D, H, W) input."""
    _ranks = (5,)


class _InstanceNorm(_NormBase):
    """Per-sample, per-channel normalization; unbatched input gets a batch dim for the call."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 device=None, dtype=None, *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def _check_input(self, x):
        if self.affine or self.track_running_stats:  # torch only warns when nothing per-channel is held
            super()._check_input(x)
        elif len(x._shape) not in self._ranks:
            raise ShapeError(f"expected {' or '.join(f'{k}D' for k in self._ranks)} input (got {len(x._shape)}D input)")

    def forward(self, input):
        x = ops.as_tensor(input)
        self._check_input(x)
        unbatched = len(x._shape) == self._unbatched_rank
        if unbatched:
            x = ops.unsqueeze(x, 0)
        with shape_errors():
            out = ops.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                    self.training or not self.track_running_stats,
                                    self.momentum if self.momentum is not None else 0.0, self.eps)
        return ops.squeeze(out, 0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (N, C, L) or (C, L) input."""
    _ranks, _unbatched_rank = (2, 3), 2


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) or (C, H, W) input."""
    _ranks, _unbatched_rank = (3, 4), 3


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of (N, C, D, H, W) or (C, D, H, W) input."""
    _ranks, _unbatched_rank = (4, 5), 4


class LayerNorm(Module):
    """Normalize over the trailing `normalized_shape` dims; weight (ones) and bias (zeros) of that shape."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        _affine_parameters(self, elementwise_affine, bias, shape, dtype)

    def forward(self, input):
        x = ops.as_tensor(input)
        try:
            return ops.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        except ValueError:
            raise ShapeError(f"expected input with trailing shape {self.normalized_shape} (normalized_shape), "
                             f"got shape {tuple(x._shape)}") from None

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    """Root-mean-square normalization over the trailing `normalized_shape` dims; weight (ones) of that
    shape when elementwise_affine; eps=None takes the input dtype's machine epsilon, as torch."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        self.register_parameter("weight", Parameter(np.ones(shape, _float(dtype))) if elementwise_affine else None)

    def reset_parameters(self):
        if self.weight is not None:
            self.weight.fill_(1.0)

    def forward(self, x):
        x = ops.as_tensor(x)
        try:
            return ops.rms_norm(x, self.normalized_shape, self.weight, self.eps)
        except ValueError:
            raise ShapeError(f"expected input with trailing shape {self.normalized_shape} (normalized_shape), "
                             f"got shape {tuple(x._shape)}") from None

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalize groups of channels per sample; per-channel weight (ones) and bias (zeros)."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        _affine_parameters(self, affine, bias, (num_channels,), dtype)

    def forward(self, input):
        x = ops.as_tensor(input)
        if len(x._shape) < 2 or (isinstance(x._shape[1], int) and x._shape[1] != self.num_channels):
            raise ShapeError(f"expected input (N, {self.num_channels}, ...) (num_channels), got shape {tuple(x._shape)}")
        return ops.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LocalResponseNorm(Module):
    """Normalize each value by the energy of a window of `size` neighbouring channels."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input):
        x = ops.as_tensor(input)
        if len(x._shape) < 3:
            raise ShapeError(f"expected 3D or higher input (N, C, ...), got shape {tuple(x._shape)}")
        return ops.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
