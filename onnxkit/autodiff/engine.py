"""Reverse mode over the Tensor DAG. The engine walks, accumulates and un-broadcasts; the rules in
the registry do the math. Gradient graphs are ordinary Tensors, so they can be differentiated again."""
import numpy as np

from .. import ops
from ..dims import format_shape
from ..tensor import Tensor, const, enable_grad, no_grad
from ..emit import topo
from .registry import lookup


def unbroadcast(g, shape, like=None):
    """Sum `g` down to `shape` (the input's shape before broadcasting). Symbolic dims compare by name; a
    dim that cannot be decided at build time (an unknown dim of the input against another dim of g)
    is reduced at run time when it is 1 in `like` (the input itself), so imported graphs whose shape
    inference left dims unknown still get gradients of the right shape."""
    if g._shape == tuple(shape) or g._shape is None:
        return g
    shape = tuple(shape)
    lead = len(g._shape) - len(shape)
    axes = list(range(lead)) + [i + lead for i, d in enumerate(shape) if d == 1 and g._shape[i + lead] != 1]
    undecided = [i for i, d in enumerate(shape) if not isinstance(d, int) and d != g._shape[i + lead]]
    if axes:
        if all(a < lead for a in axes):
            g = ops.sum(g, axes)
        else:
            g = ops.sum(g, axes, keepdim=True)
            g = ops.squeeze(g, list(range(lead))) if lead else g
    if undecided and like is not None:
        g = _reduce_where_one(g, like, undecided)
    return g


def _reduce_where_one(g, like, dims):
    """Sum g (of like's rank) over those of `dims` whose size in `like` is 1 at run time (Compress picks
    the axes; ReduceSum with no axes left does nothing)."""
    from ..tensor import apply
    i64 = np.dtype(np.int64)
    sizes = apply("Gather", [ops.shape_of(like), const(dims, np.int64)], types=[(i64, (len(dims),))])
    is_one = apply("Equal", [sizes, const(1, np.int64)], types=[(np.dtype(bool), (len(dims),))])
    axes = apply("Compress", [const(dims, np.int64), is_one], {"axis": 0}, types=[(i64, ("unbroadcast_axes",))])
    return apply("ReduceSum", [g, axes], {"keepdims": 1, "noop_with_empty_axes": 1}, types=[(g.dtype, like._shape)])


def _walk(outputs):
    """Nodes between the outputs and tensors that require grad, in topological order, and the leaves.
    Macro nodes (a compiled module's replayed forward) are expanded first: rules see the real graph."""
    nodes, leaves = topo(outputs)
    if any(n.macro is not None and n.macro[2] is not None for n in nodes):
        from ..macro import expand_macros
        expand_macros(nodes)
        nodes, leaves = topo(outputs)
    return [n for n in nodes if n.custom or any(t.requires_grad for t in n.outputs)], leaves


def _seed(out, g):
    """The gradient that starts the walk at `out`: ones for a one-element output, else the given one
    (cast to out's dtype; its shape must be out's, as in torch)."""
    if g is None:  # torch: implicit only for one-element outputs
        if out._shape is None or any(d != 1 for d in out._shape):
            shape = "unknown" if out._shape is None else format_shape(out._shape)
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs, got shape {shape}; "
                               "pass gradient= (or grad_outputs=)")
        return const(np.ones(out._shape), out.dtype)
    g = ops.as_tensor(g)
    if g._shape is not None and out._shape is not None and not _same_shape(g._shape, out._shape):
        raise RuntimeError(f"Mismatch in shape: the gradient has shape {format_shape(g._shape)} and the output "
                           f"has shape {format_shape(out._shape)}")
    return ops.cast(g, out.dtype)


def _same_shape(a, b):
    """Equal ranks and equal static dims (symbolic dims are not compared)."""
    return len(a) == len(b) and all(not (isinstance(p, int) and isinstance(q, int)) or p == q for p, q in zip(a, b))


def _backprop(outputs, grad_outputs):
    """Map id(tensor) -> gradient Tensor for every tensor reached, seeded at `outputs`; and the leaves."""
    grads = {}
    for o, g in zip(outputs, grad_outputs):
        if not o.requires_grad:
            raise RuntimeError(f"element of the differentiated outputs does not require grad: {o!r}")
        s = _seed(o, g)
        grads[id(o)] = grads[id(o)] + s if id(o) in grads else s
    nodes, leaves = _walk(outputs)
    calls = {}  # autodiff.Function applications: id(call) -> [call, outputs still to visit, output grads]
    for n in nodes:
        if n.custom:
            call = n.custom[0]
            calls.setdefault(id(call), [call, 0, [None] * call.n_out])[1] += 1
    for node in reversed(nodes):
        gouts = [_hooked(t, grads) for t in node.outputs]
        if node.custom:
            entry = calls[id(node.custom[0])]
            entry[2][node.custom[1]] = gouts[0]
            entry[1] -= 1
            if entry[1] or all(g is None for g in entry[2]):
                continue
            call = entry[0]
            targets = list(call.args)
            gins = call.run_backward(entry[2])
        else:
            if all(g is None for g in gouts):
                continue
            rule = lookup(node)
            if rule is None:
                continue
            gins = rule(node, gouts)
            targets = node.inputs + list(node.outer.values()) if node.outer else node.inputs  # rules of subgraph ops return outer grads too
        for t, g in zip(targets, gins):
            if g is None or not isinstance(t, Tensor) or not t.requires_grad:
                continue
            if t._shape is not None and g._shape != t._shape:
                g = unbroadcast(g, t._shape, like=t)
            if g.dtype != t.dtype:
                g = ops.cast(g, t.dtype)
            key = id(t if t._base is None else t._base)  # a snapshot of a leaf's earlier value: the gradient is the leaf's
            grads[key] = grads[key] + g if key in grads else g
    return grads, _leaves_once(leaves)


