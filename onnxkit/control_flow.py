"""Control flow as ONNX subgraphs: `ok.cond` -> If, `ok.while_loop` -> Loop, `ok.scan` -> Scan
(torch.cond, torch._higher_order_ops.while_loop and .scan).

A body is traced by calling the Python function on fresh symbolic Inputs: the nodes built during the
call form the subgraph, and tensors from before it (closures: parameters, earlier results) become
outer-scope references (`Node.outer`). Subgraphs are plain onnx.GraphProtos, as in imported models,
so the gradient rules (autodiff/rules_control.py) treat built and imported If/Loop/Scan alike."""
import hashlib

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import dtypes
from .dims import Dim, format_shape
from .emit import rename
from .tensor import Node, Tensor, apply, const

_GRAPH_ATTRS = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def _digest(graph):
    return hashlib.blake2b(graph.SerializeToString(deterministic=True), digest_size=5).hexdigest()


# ----- tracing a body into a GraphProto -------------------------------------------------------------
def placeholder(name, dtype, shape, requires_grad=False):
    """A symbolic Input standing for a subgraph input or an outer-scope value while a body is traced."""
    shape = None if shape is None else tuple(d.name if isinstance(d, Dim) else d for d in shape)
    t = Tensor(dtype, shape, kind="input", name=name)
    if requires_grad and dtypes.is_floating(t.dtype):
        t.requires_grad = True
    return t


class Body:
    """A traced subgraph: the GraphProto, its outer-scope references {name: Tensor} and output types."""

    def __init__(self, graph, outer, types):
        self.graph, self.outer, self.types = graph, outer, types


def trace(fn, formals=(), captures=(), capture_grad=None):
    """Trace `fn(inputs, captured)` into a Body. `formals`: [(dtype, shape, requires_grad)] for the
    subgraph's inputs; `captures`: outer tensors the body reads through placeholders (gradient rules
    differentiate w.r.t. those). fn returns a list of Tensors, the subgraph's outputs."""
    start = next(Node._ids)
    ins = [placeholder(f"arg{k}", d, s, rg) for k, (d, s, rg) in enumerate(formals)]
    grad_flags = capture_grad or [False] * len(captures)
    caps = [placeholder(f"cap{k}", t.dtype, t._shape, rg) for k, (t, rg) in enumerate(zip(captures, grad_flags))]
    outs = fn(ins, caps)
    return emit_body(outs, ins, {id(p): t for p, t in zip(caps, captures)}, start)


def _deps(node):
    deps = [t for t in node.inputs if t is not None]
    if node.outer:
        deps.extend(node.outer.values())
    return deps


def _body_topo(outputs, start):
    """Nodes built after `start` (a Node.seq) that the outputs need, in order, and the tensors they read
    from outside the body (leaves and earlier node outputs)."""
    nodes, leaves, seen = [], [], set()

    def local(t):
        return t.node is not None and t.node.seq > start

    stack = [(t, False) for t in reversed(outputs)]
    while stack:
        t, done = stack.pop()
        if not local(t):
            if id(t) not in seen:
                seen.add(id(t))
                leaves.append(t)
            continue
        n = t.node
        if id(n) in seen:
            continue
        if done:
            seen.add(id(n))
            nodes.append(n)
            continue
        stack.append((t, True))
        stack.extend((d, False) for d in reversed(_deps(n)))
    return nodes, leaves


