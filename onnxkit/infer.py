"""Dtype and shape inference for new nodes: fast rules for the common ops, ONNX's own
per-node inference for everything else. Shapes are tuples of ints and dim names (str)."""
import itertools
import weakref

import numpy as np
import onnx
from onnx import helper, shape_inference

from . import dtypes
from .dims import format_shape

_fresh = itertools.count()
_BOOL, _INT64, _STRING = np.dtype(np.bool_), np.dtype(np.int64), dtypes.STRING


def fresh_dim():
    """A new unique name for a dim whose size is unknown at build time."""
    return f"unk_{next(_fresh)}"


def broadcast_shapes(*shapes, what="broadcast"):
    """Numpy broadcasting over ints and names; raises with both shapes on a mismatch."""
    if any(s is None for s in shapes):
        return None
    shaped = [s for s in shapes if s]  # fast path (every define-by-run step): equal shapes, or scalars
    if not shaped:
        return ()
    if all(s == shaped[0] for s in shaped[1:]):
        return tuple(shaped[0])
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0]
        ints = {d for d in dims if isinstance(d, int) and d != 1}
        syms = [d for d in dims if not isinstance(d, int)]
        if len(ints) > 1:
            raise ValueError(f"{what}: shapes {' and '.join(format_shape(s) for s in shapes)} are not broadcastable "
                             f"(dim {i - rank}: {' vs '.join(str(d) for d in dims)})")
        out.append(ints.pop() if ints else (syms[0] if syms else 1))
    return tuple(out)


def _same(node):
    x = node.inputs[0]
    return [(x.dtype, x._shape)]


def _predicate(node):
    """Elementwise tests (IsNaN, IsInf): bool, the input's shape."""
    return [(_BOOL, node.inputs[0]._shape)]


def _binary(node):
    return [(node.inputs[0].dtype, broadcast_shapes(*(t._shape for t in node.inputs), what=node.op_type))]


def _compare(node):
    return [(_BOOL, broadcast_shapes(*(t._shape for t in node.inputs), what=node.op_type))]


def _where(node):
    c, a, b = node.inputs
    return [(a.dtype, broadcast_shapes(c._shape, a._shape, b._shape, what="Where"))]


def _matmul(node):
    a, b = node.inputs
    sa, sb = a._shape, b._shape
    if sa is None or sb is None:
        return [(a.dtype, None)]
    va, vb = (list(sa) if len(sa) > 1 else [1] + list(sa)), (list(sb) if len(sb) > 1 else list(sb) + [1])
    ka, kb = va[-1], vb[-2]
    if isinstance(ka, int) and isinstance(kb, int) and ka != kb:
        raise ValueError(f"matmul: shapes {format_shape(sa)} and {format_shape(sb)} cannot be multiplied "
                         f"({ka} vs {kb})")
    batch = broadcast_shapes(tuple(va[:-2]), tuple(vb[:-2]), what="matmul batch dims")
    out = list(batch) + ([va[-2]] if len(sa) > 1 else []) + ([vb[-1]] if len(sb) > 1 else [])
    return [(a.dtype, tuple(out))]


def _gemm(node):
    """(M, K) x (K, N) after the transpose flags; C must broadcast to (M, N). Raises naming the shapes."""
    a, b = node.inputs[:2]
    if a._shape is None or b._shape is None:
        return None
    if len(a._shape) != 2 or len(b._shape) != 2:
        raise ValueError(f"Gemm: both operands must be 2-D, got shapes {format_shape(a._shape)} and "
                         f"{format_shape(b._shape)}")
    ta, tb = node.attrs.get("transA", 0), node.attrs.get("transB", 0)
    (m, ka), (kb, n) = a._shape[::-1] if ta else a._shape, b._shape[::-1] if tb else b._shape
    if isinstance(ka, int) and isinstance(kb, int) and ka != kb:
        raise ValueError(f"Gemm: A {format_shape(a._shape)}{' (transposed)' if ta else ''} and B "
                         f"{format_shape(b._shape)}{' (transposed)' if tb else ''} cannot be multiplied ({ka} vs {kb})")
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        c = node.inputs[2]._shape
        if c is not None and (len(c) > 2 or broadcast_shapes((m, n), c, what="Gemm bias") != (m, n)):
            raise ValueError(f"Gemm: bias of shape {format_shape(c)} does not broadcast to the output "
                             f"{format_shape((m, n))}")
    return [(a.dtype, (m, n))]


def _cast(node):
    return [(dtypes.from_onnx(node.attrs["to"]), node.inputs[0]._shape)]


def _reduce(node):
    x = node.inputs[0]
    if x._shape is None:
        return [(x.dtype, None)]
    keep = node.attrs.get("keepdims", 1)
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        axes_t = node.inputs[1]
        if axes_t._value is None:
            return None
        axes = [int(a) for a in np.asarray(axes_t._value).reshape(-1)]
    else:
        axes = node.attrs.get("axes")
    r = len(x._shape)
    if not axes:
        if node.attrs.get("noop_with_empty_axes"):
            return [(x.dtype, x._shape)]
        axes = list(range(r))
    axes = {a % r for a in axes} if r else set()
    shape = tuple((1 if i in axes else d) for i, d in enumerate(x._shape) if keep or i not in axes)
    return [(x.dtype, shape)]


