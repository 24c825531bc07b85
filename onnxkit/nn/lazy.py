"""Lazy layers (torch.nn.LazyConv*, LazyConvTranspose*, LazyBatchNorm*, LazyInstanceNorm*): the input
channel count comes from the first input (or from a loaded state dict). The layer is then built as its
plain counterpart with torch's init, takes that layer's state, and becomes an instance of it, as in torch."""
import inspect

from .. import ops
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .module import Module, ShapeError, _to_numpy
from .normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, InstanceNorm1d, InstanceNorm2d,
                            InstanceNorm3d)

__all__ = ["LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d",
           "LazyConvTranspose3d", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d", "LazyInstanceNorm1d",
           "LazyInstanceNorm2d", "LazyInstanceNorm3d"]

_MODULE_STATE = ("_forward_pre_hooks", "_forward_hooks", "training", "_path")  # kept from the lazy module


class _LazyModule(Module):
    """Holds the constructor arguments of `cls_to_become` (minus the inferred first one) until the
    input size is known; its parameters and buffers are None until then."""
    cls_to_become = None
    _defaults = {}  # where torch's lazy class has other defaults than cls_to_become

    def __init_subclass__(cls, **kw):
        """Each lazy class shows torch's signatures: its plain layer's, without the inferred first
        argument, with the lazy class's own defaults (so inspect and help() read right)."""
        super().__init_subclass__(**kw)
        if cls.cls_to_become is None:
            return
        sig = inspect.signature(cls.cls_to_become.__init__)
        params = list(sig.parameters.values())
        params = [params[0]] + [p.replace(default=cls._defaults.get(p.name, p.default)) for p in params[2:]]

        def __init__(self, *args, **kwargs):
            _LazyModule.__init__(self, *args, **kwargs)
        __init__.__signature__ = sig.replace(parameters=params)
        cls.__init__ = __init__

        def forward(self, *args, **kwargs):
            return _LazyModule.forward(self, *args, **kwargs)
        forward.__signature__ = inspect.signature(cls.cls_to_become.forward)
        cls.forward = forward

    def __init__(self, *args, **kwargs):
        super().__init__()
        signature = inspect.signature(self.cls_to_become.__init__)
        given = signature.bind(None, 0, *args, **kwargs).arguments
        kwargs = dict(kwargs, **{k: v for k, v in self._defaults.items() if k not in given})
        bound = signature.bind(None, 0, *args, **kwargs)
        bound.apply_defaults()
        self._lazy_args = (args, kwargs)
        options = bound.arguments
        for name in self._parameter_names(options):
            self.register_parameter(name, None)
        for name in self._buffer_names(options):
            self.register_buffer(name, None)

    def _parameter_names(self, options):
        return ()

    def _buffer_names(self, options):
        return ()

    def has_uninitialized_params(self):
        """True until the first input (or a state dict) fixed the sizes."""
        return "_lazy_args" in self.__dict__

    def _materialize(self, size):
        """Build cls_to_become(size, ...) (torch's init included), take its state, become it."""
        args, kwargs = self._lazy_args
        real = self.cls_to_become(int(size), *args, **kwargs)
        del self._lazy_args
        for key, value in real.__dict__.items():
            if key not in _MODULE_STATE:
                object.__setattr__(self, key, value)
        self.__class__ = self.cls_to_become

    def _inferred_size(self, x):
        raise NotImplementedError

    def forward(self, *args, **kwargs):
        x = ops.as_tensor(args[0])
        # nothing to size (an InstanceNorm without affine or running stats): torch keeps num_features 0
        size = self._inferred_size(x) if self._parameters or self._buffers else 0
        if not isinstance(size, int):
            raise ShapeError(f"{type(self).__name__} needs an input whose channel dim is known, got shape "
                             f"{tuple(x._shape) if x._shape is not None else '?'}")
        self._materialize(size)
        return self.forward(*args, **kwargs)

    def _size_from_state(self, state_dict, prefix):
        return None

    def _load_from_state_dict(self, state_dict, prefix, assign, missing, errors):
        """Take the sizes from the checkpoint, then load as the plain layer."""
        size = self._size_from_state(state_dict, prefix)
        if size is not None:
            self._materialize(size)
            return self._load_from_state_dict(state_dict, prefix, assign, missing, errors)
        keys = [prefix + n for n in list(self._parameters) + list(self._buffers)]
        missing.extend(k for k in keys if k not in state_dict)
        return keys

    def extra_repr(self):
        args, kwargs = self._lazy_args
        return ", ".join([f"{a!r}" for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])