def emit_body(outputs, formals, captures, start):
    """The GraphProto computing `outputs` from the placeholders `formals` (its inputs, in order);
    captured placeholders and tensors from outside the body become outer-scope references."""
    from .emit import build_model, _value_info
    nodes, leaves = _body_topo(outputs, start)
    fed, outer = {id(p): p.name for p in formals}, {}
    for t in leaves:
        if id(t) in fed or t.kind == "const":
            continue  # constants stay inside the subgraph as initializers
        fed[id(t)] = f"ext{len(outer)}"
        outer[fed[id(t)]] = captures.get(id(t), t)
    names = [f"res{k}" for k in range(len(outputs))]
    model, _ = build_model(outputs, names, fed=fed, nodes_leaves=(nodes, leaves))
    g = model.graph
    del g.input[:]
    g.input.extend(_value_info(p.name, p) for p in formals)
    h = _digest(g)  # names from the content: the same body traced again gets the same names
    real = {tmp: f"x{h}_{k}" for k, tmp in enumerate(outer)}
    g = rename(g, real, f"s{h}/")
    return Body(g, {real[tmp]: t for tmp, t in outer.items()}, [(t.dtype, t._shape) for t in outputs])


def merge_outer(*bodies):
    """The outer-scope references of one node with several subgraphs (If's branches); a name two bodies
    bind to different tensors is renamed in the later body."""
    outer = {}
    for b in bodies:
        clash = [name for name, t in b.outer.items() if name in outer and outer[name] is not t]
        if clash:
            taken = set(outer) | set(b.outer)
            renames = {}
            for name in clash:
                k = 1
                while f"{name}_{k}" in taken:
                    k += 1
                renames[name] = f"{name}_{k}"
                taken.add(renames[name])
            b.graph = rename(b.graph, renames)
            b.outer = {renames.get(name, name): t for name, t in b.outer.items()}
        outer.update(b.outer)
    return outer


# ----- replaying a GraphProto on Tensors (gradient rules) -------------------------------------------
def free_names(graph):
    """Names a subgraph reads from enclosing scopes."""
    from .importer import _subgraph_refs
    return _subgraph_refs(graph)


def replay(graph, env):
    """Record the nodes of `graph` on Tensors: `env` maps its input names and the outer names it reads
    to Tensors. A graph may be replayed many times: emit renames an outer name bound to two tensors."""
    from .importer import _py_attr
    env = dict(env)
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        env[init.name] = const(arr, arr.dtype)
    for n in graph.node:
        attrs = {a.name: _py_attr(helper.get_attribute_value(a)) for a in n.attribute}
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and "value" in attrs:
            arr = numpy_helper.to_array(attrs["value"])
            env[n.output[0]] = const(arr, arr.dtype)
            continue
        outer = None
        subs = [a for a in n.attribute if a.type in _GRAPH_ATTRS]
        if subs:
            graphs = [[a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs) for a in subs]
            outer = {r: env[r] for gs in graphs for g in gs for r in free_names(g) if r in env}
        inputs = [env[i] if i else None for i in n.input]
        outs = apply(n.op_type, inputs, attrs, n_out=len(n.output), domain=n.domain if n.domain != "ai.onnx" else "",
                     outer=outer)
        outs = [outs] if isinstance(outs, Tensor) else outs
        for name, t in zip(n.output, outs):
            if name:
                env[name] = t
    return [env[o.name] for o in graph.output]


# ----- pytrees of tensors -------------------------------------------------------------------------
def _flatten(obj, what):
    """Leaves of a Tensor or (nested) tuple/list of Tensors and a function rebuilding the structure."""
    from .ops import as_tensor
    if isinstance(obj, (tuple, list)):
        parts = [_flatten(o, what) for o in obj]
        sizes = [len(p[0]) for p in parts]

        def unflatten(leaves):
            out, i = [], 0
            for (_, un), n in zip(parts, sizes):
                out.append(un(leaves[i:i + n]))
                i += n
            return type(obj)(out)
        return [leaf for p in parts for leaf in p[0]], unflatten
    if isinstance(obj, (Tensor, bool, int, float, np.ndarray, np.generic)):
        return [as_tensor(obj)], lambda leaves: leaves[0]
    raise TypeError(f"{what} must be a Tensor or a tuple/list of Tensors, got {type(obj).__name__}")


def _describe(t):
    return f"{format_shape(t[1]) if t[1] is not None else '?'} {t[0]}"


