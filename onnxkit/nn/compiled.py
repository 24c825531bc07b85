"""Module.compile(): a compiled module replays the forward graph of its repeated calls as one macro node
instead of rebuilding it op by op (a define-by-run step of a small conv net spends about as long in
Python building the forward as onnxruntime spends on the whole step's overhead).

Per guard (grad mode; the arguments' dtypes, shapes and requires_grad and the values of non-tensor
arguments; every parameter's and buffer's dtype, shape and requires_grad; every submodule's training
flag; the module tree itself), calls run forward as usual and record the graph it built. Once two
calls built the same graph, later calls with that guard record one macro node (onnxkit.macro) whose
inputs are the arguments, parameters, buffers, the constants forward makes (`ok.arange(t)`, equal in
both traces) and its dropout draws (new each call). It is expanded, by running forward on
those inputs, only when a graph of that structure is first compiled: a repeated step finds its session
and builds nothing. Values, gradients, buffer updates (BatchNorm's running statistics) and random
draws (the same host stream, in the same order) are those of the plain call.

The contract, as with torch.compile: forward depends only on its arguments, the parameters, buffers,
training flags and the modules' plain settings (guarded: a counter kept in one never replays). A call
whose forward evaluates a value (`.item()`, a branch on data), changes a tensor in place or a module's
attribute (`self.cache = h`), reads a tensor that is none of those, or meets a hook is never replayed. Other Python state that forward reads
(globals, objects held by a module) is not guarded: do not compile a module that depends on it."""
import collections
import itertools

from .. import random, runtime
from ..autodiff.registry import lookup
from ..emit import _deps, structure_key
from ..macro import macro
from ..ops.norm import _latest_update, add_buffer_updates, buffer_value, pending_update
from ..tensor import MadeLeaves, Tensor, _st, is_grad_enabled, making, set_grad_enabled, tensor
from .module import _outermost_call, tree_version

_keys = itertools.count()
_PRIMITIVES = (bool, int, float, str, type(None))
_SKIP = object()  # _analyze: this call's graph says nothing either way
_MAX_TRACES = 64  # guards remembered per module
_GIVE_UP_AFTER = 3  # traces of one guard that differ from the one before: forward depends on something else


def compile(model=None, **options):
    """torch.compile's place: a Module is compiled in place (Module.compile) and returned, so its
    state_dict keys stay as they are (torch wraps it under `_orig_mod.`); any other callable is returned
    unchanged, since define-by-run code already reuses compiled sessions. torch's options (mode,
    fullgraph, dynamic, backend, ...) are accepted and ignored, except disable=True. Also a decorator."""
    from .module import Module
    if model is None:
        return lambda m: compile(m, **options)
    if options.get("disable"):
        return model
    if isinstance(model, Module):
        model.compile()
        return model
    if callable(model):
        return model
    raise TypeError(f"compile expects a Module or a callable, got {type(model).__name__}")


class _Trace:
    """The calls of one guard: the structure of the last traced graph, whether replay is on (two equal
    traces), and what a replay needs."""
    __slots__ = ("key", "structure", "misses", "ready", "dead", "grad", "settings", "flags", "n_flat", "layout",
                 "n_out", "types", "reach", "updates", "made", "checks")

    def __init__(self, grad, settings, flags):
        self.key, self.structure, self.misses, self.ready, self.dead = next(_keys), None, 0, False, False
        self.grad, self.settings, self.flags = grad, settings, flags


