"""Optimizer base class (torch.optim.Optimizer): parameter groups, per-parameter state, state dicts.

An optimizer is an update rule written once with the Tensor API and used two ways:
- `opt.step()` in torch-style loops records the update as deferred assignments to the parameters and
  state leaves, so forward, backward and update run in one onnxruntime call at the next evaluation
  (and the compiled graph is reused through the structure cache: hyperparameters are fed values);
- `onnxkit.training` appends the same rule to a training graph whose hyperparameters are inputs.

A rule has two parts. `coefficients(h, step, group)` turns a group's hyperparameters (float64 scalar
Tensors, `h["lr"]`...) and the step count into the scalars the update needs, once per group.
`update(p, g, state, k, group)` maps a parameter, its gradient and its state Tensors to their new
values in the parameter's own dtype (`k("name")` is a coefficient cast to that dtype), so rules stay
dtype-generic. Options that change the graph (nesterov, amsgrad, which hyperparameters are zero) are
read from the group at build time; `signature()` says when a compiled training graph is stale."""
import itertools

import numpy as np

from ..nn.module import _to_numpy, zero_grads
from ..tensor import Tensor, apply, tensor, no_grad, enable_grad
from .. import ops

_SPLIT = {"beta1": ("betas", 0), "beta2": ("betas", 1)}  # scalar inputs read from tuple-valued group keys


def _static_size(t):
    """Product of the known dims (symbolic ones count as 1): to pick the smaller of two operands."""
    n = 1
    for d in t._shape:
        n *= d if isinstance(d, int) else 1
    return n


def add_scaled(c, alpha, g):
    """c + alpha * g for a scalar alpha. When g is a weight gradient straight from a bias-free Gemm,
    alpha scales that Gemm's smaller operand and c becomes its C input: one Gemm instead of Gemm,
    Mul and Add over the whole weight (measured ~20 % faster on a 100x1000 weight). The rule must be
    g's only consumer, as in a plain update."""
    n = g.node
    if (n is not None and n.op_type == "Gemm" and not n.domain and len(n.inputs) == 2 and g._shape == c._shape
            and n.attrs.get("alpha", 1.0) == 1.0 and None not in (n.inputs[0]._shape, n.inputs[1]._shape)):
        a, b = n.inputs
        if _static_size(a) <= _static_size(b):
            a = a * alpha
        else:
            b = b * alpha
        return apply("Gemm", [a, b, c], {**n.attrs, "beta": 1.0}, types=[(c.dtype, c._shape)])
    return c + alpha * g


def regularized(p, g, k, group):
    """(p, g) as torch's rules start from them: g negated for `maximize`; weight decay added to the
    gradient (g + wd * p) or, with decoupled_weight_decay (AdamW), applied to p (coefficient "decay")."""
    if group["maximize"]:
        g = -g
    if group["weight_decay"] != 0:
        if group.get("decoupled_weight_decay", False):
            p = p * k("decay")
        else:
            g = g + k("weight_decay") * p
    return p, g


def _flat(tensors):
    """The tensors flattened and concatenated."""
    return ops.cat([ops.reshape(t, -1) for t in tensors], 0)


def _unflat(flat, like):
    """Split a _flat buffer back into tensors shaped like `like`."""
    sizes = [int(np.prod(t._shape, dtype=np.int64)) for t in like]
    return [ops.reshape(piece, t.shape) for piece, t in zip(ops.split(flat, sizes, 0), like)]


class Coefficients:
    """A group's float64 scalar coefficients, cast to each parameter dtype once (one Cast per dtype)."""

    def __init__(self, scalars):
        self.scalars, self._cast = scalars, {}

    def for_dtype(self, dtype):
        def k(name):
            key = (name, np.dtype(dtype))
            if key not in self._cast:
                self._cast[key] = ops.cast(self.scalars[name], dtype)
            return self._cast[key]
        return k


