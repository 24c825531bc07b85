"""Containers with torch's semantics: Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict."""
import collections
import collections.abc as abc
import itertools
import operator

import numpy as np

from ..tensor import Tensor
from .module import Module, _addindent
from .parameter import Parameter

__all__ = ["Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"]


def _abs_index(idx, size):
    """A non-negative int index into a container of `size`, IndexError when out of range."""
    idx = operator.index(idx)
    if not -size <= idx < size:
        raise IndexError(f"index {idx} is out of range")
    return idx % size


def _renumber(module):
    """Keys 0..n-1 again after a deletion (torch keeps list-like containers densely numbered)."""
    object.__setattr__(module, "_modules", collections.OrderedDict(
        (str(i), m) for i, m in enumerate(module._modules.values())))


def _insert(module, index, item):
    """Insert at `index` (negative counts from the end), shifting the later numbered entries up."""
    n = len(module._modules)
    if not -n <= index <= n:
        raise IndexError(f"Index out of range: {index}")
    index = index + n if index < 0 else index
    for i in range(n, index, -1):
        module._modules[str(i)] = module._modules[str(i - 1)]
    module._modules[str(index)] = item


def _pairs(owner, items):
    """(key, value) pairs from a mapping or an iterable of pairs, with torch's checks."""
    if not isinstance(items, abc.Iterable):
        raise TypeError(f"{owner}.update should be called with an iterable of key/value pairs, "
                        f"but got {type(items).__name__}")
    if isinstance(items, abc.Mapping) or (isinstance(items, Module) and hasattr(items, "items")):
        return list(items.items())
    out = []
    for j, p in enumerate(items):
        if not isinstance(p, abc.Iterable):
            raise TypeError(f"{owner} update sequence element #{j} should be Iterable; is {type(p).__name__}")
        if len(p) != 2:
            raise ValueError(f"{owner} update sequence element #{j} has length {len(p)}; 2 is required")
        out.append((p[0], p[1]))
    return out


def _as_param(value):
    """Tensors and arrays held by a ParameterList/Dict become Parameters; other objects stay as they are."""
    if isinstance(value, Parameter) or not isinstance(value, (Tensor, np.ndarray)) and not hasattr(value, "detach"):
        return value
    return Parameter(value)


def _param_line(key, p):
    """One line of the ParameterList/Dict repr, torch's layout."""
    if isinstance(p, Tensor):
        size = "x".join(str(d) for d in p._shape)
        return f"  ({key}): {'Parameter' if isinstance(p, Parameter) else 'Tensor'} containing: [{p.dtype} of size {size}]"
    return f"  ({key}): Object of type: {type(p).__name__}"


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: positional access to the children, kept numbered densely."""

    def __setitem__(self, idx, module):
        setattr(self, list(self._modules)[_abs_index(idx, len(self))], module)

    def __delitem__(self, idx):
        keys = list(self._modules)
        for k in keys[idx] if isinstance(idx, slice) else [keys[_abs_index(idx, len(self))]]:
            delattr(self, k)
        _renumber(self)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __dir__(self):
        return [k for k in super().__dir__() if not k.isdigit()]

    def append(self, module):
        """Add `module` at the end."""
        self.add_module(str(len(self)), module)
        return self

    def pop(self, idx):
        """Remove and return the module at `idx`."""
        v = self[idx]
        del self[idx]
        return v


class Sequential(_ModuleSequence):
    """Modules applied in order; built from positional modules or one OrderedDict of named modules."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], collections.OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(collections.OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_abs_index(idx, len(self))]

    def __add__(self, other):
        if not isinstance(other, Sequential):
            raise ValueError(f"add operator supports only objects of Sequential class, but {type(other)} is given.")
        return Sequential(*self, *other)

    def __iadd__(self, other):
        if not isinstance(other, Sequential):
            raise ValueError(f"add operator supports only objects of Sequential class, but {type(other)} is given.")
        return self.extend(list(other))

    def __mul__(self, n):
        if not isinstance(n, int):
            raise TypeError(f"unsupported operand type(s) for *: Sequential and {type(n).__name__}")
        if n <= 0:
            raise ValueError(f"Non-positive multiplication factor {n} for Sequential")
        return Sequential(*(list(self) * n))

    __rmul__ = __mul__

    def insert(self, index, module):
        """Insert `module` before position `index`."""
        if not isinstance(module, Module):
            raise TypeError(f"module should be of type Module, got {type(module).__name__}")
        _insert(self, index, module)
        return self

    def extend(self, sequential):
        """Append every module of `sequential`."""
        for m in sequential:
            self.append(m)
        return self

    def forward(self, input):
        for m in self._modules.values():
            input = m(input)
        return input