class Replay:
    """Module.__call__ of a compiled module (the outermost call only): traces, compares, replays."""

    def __init__(self, module, trusted=False):
        """trusted: forward is known to depend on nothing the guards miss (onnxkit's own losses), so the
        first trace is enough, and a call whose graph updates nothing and draws nothing is replayed at
        once: a loop compiles one structure, not a traced one and then a replayed one."""
        self.module, self.version, self.trusted = module, None, trusted

    def _refresh(self):
        """Re-read the module tree after a change: submodules, hooks, each parameter and buffer once
        with every (store, name) that holds it (tied weights are held twice)."""
        self.modules = [m for _, m in self.module.named_modules()]
        self.hooked = any(m._forward_hooks or m._forward_pre_hooks for m in self.modules)
        self.settings = [(m.__dict__, [k for k, v in m.__dict__.items() if k not in ("training", "_path")
                                       and _plain(v)]) for m in self.modules]  # dropout.p, reduction, flags
        homes = collections.OrderedDict()
        for m in self.modules:
            for store in (m._parameters, m._buffers):
                for name, t in store.items():
                    if t is not None:
                        homes.setdefault(id(t), []).append((store, name))
        self.homes = list(homes.values())
        self.traces = {}
        self.version = tree_version[0]

    def __call__(self, args, kwargs):
        if self.version != tree_version[0]:
            self._refresh()
        guard = None if self.hooked or random.in_graph_rng() else self._guard(args, kwargs)
        if guard is None:
            return self._plain(args, kwargs)
        spec, flat, tensors = guard
        try:
            trace = self.traces.get(spec)
        except TypeError:  # a setting that became unhashable
            return self._plain(args, kwargs)
        if trace is not None and trace.ready:
            return self._replayed(trace, args, kwargs, flat, tensors)
        if trace is None:
            if len(self.traces) >= _MAX_TRACES:  # a guard that never repeats (a counter in a setting)
                self.traces.clear()
            trace = self.traces[spec] = _Trace(grad=spec[0], settings=spec[-3], flags=spec[-2])  # _guard's order
        return self._traced(trace, args, kwargs, flat, tensors)

    def _plain(self, args, kwargs):
        """The uncompiled outermost call."""
        with _outermost_call(self.module):
            return self.module._call_impl(args, kwargs, True)

    def _guard(self, args, kwargs):
        """(guard, tensor arguments, parameters and buffers), or None for a call that is never replayed
        (an argument that is neither a tensor of static shape nor a plain value)."""
        spec, flat = [is_grad_enabled()], []
        names = tuple(sorted(kwargs)) if kwargs else ()
        for a in itertools.chain(args, (kwargs[k] for k in names)):
            if isinstance(a, Tensor):
                s = a._shape
                if a.kind == "input" or s is None or not all(type(d) is int for d in s):
                    return None
                spec.append((a.dtype, s, a.requires_grad))
                flat.append(a)
            elif type(a) in _PRIMITIVES:
                spec.append((type(a), a))
            else:
                return None
        tensors = [store[name] for (store, name), *_ in self.homes]
        spec.append(names)
        spec.append(tuple([d.get(k) for d, keys in self.settings for k in keys]))  # spec[-3], spec[-2]: what
        spec.append(tuple([m.training for m in self.modules]))  # an expansion restores
        spec.append(tuple([(t.dtype, t._shape, t.requires_grad) for t in tensors]))
        return tuple(spec), flat, tensors

    # ----- tracing ---------------------------------------------------------------------------------
    def _traced(self, trace, args, kwargs, flat, tensors):
        """A plain call, recorded: replay turns on when its graph equals the previous call's."""
        runs, pending = runtime.stats["run"], set(runtime._pending)
        watched = flat + tensors
        before = [(t.node, t._value) for t in watched]
        attrs = [dict(m.__dict__) for m in self.modules]  # forward that keeps something (self.cache = h)
        reads = [pending_update(t)[1] for t in tensors]  # a buffer update not evaluated yet: forward reads it
        st = _st()
        saved, st.value_checks = getattr(st, "value_checks", None), []
        try:
            with making(MadeLeaves()) as made:
                out = self._plain(args, kwargs)
        finally:
            checks, st.value_checks = st.value_checks, saved
        if trace.dead:
            return out
        outs = _flatten(out)
        clean = (runtime.stats["run"] == runs and set(runtime._pending) == pending
                 and all(t.node is n and t._value is v for t, (n, v) in zip(watched, before))
                 and all(_same_attrs(a, m.__dict__) for a, m in zip(attrs, self.modules)))
        found = _analyze(outs, flat, tensors, reads, made, checks) if clean and outs is not None else None
        if found is None:
            trace.dead = True
        if found is None or found is _SKIP:
            return out
        structure, reach, updates, update_values, checks = found
        kinds = tuple((t.dtype, t._shape) if id(t) in made.random else (t.dtype.str, t._shape, t._value.tobytes())
                      for t in made.leaves)  # draws: their types; other leaves made: their values too
        structure = (structure, _layout(out), tuple(updates), kinds)
        if structure != trace.structure and not self.trusted:
            trace.structure, trace.misses = structure, trace.misses + 1
            trace.dead = trace.misses > _GIVE_UP_AFTER
            return out
        trace.ready, trace.n_flat, trace.layout, trace.n_out = True, len(flat), _layout(out), len(outs)
        trace.types = [(t.dtype, t._shape) for t in outs + update_values]
        trace.reach, trace.updates, trace.checks = reach, updates, checks
        trace.made = [((t._shape, t.dtype), None) if id(t) in made.random else (None, t) for t in made.leaves]
        if self.trusted and not updates and not made.random:  # the plain graph is dropped unread
            return self._replayed(trace, args, kwargs, flat, tensors)
        return out

    # ----- replaying -------------------------------------------------------------------------------
    def _replayed(self, trace, args, kwargs, flat, tensors):
        """One macro node standing for forward; buffer updates become effects of its first output."""
        updated = set(trace.updates)
        ins = flat + [buffer_value(t) if i in updated else t for i, t in enumerate(tensors)]
        for i, check in trace.checks:  # what forward checks of its inputs' values (class indices in range)
            check(ins[i])
        ins += [made if draw is None else tensor(random.host_draw(*draw)) for draw, made in trace.made]
        homes, modules, settings = self.homes, self.modules, self.settings

        def expand(*real):
            return self._expand(trace, homes, modules, settings, args, kwargs, real)
        outs = macro(("compiled forward", trace.key), ins, trace.types, expand, reach=trace.reach)
        n = trace.n_out
        if trace.updates:
            add_buffer_updates(outs[0], [(tensors[i], v) for i, v in zip(trace.updates, outs[n:])])
        return _unflatten(trace.layout, outs[:n])

    def _expand(self, trace, homes, modules, settings, args, kwargs, real):
        """Run forward on the macro's inputs (parameters and buffers put in place of the module's own for
        the call; settings, training flags, grad mode and no hooks, as when traced); its outputs and buffer
        updates."""
        nf, nt = trace.n_flat, len(homes)
        it = iter(real[:nf])
        args = [next(it) if isinstance(a, Tensor) else a for a in args]
        kwargs = {k: next(it) if isinstance(kwargs[k], Tensor) else kwargs[k] for k in sorted(kwargs)}
        own = [(store, name, store[name]) for places in homes for store, name in places]
        flags = [m.training for m in modules]
        hooks = [(m._forward_pre_hooks, m._forward_hooks) for m in modules]  # none when traced: none now
        slots = [(d, k) for d, keys in settings for k in keys]
        values = [d.get(k) for d, k in slots]
        registry = {id(t): _latest_update.get(id(t)) for t in real[nf:nf + nt]}
        st = _st()
        scope, base = st.scope, getattr(st, "module_base", None)
        try:
            for places, t in zip(homes, real[nf:nf + nt]):
                for store, name in places:
                    collections.OrderedDict.__setitem__(store, name, t)  # not a change of the tree
            for m, f in zip(modules, trace.flags):
                object.__setattr__(m, "training", f)
                object.__setattr__(m, "_forward_pre_hooks", {})
                object.__setattr__(m, "_forward_hooks", {})
            for (d, k), v in zip(slots, trace.settings):
                d[k] = v
            st.scope, st.module_base = [], None
            with set_grad_enabled(trace.grad), making(MadeLeaves(iter(real[nf + nt:]))):
                out = self._plain(args, kwargs)
        finally:
            st.scope, st.module_base = scope, base
            for store, name, t in own:
                collections.OrderedDict.__setitem__(store, name, t)
            for m, f, (pre, post) in zip(modules, flags, hooks):
                object.__setattr__(m, "training", f)
                object.__setattr__(m, "_forward_pre_hooks", pre)
                object.__setattr__(m, "_forward_hooks", post)
            for (d, k), v in zip(slots, values):
                d[k] = v
            for k, entry in registry.items():
                if entry is None:
                    _latest_update.pop(k, None)
                else:
                    _latest_update[k] = entry
        outs = _flatten(out)
        stops = {id(t): i for i, t in reversed(list(enumerate(real)))}
        new = {}
        for node, b, v in _subgraph(outs or [], stops)[2]:
            new[stops.get(id(b), -1) - nf] = v
            node.effects = [e for e in node.effects if e[0] is not b] or None
        if outs is None or len(outs) != trace.n_out or sorted(new) != sorted(trace.updates):
            raise RuntimeError(f"compiled {type(self.module).__name__}: forward built a different graph when "
                               "replayed than when traced; it depends on Python state that the guards do not "
                               "see. Do not compile() this module.")
        return outs + [new[i] for i in trace.updates]


