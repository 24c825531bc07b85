"""Module: the base class for layers (torch.nn.Module): registration by attribute, state dicts
with torch's keys, train/eval, and module paths as node-name scopes in exported graphs."""
import collections
import contextlib
import copy
import itertools

import numpy as np

from .. import dtypes
from ..ops.core import DTypeError
from ..tensor import Tensor, _st
from .parameter import Buffer, Parameter


def _to_numpy(v):
    """An array from a numpy array, an onnxkit Tensor or a torch tensor (read without importing torch)."""
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, Tensor):
        return v.numpy()
    if hasattr(v, "detach") and hasattr(v, "cpu"):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def _addindent(s, n):
    """Indent every line but the first by n spaces (torch's repr helper)."""
    first, *rest = s.split("\n")
    return "\n".join([first] + [(" " * n + line) if line.strip() else "" for line in rest])


tree_version = [0]  # bumped by every change of any module's parameters, buffers, submodules or hooks


class _Store(collections.OrderedDict):
    """A module's parameters, buffers, submodules or hooks: every change bumps tree_version, which
    compiled modules (nn.compiled) guard on."""

    def __setitem__(self, key, value):
        if key not in self or self[key] is not value:  # `model.w += 1` sets the same Parameter again
            tree_version[0] += 1
        super().__setitem__(key, value)

    def __delitem__(self, key):
        tree_version[0] += 1
        super().__delitem__(key)

    def pop(self, key, *default):
        if key in self:
            tree_version[0] += 1
        return super().pop(key, *default)

    def popitem(self, last=True):
        tree_version[0] += 1
        return super().popitem(last)

    def clear(self):
        tree_version[0] += 1
        super().clear()

    def update(self, *args, **kwargs):
        tree_version[0] += 1
        super().update(*args, **kwargs)

    def setdefault(self, key, default=None):
        if key not in self:
            tree_version[0] += 1
        return super().setdefault(key, default)

    def move_to_end(self, key, last=True):
        tree_version[0] += 1
        super().move_to_end(key, last)


