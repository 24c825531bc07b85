"""Recurrent computations (torch's RNN/LSTM/GRU layers and cells) as ONNX nodes.

A torch layer becomes one ONNX `LSTM`/`GRU`/`RNN` node per layer (both directions in one node), with
torch's weights converted in the graph: gate blocks reordered (LSTM i,f,g,o -> ONNX i,o,f,c; GRU r,z,n
-> ONNX z,r,h with linear_before_reset=1) and the two biases concatenated into `B`. Packed batches pass
their lengths as `sequence_lens`, so an exported graph takes the lengths as an input. Gradients of the ONNX ops are in
autodiff/rules_rnn.py. When nn.LSTM records gradients it runs `lstm_train` instead (TRAIN_FORMULATION
"scan"): the same math as a forward Scan that keeps the gates and cell states, with its own backward
(no recomputation); inference and export keep the ONNX LSTM node. LSTM with `proj_size` has no ONNX
op: it is unrolled over static time steps (differentiable by the generic rules) and is one Scan per
direction when the sequence length is symbolic (export)."""
import numpy as np

from ..tensor import apply, const, is_grad_enabled
from .core import cast, add, mul, sub, sigmoid, tanh, relu, where, lt
from .shape import cat, split, unsqueeze, squeeze, transpose, stack
from .linalg import matmul

__all__ = ["lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"]

def zero_state(*sizes, dtype):
    """A default initial state of zeros: one Expand of a scalar constant when the sizes are static (no
    fed value, so a compiled module's replayed forward can hold it), else ok.zeros' graph op."""
    from ..tensor import zeros
    from .shape import expand
    if all(isinstance(s, int) for s in sizes):
        return expand(const(np.zeros((), dtype), dtype), *sizes)
    return zeros(*sizes, dtype=dtype)


# torch gate block k goes to ONNX position PERM[k] (as an order of torch blocks)
_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN": (0,)}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _reorder(w, kind, hidden):
    """torch's gate blocks of w (dim 0) in ONNX order."""
    order = _ORDER[kind]
    if len(order) == 1:
        return w
    parts = split(w, hidden, 0)
    return cat([parts[k] for k in order], 0)


def onnx_weights(kind, layer_params, hidden, has_bias):
    """(W, R, B) of one ONNX node from per-direction torch parameters
    [(w_ih, w_hh, b_ih, b_hh), ...]: W (D, G*H, I), R (D, G*H, H), B (D, 2*G*H) or None."""
    Ws, Rs, Bs = [], [], []
    for w_ih, w_hh, b_ih, b_hh in layer_params:
        Ws.append(unsqueeze(_reorder(w_ih, kind, hidden), 0))
        Rs.append(unsqueeze(_reorder(w_hh, kind, hidden), 0))
        if has_bias:
            Bs.append(unsqueeze(cat([_reorder(b_ih, kind, hidden), _reorder(b_hh, kind, hidden)], 0), 0))
    one = len(Ws) == 1
    W = Ws[0] if one else cat(Ws, 0)
    R = Rs[0] if one else cat(Rs, 0)
    B = None if not has_bias else (Bs[0] if one else cat(Bs, 0))
    return W, R, B


def onnx_rnn(kind, x, W, R, B, lens, h0, c0, hidden, bidirectional, nonlinearity="tanh"):
    """One ONNX LSTM/GRU/RNN node over time-major x (T, N, I); returns Y (T, D, N, H), Y_h (D, N, H)
    and for LSTM Y_c (D, N, H)."""
    D = 2 if bidirectional else 1
    attrs = {"hidden_size": int(hidden), "direction": "bidirectional" if bidirectional else "forward"}
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    if kind == "RNN":
        attrs["activations"] = ["Relu" if nonlinearity == "relu" else "Tanh"] * D
    if lens is not None:
        lens = cast(lens, np.int32)
    ins = [x, W, R, B, lens, h0] + ([c0] if kind == "LSTM" else [])
    while ins and ins[-1] is None:
        ins.pop()
    T, N = x._shape[0], x._shape[1]
    n_out = 3 if kind == "LSTM" else 2
    types = [(x.dtype, (T, D, N, hidden))] + [(x.dtype, (D, N, hidden))] * (n_out - 1)
    outs = apply(kind, ins, attrs, n_out=n_out, types=types)
    return outs if kind == "LSTM" else (outs[0], outs[1], None)