def _dims_differ(a, b):
    """Whether two dims are known to differ (unknown dims `unk_*` match anything)."""
    if a == b:
        return False
    unknown = [d for d in (a, b) if isinstance(d, str) and d.startswith("unk_")]
    return not unknown


def _check_types(fn_name, expected, actual, what):
    """Raise naming `fn_name` when the types a body returns differ from the ones it was given
    (a carry must keep its dtype and shape; named dims must stay the same name)."""
    if len(expected) != len(actual):
        raise ValueError(f"{fn_name}: expected {len(expected)} tensors as the {what}, got {len(actual)}")
    for k, (e, a) in enumerate(zip(expected, actual)):
        bad = e[0] != a[0]
        if e[1] is not None and a[1] is not None:
            bad = bad or len(e[1]) != len(a[1]) or any(_dims_differ(p, q) for p, q in zip(e[1], a[1]))
        if bad:
            raise ValueError(f"{fn_name}: {what} {k} expected {_describe(e)}, got {_describe(a)}")


def _merge_shape(a, b):
    if a is None or b is None or len(a) != len(b):
        return None
    from .infer import fresh_dim
    return tuple(p if p == q else fresh_dim() for p, q in zip(a, b))


def _fn_name(fn, default):
    return getattr(fn, "__name__", default)


def _node_outputs(out, n):
    return [] if n == 0 else ([out] if n == 1 else list(out))


# ----- the public functions -------------------------------------------------------------------------
def cond(pred, true_fn, false_fn, operands=()):
    """torch.cond: `true_fn(*operands)` if pred else `false_fn(*operands)`, as one ONNX If whose branches
    are traced here. Both branches must return the same structure, dtypes and shapes. Differentiable:
    a tensor used only by the branch not taken gets a zero gradient."""
    from .ops import cast, reshape
    if not isinstance(pred, Tensor):
        return (true_fn if pred else false_fn)(*operands)
    if pred._shape is not None and any(d != 1 for d in pred._shape):
        raise ValueError(f"cond: pred must be a one-element tensor, got shape {format_shape(pred._shape)}")
    if not isinstance(operands, (tuple, list)):
        raise TypeError(f"cond: operands must be a tuple or list of Tensors, got {type(operands).__name__}")
    ops_flat, _ = _flatten(tuple(operands), "cond operands")
    bodies, structures = [], []
    for fn, default in ((true_fn, "true_fn"), (false_fn, "false_fn")):
        spec = {}

        def body(ins, caps, fn=fn, spec=spec, default=default):
            _, rebuild = _flatten(tuple(operands), "cond operands")
            leaves, spec["unflatten"] = _flatten(fn(*rebuild(caps)), f"cond: the result of {_fn_name(fn, default)}")
            return leaves
        bodies.append(trace(body, (), ops_flat))
        structures.append(spec["unflatten"])
    t_name, f_name = _fn_name(true_fn, "true_fn"), _fn_name(false_fn, "false_fn")
    then_b, else_b = bodies
    if len(then_b.types) != len(else_b.types):
        raise ValueError(f"cond: {t_name} returns {len(then_b.types)} tensors but {f_name} returns {len(else_b.types)}")
    for k, (a, b) in enumerate(zip(then_b.types, else_b.types)):
        if a[0] != b[0] or (a[1] is not None and b[1] is not None and (
                len(a[1]) != len(b[1]) or any(isinstance(p, int) and isinstance(q, int) and p != q
                                              for p, q in zip(a[1], b[1])))):
            raise ValueError(f"cond: output {k} of {t_name} is {_describe(a)} but output {k} of {f_name} is "
                             f"{_describe(b)}; both branches must return the same shapes and dtypes")
    if not then_b.types:
        raise ValueError(f"cond: {t_name} and {f_name} return no tensors")
    p = pred if pred.dtype == np.bool_ else cast(pred, np.bool_)
    if p._shape != ():
        p = reshape(p, ())
    types = [(a[0], _merge_shape(a[1], b[1])) for a, b in zip(then_b.types, else_b.types)]
    outer = merge_outer(then_b, else_b)  # may rename the else branch's references: before reading its graph
    out = apply("If", [p], {"then_branch": then_b.graph, "else_branch": else_b.graph}, n_out=len(types),
                types=types, outer=outer)
    return structures[0](_node_outputs(out, len(types)))