class IncompatibleKeys(collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What load_state_dict returns (torch's _IncompatibleKeys)."""
    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class RemovableHandle:
    """Returned by the register_*_hook methods; `remove()` unregisters the hook."""
    _ids = itertools.count()

    def __init__(self, hooks):
        self.hooks, self.id = hooks, next(RemovableHandle._ids)

    def remove(self):
        """Unregister the hook (a second call does nothing)."""
        self.hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _check_name(kind, name, module, store):
    """torch's checks on a name given to register_parameter/register_buffer/add_module."""
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')
    if hasattr(module, name) and name not in store:
        raise KeyError(f"attribute '{name}' already exists")


@contextlib.contextmanager
def _outermost_call(module):
    """Scope node names by the module path: the outermost call names every submodule by its path and
    builds its own nodes unprefixed; nested calls (Module.__call__) build theirs under `path`
    (`features.3/Conv`)."""
    st = _st()
    for path, m in module.named_modules():
        object.__setattr__(m, "_path", path)
    st.module_base = len(st.scope)
    try:
        yield
    finally:
        st.module_base = None


class Module:
    """Base class: set Parameters, Modules and buffers as attributes, define `forward`."""
    training = True

    def __init__(self):
        for name, value in (("_parameters", _Store()), ("_buffers", _Store()), ("_non_persistent", set()),
                            ("_modules", _Store()), ("_forward_pre_hooks", _Store()), ("_forward_hooks", _Store()),
                            ("training", True), ("_path", "")):
            object.__setattr__(self, name, value)

    # ----- registration ----------------------------------------------------------------------
    def __setattr__(self, name, value):
        d = self.__dict__
        params, modules, buffers = d.get("_parameters"), d.get("_modules"), d.get("_buffers")
        if isinstance(value, (Parameter, Module, Buffer)) and params is None:
            raise AttributeError(f"cannot assign {type(value).__name__} before Module.__init__() call")
        if isinstance(value, Parameter):
            self._forget(name, keep="_parameters")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(onnxkit.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            self._forget(name, keep="_modules")
            modules[name] = value
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(onnxkit.nn.Module or None expected)")
            modules[name] = None
        elif isinstance(value, Buffer) or (buffers is not None and name in buffers):
            persistent = value.persistent if isinstance(value, Buffer) else name not in self._non_persistent
            self.register_buffer(name, value, persistent)
        else:
            if name not in d:  # a new setting: compiled modules re-read which ones they guard
                tree_version[0] += 1
            object.__setattr__(self, name, value)

    def _forget(self, name, keep):
        """Drop `name` from every store but `keep` (an attribute changes kind)."""
        self.__dict__.pop(name, None)
        for store in ("_parameters", "_buffers", "_modules"):
            if store != keep:
                getattr(self, store).pop(name, None)
        self._non_persistent.discard(name)

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
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Add a Parameter (or None: a declared but absent parameter, such as bias=False)."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name("parameter", name, self, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(onnxkit.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a buffer (a Tensor, numpy array or torch tensor; None allowed); persistent=False
        keeps it out of the state_dict."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name("buffer", name, self, self._buffers)
        self._buffers[name] = None if tensor is None else _buffer(tensor)
        (self._non_persistent.discard if persistent else self._non_persistent.add)(name)

    def add_module(self, name, module):
        """Add a child module (or None) under `name`."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _check_name("module", name, self, self._modules)
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target):
        """The submodule at a dotted path (`"features.3"`); "" is the module itself."""
        m = self
        for item in target.split(".") if target else []:
            if not hasattr(m, item):
                raise AttributeError(f"{m._get_name()} has no attribute `{item}`")
            m = getattr(m, item)
            if not isinstance(m, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
        return m

    def _get_leaf(self, target, store, kind):
        """The entry `name` of `store` in the submodule at the dotted path `target` = path.name."""
        path, _, name = target.rpartition(".")
        m = self.get_submodule(path)
        if name not in getattr(m, store):
            raise AttributeError(f"{m._get_name()} has no {kind} `{name}`")
        return getattr(m, store)[name]

    def get_parameter(self, target):
        """The parameter at a dotted path (`"features.3.weight"`)."""
        return self._get_leaf(target, "_parameters", "parameter")

    def get_buffer(self, target):
        """The buffer at a dotted path (`"bn.running_mean"`)."""
        return self._get_leaf(target, "_buffers", "buffer")

    # ----- traversal -------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted path, module) for this module and every descendant, pre-order."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        if remove_duplicate:
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        """This module and every descendant, pre-order, each once."""
        return (m for _, m in self.named_modules())

    def named_children(self):
        """(name, module) for the direct children, each module once."""
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        """The direct children, each once."""
        return (m for _, m in self.named_children())

    def _named_members(self, store, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Tensor) of the non-None entries of `store` in this module (and descendants)."""
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mp, m in mods:
            for n, v in getattr(m, store).items():
                if v is None or id(v) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(v))
                yield (f"{mp}.{n}" if mp else n), v

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) pairs, in state_dict order; a shared parameter once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        """The Parameters, as named_parameters orders them."""
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, buffer Tensor) pairs, persistent or not."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        """The buffer Tensors, as named_buffers orders them."""
        return (b for _, b in self.named_buffers(recurse=recurse))

    # ----- state -----------------------------------------------------------------------------
    def _local_state(self):
        """This module's own entries of the state dict: parameters, then persistent buffers."""
        items = itertools.chain(self._parameters.items(),
                                ((n, b) for n, b in self._buffers.items() if n not in self._non_persistent))
        return collections.OrderedDict((n, v) for n, v in items if v is not None)

    def state_dict(self, *, destination=None, prefix="", keep_vars=False):
        """OrderedDict name -> numpy array copy, torch's keys and order (per module: parameters, then
        persistent buffers, then children); keep_vars=True gives the Tensors themselves."""
        out = collections.OrderedDict() if destination is None else destination
        if "_before_state_read" in self.__dict__:
            self._before_state_read()  # a Trainer holding the values on a device copies them back
        for name, t in self._local_state().items():
            out[prefix + name] = t if keep_vars else np.array(t.numpy(), copy=True)
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=out, prefix=f"{prefix}{name}.", keep_vars=keep_vars)
        return out

    def _load_from_state_dict(self, state_dict, prefix, assign, missing, errors):
        """Copy this module's own entries in; returns the keys it expects (lazy modules override
        this to take their shapes from the state dict first)."""
        local = self._local_state()
        for name, t in local.items():
            key = prefix + name
            if key not in state_dict:
                missing.append(key)
                continue
            try:
                v = _to_numpy(state_dict[key])
            except Exception as e:  # noqa: BLE001  any unreadable object becomes a named error
                errors.append(f'While copying the parameter named "{key}", expected an array, got '
                              f"{type(state_dict[key]).__name__} ({e})")
                continue
            if v.dtype.kind not in "biuf" and v.dtype.name != "bfloat16":
                errors.append(f'While copying the parameter named "{key}", expected an array, got '
                              f"{type(state_dict[key]).__name__}")
                continue
            if t._shape == () and v.shape == (1,):
                v = v.reshape(())
            if tuple(v.shape) != tuple(t._shape):
                errors.append(f"size mismatch for {key}: copying a param with shape {tuple(v.shape)} from "
                              f"checkpoint, the shape in current model is {tuple(t._shape)}.")
                continue
            if assign:
                new = Parameter(v, requires_grad=t.requires_grad) if isinstance(t, Parameter) else _buffer(np.array(v))
                (self._parameters if name in self._parameters else self._buffers)[name] = new
            else:
                _set_value(t, v)
        return [prefix + n for n in local]

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy values in (numpy arrays, onnxkit Tensors or torch tensors), cast to each entry's
        dtype. strict=True raises RuntimeError naming missing and unexpected keys; a size mismatch
        always raises. Returns (missing_keys, unexpected_keys)."""
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        missing, errors, expected = [], [], set()
        for path, m in self.named_modules(remove_duplicate=False):
            expected.update(m._load_from_state_dict(state_dict, f"{path}." if path else "", assign, missing, errors))
        unexpected = [k for k in state_dict if k not in expected]
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        return IncompatibleKeys(missing, unexpected)

    # ----- modes and helpers --------------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode on this module and, through their own train(), its children."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self):
        """train(False): dropout off, batch norm on its running statistics."""
        return self.train(False)

    def compile(self, *args, **kwargs):
        """Replay the forward graph of repeated calls instead of rebuilding it (torch's Module.compile;
        its options are accepted and ignored). See nn.compiled for the guards and the contract."""
        from .compiled import Replay
        object.__setattr__(self, "_onnxkit_compiled", Replay(self))

    def requires_grad_(self, requires_grad=True):
        """Set requires_grad on every parameter (False freezes them)."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's .grad: to None (default) or to zeros."""
        zero_grads(self.parameters(), set_to_none)

    def apply(self, fn):
        """Call fn on every submodule (children first) and on self, like torch (used for init)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _cast(self, dtype):
        """Cast floating parameters and buffers to `dtype` in place (identity kept)."""
        dtype = dtypes.as_dtype(dtype)
        for t in itertools.chain(self.parameters(), self.buffers()):
            if dtypes.is_floating(t.dtype) and t.dtype != dtype:
                _set_value(t, t.numpy(), dtype)
                if t.grad is not None:
                    t.grad = None
        return self

    def to(self, *args, dtype=None, **kwargs):
        """Cast floating parameters and buffers to a dtype given positionally or as dtype=; a CUDA device
        makes lazy evaluation run on the GPU, as Tensor.to does (Session/Trainer take their own device=)."""
        from ..device import split_to_args
        dtype = split_to_args(args, {**kwargs, "dtype": dtype})
        return self._cast(dtype) if dtype is not None else self

    def cpu(self):
        """No-op: the device is chosen per Session/Trainer."""
        return self

    def cuda(self, device=None):
        """Make lazy evaluation run on the GPU (raises without a usable one, as torch does)."""
        from ..device import place
        place("cuda" if device is None else device)
        return self

    def float(self):
        """Cast floating parameters and buffers to float32."""
        return self._cast("float32")

    def double(self):
        """Cast floating parameters and buffers to float64."""
        return self._cast("float64")

    def half(self):
        """Cast floating parameters and buffers to float16."""
        return self._cast("float16")

    def register_forward_pre_hook(self, hook):
        """hook(module, args) -> None or new args, called before forward."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook):
        """hook(module, args, output) -> None or a new output, called after forward."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ----- printing ------------------------------------------------------------------------------
    def _get_name(self):
        return type(self).__name__

    def extra_repr(self):
        """The layer's own settings inside its repr's parentheses (override, as in torch)."""
        return ""

    def __repr__(self):
        """torch's layout: `Name(extra)` on one line, else extra lines and `(name): child` lines indented."""
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({k}): " + _addindent(repr(m), 2) for k, m in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"

    def __dir__(self):
        keys = list(dir(type(self))) + list(self.__dict__) + list(self._parameters) + list(self._modules) + \
            list(self._buffers)
        return sorted(k for k in set(keys) if not k[0].isdigit())

    # ----- calling -----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        """The computation on Tensors; every subclass defines it."""
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        """Run forward under the module's name scope; a ShapeError or DTypeError gets the module path
        prefixed."""
        st = _st()
        if getattr(st, "module_base", None) is None:  # outermost call: paths for every submodule
            replay = self.__dict__.get("_onnxkit_compiled")
            if replay is not None:  # Module.compile()
                return replay(args, kwargs)
            with _outermost_call(self):
                return self._call_impl(args, kwargs, True)
        saved = st.scope  # a nested call (the hot path of every define-by-run step): no context manager
        st.scope = saved[:st.module_base] + [self._path]
        try:
            return self._call_impl(args, kwargs, False)
        finally:
            st.scope = saved

    def _call_impl(self, args, kwargs, root):
        """forward between the hooks, with the module path prefixed to shape and dtype errors."""
        try:
            if self._forward_pre_hooks:
                for hook in list(self._forward_pre_hooks.values()):
                    res = hook(self, args)
                    if res is not None:
                        args = res if isinstance(res, tuple) else (res,)
            out = self.forward(*args, **kwargs)
            if self._forward_hooks:
                for hook in list(self._forward_hooks.values()):
                    res = hook(self, args, out)
                    if res is not None:
                        out = res
            return out
        except (ShapeError, DTypeError) as e:
            if e.path is None:
                e.path = "" if root else self._path
                where = type(self).__name__ if root else f"{self._path} ({type(self).__name__})"
                e.args = (f"{where}: {e.msg}",)
            raise

    def __deepcopy__(self, memo):
        """An independent copy (copy.deepcopy): parameters and buffers are copied, hooks carried over."""
        from ..runtime import flush_pending
        flush_pending()
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            if k != "_onnxkit_compiled":  # recorded graphs belong to this module; the copy records its own
                object.__setattr__(new, k, copy.deepcopy(v, memo))
        if "_onnxkit_compiled" in self.__dict__:
            from .compiled import Replay
            object.__setattr__(new, "_onnxkit_compiled", Replay(new, self._onnxkit_compiled.trusted))
        return new

    def __getstate__(self):
        raise TypeError("onnxkit modules are not pickled; save them with ok.export or state_dict + safetensors")


