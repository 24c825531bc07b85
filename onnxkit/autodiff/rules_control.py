"""Gradient rules for the control-flow ops If, Scan and Loop, in standard ops only.

Each rule replays the node's subgraph on placeholders, differentiates it with the same engine and
traces the result into a new If / reverse Scan, so gradients reach the tensors a body closes over
(outer-scope values), work for imported models, and can be differentiated again (HVP).
A rule returns one gradient per node input, then one per outer-scope value (Node.outer order)."""
import numpy as np

from .. import dtypes, ops
from ..control_flow import cond, flip0, from_time_major, merge_outer, replay, time_major, trace
from ..tensor import Tensor, apply, const, enable_grad
from .registry import register


def _float(t):
    return t is not None and dtypes.is_floating(t.dtype)


def _wants_grad(t):
    return _float(t) and t.requires_grad


def _vjp(outputs, grads, wrt):
    """Gradients of `outputs` (seeded with `grads`) w.r.t. the placeholders `wrt`; zeros where unused."""
    from .engine import grad
    pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None and o.requires_grad]
    res = grad([o for o, _ in pairs], wrt, [g for _, g in pairs], allow_unused=True) if pairs and wrt \
        else [None] * len(wrt)
    return [r if r is not None else ops.zeros_of(p) for r, p in zip(res, wrt)]


def _outs(out, n):
    return [] if n == 0 else ([out] if isinstance(out, Tensor) else list(out))


def _outer(node):
    names = list(node.outer or {})
    return names, [node.outer[n] for n in names]


# ----- If -----------------------------------------------------------------------------------------
@register("If")
def if_grad(node, grads):
    """An If with the same condition whose branches give each outer value's gradient through that
    branch (zeros for values the branch does not use)."""
    names, outer = _outer(node)
    wrt = [k for k, t in enumerate(outer) if _wants_grad(t)]
    live = [k for k, g in enumerate(grads) if g is not None and _float(node.outputs[k])]
    result = [None] * (len(node.inputs) + len(outer))
    if not wrt or not live:
        return result

    def branch(graph):
        def fn(ins, caps):
            ys = replay(graph, dict(zip(names, caps)))
            return _vjp([ys[k] for k in live], [grads[k] for k in live], [caps[k] for k in wrt])
        with enable_grad():
            return trace(fn, (), outer, [k in wrt for k in range(len(outer))])
    then_b, else_b = branch(node.attrs["then_branch"]), branch(node.attrs["else_branch"])
    types = [(outer[k].dtype, outer[k]._shape) for k in wrt]
    outer_refs = merge_outer(then_b, else_b)
    out = apply("If", [node.inputs[0]], {"then_branch": then_b.graph, "else_branch": else_b.graph}, n_out=len(wrt),
                types=types, outer=outer_refs)
    for k, g in zip(wrt, _outs(out, len(wrt))):
        result[len(node.inputs) + k] = g
    return result


# ----- Scan ---------------------------------------------------------------------------------------
def _norm_axes(values, ranks):
    return [a % r if r else a for a, r in zip(values, ranks)]


def _reverse_sweep(step_fn, carries, scans, scan_grad_flags, outer, outer_grad):
    """A reverse Scan: carry `carries` (gradients of the states, then accumulators for the outer values),
    scan inputs `scans` (time-major); step_fn(carry_ph, scan_ph, outer_ph) -> (new carries, per-step
    outputs). Returns (final carries, stacked per-step outputs, time-major)."""
    n_c = len(carries)

    def fn(ins, caps):
        new, ys = step_fn(ins[:n_c], ins[n_c:], caps)
        fn.n_y = len(ys)
        return list(new) + list(ys)
    with enable_grad():
        body = trace(fn, [(t.dtype, t._shape, False) for t in carries] +
                     [(t.dtype, t._shape[1:], flag) for t, flag in zip(scans, scan_grad_flags)], outer, outer_grad)
    n_y = fn.n_y
    length = scans[0]._shape[0]
    types = [(t.dtype, t._shape) for t in carries] + [(d, (length,) + s) for d, s in body.types[n_c:]]
    # explicit flips rather than scan_*_directions: onnx.reference runs only forward Scans on axis 0
    scans = [flip0(t) for t in scans]
    out = _outs(apply("Scan", list(carries) + scans, {"body": body.graph, "num_scan_inputs": len(scans)},
                      n_out=n_c + n_y, types=types, outer=body.outer), n_c + n_y)
    return out[:n_c], [flip0(t) for t in out[n_c:]]


