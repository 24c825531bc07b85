"""Gradient rules for the ONNX recurrent ops (LSTM, GRU, RNN) and ReverseSequence, standard ops only.

The forward op exposes every hidden state in `Y`, so the gates are recomputed for all time steps at
once with two big MatMuls (X W^T and H_{t-1} R^T, H_{t-1} = [h0, Y[:-1]]). What stays inside a loop is
only what is truly sequential:
  - LSTM: the cell state, rebuilt by a forward `Scan` whose body is two elementwise ops (c = f*c + i*g);
  - the backward recurrence, one `Scan` over the time-reversed factors whose body is a few elementwise
    ops and the single dgates_t R product (R is read from the outer scope; for LSTM a Gemm that also
    adds gY_{t-1}).
The weight gradients are then one MatMul each over all time steps. `sequence_lens` is handled with a
(T, N, 1) mask folded into the precomputed factors, so masked steps pass the state gradient through
unchanged; the reverse direction runs the same math on sequences reversed within their lengths
(ReverseSequence). Attributes torch never writes (clip, input_forget, layout=1, peepholes, other
activations) raise NotImplementedError naming the attribute and the node (onnxruntime itself rejects
layout=1 in the forward). nn.LSTM trains by default through ops/rnn.py `lstm_train`, whose forward Scan
keeps the gates and cell states and feeds `lstm_backward_core` directly."""
import hashlib

import numpy as np
from onnx import helper

from .. import dtypes, ops
from ..emit import topo
from ..tensor import apply, const
from .registry import register

_SAMPLED = {"RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Bernoulli", "Multinomial",
            "Dropout"}
_DEFAULT_ACTS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"]}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_fresh = iter(range(1 << 62))


def _where(node):
    return f"{node.scope}/{node.op_type}" if node.scope else node.op_type


def _unsupported(node, what):
    raise NotImplementedError(f"{node.op_type} node {_where(node)!r}: no gradient for {what}")