def _same_attrs(before, now):
    """Whether forward left a module's attributes as they were (its path, set per call, aside)."""
    return len(before) == len(now) and all(
        k == "_path" or (k in now and (now[k] is v or (type(v) in _PRIMITIVES and now[k] == v)))
        for k, v in before.items())


def _own(cls):
    """An autodiff.Function of onnxkit's own (LSTMScan, ValueOf): its backward is pure, so the replayed
    forward may record it once; a user's Function keeps its call plain (its backward runs each step)."""
    return cls.__module__.startswith("onnxkit.")


def _plain(v):
    """A setting the guards can hold: a plain value, or a tuple of them (kernel_size=(3, 3))."""
    return type(v) in _PRIMITIVES or (type(v) is tuple and all(type(x) in _PRIMITIVES for x in v))


def _flatten(out):
    """The output Tensors of forward (a Tensor, or a tuple or list of them), or None."""
    if isinstance(out, Tensor):
        return [out]
    if type(out) in (tuple, list) and all(isinstance(t, Tensor) for t in out):
        return list(out)
    return None


def _layout(out):
    """How _unflatten rebuilds forward's result: None for one Tensor, else the container type."""
    return None if isinstance(out, Tensor) else type(out)


def _unflatten(layout, outs):
    return outs[0] if layout is None else layout(outs)