def _transpose(node):
    x = node.inputs[0]
    if x._shape is None:
        return None
    perm = node.attrs.get("perm") or list(reversed(range(len(x._shape))))
    return [(x.dtype, tuple(x._shape[p] for p in perm))]


def _shape_op(node):
    x = node.inputs[0]
    if x._shape is None:
        return [(_INT64, (fresh_dim(),))]
    r = len(x._shape)
    start, end = node.attrs.get("start", 0), node.attrs.get("end", r)
    start, end = max(0, min(r, start + r if start < 0 else start)), max(0, min(r, end + r if end < 0 else end))
    return [(_INT64, (max(0, end - start),))]


def _concat(node):
    shapes = [t._shape for t in node.inputs]
    if any(s is None for s in shapes):
        return [(node.inputs[0].dtype, None)]
    if not shapes[0]:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated; unsqueeze them or use stack")
    ax = node.attrs["axis"] % len(shapes[0])
    for s in shapes[1:]:
        if len(s) != len(shapes[0]):
            raise ValueError(f"cat: tensors must have the same rank, got {format_shape(shapes[0])} and "
                             f"{format_shape(s)}")
        for i, (p, q) in enumerate(zip(shapes[0], s)):
            if i != ax and isinstance(p, int) and isinstance(q, int) and p != q:
                raise ValueError(f"cat: sizes must match except in dim {ax}, got {format_shape(shapes[0])} and "
                                 f"{format_shape(s)}")
    sizes = [s[ax] for s in shapes]
    total = sum(sizes) if all(isinstance(d, int) for d in sizes) else "+".join(str(d) for d in sizes)
    out = list(shapes[0])
    out[ax] = total
    return [(node.inputs[0].dtype, tuple(out))]


RULES = {
    **{op: _same for op in ("Relu", "Neg", "Exp", "Log", "Sqrt", "Abs", "Reciprocal", "Sigmoid", "Tanh", "Erf",
                            "Identity", "Softmax", "LogSoftmax", "Sin", "Cos", "Floor", "Ceil", "Round", "Sign",
                            "LeakyRelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid", "HardSwish",
                            "Clip", "Not", "CumSum", "Atan", "Asin", "Acos", "Tan", "Sinh", "Cosh", "Asinh",
                            "Acosh", "Atanh", "Mish", "Gelu", "ThresholdedRelu", "Shrink",
                            "GroupNormalization", "InstanceNormalization", "LRN")},
    "IsNaN": _predicate, "IsInf": _predicate,
    **{op: _binary for op in ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Sum", "Mean", "BitShift",
                              "PRelu")},
    **{op: _compare for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor")},
    **{op: _reduce for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                              "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare", "ReduceLogSum")},
    "Where": _where, "MatMul": _matmul, "Gemm": _gemm, "Cast": _cast, "Transpose": _transpose,
    "Shape": _shape_op, "Concat": _concat,
}


# Values that are not tensors (a sequence, a map, an optional: ZipMap's seq(map(int64, float)),
# SequenceConstruct's output) are Tensors of dtype object and unknown shape whose full ONNX type is kept
# here, keyed by the producing node and output index (Tensor has __slots__, and a node keeps its outputs'
# indices when a snapshot takes an output over): id(node) -> (weak ref to node, {index: TypeProto}).
_NON_TENSOR = {}


def non_tensor_type(t):
    """The onnx.TypeProto of a value that is not a tensor (sequence, map, optional), else None."""
    n = t.node
    if n is None or not _NON_TENSOR:
        return None
    entry = _NON_TENSOR.get(id(n))
    return entry[1].get(t.index) if entry is not None and entry[0]() is n else None


def set_non_tensor_type(node, index, tp):
    """Record that output `index` of `node` has the non-tensor ONNX type `tp` (emit declares it so)."""
    entry = _NON_TENSOR.get(id(node))
    if entry is None or entry[0]() is not node:
        key = id(node)
        entry = _NON_TENSOR[key] = (weakref.ref(node, lambda _, key=key: _NON_TENSOR.pop(key, None)), {})
    entry[1][index] = tp


def is_tensor_type(tp):
    return tp.WhichOneof("value") == "tensor_type"


def _type_proto(t):
    tp = non_tensor_type(t)
    if tp is not None:
        return tp
    return helper.make_tensor_type_proto(dtypes.to_onnx(t.dtype), None if t._shape is None else list(t._shape))


def _from_type_proto(tp):
    if tp.WhichOneof("value") not in (None, "tensor_type"):  # sequence, map, optional: see _NON_TENSOR
        return dtypes.STRING, None
    tt = tp.tensor_type
    dtype = dtypes.from_onnx(tt.elem_type) if tt.elem_type else np.dtype(np.float32)
    if not tt.HasField("shape"):
        return dtype, None
    return dtype, tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or fresh_dim()) for d in tt.shape.dim)