def _time_mask(x, lens):
    """(T, N, 1) float mask: 1 where t < lens[n]."""
    T = apply("Shape", [x], {"start": 0, "end": 1}, types=[(np.dtype(np.int64), (1,))])
    t = apply("Range", [const(0, np.int64), squeeze(T, 0), const(1, np.int64)],
              types=[(np.dtype(np.int64), (x._shape[0],))])
    m = lt(unsqueeze(t, 1), unsqueeze(cast(lens, np.int64), 0))
    return unsqueeze(cast(m, x.dtype), 2)


def _reverse_time(x, lens):
    """Reverse each sequence within its length (all T steps when lens is None)."""
    if lens is None:
        return apply("Slice", [x, const([-1], np.int64), const([-(2 ** 62)], np.int64), const([0], np.int64),
                               const([-1], np.int64)], types=[(x.dtype, x._shape)])
    return apply("ReverseSequence", [x, cast(lens, np.int64)], {"batch_axis": 1, "time_axis": 0},
                 types=[(x.dtype, x._shape)])


def lstm_proj_layer(x, params, lens, h0, c0, hidden, proj, bidirectional):
    """One LSTM layer with projection (no ONNX op): unrolled over the static time steps while recording
    gradients, else (inference, export, symbolic length) one Scan per direction.
    params per direction: (w_ih, w_hh, b_ih, b_hh, w_hr). Returns out (T, N, D*P), h_n (D, N, P), c_n (D, N, H)."""
    T = x._shape[0]
    recording = is_grad_enabled() and any(t is not None and t.requires_grad
                                          for t in [x, h0, c0] + [p for ps in params for p in ps])
    if not isinstance(T, int) or not recording:  # inference/export: one compact Scan per direction
        return _lstm_proj_scan(x, params, lens, h0, c0, hidden, proj)
    mask = None if lens is None else _time_mask(x, lens)
    outs, hs, cs = [], [], []
    for d, (w_ih, w_hh, b_ih, b_hh, w_hr) in enumerate(params):
        xd = x if d == 0 else _reverse_time(x, lens)
        md = mask
        gx = matmul(xd, transpose(w_ih, 0, 1))
        if b_ih is not None:
            gx = add(gx, add(b_ih, b_hh))
        h, c = h0[d], c0[d]
        ys = []
        steps = split(gx, 1, 0) if T > 1 else (gx,)
        msteps = (split(md, 1, 0) if T > 1 else (md,)) if md is not None else [None] * T
        for t in range(T):
            g = add(squeeze(steps[t], 0), matmul(h, transpose(w_hh, 0, 1)))
            i, f, gg, o = split(g, hidden, 1)
            cn = add(mul(sigmoid(f), c), mul(sigmoid(i), tanh(gg)))
            hn = matmul(mul(sigmoid(o), tanh(cn)), transpose(w_hr, 0, 1))
            if msteps[t] is not None:
                m = squeeze(msteps[t], 0) > 0.5
                cn, hn = where(m, cn, c), where(m, hn, h)
                ys.append(where(m, hn, mul(hn, 0.0)))
            else:
                ys.append(hn)
            h, c = hn, cn
        y = stack(ys, 0)
        if d == 1:
            y = _reverse_time(y, lens)
        outs.append(y)
        hs.append(h)
        cs.append(c)
    out = outs[0] if len(outs) == 1 else cat(outs, 2)
    return out, stack(hs, 0), stack(cs, 0)