def while_loop(cond_fn, body_fn, carried_inputs):
    """torch._higher_order_ops.while_loop: `while cond_fn(*carry): carry = body_fn(*carry)`, as one ONNX
    Loop (trip count decided at run time). Returns the final carry as a tuple. body_fn must return
    carries of the same shapes and dtypes."""
    from .ops import cast, reshape, as_tensor
    if not isinstance(carried_inputs, (tuple, list)):
        raise TypeError(f"while_loop: carried_inputs must be a tuple or list, got {type(carried_inputs).__name__}")
    init, rebuild = _flatten(tuple(carried_inputs), "while_loop carried_inputs")
    c_name, b_name = _fn_name(cond_fn, "cond_fn"), _fn_name(body_fn, "body_fn")
    init_types = [(t.dtype, t._shape) for t in init]

    def as_pred(c, fn_name):
        c = as_tensor(c)
        if c._shape is not None and any(d != 1 for d in c._shape):
            raise ValueError(f"while_loop: {fn_name} must return a one-element boolean tensor, got shape "
                             f"{format_shape(c._shape)}")
        c = c if c.dtype == np.bool_ else cast(c, np.bool_)
        return c if c._shape == () else reshape(c, ())

    first = as_pred(cond_fn(*rebuild(init)), c_name)

    def body(ins, caps):
        carry = ins[2:]
        out, _ = _flatten(body_fn(*rebuild(carry)), f"while_loop: the result of {b_name}")
        out = list(out)
        _check_types(f"while_loop: {b_name}", init_types, [(t.dtype, t._shape) for t in out], "carry")
        return [as_pred(cond_fn(*rebuild(out)), c_name)] + out
    counters = [(np.dtype(np.int64), (), False), (np.dtype(np.bool_), (), False)]  # iteration number, condition
    formals = counters + [(d, s, False) for d, s in init_types]
    b = trace(body, formals)
    out = apply("Loop", [None, first] + init, {"body": b.graph}, n_out=len(init), types=init_types, outer=b.outer)
    return tuple(rebuild(_node_outputs(out, len(init))))