def _shape_of(state_dict, key):
    return tuple(_to_numpy(state_dict[key]).shape) if key in state_dict else None


class _LazyConv(_LazyModule):
    """in_channels from the input's channel dim (dim 0 of an unbatched input)."""

    def _parameter_names(self, options):
        return ("weight", "bias") if options["bias"] else ("weight",)

    def _inferred_size(self, x):
        n = self.cls_to_become._n
        if x._shape is None or len(x._shape) not in (n + 1, n + 2):
            raise ShapeError(f"expected {n + 1}-D (unbatched) or {n + 2}-D (batched) input, got "
                             f"{'?' if x._shape is None else len(x._shape)}-D")
        return x._shape[0 if len(x._shape) == n + 1 else 1]

    def _size_from_state(self, state_dict, prefix):
        shape = _shape_of(state_dict, prefix + "weight")
        if shape is None:
            return None
        args, kwargs = self._lazy_args
        bound = inspect.signature(self.cls_to_become.__init__).bind(None, 0, *args, **kwargs)
        bound.apply_defaults()
        groups = bound.arguments["groups"]
        return shape[0] if self.cls_to_become._transposed else shape[1] * groups


class _LazyNorm(_LazyModule):
    """num_features from the input's channel dim (dim 0 of an unbatched instance-norm input)."""

    def _parameter_names(self, options):
        return ("weight", "bias") if options["affine"] else ()

    def _buffer_names(self, options):
        return ("running_mean", "running_var", "num_batches_tracked") if options["track_running_stats"] else ()

    def _inferred_size(self, x):
        cls = self.cls_to_become
        if x._shape is None or len(x._shape) not in cls._ranks:
            raise ShapeError(f"expected {' or '.join(f'{k}D' for k in cls._ranks)} input (got "
                             f"{'?' if x._shape is None else len(x._shape)}D input)")
        return x._shape[0 if len(x._shape) == cls._unbatched_rank else 1]

    def _size_from_state(self, state_dict, prefix):
        for name in ("weight", "running_mean", "bias", "running_var"):
            shape = _shape_of(state_dict, prefix + name)
            if shape is not None:
                return shape[0]
        return None


def _lazy(name, base, target, doc, **defaults):
    return type(name, (base,), {"cls_to_become": target, "__module__": __name__, "__doc__": doc,
                                "_defaults": defaults})


LazyConv1d, LazyConv2d, LazyConv3d = (
    _lazy(f"LazyConv{n}d", _LazyConv, c, f"A Conv{n}d whose in_channels comes from the first input.")
    for n, c in ((1, Conv1d), (2, Conv2d), (3, Conv3d)))
LazyConvTranspose1d, LazyConvTranspose2d, LazyConvTranspose3d = (
    _lazy(f"LazyConvTranspose{n}d", _LazyConv, c, f"A ConvTranspose{n}d whose in_channels comes from the first input.")
    for n, c in ((1, ConvTranspose1d), (2, ConvTranspose2d), (3, ConvTranspose3d)))
LazyBatchNorm1d, LazyBatchNorm2d, LazyBatchNorm3d = (
    _lazy(f"LazyBatchNorm{n}d", _LazyNorm, c, f"A BatchNorm{n}d whose num_features comes from the first input.")
    for n, c in ((1, BatchNorm1d), (2, BatchNorm2d), (3, BatchNorm3d)))
LazyInstanceNorm1d, LazyInstanceNorm2d, LazyInstanceNorm3d = (
    _lazy(f"LazyInstanceNorm{n}d", _LazyNorm, c, f"An InstanceNorm{n}d whose num_features comes from the first "
          "input. As in torch, affine and track_running_stats default to True here.", affine=True,
          track_running_stats=True) for n, c in ((1, InstanceNorm1d), (2, InstanceNorm2d), (3, InstanceNorm3d)))
