"""Module: the base class for layers (torch.nn.Module): registration by attribute, state dicts
with torch's keys, train/eval, and module paths as node-name scopes in exported graphs."""
import collections
import itertools

import numpy as np

from ..tensor import Tensor, name_scope, _st
from .parameter import Parameter


def _to_numpy(v):
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, Tensor):
        return v.numpy()
    if hasattr(v, "detach") and hasattr(v, "cpu"):  # a torch tensor, read without importing torch
        return v.detach().cpu().numpy()
    return np.asarray(v)


class Module:
    """Base class: set Parameters, Modules and buffers as attributes, define `forward`."""
    training = True

    def __init__(self):
        object.__setattr__(self, "_parameters", collections.OrderedDict())
        object.__setattr__(self, "_buffers", collections.OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", collections.OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_path", "")

    # ----- registration ----------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            if isinstance(value, (Parameter, Module)):
                raise AttributeError(f"cannot assign {type(value).__name__} before Module.__init__() call")
            return object.__setattr__(self, name, value)
        for d in (self._parameters, self._buffers, self._modules):
            if name in d and not (d is self._buffers and (isinstance(value, Tensor) or value is None)):
                del d[name]
        if isinstance(value, Parameter):
            self.__dict__.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self.__dict__.pop(name, None)
            self._modules[name] = value
        elif name in self._buffers:
            self._buffers[name] = value if value is None or isinstance(value, Tensor) else _buffer(value)
        elif name in self._parameters and value is None:
            self._parameters[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter {name!r} (ok.nn.Parameter or None required)")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        self.__dict__.pop(name, None)
        self._buffers[name] = None if tensor is None else (tensor if isinstance(tensor, Tensor) else _buffer(tensor))
        if not persistent:
            self._non_persistent.add(name)

    def register_module(self, name, module):
        self._modules[name] = module

    add_module = register_module

    def get_submodule(self, target):
        m = self
        for part in target.split(".") if target else []:
            m = m._modules[part]
        return m

    # ----- traversal -------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        memo = set() if memo is None else memo
        if id(self) in memo and remove_duplicate:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def _named(self, store, prefix="", recurse=True, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for n, v in getattr(m, store).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield (f"{mp}.{n}" if mp else n), v

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        return (b for _, b in self.named_buffers(recurse=recurse))

    # ----- state -----------------------------------------------------------------------------
    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """OrderedDict name -> numpy array (torch's keys: parameters, then persistent buffers, per module)."""
        out = collections.OrderedDict() if destination is None else destination
        for mp, m in self.named_modules(prefix=prefix.rstrip(".")):
            pre = f"{mp}." if mp else ""
            for n, p in m._parameters.items():
                if p is not None:
                    out[pre + n] = p if keep_vars else np.array(p.numpy(), copy=True)
            for n, b in m._buffers.items():
                if b is not None and n not in m._non_persistent:
                    out[pre + n] = b if keep_vars else np.array(b.numpy(), copy=True)
        return out

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy values in (numpy arrays, Tensors or torch tensors). strict=True raises on missing
        or unexpected keys, naming them; shapes must match."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing key(s): {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected key(s): {', '.join(unexpected)}")
            raise KeyError(f"Error(s) in loading state_dict for {type(self).__name__}: " + "; ".join(parts))
        errors = []
        for k, t in own.items():
            if k not in state_dict:
                continue
            v = _to_numpy(state_dict[k])
            if tuple(v.shape) != tuple(t._shape):
                errors.append(f"size mismatch for {k}: copying a param with shape {tuple(v.shape)}, "
                              f"the shape in current model is {tuple(t._shape)}")
                continue
            t._become_value(np.array(v, dtype=t.dtype, copy=True))
        if errors:
            raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}:\n  " + "\n  ".join(errors))
        return collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])(missing, unexpected)

    # ----- modes and helpers --------------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.zero_()

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, *args, **kwargs):
        return self

    def cpu(self):
        return self

    def cuda(self, device=None):
        return self

    def float(self):
        return self

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {sub}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"

    def __dir__(self):
        return list(super().__dir__()) + list(self._parameters) + list(self._modules) + list(self._buffers)

    # ----- calling -----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        root = not _st().scope
        if root:  # name every submodule by its path once per top-level call
            for path, m in self.named_modules():
                object.__setattr__(m, "_path", path)
        with name_scope(self._path if not root else ""):
            try:
                return self.forward(*args, **kwargs)
            except ShapeError as e:
                if e.path is None and not root:
                    e.path = self._path
                    e.args = (f"{self._path} ({type(self).__name__}): {e.msg}",)
                elif e.path is None and root:
                    e.path = ""
                    e.args = (f"{type(self).__name__}: {e.msg}",)
                raise

    def __getstate__(self):
        raise TypeError("onnxkit modules are not pickled; save them with ok.export or state_dict + safetensors")


class ShapeError(ValueError):
    """A build-time shape or type mismatch in a layer; Module.__call__ prefixes the module path."""

    def __init__(self, msg):
        super().__init__(msg)
        self.msg, self.path = msg, None


def _buffer(value):
    from ..tensor import tensor
    return tensor(_to_numpy(value))