def _subgraph(outs, stops):
    """The nodes between `stops` (ids) and `outs`, in topological order, with the nodes that the buffer
    updates found on them need; the leaves reached that are not stops; the updates as (node, buffer, value)."""
    nodes, leaves, effects, seen = [], [], [], set()
    frontier = list(outs)
    while frontier:
        stack = [(t, False) for t in reversed(frontier)]
        frontier = []
        while stack:
            t, done = stack.pop()
            n = t.node
            if id(t) in stops or n is None:
                if id(t) not in stops and id(t) not in seen:
                    seen.add(id(t))
                    leaves.append(t)
                continue
            if id(n) in seen:
                continue
            if done:
                seen.add(id(n))
                nodes.append(n)
                for b, v, _ in n.effects or ():
                    effects.append((n, b, v))
                    frontier.append(v)
                continue
            stack.append((t, True))
            stack.extend((d, False) for d in reversed(_deps(n)))
    return nodes, leaves, effects


def _analyze(outs, flat, tensors, reads, made, checks):
    """(structure, gradient reach per output, updated buffers, their new values, value checks as
    (input index, check)) of a traced call's graph. None when it cannot be replayed: it reads a tensor
    that is not an input, holds a macro node or a user's autodiff.Function, or updates something that
    is not one of the module's buffers; _SKIP when it read a buffer past a pending update. `reads` are the
    parameters and buffers as forward reads them (a buffer with a pending update: its new value);
    `made` the value leaves forward made (constants such as `ok.arange(t)`, dropout draws)."""
    everything = flat + reads + made.leaves
    stops = {}
    for i, t in enumerate(everything):
        stops.setdefault(id(t), i)
    nodes, leaves, effects = _subgraph(outs, stops)
    slot = {id(t): i for i, t in enumerate(tensors)}
    foreign = [t for t in leaves if t.kind != "const"]
    if foreign and all(id(t) in slot for t in foreign):
        return _SKIP  # a buffer read past its pending update (not evaluated yet): trace another call
    if foreign or any(n.macro or (n.custom and not _own(n.custom[0].cls)) for n in nodes):
        return None
    last = {}
    for _, b, v in effects:
        if id(b) not in slot:
            return None
        last[slot[id(b)]] = v
    updates = list(last)
    values = [last[i] for i in updates]
    dep = {id(t): {i} if t.requires_grad else set() for i, t in reversed(list(enumerate(everything)))}
    for n in nodes:
        reached = set()
        if n.custom:  # an autodiff.Function output: its gradient reaches the call's tensor arguments
            ins = [a for a in n.custom[0].args if isinstance(a, Tensor)]
        else:
            ins = (n.inputs + list(n.outer.values()) if n.outer else n.inputs) if lookup(n) is not None else ()
        for t in ins:
            if t is not None and t.requires_grad:
                reached |= dep.get(id(t), set())
        for o in n.outputs:
            dep[id(o)] = reached
    reach = [sorted(dep.get(id(t), ())) for t in outs]
    checks = [(stops[id(t)], check) for t, check in checks if id(t) in stops]  # others: computed or constant
    return structure_key(nodes, everything + leaves, outs + values), reach, updates, values, checks