def _check_attrs(node):
    """The activations per direction (lower case) after rejecting what the rules do not implement."""
    a = node.attrs
    D = 2 if a.get("direction", "forward") == "bidirectional" else 1
    if a.get("clip") is not None:
        _unsupported(node, f"attribute clip={a['clip']}")
    if int(a.get("input_forget", 0)):
        _unsupported(node, "attribute input_forget=1")
    if int(a.get("layout", 0)):
        _unsupported(node, "attribute layout=1 (batch-major X/Y)")
    if node.op_type == "GRU" and not int(a.get("linear_before_reset", 0)):
        _unsupported(node, "attribute linear_before_reset=0")
    if node.op_type == "LSTM" and len(node.inputs) > 7 and node.inputs[7] is not None:
        _unsupported(node, "peephole input P")
    acts = [s.decode() if isinstance(s, bytes) else str(s) for s in (a.get("activations") or [])]
    acts = [s.lower() for s in acts]
    if node.op_type == "RNN":
        acts = acts or ["tanh"] * D
        for s in acts:
            if s not in ("tanh", "relu", "sigmoid"):
                _unsupported(node, f"attribute activations={acts}")
        return [[acts[d]] for d in range(D)]
    default = _DEFAULT_ACTS[node.op_type]
    if acts and acts != default * (len(acts) // len(default)):
        _unsupported(node, f"attribute activations={acts}")
    return [default] * D


# ----- small graph helpers ----------------------------------------------------------------------
def _pick(t, axis, d):
    """t[..., d, ...] along `axis` (the axis removed)."""
    return apply("Gather", [t, const(np.int64(d), np.int64)], {"axis": axis})


def _drop_last_step(y):
    return apply("Slice", [y, const([0], np.int64), const([-1], np.int64), const([0], np.int64)])


def _first_step(y):
    return apply("Slice", [y, const([0], np.int64), const([1], np.int64), const([0], np.int64)],
                 types=[(y.dtype, (1,) + tuple(y._shape[1:]))])


def _last_step(y):
    return apply("Slice", [y, const([-1], np.int64), const([2 ** 62], np.int64), const([0], np.int64)],
                 types=[(y.dtype, (1,) + tuple(y._shape[1:]))])


def _reverse(x, lens):
    if lens is None:
        return apply("Slice", [x, const([-1], np.int64), const([-(2 ** 62)], np.int64), const([0], np.int64),
                               const([-1], np.int64)], types=[(x.dtype, x._shape)])
    return apply("ReverseSequence", [x, ops.cast(lens, np.int64)], {"batch_axis": 1, "time_axis": 0},
                 types=[(x.dtype, x._shape)])


def _mask(x, lens):
    """(T, N, 1) 0/1 mask in x's dtype: t < lens[n]."""
    T = apply("Shape", [x], {"start": 0, "end": 1})
    t = apply("Range", [const(0, np.int64), ops.squeeze(T, 0), const(1, np.int64)])
    m = ops.lt(ops.unsqueeze(t, 1), ops.unsqueeze(ops.cast(lens, np.int64), 0))
    return ops.unsqueeze(ops.cast(m, x.dtype), 2)


def _outer_name(t):
    """A name for `t` inside a subgraph that is the same each time the same computation is rebuilt
    (so compiled sessions are reused) and differs between different computations in one graph: a
    digest of t's sub-DAG with its leaves by identity."""
    nodes, leaves = topo([t])
    ids, parts = {}, []
    for i, lf in enumerate(leaves):
        ids[id(lf)] = i
        if lf.kind == "const":
            parts.append(("C", lf._value.dtype.str, lf._value.shape, lf._value.tobytes()))
        elif lf.kind == "input":
            parts.append(("I", lf.name))
        else:
            parts.append(("V", id(lf if lf._base is None else lf._base)))
    k = len(leaves)
    for n in nodes:
        if n.op_type in _SAMPLED or n.outer or n.custom:
            parts.append(("fresh", next(_fresh)))
        parts.append((n.key, tuple(-1 if x is None else ids[id(x)] for x in n.inputs)))
        for o in n.outputs:
            ids[id(o)] = k
            k += 1
    parts.append(ids[id(t)])
    return "rnn_grad_R_" + hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def _vi(name, elem, rank_dims):
    return helper.make_tensor_value_info(name, elem, rank_dims)


def _scan(body_nodes, state_in, scan_in, state_out, scan_out, inits, xs, out_types, reverse, outer=None, elem=None):
    """A Scan node over axis 0 of `xs` with states `inits`; body given as onnx NodeProtos.
    state_in/scan_in/state_out/scan_out: (name, dims) of the body's graph inputs/outputs."""
    graph = helper.make_graph(
        body_nodes, "rnn_grad_body",
        [_vi(n, elem, d) for n, d in state_in] + [_vi(n, elem, d) for n, d in scan_in],
        [_vi(n, elem, d) for n, d in state_out] + [_vi(n, elem, d) for n, d in scan_out])
    k = len(xs)
    attrs = {"body": graph, "num_scan_inputs": k}
    if reverse:  # flipped in the graph, not scan_*_directions: onnx.reference's Scan has no reversed axes
        xs = [_reverse(x, None) for x in xs]  # (A/B-timed in the LSTM training step: no measurable cost)
    outs = apply("Scan", list(inits) + list(xs), attrs, n_out=len(out_types), types=out_types, outer=outer)
    if reverse:
        outs = outs[:len(inits)] + [_reverse(y, None) for y in outs[len(inits):]]
    return outs


def _n(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, **attrs)


def _cell_scan(F, IG, c0):
    """c_t = F_t * c_{t-1} + IG_t for all t (forward Scan); returns (T, N, H)."""
    elem = dtypes.to_onnx(F.dtype)
    H = F._shape[2]
    nodes = [_n("Mul", ["F", "c"], ["fc"]), _n("Add", ["fc", "IG"], ["c_next"]), _n("Identity", ["c_next"], ["c_out"])]
    _, cs = _scan(nodes, [("c", [None, H])], [("F", [None, H]), ("IG", [None, H])],
                  [("c_next", [None, H])], [("c_out", [None, H])], [c0], [F, IG],
                  [(F.dtype, c0._shape), (F.dtype, F._shape)], reverse=False, elem=elem)
    return cs


def _matmul_all(a, b):
    """(T, N, K) x (K, M) -> (T, N, M)."""
    return ops.matmul(a, b)


def _weight_grad(dg, x):
    """sum_t,n dg[t,n]^T x[t,n]: (G, T*N) x (T*N, I) as one Gemm."""
    G, I = dg._shape[2], x._shape[2]
    return apply("Gemm", [ops.reshape(dg, -1, G), ops.reshape(x, -1, I)], {"transA": 1})


def _act_grad(name, h):
    """d act / d pre as a function of the activation's output h."""
    if name == "tanh":
        return ops.sub(1.0, ops.mul(h, h))
    if name == "sigmoid":
        return ops.mul(h, ops.sub(1.0, h))
    return ops.cast(ops.gt(h, 0.0), h.dtype)  # relu


def lstm_backward_core(i, o, f, g, C, c0, gY, gh, gc, m, R, H, S=None, tc=None):
    """The LSTM backward recurrence for one forward-direction pass from the gate activations (ONNX order
    i, o, f, c; each (T, N, H)) and the cell states C (rebuilt by a forward Scan when None). gY is the
    gradient w.r.t. Y (not yet masked), gh/gc the seeds for the final states, m the (T, N, 1) mask or None.
    S, when given, is the (T, N, 3H) concatenation of i, o, f, and tc tanh(C). Returns dG (T, N, 4H)
    (gradient w.r.t. the gate pre-activations), dh0, dc0."""
    dt = g.dtype
    elem = dtypes.to_onnx(dt)
    G = 4 * H
    rname = _outer_name(R)
    outer = {rname: R}
    nm = None if m is None else ops.sub(1.0, m)
    if m is not None:
        gY = ops.mul(gY, m)

    def masked(t):
        return t if m is None else ops.mul(t, m)

    F = f if m is None else ops.add(ops.mul(f, m), nm)  # masked steps carry c (and its gradient) unchanged
    if C is None:
        C = _cell_scan(F, masked(ops.mul(i, g)), c0)
    Cprev = ops.cat([ops.unsqueeze(c0, 0), _drop_last_step(C)], 0)
    tc = ops.tanh(C) if tc is None else tc
    # di = dc * g i(1-i), do = dh * tanh(c) o(1-o), df = dc * c_{t-1} f(1-f), dg = dc * i (1-g^2)
    S = ops.cat([i, o, f], 2) if S is None else S
    dS = ops.sub(S, ops.mul(S, S))
    K = masked(ops.cat([ops.mul(ops.cat([g, tc, Cprev], 2), dS), ops.mul(i, ops.sub(1.0, ops.mul(g, g)))], 2))
    Bc = masked(ops.mul(o, ops.sub(1.0, ops.mul(tc, tc))))
    # the carry is the whole gradient w.r.t. h_t; gY_{t-1} enters through Gemm's C (gY shifted one step)
    gYs = ops.cat([ops.zeros_of(_first_step(gY)), _drop_last_step(gY)], 0)
    body = [_n("Mul", ["dh", "Bc"], ["t1"]), _n("Add", ["dc_c", "t1"], ["dc"]),
            _n("Concat", ["dc", "dh", "dc", "dc"], ["cat"], axis=1), _n("Mul", ["cat", "K"], ["dG"]),
            _n("Mul", ["dc", "F"], ["dc_p"])]
    scan_in = [("gYs", [None, H]), ("Bc", [None, H]), ("K", [None, G]), ("F", [None, H])]
    xs = [gYs, Bc, K, F]
    if m is not None:
        body += [_n("Gemm", ["dG", rname, "gYs"], ["mm"]), _n("Mul", ["dh", "nm"], ["pass"]),
                 _n("Add", ["mm", "pass"], ["dh_p"])]
        scan_in.append(("nm", [None, 1]))
        xs.append(nm)
    else:
        body.append(_n("Gemm", ["dG", rname, "gYs"], ["dh_p"]))
    init_h = ops.add(gh, apply("Squeeze", [_last_step(gY), const([0], np.int64)], types=[(dt, gh._shape)]))
    dh0, dc0, dG = _scan(body, [("dh", [None, H]), ("dc_c", [None, H])], scan_in,
                         [("dh_p", [None, H]), ("dc_p", [None, H])], [("dG", [None, G])],
                         [init_h, gc], xs, [(dt, gh._shape), (dt, gc._shape), (dt, gY._shape[:2] + (G,))],
                         reverse=True, outer=outer, elem=elem)
    return dG, dh0, dc0


# ----- per-direction backward -----------------------------------------------------------------
def _direction(kind, acts, X, W, R, Wb, Rb, h0, c0, Y, gY, gh, gc, m, H):
    """Gradients of one forward-direction pass. X (T,N,I), W (G*H,I), R (G*H,H), Wb/Rb (G*H) or None,
    h0/c0 (N,H), Y (T,N,H), gY (T,N,H), gh/gc (N,H) seeds, m (T,N,1) mask or None.
    Returns dX, dW, dR, dWb, dRb, dh0, dc0."""
    dt = X.dtype
    elem = dtypes.to_onnx(dt)
    G = _GATES[kind] * H
    Hprev = ops.cat([ops.unsqueeze(h0, 0), _drop_last_step(Y)], 0)
    gx = _matmul_all(X, ops.t(W))
    gh_ = _matmul_all(Hprev, ops.t(R))
    if Wb is not None:
        gx = ops.add(gx, Wb)
        gh_ = ops.add(gh_, Rb)
    rname = _outer_name(R)
    outer = {rname: R}
    nm = None if m is None else ops.sub(1.0, m)
    if m is not None:
        gY = ops.mul(gY, m)

    def masked(t):
        return t if m is None else ops.mul(t, m)

    if kind == "LSTM":
        pre = ops.add(gx, gh_)
        pi, po, pf, pc = ops.split(pre, H, 2)
        i, o, f, g = ops.sigmoid(pi), ops.sigmoid(po), ops.sigmoid(pf), ops.tanh(pc)
        dG, dh0, dc0 = lstm_backward_core(i, o, f, g, None, c0, gY, gh, gc, m, R, H)
        dgx = dgh = dG
    elif kind == "GRU":
        xz, xr, xn = ops.split(gx, H, 2)
        hz, hr, hn = ops.split(gh_, H, 2)
        z, r = ops.sigmoid(ops.add(xz, hz)), ops.sigmoid(ops.add(xr, hr))
        n = ops.tanh(ops.add(xn, ops.mul(r, hn)))
        Az = ops.mul(ops.sub(Hprev, n), ops.mul(z, ops.sub(1.0, z)))       # dz = dh * Az
        An = ops.mul(ops.sub(1.0, z), ops.sub(1.0, ops.mul(n, n)))           # dn = dh * An
        Ar = ops.mul(ops.mul(An, hn), ops.mul(r, ops.sub(1.0, r)))           # dr = dh * Ar
        Kx = masked(ops.cat([Az, Ar, An], 2))
        Kh = masked(ops.cat([Az, Ar, ops.mul(An, r)], 2))
        Z = z if m is None else ops.add(ops.mul(z, m), nm)
        body = [_n("Add", ["gY", "dh_c"], ["dh"]), _n("Concat", ["dh", "dh", "dh"], ["cat"], axis=1),
                _n("Mul", ["cat", "Kh"], ["dgh"]), _n("MatMul", ["dgh", rname], ["mm"]),
                _n("Mul", ["dh", "Z"], ["t4"]), _n("Add", ["mm", "t4"], ["dh_p"]), _n("Identity", ["dh"], ["dh_out"])]
        dh0, dhs = _scan(body, [("dh_c", [None, H])], [("gY", [None, H]), ("Kh", [None, G]), ("Z", [None, H])],
                         [("dh_p", [None, H])], [("dh_out", [None, H])], [gh], [gY, Kh, Z],
                         [(dt, gh._shape), (dt, Y._shape)], reverse=True, outer=outer, elem=elem)
        dc0 = None
        d3 = ops.cat([dhs, dhs, dhs], 2)
        dgx, dgh = ops.mul(d3, Kx), ops.mul(d3, Kh)
    else:
        pre_h = Y  # h = act(pre): the activation's derivative from its output
        Dact = masked(_act_grad(acts[0], pre_h))
        body = [_n("Add", ["gY", "dh_c"], ["dh"]), _n("Mul", ["dh", "Dact"], ["dpre"]),
                _n("MatMul", ["dpre", rname], ["mm"])]
        scan_in = [("gY", [None, H]), ("Dact", [None, H])]
        xs = [gY, Dact]
        if m is not None:
            body += [_n("Mul", ["dh", "nm"], ["pass"]), _n("Add", ["mm", "pass"], ["dh_p"])]
            scan_in.append(("nm", [None, 1]))
            xs.append(nm)
        else:
            body.append(_n("Identity", ["mm"], ["dh_p"]))
        body.append(_n("Identity", ["dpre"], ["dpre_out"]))
        dh0, dG = _scan(body, [("dh_c", [None, H])], scan_in, [("dh_p", [None, H])], [("dpre_out", [None, H])],
                        [gh], xs, [(dt, gh._shape), (dt, Y._shape)], reverse=True, outer=outer, elem=elem)
        dc0 = None
        dgx = dgh = dG
    dX = _matmul_all(dgx, W)
    dW = _weight_grad(dgx, X)
    dR = _weight_grad(dgh, Hprev)
    dWb = ops.sum(dgx, [0, 1])
    dRb = dWb if dgh is dgx else ops.sum(dgh, [0, 1])
    return dX, dW, dR, dWb, dRb, dh0, dc0


def _rnn_grad(node, grads):
    kind = node.op_type
    acts = _check_attrs(node)
    ins = list(node.inputs) + [None] * (8 - len(node.inputs))
    X, W, R, B, lens, h0, c0 = ins[:7]
    a = node.attrs
    H = int(a["hidden_size"])
    G = _GATES[kind] * H
    direction = a.get("direction", "forward")
    if isinstance(direction, bytes):
        direction = direction.decode()
    D = 2 if direction == "bidirectional" else 1
    Yall, Yh = node.outputs[0], node.outputs[1]
    gYall = grads[0]
    gYh = grads[1] if len(grads) > 1 else None
    gYc = grads[2] if kind == "LSTM" and len(grads) > 2 else None
    zero_state = ops.zeros_of(Yh)  # (D, N, H)
    want = lambda t: t is not None and t.requires_grad  # noqa: E731
    res = {k: [] for k in ("dX", "dW", "dR", "dB", "dh0", "dc0")}
    for d in range(D):
        rev = direction == "reverse" or d == 1
        Wd, Rd = _pick(W, 0, d), _pick(R, 0, d)
        if B is not None:
            Bd = _pick(B, 0, d)
            Wb, Rb = ops.split(Bd, G, 0)
        else:
            Wb = Rb = None
        h0d = _pick(h0 if h0 is not None else zero_state, 0, d)
        c0d = _pick(c0 if c0 is not None else zero_state, 0, d) if kind == "LSTM" else None
        Yd = _pick(Yall, 1, d)
        gYd = _pick(gYall, 1, d) if gYall is not None else ops.zeros_of(Yd)
        ghd = _pick(gYh, 0, d) if gYh is not None else _pick(zero_state, 0, d)
        gcd = None
        if kind == "LSTM":
            gcd = _pick(gYc, 0, d) if gYc is not None else _pick(zero_state, 0, d)
        Xd = X
        if rev:
            Xd, Yd, gYd = _reverse(X, lens), _reverse(Yd, lens), _reverse(gYd, lens)
        m = None if lens is None else _mask(X, lens)
        dX, dW, dR, dWb, dRb, dh0, dc0 = _direction(kind, acts[d], Xd, Wd, Rd, Wb, Rb, h0d, c0d, Yd, gYd, ghd, gcd,
                                                    m, H)
        if rev:
            dX = _reverse(dX, lens)
        res["dX"].append(dX)
        res["dW"].append(dW)
        res["dR"].append(dR)
        if B is not None:
            res["dB"].append(ops.cat([dWb, dRb], 0))
        res["dh0"].append(dh0)
        res["dc0"].append(dc0)

    def stacked(key):
        parts = [ops.unsqueeze(p, 0) for p in res[key]]
        return parts[0] if len(parts) == 1 else ops.cat(parts, 0)

    dX = res["dX"][0] if D == 1 else ops.add(res["dX"][0], res["dX"][1])
    out = [dX if want(X) else None, stacked("dW") if want(W) else None, stacked("dR") if want(R) else None,
           stacked("dB") if want(B) else None, None, stacked("dh0") if want(h0) else None]
    if kind == "LSTM":
        out += [stacked("dc0") if want(c0) else None, None]
    return out[:len(node.inputs)]


register("LSTM")(_rnn_grad)
register("GRU")(_rnn_grad)
register("RNN")(_rnn_grad)


@register("ReverseSequence")
def _reverse_sequence(node, g):
    """ReverseSequence is its own inverse: reverse the gradient with the same lengths."""
    x, lens = node.inputs
    return [apply("ReverseSequence", [g[0], lens], dict(node.attrs), types=[(g[0].dtype, x._shape)]), None]