def _lstm_proj_scan(x, params, lens, h0, c0, hidden, proj):
    """The projected LSTM layer as one ONNX Scan per direction (symbolic sequence length): the input
    projection is one MatMul outside the loop, the body does h W_hh^T, the gates and h W_hr^T."""
    from onnx import helper
    from .. import dtypes
    from ..autodiff.rules_rnn import _outer_name
    elem = dtypes.to_onnx(x.dtype)
    G = 4 * hidden
    mask = None if lens is None else cast(_time_mask(x, lens), np.bool_)
    outs, hs, cs = [], [], []
    for d, (w_ih, w_hh, b_ih, b_hh, w_hr) in enumerate(params):
        xd = x if d == 0 else _reverse_time(x, lens)
        gx = matmul(xd, transpose(w_ih, 0, 1))
        if b_ih is not None:
            gx = add(gx, add(b_ih, b_hh))
        whh, whr = transpose(w_hh, 0, 1), transpose(w_hr, 0, 1)
        nh, nr = _outer_name(whh), _outer_name(whr)
        n = helper.make_node
        body = [n("MatMul", ["h", nh], ["gh"]), n("Add", ["gx", "gh"], ["g"]),
                n("Split", ["g"], ["pi", "pf", "pg", "po"], axis=1, num_outputs=4),
                n("Sigmoid", ["pi"], ["i"]), n("Sigmoid", ["pf"], ["f"]), n("Tanh", ["pg"], ["gg"]),
                n("Sigmoid", ["po"], ["o"]), n("Mul", ["f", "c"], ["fc"]), n("Mul", ["i", "gg"], ["ig"]),
                n("Add", ["fc", "ig"], ["c_new"]), n("Tanh", ["c_new"], ["tc"]), n("Mul", ["o", "tc"], ["oh"]),
                n("MatMul", ["oh", nr], ["h_new"])]
        vi = helper.make_tensor_value_info
        ins = [vi("h", elem, [None, proj]), vi("c", elem, [None, hidden]), vi("gx", elem, [None, G])]
        xs = [gx]
        if mask is not None:
            ins.append(vi("m", 9, [None, 1]))
            xs.append(mask)
            body += [n("Where", ["m", "c_new", "c"], ["c_out"]), n("Where", ["m", "h_new", "h"], ["h_out"]),
                     n("Sub", ["h_new", "h_new"], ["zero"]), n("Where", ["m", "h_new", "zero"], ["y"])]
        else:
            body += [n("Identity", ["c_new"], ["c_out"]), n("Identity", ["h_new"], ["h_out"]),
                     n("Identity", ["h_new"], ["y"])]
        graph = helper.make_graph(body, "lstm_proj_body", ins,
                                  [vi("h_out", elem, [None, proj]), vi("c_out", elem, [None, hidden]),
                                   vi("y", elem, [None, proj])])
        T, N = x._shape[0], x._shape[1]
        h, c, y = apply("Scan", [h0[d], c0[d]] + xs, {"body": graph, "num_scan_inputs": len(xs)}, n_out=3,
                        types=[(x.dtype, (N, proj)), (x.dtype, (N, hidden)), (x.dtype, (T, N, proj))],
                        outer={nh: whh, nr: whr})
        if d == 1:
            y = _reverse_time(y, lens)
        outs.append(y)
        hs.append(h)
        cs.append(c)
    out = outs[0] if len(outs) == 1 else cat(outs, 2)
    return out, stack(hs, 0), stack(cs, 0)


# ----- LSTM for training: a Scan that keeps its gates -----------------------------------------
def _lstm_scan_forward(gx, RT, h0, c0, m, hidden):
    """One forward-direction LSTM pass as an ONNX Scan over gx (T, N, 4H) = X W^T + b (ONNX gate order
    i, o, f, c). Returns h_T, c_T, C (T, N, H) (the carried c at masked steps), S (T, N, 3H) = the
    sigmoid gates (i, o, f) and Gc (T, N, H) = the tanh gate. Y = o * tanh(C) is formed outside the loop
    (one vectorized op instead of a per-step copy)."""
    from onnx import helper
    from .. import dtypes
    from ..autodiff.rules_rnn import _outer_name
    H = hidden
    elem = dtypes.to_onnx(gx.dtype)
    rn = _outer_name(RT)
    n, vi = helper.make_node, helper.make_tensor_value_info
    body = [n("Gemm", ["h", rn, "gx"], ["pre"]), n("Split", ["pre", "sizes"], ["p_s", "p_c"], axis=1),
            n("Sigmoid", ["p_s"], ["s"]), n("Tanh", ["p_c"], ["gc"]),
            n("Split", ["s"], ["i", "o", "f"], axis=1, num_outputs=3),
            n("Mul", ["f", "c"], ["fc"]), n("Mul", ["i", "gc"], ["ig"]), n("Add", ["fc", "ig"], ["c_new"]),
            n("Tanh", ["c_new"], ["tc"]), n("Mul", ["o", "tc"], ["h_new"])]
    ins = [vi("h", elem, [None, H]), vi("c", elem, [None, H]), vi("gx", elem, [None, 4 * H])]
    xs = [gx]
    if m is not None:
        ins.append(vi("m", 9, [None, 1]))
        xs.append(m)
        body += [n("Where", ["m", "c_new", "c"], ["c_out"]), n("Where", ["m", "h_new", "h"], ["h_out"]),
                 n("Identity", ["c_out"], ["c_seq"])]
    else:
        body.append(n("Identity", ["c_new"], ["c_seq"]))
    hs, cs = ("h_out", "c_out") if m is not None else ("h_new", "c_new")
    outs = [vi(hs, elem, [None, H]), vi(cs, elem, [None, H]),
            vi("c_seq", elem, [None, H]), vi("s", elem, [None, 3 * H]), vi("gc", elem, [None, H])]
    graph = helper.make_graph(body, "lstm_train_body", ins, outs,
                              initializer=[helper.make_tensor("sizes", 7, [2], [3 * H, H])])
    T, N = gx._shape[0], gx._shape[1]
    dt = gx.dtype
    return apply("Scan", [h0, c0] + xs, {"body": graph, "num_scan_inputs": len(xs)}, n_out=5,
                 types=[(dt, (N, H)), (dt, (N, H)), (dt, (T, N, H)), (dt, (T, N, 3 * H)), (dt, (T, N, H))],
                 outer={rn: RT})


