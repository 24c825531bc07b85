"""Macro nodes: one node standing for a sub-graph that a Python function builds, expanded only when a
graph holding it is compiled or exported.

A define-by-run step rebuilds its graph every iteration. `loss.backward()` and `optimizer.step()` record
one macro node each instead of the whole gradient and update graphs; the session cache is keyed by
structure, where a macro counts as its key, so a repeated step finds its compiled session and nothing is
expanded. The first step (a cache miss) expands the macros and compiles the real graph."""
from .tensor import Node, Tensor, is_grad_enabled, no_grad


def macro(key, inputs, types, expand, keyable=None, reach=None):
    """The output Tensors of a new macro node. `types` is [(dtype, shape)] per output; `expand(*inputs)`
    returns the real output Tensors (same types), built from the inputs, the graphs behind them and
    constants. Graphs of equal structure share one compiled session, so `key` (hashable) must hold
    whatever else expand depends on. `keyable()`, when given, says whether the structure of the graph
    behind the inputs still determines the expansion; when it says no, evaluation expands the macro
    before computing the structure key. `reach`, for a macro that gradients flow through, lists per
    output the indices of the inputs it is differentiable in (the output then requires grad when one
    of those does); a gradient walk expands the macro first."""
    node = Node("Macro", inputs, domain="onnxkit.macro", n_out=len(types))
    node.key = ("onnxkit.macro", key)
    node.macro = (expand, keyable, reach)
    node.outputs = [Tensor(d, s, node=node, index=i) for i, (d, s) in enumerate(types)]
    if reach is not None and is_grad_enabled():
        for t, ins in zip(node.outputs, reach):
            t.requires_grad = any(inputs[i].requires_grad for i in ins)
    return node.outputs


def unkeyable(nodes):
    """The macros among `nodes` that must be expanded before the graph's structure key is taken."""
    return [n for n in nodes if n.macro is not None and n.macro[1] is not None and not n.macro[1]()]


def expand_macros(nodes):
    """Build what each macro among `nodes` (in topological order) stands for; its outputs become Identity
    nodes of the real tensors, so whoever holds them reads the real graph. True when any was expanded."""
    found = False
    for node in nodes:
        if node.macro is None:
            continue
        found, (expand, *_), node.macro = True, node.macro, None
        with no_grad():
            real = expand(*node.inputs)
        for k, (t, r) in enumerate(zip(node.outputs, real)):
            if r.dtype != t.dtype or not _compatible(r._shape, t._shape):
                raise RuntimeError(f"internal error: macro {node.key[1][0]!r} built {r.dtype}{list(r._shape or ())} "
                                   f"for an output declared {t.dtype}{list(t._shape or ())}")
            ident = Node("Identity", [r])
            ident.outputs = [t]
            t.node, t.index = ident, 0
            if k == 0 and node.effects:  # pending buffer updates stay with the output that holds them
                ident.effects, node.effects = node.effects, None
    return found


def _compatible(built, declared):
    """Same rank, and equal sizes where both are known (a dim may stay symbolic in the real graph)."""
    if built is None or declared is None:
        return built is declared
    return len(built) == len(declared) and all(
        not (isinstance(a, int) and isinstance(b, int)) or a == b for a, b in zip(built, declared))