def scan(combine_fn, init, xs, dim=0, reverse=False):
    """torch._higher_order_ops.scan: `carry, y_t = combine_fn(carry, x_t)` over slices of xs along `dim`
    (from the end when reverse); returns (final carry, ys stacked along `dim` in the order of xs), as
    one ONNX Scan."""
    init_leaves, init_rebuild = _flatten(init, "scan init")
    xs_leaves, xs_rebuild = _flatten(xs, "scan xs")
    name = _fn_name(combine_fn, "combine_fn")
    if not xs_leaves:
        return init, []
    ranks = [len(x._shape) for x in xs_leaves]
    if any(r == 0 for r in ranks):
        raise ValueError("scan: every tensor of xs needs a dim to scan over, got a 0-d tensor")
    axes = [dim % r if -r <= dim < r else None for r in ranks]
    if any(a is None for a in axes):
        raise ValueError(f"scan: dim {dim} is out of range for xs of shapes "
                         f"{', '.join(format_shape(x._shape) for x in xs_leaves)}")
    lengths = {x._shape[a] for x, a in zip(xs_leaves, axes)}
    if len({d for d in lengths if isinstance(d, int)}) > 1:
        raise ValueError(f"scan: all xs must have the same size along dim {dim}, got {sorted(lengths, key=str)}")
    length = next((d for d in lengths if isinstance(d, int)), next(iter(lengths)))
    init_types = [(t.dtype, t._shape) for t in init_leaves]
    slice_types = [(x.dtype, tuple(d for i, d in enumerate(x._shape) if i != a)) for x, a in zip(xs_leaves, axes)]
    spec = {}

    def body(ins, caps):
        carry, x = ins[:len(init_leaves)], ins[len(init_leaves):]
        res = combine_fn(init_rebuild(carry), xs_rebuild(x))
        if not isinstance(res, (tuple, list)) or len(res) != 2:
            raise ValueError(f"scan: {name} must return a pair (next_carry, y), got {type(res).__name__}")
        new, _ = _flatten(res[0], f"scan: the carry returned by {name}")
        ys, spec["ys"] = _flatten(res[1], f"scan: the output returned by {name}")
        _check_types(f"scan: {name}", init_types, [(t.dtype, t._shape) for t in new], "carry")
        spec["y_types"] = [(t.dtype, t._shape) for t in ys]
        return list(new) + list(ys)
    b = trace(body, [(d, s, False) for d, s in init_types + slice_types])
    y_types = spec["y_types"]
    for d, s in y_types:
        if s is not None and not -len(s) - 1 <= dim <= len(s):
            raise ValueError(f"scan: dim {dim} is out of range to stack outputs of shape {format_shape(s)}")
    out_axes = [dim % (len(s) + 1) for _, s in y_types]
    if length == 0:  # onnxruntime's Scan cannot slice an empty sequence: the carry is init, the ys are empty
        from .ops import identity
        from .tensor import zeros
        ys = [zeros(tuple(s[:a]) + (0,) + tuple(s[a:]), dtype=d) for (d, s), a in zip(y_types, out_axes)]
        return init_rebuild([identity(t) for t in init_leaves]), spec["ys"](ys)
    n = len(init_leaves) + len(y_types)
    types = init_types + [(d, (length,) + s) for d, s in y_types]
    # time-major, forward Scan with explicit Transpose/flip around it (what scan_*_axes/directions would
    # say): onnx.reference, the fallback runtime, runs only forward Scans on axis 0
    xs_tm = [time_major(x, a, reverse) for x, a in zip(xs_leaves, axes)]
    out = _node_outputs(apply("Scan", list(init_leaves) + xs_tm, {"body": b.graph, "num_scan_inputs": len(xs_tm)},
                              n_out=n, types=types, outer=b.outer), n)
    ys = [from_time_major(y, a, reverse) for y, a in zip(out[len(init_leaves):], out_axes)]
    return init_rebuild(out[:len(init_leaves)]), spec["ys"](ys)


def flip0(x):
    """x reversed along dim 0, as a Gather with indices n-1 .. 0 (its gradient, a scatter-add, runs on
    onnxruntime and onnx.reference alike, for a symbolic n too)."""
    from .ops import dim_size, reshape
    i64 = np.dtype(np.int64)
    n = x._shape[0]
    if isinstance(n, int):
        idx = const(np.arange(n - 1, -1, -1), i64)
    else:  # (n-1) - Range(0, n): onnxruntime's GatherToSlice fusion mistranslates a Gather of a decreasing Range
        size = reshape(dim_size(x, 0), ())
        up = apply("Range", [const(0, i64), size, const(1, i64)], types=[(i64, (n,))])
        idx = (size - const(1, i64)) - up
    return apply("Gather", [x, idx], {"axis": 0}, types=[(x.dtype, x._shape)])


def time_major(x, axis, reverse):
    """x with its scan axis first, in iteration order."""
    from .ops import movedim
    x = movedim(x, axis, 0) if axis else x
    return flip0(x) if reverse else x


def from_time_major(x, axis, reverse):
    """The inverse of time_major."""
    from .ops import movedim
    x = flip0(x) if reverse else x
    return movedim(x, 0, axis) if axis else x