def _leaves_once(leaves):
    """The leaves with snapshots of earlier values replaced by their leaf, each once."""
    out, seen = [], set()
    for t in leaves:
        t = t if t._base is None else t._base
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _hooked(t, grads):
    """The gradient w.r.t. t after t's register_hook hooks (each may return a replacement)."""
    g = grads.get(id(t))
    if g is not None and t._hooks:
        for hook in list(t._hooks.values()):
            r = hook(g)
            if r is not None:
                g = ops.as_tensor(r)
        grads[id(t)] = g
    return g


def grad(outputs, inputs, grad_outputs=None, create_graph=False, allow_unused=False, retain_graph=None):
    """torch.autograd.grad: gradients of `outputs` w.r.t. `inputs`, as Tensors that can be
    differentiated again (the graph is built with gradient recording on)."""
    single_in = isinstance(inputs, Tensor)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if single_in else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad_outputs has {len(grad_outputs)} entries for {len(outputs)} outputs")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"input {i} of ok.grad does not require grad; create it with requires_grad=True")
    with enable_grad():
        grads, _ = _backprop(outputs, grad_outputs)
    result = []
    for i, t in enumerate(inputs):
        g = _hooked(t, grads) if t.node is None else grads.get(id(t))
        if g is None and not allow_unused:
            raise RuntimeError(f"input {i} ({t!r}) was not used to compute the outputs; pass allow_unused=True "
                               "to get None for it")
        result.append(g)
    return tuple(result)


def backward(t, gradient=None, create_graph=False):
    """Tensor.backward: accumulate into `.grad` of every leaf that requires grad. Without create_graph the
    gradient graph is recorded as one macro node, built when a graph reading it is first compiled."""
    deferred = None if create_graph else _deferred_grads(t, gradient)
    ctx = enable_grad() if create_graph else no_grad()
    with ctx:
        if deferred is None:
            grads, leaves = _backprop([t], [gradient])
            deferred = [(leaf, _hooked(leaf, grads)) for leaf in leaves]
        for leaf, g in deferred:
            if g is None or not leaf.requires_grad:
                continue
            if leaf.grad is None or leaf.grad._zero:
                leaf.grad = g
            else:
                leaf.grad = leaf.grad + g


def _evaluated_in(nodes):
    """Whether an output of `nodes` holds a value. Read through node.outputs, which an in-place change
    updates (the snapshot that takes over a node is its output from then on, value included)."""
    return any(o._value is not None for n in nodes for o in n.outputs)


def _deferred_grads(out, gradient):
    """[(leaf, gradient)] with the gradients as outputs of one macro node, so that a define-by-run step
    that repeats its structure skips building its backward graph; None where the eager walk must run
    (hooks, autodiff.Function, unknown shapes, or errors it reports)."""
    from ..macro import macro
    if not out.requires_grad or (gradient is None and (out._shape is None or any(d != 1 for d in out._shape))):
        return None
    nodes, leaves = topo([out])
    reached = {id(out)}  # tensors a gradient reaches: the walk of _backprop, without building anything
    for node in reversed(nodes):
        if not any(id(o) in reached for o in node.outputs):
            continue
        if node.custom or any(o._hooks for o in node.outputs):
            return None
        if node.macro is not None and node.macro[2] is not None:  # a replayed forward: its recorded reach
            for o, ins in zip(node.outputs, node.macro[2]):
                if id(o) in reached:
                    reached.update(id(node.inputs[i]) for i in ins if node.inputs[i].requires_grad)
            continue
        if lookup(node) is None:
            continue
        for i in (node.inputs + list(node.outer.values()) if node.outer else node.inputs):
            if i is not None and i.requires_grad:
                reached.add(id(i))
    bases, firsts = {}, []
    for leaf in leaves:
        base = leaf if leaf._base is None else leaf._base
        if id(leaf) in reached and id(base) not in bases:
            if base._hooks or leaf._hooks or base._shape is None or not base.requires_grad:
                return None
            bases[id(base)] = base
            firsts.append(leaf)
    bases = list(bases.values())
    if not bases:
        return []
    seed = () if gradient is None else (_seed(out, gradient),)  # checked now, as the eager walk does

    def expand(o, *rest):
        grads, _ = _backprop([o], [rest[0] if seed else None])
        return [grads[id(b)] if grads.get(id(b)) is not None else const(np.zeros(b._shape), b.dtype) for b in bases]
    outs = macro(("backward", len(seed), len(bases)), [out, *seed, *firsts], [(b.dtype, b._shape) for b in bases],
                 expand, keyable=lambda: not _evaluated_in(nodes))
    return list(zip(bases, outs))