def _lstm_train_function():
    from ..autodiff.function import Function
    from ..autodiff import rules_rnn as RR
    from ..tensor import enable_grad

    class LSTMScan(Function):
        """The ONNX LSTM node's math as Scans that keep the gates (forward) and the backward recurrence
        of autodiff/rules_rnn.py fed with them (no recomputation of the gates or the cell states)."""

        @staticmethod
        def forward(ctx, x, W, R, B, lens, h0, c0, hidden, bidirectional):
            # recorded (unlike a plain Function forward): the saved gates and cell states then depend on
            # x, W, R, ... in the graph, so differentiating the gradient again (HVP) goes through the Scan's
            # own rule instead of silently treating them as constants; a first-order backward never
            # visits them (the Function's backward supplies the gradients).
            with enable_grad():
                return LSTMScan._forward(ctx, x, W, R, B, lens, h0, c0, hidden, bidirectional)

        @staticmethod
        def _forward(ctx, x, W, R, B, lens, h0, c0, hidden, bidirectional):
            H = hidden
            D = 2 if bidirectional else 1
            if h0 is None:
                h0 = zero_state(D, x.shape[1], H, dtype=x.dtype)
            if c0 is None:
                c0 = zero_state(D, x.shape[1], H, dtype=x.dtype)
            m = None if lens is None else _time_mask(x, lens)
            mb = None if m is None else cast(m, np.bool_)
            ys, hs, cs, saved = [], [], [], []
            for d in range(D):
                Wd, Rd = RR._pick(W, 0, d), RR._pick(R, 0, d)
                xd = x if d == 0 else _reverse_time(x, lens)
                gx = matmul(xd, transpose(Wd, 0, 1))
                if B is not None:
                    wb, rb = split(RR._pick(B, 0, d), 4 * H, 0)
                    gx = add(gx, add(wb, rb))
                h0d, c0d = RR._pick(h0, 0, d), RR._pick(c0, 0, d)
                hT, cT, C, S, Gc = _lstm_scan_forward(gx, transpose(Rd, 0, 1), h0d, c0d, mb, H)
                tc = tanh(C)
                y = mul(split(S, H, 2)[1], tc)
                if m is not None:
                    y = mul(y, m)
                saved.append((xd, y, C, S, Gc, tc, h0d, c0d, Wd, Rd))
                ys.append(unsqueeze(y if d == 0 else _reverse_time(y, lens), 1))
                hs.append(unsqueeze(hT, 0))
                cs.append(unsqueeze(cT, 0))
            ctx.saved, ctx.m, ctx.lens, ctx.H, ctx.D, ctx.has_b = saved, m, lens, H, D, B is not None
            one = D == 1
            return (ys[0] if one else cat(ys, 1)), (hs[0] if one else cat(hs, 0)), (cs[0] if one else cat(cs, 0))

        @staticmethod
        def backward(ctx, gY, gYh, gYc):
            H, lens, m = ctx.H, ctx.lens, ctx.m
            res = {k: [] for k in ("dX", "dW", "dR", "dB", "dh0", "dc0")}
            for d, (xd, y, C, S, Gc, tc, h0d, c0d, Wd, Rd) in enumerate(ctx.saved):
                gYd = RR._pick(gY, 1, d)
                if d == 1:
                    gYd = _reverse_time(gYd, lens)
                i, o, f = split(S, H, 2)
                dG, dh0, dc0 = RR.lstm_backward_core(i, o, f, Gc, C, c0d, gYd, RR._pick(gYh, 0, d),
                                                     RR._pick(gYc, 0, d), m, Rd, H, S=S, tc=tc)
                Hprev = cat([unsqueeze(h0d, 0), RR._drop_last_step(y)], 0)
                dX = matmul(dG, Wd)
                res["dX"].append(dX if d == 0 else _reverse_time(dX, lens))
                res["dW"].append(unsqueeze(RR._weight_grad(dG, xd), 0))
                res["dR"].append(unsqueeze(RR._weight_grad(dG, Hprev), 0))
                if ctx.has_b:
                    db = RR.ops.sum(dG, [0, 1])
                    res["dB"].append(unsqueeze(cat([db, db], 0), 0))
                res["dh0"].append(unsqueeze(dh0, 0))
                res["dc0"].append(unsqueeze(dc0, 0))
            j = (lambda k: res[k][0]) if ctx.D == 1 else (lambda k: cat(res[k], 0))  # noqa: E731
            dX = res["dX"][0] if ctx.D == 1 else add(res["dX"][0], res["dX"][1])
            return dX, j("dW"), j("dR"), (j("dB") if ctx.has_b else None), None, j("dh0"), j("dc0"), None, None

    return LSTMScan