def _saving_scan(node, states, xs, names, outer):
    """The forward Scan again (time-major inputs), also emitting the incoming states of every step."""
    body, n = node.attrs["body"], len(states)

    def fn(ins, caps):
        env = dict(zip([i.name for i in body.input], ins))
        env.update(zip(names, caps))
        res = replay(body, env)
        return res[:n] + [ops.identity(s) for s in ins[:n]]
    with enable_grad():
        formals = [(t.dtype, t._shape, False) for t in states] + [(t.dtype, t._shape[1:], False) for t in xs]
        b = trace(fn, formals, outer)
    length = xs[0]._shape[0]
    types = [(t.dtype, t._shape) for t in states] * 2
    types = types[:n] + [(d, (length,) + s) for d, s in types[n:]]
    out = _outs(apply("Scan", list(states) + list(xs), {"body": b.graph, "num_scan_inputs": len(xs)}, n_out=2 * n,
                      types=types, outer=b.outer), 2 * n)
    return out[n:]


@register("Scan")
def scan_grad(node, grads):
    """Recompute the Scan saving each step's incoming states, then sweep backwards with a reverse Scan
    over (saved states, inputs, output gradients) carrying the state gradients and the outer values'
    accumulated gradients; each step differentiates the replayed body."""
    a, body = node.attrs, node.attrs["body"]
    m = a["num_scan_inputs"]
    n = len(node.inputs) - m
    k_out = len(node.outputs) - n
    states, xs = node.inputs[:n], node.inputs[n:]
    names, outer = _outer(node)
    in_axes = _norm_axes(a.get("scan_input_axes", [0] * m), [len(x._shape) for x in xs])
    in_dirs = a.get("scan_input_directions", [0] * m)
    out_axes = _norm_axes(a.get("scan_output_axes", [0] * k_out), [len(y._shape) for y in node.outputs[n:]])
    out_dirs = a.get("scan_output_directions", [0] * k_out)
    result = [None] * (len(node.inputs) + len(outer))
    x_wrt = [j for j, x in enumerate(xs) if _wants_grad(x)]
    o_wrt = [k for k, t in enumerate(outer) if _wants_grad(t)]
    s_wrt = [i for i, s in enumerate(states) if _float(s)]
    live_y = [k for k in range(k_out) if grads[n + k] is not None and _float(node.outputs[n + k])]
    live_s = [i for i in s_wrt if grads[i] is not None]
    if not (live_y or live_s) or not (x_wrt or o_wrt or any(states[i].requires_grad for i in s_wrt)):
        return result
    xc = [time_major(x, ax, d) for x, ax, d in zip(xs, in_axes, in_dirs)]
    saved = _saving_scan(node, states, xc, names, outer) if n else []
    gys = [time_major(grads[n + k], out_axes[k], out_dirs[k]) for k in live_y]
    in_names = [i.name for i in body.input]

    def step(carry, scan_in, caps):
        ds, acc = carry[:len(s_wrt)], carry[len(s_wrt):]
        s, x, gy = scan_in[:n], scan_in[n:n + m], scan_in[n + m:]
        env = dict(zip(in_names, list(s) + list(x)))
        env.update(zip(names, caps))
        res = replay(body, env)
        wrt = [s[i] for i in s_wrt] + [x[j] for j in x_wrt] + [caps[k] for k in o_wrt]
        g = _vjp([res[i] for i in s_wrt] + [res[n + k] for k in live_y], list(ds) + list(gy), wrt)
        n_s, n_x = len(s_wrt), len(x_wrt)
        return g[:n_s] + [p + q for p, q in zip(acc, g[n_s + n_x:])], g[n_s:n_s + n_x]
    d_final = [grads[i] if grads[i] is not None else ops.zeros_of(node.outputs[i]) for i in s_wrt]
    carries = d_final + [ops.zeros_of(outer[k]) for k in o_wrt]
    flags = [_float(s) for s in saved] + [j in x_wrt for j in range(m)] + [False] * len(gys)
    final, dxs = _reverse_sweep(step, carries, list(saved) + xc + gys, flags, outer,
                                [k in o_wrt for k in range(len(outer))])
    for i, g in zip(s_wrt, final[:len(s_wrt)]):
        result[i] = g
    for j, g in zip(x_wrt, dxs):
        result[n + j] = from_time_major(g, in_axes[j], in_dirs[j])
    for k, g in zip(o_wrt, final[len(s_wrt):]):
        result[len(node.inputs) + k] = g
    return result


