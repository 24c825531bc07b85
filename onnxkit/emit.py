"""Turn part of the Tensor DAG into an onnx.ModelProto: topological order, names, structure key."""
import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import dtypes
from .tensor import OPSET

IR_VERSION = 10

# Non-default domains met in imported models: their opset versions and local function definitions,
# so that re-exporting declares the same versions and carries the functions its nodes call.
DOMAIN_VERSIONS = {}  # domain -> opset version
FUNCTIONS = {}  # (domain, function name) -> onnx.FunctionProto


def _functions_for(calls):
    """The local functions that the (domain, op type) calls need, including the ones they call."""
    found, todo = {}, list(calls)
    while todo:
        key = todo.pop()
        if key in FUNCTIONS and key not in found:
            found[key] = FUNCTIONS[key]
            todo.extend((n.domain, n.op_type) for n in FUNCTIONS[key].node if n.domain)
    return list(found.values())


def make_attr(name, value):
    """An AttributeProto from a Python value (numpy arrays become tensor attributes)."""
    if isinstance(value, np.ndarray):
        value = numpy_helper.from_array(value)
    return helper.make_attribute(name, value)


def _deps(node):
    """What a node reads: its inputs, the outer-scope values of its subgraphs, and for an
    autodiff.Function output the Function's arguments (so the backward walk reaches them)."""
    deps = [t for t in node.inputs if t is not None]
    if node.outer:
        deps.extend(node.outer.values())
    if node.custom:
        deps.extend(a for a in node.custom[0].args if hasattr(a, "node") and all(a is not d for d in deps))
    return deps


_NOT_ARRAYS = (list, dict)  # what onnxruntime returns for a sequence or a map output


def topo(outputs, cut_evaluated=False):
    """Nodes in dependency order and the leaves they read. With cut_evaluated, op tensors that
    already hold a value (evaluated before) count as leaves, except sequences and maps (onnxruntime
    returns a list or dict for them, which is not fed back: they are recomputed)."""
    nodes, leaves, seen = [], [], set()
    add_seen, add_leaf, add_node = seen.add, leaves.append, nodes.append
    stack = [(t, False) for t in reversed(outputs)]
    push, pop = stack.append, stack.pop
    while stack:  # hot path of every define-by-run step: locals only, _deps only for special nodes
        t, done = pop()
        n = t.node
        if n is None or (cut_evaluated and t._value is not None and t._value.__class__ not in _NOT_ARRAYS):
            if id(t) not in seen:
                add_seen(id(t))
                add_leaf(t)
            continue
        if id(n) in seen:
            continue
        if done:
            add_seen(id(n))
            add_node(n)
            continue
        push((t, True))
        deps = _deps(n) if (n.outer or n.custom) else n.inputs
        for d in reversed(deps):
            if d is None:
                continue
            dn = d.node
            if dn is None or (cut_evaluated and d._value is not None and d._value.__class__ not in _NOT_ARRAYS):
                if id(d) not in seen:
                    add_seen(id(d))
                    add_leaf(d)
            elif id(dn) not in seen:
                push((d, False))
    return nodes, leaves


def structure_key(nodes, leaves, outputs):
    """A hashable description of the graph that ignores fed values (so re-built graphs hit the cache)."""
    ids = {}
    parts = []
    append = parts.append
    for i, t in enumerate(leaves):
        ids[id(t)] = i
        if t.kind == "const":
            v = t._value
            # object arrays (strings): tobytes() would give object addresses, not the text
            append(("C", t.dtype.str, v.shape, v.tobytes() if v.dtype.kind != "O" else tuple(v.ravel().tolist())))
        else:
            append(("L", t.dtype.str, t._shape if t.kind != "input" else (t.name, t._shape)))
    k = len(leaves)
    for n in nodes:
        ins = tuple([-1 if t is None else ids[id(t)] for t in n.inputs])
        outer = tuple((name, ids[id(t)]) for name, t in n.outer.items()) if n.outer else ()
        outs = n.outputs
        append((n.key, ins, outer, len(outs)))
        for t in outs:
            ids[id(t)] = k
            k += 1
    append(tuple([ids[id(t)] for t in outputs]))
    return tuple(parts)


def rename(graph, env, prefix=None):
    """A copy of `graph` where names defined in it (at any depth) get `prefix` and free names are
    looked up in `env` (old -> new), so every emitted subgraph has names of its own (ONNX forbids a
    subgraph to redefine a name of an enclosing graph)."""
    g = onnx.GraphProto()
    g.CopyFrom(graph)
    env = dict(env)

    def define(name):
        if name and prefix:
            env[name] = prefix + name
        return env.get(name, name) if name else name

    for vi in g.input:
        vi.name = define(vi.name)
    for t in g.initializer:
        t.name = define(t.name)
    for n in g.node:
        n.input[:] = [env.get(i, i) if i else i for i in n.input]
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                a.g.CopyFrom(rename(a.g, env, prefix))
            elif a.type == onnx.AttributeProto.GRAPHS:
                subs = [rename(s, env, prefix) for s in a.graphs]
                del a.graphs[:]
                a.graphs.extend(subs)
        n.output[:] = [define(o) for o in n.output]
        if prefix and n.name:
            n.name = prefix + n.name
    for vi in list(g.output) + list(g.value_info):
        vi.name = env.get(vi.name, vi.name)
    return g