_LSTM_TRAIN = []
# How nn.LSTM runs when it records gradients: "scan" (lstm_train: a forward Scan that keeps the gates) or
# "op" (the ONNX LSTM node; its gradient rule recomputes the gates from Y). bench/lstm_step.py times both.
TRAIN_FORMULATION = "scan"


def lstm_train(x, W, R, B, lens, h0, c0, hidden, bidirectional):
    """Y (T, D, N, H), Y_h, Y_c of an ONNX LSTM node (forward or bidirectional, default activations),
    computed for training: Scans that keep the gates, with their own backward (see LSTMScan)."""
    if not _LSTM_TRAIN:
        _LSTM_TRAIN.append(_lstm_train_function())
    return _LSTM_TRAIN[0].apply(x, W, R, B, lens, h0, c0, hidden, bidirectional)


# ----- cells ---------------------------------------------------------------------------------
def _gates(x, h, w_ih, w_hh, b_ih, b_hh):
    g = add(matmul(x, transpose(w_ih, 0, 1)), matmul(h, transpose(w_hh, 0, 1)))
    if b_ih is not None:
        g = add(g, b_ih)
    if b_hh is not None:
        g = add(g, b_hh)
    return g


def lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step (torch gate order i, f, g, o); returns (h', c')."""
    H = w_hh._shape[1]
    i, f, g, o = split(_gates(x, h, w_ih, w_hh, b_ih, b_hh), H, -1)
    c2 = add(mul(sigmoid(f), c), mul(sigmoid(i), tanh(g)))
    return mul(sigmoid(o), tanh(c2)), c2


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step (torch: r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn)))."""
    H = w_hh._shape[1]
    gx = matmul(x, transpose(w_ih, 0, 1))
    gh = matmul(h, transpose(w_hh, 0, 1))
    if b_ih is not None:
        gx = add(gx, b_ih)
    if b_hh is not None:
        gh = add(gh, b_hh)
    xr, xz, xn = split(gx, H, -1)
    hr, hz, hn = split(gh, H, -1)
    r = sigmoid(add(xr, hr))
    z = sigmoid(add(xz, hz))
    n = tanh(add(xn, mul(r, hn)))
    return add(mul(sub(1.0, z), n), mul(z, h))


def rnn_tanh_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    return tanh(_gates(x, h, w_ih, w_hh, b_ih, b_hh))


def rnn_relu_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    return relu(_gates(x, h, w_ih, w_hh, b_ih, b_hh))