class ModuleList(_ModuleSequence):
    """A list of registered submodules (indexing, slicing, append/extend/insert/pop, del)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_abs_index(idx, len(self)))]

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(itertools.chain(self, other))

    def __repr__(self):
        """torch's compressed form: runs of identical entries print once as `(i-j): n x Repr`."""
        reprs = [repr(m) for m in self]
        if not reprs:
            return f"{self._get_name()}()"
        runs = [[k, k, r] for k, r in enumerate(reprs)]
        merged = [runs[0]]
        for run in runs[1:]:
            if run[2] == merged[-1][2]:
                merged[-1][1] = run[1]
            else:
                merged.append(run)
        lines = [_addindent(f"({a}): {r}" if a == b else f"({a}-{b}): {b - a + 1} x {r}", 2) for a, b, r in merged]
        return f"{self._get_name()}(\n  " + "\n  ".join(lines) + "\n)"

    def insert(self, index, module):
        """Insert `module` before position `index`."""
        _insert(self, index, module)

    def extend(self, modules):
        """Append every module of the iterable `modules`."""
        if not isinstance(modules, abc.Iterable):
            raise TypeError(f"ModuleList.extend should be called with an iterable, but got {type(modules).__name__}")
        for m in list(modules):
            self.append(m)
        return self


class ModuleDict(Module):
    """An ordered dict of registered submodules (insertion order, as torch)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def clear(self):
        self._modules.clear()

    def pop(self, key):
        v = self[key]
        del self[key]
        return v

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def update(self, modules):
        """Add (key, module) pairs from a mapping or an iterable of pairs, in their order."""
        for k, m in _pairs("ModuleDict", modules):
            self[k] = m


class ParameterList(Module):
    """A list of registered Parameters; tensors and arrays appended are wrapped as Parameters."""

    def __init__(self, values=None):
        super().__init__()
        self._size = 0
        if values is not None:
            self.extend(values)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)([self[i] for i in range(len(self))[idx]])
        return getattr(self, str(_abs_index(idx, len(self))))

    def __setitem__(self, idx, value):
        setattr(self, str(_abs_index(idx, len(self))), _as_param(value))

    def __len__(self):
        return self._size

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __iadd__(self, values):
        return self.extend(values)

    def __dir__(self):
        return [k for k in super().__dir__() if not k.isdigit()]

    def append(self, value):
        self._size += 1
        self[self._size - 1] = value
        return self

    def extend(self, values):
        if not isinstance(values, abc.Iterable) or isinstance(values, (Tensor, np.ndarray)):
            raise TypeError(f"ParameterList.extend should be called with an iterable, but got {type(values).__name__}")
        for v in values:
            self.append(v)
        return self

    def extra_repr(self):
        return "\n".join(_param_line(k, p) for k, p in enumerate(self))

    def __call__(self, *args, **kwargs):
        raise RuntimeError("ParameterList should not be called.")


class ParameterDict(Module):
    """An ordered dict of registered Parameters; a plain dict is added in sorted key order (torch)."""

    def __init__(self, parameters=None):
        super().__init__()
        self._keys = {}
        if parameters is not None:
            self.update(parameters)

    @staticmethod
    def _attr(key):
        if not isinstance(key, str):
            raise TypeError(f"Index given to ParameterDict cannot be used as a key as it is not a string "
                            f"(type is '{type(key).__name__}').")
        return key

    def __getitem__(self, key):
        return getattr(self, self._attr(key))

    def __setitem__(self, key, value):
        attr = self._attr(key)
        self._keys[key] = None
        setattr(self, attr, _as_param(value))

    def __delitem__(self, key):
        del self._keys[key]
        delattr(self, self._attr(key))

    def __len__(self):
        return len(self._keys)

    def __iter__(self):
        return iter(self._keys)

    def __reversed__(self):
        return reversed(list(self._keys))

    def __contains__(self, key):
        return key in self._keys

    def copy(self):
        """A new ParameterDict holding the same Parameters (not copies)."""
        return ParameterDict(collections.OrderedDict((k, self[k]) for k in self._keys))

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def clear(self):
        for k in list(self._keys):
            del self[k]

    def pop(self, key):
        v = self[key]
        del self[key]
        return v

    def popitem(self):
        k = list(self._keys)[-1]
        return k, self.pop(k)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def fromkeys(self, keys, default=None):
        """A new ParameterDict with every key of `keys` set to `default`."""
        return ParameterDict((k, default) for k in keys)

    def keys(self):
        return self._keys.keys()

    def items(self):
        return ((k, self[k]) for k in self._keys)

    def values(self):
        return (self[k] for k in self._keys)

    def update(self, parameters):
        """Add (key, value) pairs from a mapping or iterable; a plain dict's keys go in sorted order (torch)."""
        pairs = _pairs("ParameterDict", parameters)
        if isinstance(parameters, abc.Mapping) and not isinstance(parameters, (collections.OrderedDict, ParameterDict)):
            pairs = sorted(pairs, key=lambda kv: kv[0])
        for k, p in pairs:
            self[k] = p

    def __or__(self, other):
        out = self.copy()
        out.update(other)
        return out

    def __ior__(self, other):
        self.update(other)
        return self

    def extra_repr(self):
        return "\n".join(_param_line(k, p) for k, p in self.items())

    def __call__(self, *args, **kwargs):
        raise RuntimeError("ParameterDict should not be called.")