# ----- Loop ---------------------------------------------------------------------------------------
def _saving_loop(node, names, outer):
    """The forward Loop again, also emitting each iteration's incoming condition and states as scan
    outputs (so the trip count can be data-dependent)."""
    body = node.attrs["body"]
    states = node.inputs[2:]
    n = len(states)

    def fn(ins, caps):
        env = dict(zip([i.name for i in body.input], ins))
        env.update(zip(names, caps))
        res = replay(body, env)
        # saved flat (1-D per iteration): onnx.reference concatenates Loop scan outputs where onnxruntime stacks
        return res[:1 + n] + [_flat(ins[1])] + [_flat(s) for s in ins[2:]]
    it_type, cond_type = (np.dtype(np.int64), (), False), (np.dtype(np.bool_), (), False)
    with enable_grad():
        b = trace(fn, [it_type, cond_type] + [(t.dtype, t._shape, False) for t in states], outer)
    from ..infer import fresh_dim
    length = fresh_dim()
    types = [(t.dtype, t._shape) for t in states] + [(d, (length, fresh_dim())) for d, _ in b.types[1 + n:]]
    out = _outs(apply("Loop", list(node.inputs[:2]) + list(states), {"body": b.graph}, n_out=2 * n + 1, types=types,
                      outer=b.outer), 2 * n + 1)
    saved = [_unflat(out[n], None, length)] + [_unflat(f, t, length) for f, t in zip(out[n + 1:], states)]
    return saved[0], saved[1:]


def _flat(t):
    """t as a 1-D tensor."""
    return apply("Reshape", [t, ops.as_tensor(np.array([-1], np.int64))])


def _unflat(t, like, length):
    """(T, k) saved values back to (T,) + like's shape (like None: a scalar per iteration)."""
    minus_one = ops.as_tensor(np.array([-1], np.int64))
    if like is None or like._shape == ():
        return apply("Reshape", [t, minus_one], types=[(t.dtype, (length,))])
    return apply("Reshape", [t, ops.cat([minus_one, ops.shape_of(like)], 0)],
                 types=[(t.dtype, (length,) + tuple(like._shape))])


@register("Loop")
def loop_grad(node, grads):
    """Recompute the Loop saving each iteration's incoming condition and states, then sweep backwards
    with a reverse Scan over (iteration number, condition, saved states, scan-output gradients)."""
    body = node.attrs["body"]
    states = node.inputs[2:]
    n = len(states)
    k_out = len(node.outputs) - n
    names, outer = _outer(node)
    result = [None] * (len(node.inputs) + len(outer))
    o_wrt = [k for k, t in enumerate(outer) if _wants_grad(t)]
    s_wrt = [i for i, s in enumerate(states) if _float(s)]
    live_y = [k for k in range(k_out) if grads[n + k] is not None and _float(node.outputs[n + k])]
    live_s = [i for i in s_wrt if grads[i] is not None]
    if not (live_y or live_s) or not (o_wrt or any(states[i].requires_grad for i in s_wrt)):
        return result
    saved_cond, saved = _saving_loop(node, names, outer)
    length = ops.dim_size(saved_cond, 0)
    i64 = np.dtype(np.int64)
    iters = apply("Range", [const(0, i64), ops.reshape(length, ()), const(1, i64)], types=[(i64, saved_cond._shape)])
    gys = [grads[n + k] for k in live_y]
    in_names = [i.name for i in body.input]

    def step(carry, scan_in, caps):
        ds, acc = carry[:len(s_wrt)], carry[len(s_wrt):]
        it, c, s, gy = scan_in[0], scan_in[1], scan_in[2:2 + n], scan_in[2 + n:]
        env = dict(zip(in_names, [it, c] + list(s)))
        env.update(zip(names, caps))
        res = replay(body, env)
        wrt = [s[i] for i in s_wrt] + [caps[k] for k in o_wrt]
        g = _vjp([res[1 + i] for i in s_wrt] + [res[1 + n + k] for k in live_y], list(ds) + list(gy), wrt)
        return g[:len(s_wrt)] + [p + q for p, q in zip(acc, g[len(s_wrt):])], []
    d_final = [grads[i] if grads[i] is not None else ops.zeros_of(node.outputs[i]) for i in s_wrt]
    carries = d_final + [ops.zeros_of(outer[k]) for k in o_wrt]
    flags = [False, False] + [_float(s) for s in saved] + [False] * len(gys)

    def sweep():
        return _reverse_sweep(step, carries, [iters, saved_cond] + list(saved) + gys, flags, outer,
                              [k in o_wrt for k in range(len(outer))])[0]
    # a loop that ran no iteration passes its gradients through (onnxruntime's Scan rejects empty sequences)
    final = cond(length > 0, sweep, lambda: list(carries))
    for i, g in zip(s_wrt, final[:len(s_wrt)]):
        result[2 + i] = g
    for k, g in zip(o_wrt, final[len(s_wrt):]):
        result[len(node.inputs) + k] = g
    return result