class ShapeError(ValueError):
    """A build-time shape or type mismatch in a layer; Module.__call__ prefixes the module path."""

    def __init__(self, msg):
        super().__init__(msg)
        self.msg, self.path = msg, None


@contextlib.contextmanager
def shape_errors():
    """Report a functional op's ValueError (a bad input shape) as a ShapeError, so that
    Module.__call__ names the layer path."""
    try:
        yield
    except ShapeError:
        raise
    except ValueError as e:
        raise ShapeError(str(e)) from None


def dim_variants(base, name, doc, dims=(1, 2, 3), **attrs):
    """The layer classes `{name}1d`, `{name}2d`, ... of an N-d base class; they differ only in `_n`,
    the number of spatial dims. `doc` may use {n}; `attrs` are further class attributes."""
    return tuple(type(f"{name}{n}d", (base,), {"_n": n, "__module__": base.__module__, "__doc__": doc.format(n=n),
                                               **attrs}) for n in dims)


def zero_grads(tensors, set_to_none=True):
    """Reset the .grad of each tensor: to None, or to zeros (Module.zero_grad, Optimizer.zero_grad)."""
    for t in tensors:
        if t.grad is None:
            continue
        if set_to_none:
            t.grad = None
        else:
            t.grad.zero_()


def _set_value(t, arr, dtype=None):
    """Replace a leaf's value in place (after any deferred update of it), cast to its dtype or `dtype`."""
    from ..runtime import flush_if_pending
    flush_if_pending(t)
    t._become_value(np.array(arr, dtype=dtype or t.dtype, copy=True))
    t.dtype = t._value.dtype


def _buffer(value):
    """A buffer Tensor from a Tensor, numpy array, Python number/list or torch tensor."""
    if isinstance(value, Tensor):
        return value
    from ..tensor import tensor
    return tensor(value)