def _renamed_subgraphs(attrs, renames):
    """attrs with the outer-scope names its subgraphs read renamed (old -> new)."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, list) and v and hasattr(v[0], "node"):
            v = [rename(g, renames) for g in v]
        elif hasattr(v, "node") and hasattr(v, "output"):
            v = rename(v, renames)
        out[k] = v
    return out


def _value_info(name, t, with_shape=True):
    """A graph input's or output's ValueInfo: a tensor type from the Tensor's dtype and shape, or the
    full type of a value that is not a tensor (ZipMap's seq(map(int64, float)); infer.non_tensor_type)."""
    if t.node is not None:
        from .infer import non_tensor_type
        tp = non_tensor_type(t)
        if tp is not None:
            return helper.make_value_info(name, tp)
    shape = None if (t._shape is None or not with_shape) else list(t._shape)
    return helper.make_tensor_value_info(name, dtypes.to_onnx(t.dtype), shape)


def build_model(outputs, output_names=None, input_leaves=(), fed=None, opset=OPSET, cut_evaluated=False,
                graph_name="onnxkit", declare_output_shapes=True, nodes_leaves=None):
    """Emit the sub-DAG computing `outputs`. Leaves listed in `fed` become graph inputs named
    `fed[i]`; symbolic Inputs become graph inputs; other value leaves become initializers.
    Returns (model, names of the fed graph inputs in leaf order)."""
    nodes, leaves = nodes_leaves or topo(outputs, cut_evaluated)
    if any(n.macro is not None for n in nodes):  # e.g. exporting a graph that reads a deferred .grad
        from .macro import expand_macros
        expand_macros(nodes)
        nodes, leaves = topo(outputs, cut_evaluated)
    names, used = {}, set()

    def unique(base):
        name, i = base, 1
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        return name

    inputs, inits, fed_names = [], [], []
    fed = fed or {}
    for t in leaves:
        if t.kind == "input" and id(t) not in fed:
            names[id(t)] = unique(t.name)
            inputs.append(_value_info(names[id(t)], t))
        elif id(t) in fed:
            names[id(t)] = unique(fed[id(t)])
            inputs.append(_value_info(names[id(t)], t))
            fed_names.append(names[id(t)])
        else:
            names[id(t)] = unique(t.name or ("const" if t.kind == "const" else "init"))
            inits.append(numpy_helper.from_array(np.asarray(t._value), names[id(t)]))
    out_names = [output_names[i] if output_names else f"output_{i}" for i in range(len(outputs))]
    aliases = []  # (source tensor, output name) needing an Identity: leaves and repeated outputs
    for t, want in zip(outputs, out_names):
        if want in used:
            raise ValueError(f"output name {want!r} is already taken by a graph input, an initializer or "
                             "another output; pass distinct output_names")
        used.add(want)
        if t.node is not None and id(t) not in names and not (cut_evaluated and t._value is not None):
            names[id(t)] = want
        else:
            aliases.append((t, want))
    protos, domains = [], set()
    outer_of = {}  # outer-scope name -> id of the tensor it names here
    for n in nodes:
        attrs = n.attrs
        if n.outer:  # subgraphs read outer-scope values by their names; a name taken by another value is renamed
            renames = {}
            for oname, t in n.outer.items():
                if outer_of.get(oname) == id(t) or (oname not in outer_of and names.get(id(t)) == oname):
                    outer_of[oname] = id(t)
                    continue
                new = unique(oname)
                if new != oname:
                    renames[oname] = new
                outer_of[new] = id(t)
                protos.append(helper.make_node("Identity", [names[id(t)]], [new], name=unique(f"outer/{new}")))
            if renames:
                attrs = _renamed_subgraphs(attrs, renames)
        base = f"{n.scope}/{n.op_type}" if n.scope else n.op_type
        for t in n.outputs:
            if id(t) not in names:
                names[id(t)] = unique(f"{base}_out{t.index}" if len(n.outputs) > 1 else f"{base}_out")
        p = helper.make_node(n.op_type, [names[id(t)] if t is not None else "" for t in n.inputs],
                             [names[id(t)] for t in n.outputs], name=unique(base), domain=n.domain or None)
        p.attribute.extend(make_attr(k, v) for k, v in attrs.items())
        protos.append(p)
        if n.domain:
            domains.add((n.domain, n.op_type))
    for t, want in aliases:
        protos.append(helper.make_node("Identity", [names[id(t)]], [want], name=unique(f"{want}/Identity")))
    outs = [_value_info(want, t, declare_output_shapes) for t, want in zip(outputs, out_names)]
    graph = helper.make_graph(protos, graph_name, inputs, outs, inits)
    functions = _functions_for(domains)
    used = {d for d, _ in domains} | {o.domain for f in functions for o in f.opset_import if o.domain not in ("", "ai.onnx")}
    default = max([opset] + [n.opset for n in nodes if n.opset])  # nodes of a newer imported model keep theirs
    opsets = [helper.make_opsetid("", default)] + [helper.make_opsetid(d, DOMAIN_VERSIONS.get(d, 1)) for d in sorted(used)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION, producer_name="onnxkit",
                              functions=functions)
    return model, fed_names