class Optimizer:
    """Base class. Subclasses set `hyperparameters` (group keys fed as scalars; "beta1"/"beta2" come
    from `betas`), `flags` (boolean options that change the graph) and implement `slots`,
    `coefficients` and `update`."""
    hyperparameters = ("lr",)
    flags = ()

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        self._before_read = None  # set by a Trainer that keeps the state on a device
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got a Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])

    def add_param_group(self, param_group):
        """Add a group (dict with "params" and optional per-group options; defaults fill the rest)."""
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs; use a list instead")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor) or p.node is not None:
                raise TypeError(f"optimizer can only optimize leaf Tensors, got {p!r}")
            if p.dtype.kind != "f":
                raise TypeError(f"optimizer can only optimize floating-point Tensors, got dtype {p.dtype}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    # ----- the rule (subclasses) ---------------------------------------------------------------
    def slots(self, group):
        """Names of the per-parameter state Tensors for this group's options."""
        return ()

    def initial_state(self, group, slot, p):
        """The value a state slot starts from (zeros unless the rule overrides it)."""
        return np.zeros(p._shape, p.dtype)

    def coefficients(self, h, step, group):
        """{name: float64 scalar Tensor} from the group's hyperparameters `h` and the step count."""
        raise NotImplementedError

    def update(self, p, g, state, k, group):
        """(new p, {slot: new state Tensor}) from p, its gradient g and its state; `k(name)` is a coefficient."""
        raise NotImplementedError

    # ----- what the rule reads from a group ----------------------------------------------------
    def hyper_values(self, group):
        """The group's scalar hyperparameters as floats, keyed by graph-input name."""
        out = {}
        for name in self.hyperparameters:
            key, i = _SPLIT.get(name, (name, None))
            v = group[key] if i is None else group[key][i]
            out[name] = float(v) if type(v) in (float, int) else float(_to_numpy(v))
        return out

    def structure(self, group, values=None):
        """What changes the graph: the flags and which hyperparameters are zero."""
        h = self.hyper_values(group) if values is None else values
        return (tuple(bool(group.get(f, False)) for f in self.flags),
                tuple(n for n in self.hyperparameters if h[n] == 0), len(group["params"]))

    def signature(self, values=None):
        """The structure of every group (`values`: their hyper_values, when already read)."""
        values = values or [None] * len(self.param_groups)
        return tuple(self.structure(g, v) for g, v in zip(self.param_groups, values))

    def ensure_state(self, p, group):
        """The state dict of p, with the slots of its group's options created (zeros unless the
        rule says otherwise) and "step" counting the updates taken."""
        st = self.state.setdefault(p, {})
        st.setdefault("step", 0)
        for slot in self.slots(group):
            if st.get(slot) is None:
                st[slot] = tensor(np.asarray(self.initial_state(group, slot, p), p.dtype))
        return st

    def build_updates(self, group, h, step, items, flat=False):
        """Apply the rule: items [(p, g, {slot: Tensor})] -> [(new p, {slot: new Tensor})]. With `flat`,
        the parameters of one dtype are updated as one flat buffer (Concat, one update, Split: torch's
        multi-tensor apply); the rules are elementwise, so each parameter's result is the same."""
        coeffs = Coefficients(self.coefficients(h, step, group))
        items = [(p, g if g.dtype == p.dtype else ops.cast(g, p.dtype), st) for p, g, st in items]
        by_dtype = {}
        for i, (p, _, _) in enumerate(items):
            by_dtype.setdefault(p.dtype, []).append(i)
        out = [None] * len(items)
        for dtype, idx in by_dtype.items():
            k = coeffs.for_dtype(dtype)
            if not flat or len(idx) == 1:
                for i in idx:
                    out[i] = self.update(*items[i][:2], items[i][2], k, group)
                continue
            ps, gs, sts = zip(*(items[i] for i in idx))
            new_p, new_st = self.update(_flat(ps), _flat(gs), {s: _flat([st[s] for st in sts]) for s in sts[0]}, k, group)
            pieces = _unflat(new_p, ps)
            slots = {s: _unflat(v, ps) for s, v in new_st.items()}
            for j, i in enumerate(idx):
                out[i] = (pieces[j], {s: v[j] for s, v in slots.items()})
        return out

    # ----- torch-style use -----------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Reset the .grad of every parameter: to None (default) or to zeros."""
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure=None):
        """One update of every parameter that has a .grad, recorded as deferred assignments: the
        next evaluation (e.g. `loss.item()`) runs forward, backward and update in one call."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                by_step = {}
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    st = self.ensure_state(p, group)
                    st["step"] += 1
                    by_step.setdefault(st["step"], []).append((p, p.grad, st))
                for n, items in by_step.items():
                    for (p, _, st), (new_p, new_state) in zip(items, self._recorded_updates(group, n, items)):
                        p._assign(new_p)
                        for slot, v in new_state.items():
                            st[slot]._assign(v)
        return loss

    def _recorded_updates(self, group, step, items):
        """build_updates recorded as one macro node (onnxkit.macro) whose inputs are the hyperparameters,
        the step, and each parameter, gradient and state slot: a define-by-run loop whose steps repeat
        their structure builds the update graph once."""
        from ..macro import macro
        values = self.hyper_values(group)
        names, slots = list(values), self.slots(group)
        inputs = [tensor(np.float64(values[k])) for k in names] + [tensor(np.float64(step))]
        for p, g, st in items:
            inputs += [p, g] + [st[s] for s in slots]

        def expand(*args):
            h, args = dict(zip(names, args)), args[len(names):]
            step_t, args, its = args[0], args[1:], []
            for i in range(len(items)):  # the state as the slots only: anything else would be baked in
                p, g, *vals = args[i * (2 + len(slots)):(i + 1) * (2 + len(slots))]
                its.append((p, g, dict(zip(slots, vals))))
            news = self.build_updates(group, h, step_t, its)
            return [t for new_p, new_state in news for t in (new_p, *(new_state[s] for s in slots))]
        types = [(t.dtype, t._shape) for p, _, st in items for t in (p, *(st[s] for s in slots))]
        key = ("optimizer", type(self).__qualname__, self.structure(group, values), tuple(slots), len(items))
        outs = iter(macro(key, inputs, types, expand))
        return [(next(outs), {s: next(outs) for s in slots}) for _ in items]

    # ----- state dicts ---------------------------------------------------------------------------
    def _sync(self):
        """Let a Trainer holding the state on a device copy it back first."""
        if self._before_read is not None:
            self._before_read()

    def state_dict(self):
        """{"state": {index: {slot: array, "step": n}}, "param_groups": [...]} with torch's layout:
        parameters are numbered in group order."""
        self._sync()
        index, groups = {}, []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {}
        for p, st in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: (np.array(v.numpy(), copy=True) if isinstance(v, Tensor) else v)
                                       for k, v in st.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a state dict from `state_dict()` (or torch's: tensors are read without torch)."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(s["params"]) != len(g["params"]) for s, g in zip(saved, self.param_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        id_map = dict(zip(itertools.chain.from_iterable(s["params"] for s in saved),
                          itertools.chain.from_iterable(g["params"] for g in self.param_groups)))
        self._sync()
        self.state = {}
        for k, st in state_dict["state"].items():
            p = id_map[int(k)]
            new = {}
            for name, v in st.items():
                if v is None:
                    continue
                if name == "step":
                    new["step"] = int(round(float(_to_numpy(v))))
                else:
                    new[name] = tensor(np.array(_to_numpy(v), dtype=p.dtype, copy=True))
            new.setdefault("step", 1 if len(new) else 0)  # torch's SGD keeps no step: a buffer means >= 1 step
            self.state[p] = new
        for g, s in zip(self.param_groups, saved):
            for k, v in s.items():
                if k != "params":
                    g[k] = tuple(v) if isinstance(v, list) else v