def onnx_infer(node, opset):
    """Ask ONNX's per-node inference (spox does the same); None when it has no schema."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except onnx.defs.SchemaError:
        return None
    names = [f"i{k}" if t is not None else "" for k, t in enumerate(node.inputs)]
    outs = [f"o{k}" for k in range(node.n_out)]
    from .emit import make_attr
    proto = helper.make_node(node.op_type, names, outs, domain=node.domain or None)
    proto.attribute.extend(make_attr(k, v) for k, v in node.attrs.items())
    types = {n: _type_proto(t) for n, t in zip(names, node.inputs) if t is not None}
    data = {n: onnx.numpy_helper.from_array(np.asarray(t._value), n) for n, t in zip(names, node.inputs)
            if t is not None and t._value is not None and t.kind == "const" and np.asarray(t._value).size < 4096}
    try:
        res = shape_inference.infer_node_outputs(schema, proto, types, data)
    except Exception as e:  # onnx raises InferenceError with the reason; keep it for the user
        raise ValueError(f"{node.op_type}: {str(e).strip()}") from None
    for k, o in enumerate(outs):
        if o in res and not is_tensor_type(res[o]):
            set_non_tensor_type(node, k, res[o])
    return [_from_type_proto(res[o]) if o in res else (np.dtype(np.float32), None) for o in outs]


def _graph_outputs(graph):
    """[(dtype, shape)] declared by a subgraph's outputs (unknown dims fresh)."""
    return [_from_type_proto(o.type) if o.type.HasField("tensor_type") else (np.dtype(np.float32), None)
            for o in graph.output]


def _if(node):
    """If: the then-branch's declared outputs; dims where the branches disagree become unknown."""
    a, b = _graph_outputs(node.attrs["then_branch"]), _graph_outputs(node.attrs["else_branch"])
    return [(p[0], None if p[1] is None or q[1] is None or len(p[1]) != len(q[1]) else
             tuple(x if x == y else fresh_dim() for x, y in zip(p[1], q[1]))) for p, q in zip(a, b)]


def _loop(node):
    """Loop: carried values keep their initial types; scan outputs stack per iteration (unknown count)."""
    states = node.inputs[2:]
    body = _graph_outputs(node.attrs["body"])[1 + len(states):]
    return [(t.dtype, t._shape) for t in states] + [(d, None if s is None else (fresh_dim(),) + s) for d, s in body]


def _scan(node):
    """Scan: states keep their types; each scan output gains the scanned length at its output axis."""
    m = node.attrs["num_scan_inputs"]
    states, xs = node.inputs[:len(node.inputs) - m], node.inputs[len(node.inputs) - m:]
    ax = (node.attrs.get("scan_input_axes") or [0])[0]
    x = xs[0]._shape
    length = fresh_dim() if x is None else x[ax % len(x)]
    body = _graph_outputs(node.attrs["body"])[len(states):]
    out_axes = node.attrs.get("scan_output_axes") or [0] * len(body)
    res = [(t.dtype, t._shape) for t in states]
    for (d, s), a in zip(body, out_axes):
        a = a % (len(s) + 1) if s is not None else a
        res.append((d, None if s is None else s[:a] + (length,) + s[a:]))
    return res


RULES.update({"If": _if, "Loop": _loop, "Scan": _scan})


def check_strings(node, opset):
    """Raise a TypeError naming the op and the input when a string tensor (dtype object, ONNX STRING)
    feeds an op whose schema takes none there (arithmetic, reductions, ...). String tensors pass through
    for inference in the ops that take them (Equal, Cast, Identity, Concat, Gather, StringConcat, ...)."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except onnx.defs.SchemaError:
        return  # an op ONNX does not know (a custom domain): onnxruntime decides
    formals = schema.inputs
    if not formals:
        return
    allowed = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
    for i, t in enumerate(node.inputs):
        if t is None or t.dtype is not dtypes.STRING or non_tensor_type(t) is not None:
            continue
        f = formals[min(i, len(formals) - 1)]  # a variadic last input covers the rest
        types = allowed.get(f.type_str, [f.type_str])
        if "tensor(string)" not in types:
            where = f" at node '{node.scope}'" if node.scope else ""
            raise TypeError(f"ONNX op {node.op_type}{where} does not take string tensors: input {i} ({f.name!r}) "
                            f"has dtype object (ONNX STRING), and {node.op_type} takes {', '.join(sorted(types))}. "
                            "String tensors pass through for inference only (Equal, Cast, StringConcat, "
                            "RegexFullMatch, ...); no arithmetic or gradients on them")


def infer(node, n_out, opset):
    """[(dtype, shape)] per output: a fast rule, else ONNX's inference, else the first input's dtype
    with an unknown shape (ops of domains ONNX does not know). A string input where the op takes none
    raises (check_strings)."""
    for t in node.inputs:
        if t is not None and t.dtype is _STRING:
            check_strings(node, opset)
            break
    rule = RULES.get(node.op_type) if not node.domain else None
    res = rule(node) if rule else None
    if res is None:
        res = onnx_infer(node, opset)
    if res is None:
        return [(node.inputs[0].dtype if node.inputs and node.inputs[0] is not None else np.dtype(np.float32), None)] * n_out
    return res
