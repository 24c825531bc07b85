"""Recurrent layers against torch: a parity table of configurations (family x layers x bidirectional x
batch_first x bias x proj_size x packed x initial state x unbatched), each checking the output, the
final states, the gradients w.r.t. the input, the initial states and every parameter, and an export
with symbolic batch and sequence dims run in onnxruntime at two lengths. Plus cells, errors and the
ONNX-op gradient rules on their own."""
import dataclasses

import numpy as np
import onnx
import pytest
import torch

import onnxkit as ok
from onnxkit import nn
from onnxkit.runtime import evaluate

torch.set_num_threads(1)
I, H, P = 3, 4, 2


@dataclasses.dataclass
class Cfg:
    family: str                 # RNN_tanh, RNN_relu, LSTM, GRU
    layers: int = 1
    bidir: bool = False
    batch_first: bool = False
    bias: bool = True
    proj: int = 0
    packed: str = ""            # "", "sorted", "unsorted"
    init: bool = False
    unbatched: bool = False
    dropout: float = 0.0        # checked in eval mode (torch applies none)
    T: int = 5
    N: int = 3

    @property
    def name(self):
        parts = [self.family, f"L{self.layers}"]
        for flag, tag in ((self.bidir, "bi"), (self.batch_first, "bf"), (not self.bias, "nobias"),
                          (self.proj, f"proj{self.proj}"), (self.packed, f"packed-{self.packed}"),
                          (self.init, "h0"), (self.unbatched, "unbatched"), (self.dropout, "dropout")):
            if flag:
                parts.append(tag)
        return "-".join(parts)


def _ctor(cfg):
    kw = dict(num_layers=cfg.layers, bias=cfg.bias, batch_first=cfg.batch_first, bidirectional=cfg.bidir,
              dropout=cfg.dropout)
    if cfg.family.startswith("RNN"):
        return "RNN", dict(kw, nonlinearity=cfg.family.split("_")[1])
    if cfg.proj:
        kw["proj_size"] = cfg.proj
    return cfg.family, kw


def build(cfg):
    cls, kw = _ctor(cfg)
    torch.manual_seed(0)
    tm = getattr(torch.nn, cls)(I, H, **kw)
    om = getattr(nn, cls)(I, H, **kw)
    om.load_state_dict(tm.state_dict())
    tm.eval(), om.eval()
    return tm, om


def _lengths(cfg, N, T, rng):
    lens = rng.integers(1, T + 1, size=N)
    lens[rng.integers(0, N)] = T
    if cfg.packed == "sorted":
        lens = np.sort(lens)[::-1].copy()
    return lens.astype(np.int64)


def _data(cfg, T, N, seed):
    rng = np.random.default_rng(seed)
    D = 2 if cfg.bidir else 1
    hr = cfg.proj or H
    if cfg.unbatched:
        x = rng.standard_normal((T, I)).astype(np.float32)
        h0 = rng.standard_normal((cfg.layers * D, hr)).astype(np.float32)
        c0 = rng.standard_normal((cfg.layers * D, H)).astype(np.float32)
    else:
        x = rng.standard_normal((N, T, I) if cfg.batch_first else (T, N, I)).astype(np.float32)
        h0 = rng.standard_normal((cfg.layers * D, N, hr)).astype(np.float32)
        c0 = rng.standard_normal((cfg.layers * D, N, H)).astype(np.float32)
    lens = _lengths(cfg, N, T, rng) if cfg.packed else None
    return x, h0, c0, lens


def _run_torch(cfg, tm, x, h0, c0, lens, grad=True):
    tx = torch.tensor(x, requires_grad=grad)
    th0 = torch.tensor(h0, requires_grad=grad)
    tc0 = torch.tensor(c0, requires_grad=grad)
    inp = tx
    if cfg.packed:
        inp = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lens), batch_first=cfg.batch_first,
                                                      enforce_sorted=cfg.packed == "sorted")
    hx = None
    if cfg.init:
        hx = (th0, tc0) if cfg.family == "LSTM" else th0
    out, hn = tm(inp, hx)
    if cfg.packed:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=cfg.batch_first,
                                                        total_length=x.shape[1 if cfg.batch_first else 0])
    states = list(hn) if cfg.family == "LSTM" else [hn]
    return [tx, th0, tc0], [out] + states


def _run_ok(cfg, om, x, h0, c0, lens, grad=True):
    ox = x if isinstance(x, ok.Tensor) else ok.tensor(x, requires_grad=grad)
    oh0 = h0 if isinstance(h0, ok.Tensor) else ok.tensor(h0, requires_grad=grad)
    oc0 = c0 if isinstance(c0, ok.Tensor) else ok.tensor(c0, requires_grad=grad)
    inp = ox
    if cfg.packed:
        inp = nn.utils.rnn.pack_padded_sequence(ox, lens, batch_first=cfg.batch_first,
                                                enforce_sorted=cfg.packed == "sorted")
    hx = None
    if cfg.init:
        hx = (oh0, oc0) if cfg.family == "LSTM" else oh0
    out, hn = om(inp, hx)
    if cfg.packed:
        total = x.shape[1 if cfg.batch_first else 0]
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=cfg.batch_first,
                                                  total_length=total if isinstance(total, int) else None)
    states = list(hn) if cfg.family == "LSTM" else [hn]
    return [ox, oh0, oc0], [out] + states


def check_config(cfg, export=True):
    tm, om = build(cfg)
    x, h0, c0, lens = _data(cfg, cfg.T, cfg.N, 0)
    t_in, t_out = _run_torch(cfg, tm, x, h0, c0, lens)
    o_in, o_out = _run_ok(cfg, om, x, h0, c0, lens)
    # gradients of sum(out * g_k) over every output, w.r.t. input, states and every parameter
    rng = np.random.default_rng(1)
    gs = [rng.standard_normal(tuple(t.shape)).astype(np.float32) for t in t_out]
    t_loss = sum((t * torch.tensor(g)).sum() for t, g in zip(t_out, gs))
    o_loss = sum(((o * ok.tensor(g)).sum() for o, g in zip(o_out, gs)), ok.tensor(np.float32(0)))
    n_state = 0 if not cfg.init else (2 if cfg.family == "LSTM" else 1)
    t_wrt = [t_in[0]] + t_in[1:1 + n_state] + [p for _, p in tm.named_parameters()]
    o_wrt = [o_in[0]] + o_in[1:1 + n_state] + [dict(om.named_parameters())[n] for n, _ in tm.named_parameters()]
    names = ["input"] + ["h0", "c0"][:n_state] + [n for n, _ in tm.named_parameters()]
    t_g = torch.autograd.grad(t_loss, t_wrt, allow_unused=True)
    o_g = ok.grad(o_loss, o_wrt, allow_unused=True)
    values = evaluate(list(o_out) + [g for g in o_g if g is not None])
    for k, (a, b) in enumerate(zip(values, t_out)):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=f"{cfg.name}: {['output', 'h_n', 'c_n'][k]}")
    gi = iter(values[len(o_out):])
    for name, a, b in zip(names, o_g, t_g):
        if b is None:
            assert a is None, f"{cfg.name}: grad {name}: torch has none"
            continue
        assert a is not None, f"{cfg.name}: grad {name}: onnxkit has none"
        np.testing.assert_allclose(next(gi), b.numpy(), rtol=1e-3, atol=2e-5, err_msg=f"{cfg.name}: grad {name}")
    if export:
        check_export(cfg, tm, om)


def check_export(cfg, tm, om):
    """Export with symbolic sequence (and batch) dims, lengths as a graph input for packed batches;
    run at two sequence lengths and batch sizes and compare with torch."""
    seq = "T"
    if cfg.unbatched:
        shape = (seq, I)
    else:
        shape = ("N", seq, I) if cfg.batch_first else (seq, "N", I)
    D = 2 if cfg.bidir else 1
    inputs = [ok.Input("x", shape)]
    if cfg.init:
        hs = (cfg.layers * D,) + (() if cfg.unbatched else ("N",))
        inputs.append(ok.Input("h0", hs + (cfg.proj or H,)))
        if cfg.family == "LSTM":
            inputs.append(ok.Input("c0", hs + (H,)))
    if cfg.packed:
        inputs.append(ok.Input("lengths", ("N",), "int64"))

    def fn(*args):
        args = list(args)
        x = args.pop(0)
        h0 = args.pop(0) if cfg.init else None
        c0 = args.pop(0) if cfg.init and cfg.family == "LSTM" else None
        lens = args.pop(0) if cfg.packed else None
        _, outs = _run_ok(cfg, om, x, h0, c0, lens, grad=False)
        return tuple(outs)

    model = ok.export(fn, inputs)
    onnx.checker.check_model(model, full_check=True)
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}
    x_in = model.graph.input[0].type.tensor_type.shape.dim
    assert x_in[0].dim_param and (cfg.unbatched or x_in[1].dim_param), f"{cfg.name}: dims not symbolic"
    sess = ok.Session(model)
    for T, N, seed in ((cfg.T + 2, cfg.N + 1, 5), (2, 2, 6)):
        x, h0, c0, lens = _data(cfg, T, N, seed)
        feeds = {"x": x}
        if cfg.init:
            feeds["h0"] = h0
            if cfg.family == "LSTM":
                feeds["c0"] = c0
        if cfg.packed:
            feeds["lengths"] = lens
        got = sess.run(feeds)
        with torch.no_grad():
            _, want = _run_torch(cfg, tm, x, h0, c0, lens, grad=False)
        for o, w in zip(model.graph.output, want):
            np.testing.assert_allclose(got[o.name], w.numpy(), rtol=1e-4, atol=1e-5,
                                       err_msg=f"{cfg.name}: export T={T} N={N} {o.name}")


def _table():
    rows = []
    for fam in ("RNN_tanh", "RNN_relu", "LSTM", "GRU"):
        rows += [
            Cfg(fam),
            Cfg(fam, layers=2, bidir=True),
            Cfg(fam, batch_first=True, init=True),
            Cfg(fam, layers=2, bias=False),
            Cfg(fam, packed="sorted"),
            Cfg(fam, bidir=True, packed="unsorted", init=True),
            Cfg(fam, unbatched=True, init=True),
            Cfg(fam, layers=2, bidir=True, unbatched=True),
            Cfg(fam, layers=2, batch_first=True, packed="unsorted"),
            Cfg(fam, bidir=True, bias=False, batch_first=True, init=True),
            Cfg(fam, layers=3, bidir=True, packed="sorted"),
            Cfg(fam, layers=2, dropout=0.3, init=True),
            Cfg(fam, layers=2, bidir=True, batch_first=True, packed="unsorted", init=True),
        ]
    rows += [
        Cfg("LSTM", proj=P),
        Cfg("LSTM", proj=P, layers=2, bidir=True),
        Cfg("LSTM", proj=P, packed="unsorted"),
        Cfg("LSTM", proj=P, batch_first=True, init=True),
        Cfg("LSTM", proj=P, unbatched=True, init=True),
        Cfg("LSTM", proj=P, bias=False, layers=2),
        Cfg("LSTM", proj=P, bidir=True, packed="sorted", init=True),
        Cfg("LSTM", proj=P, layers=2, bidir=True, batch_first=True, packed="unsorted", init=True),
    ]
    return rows


TABLE = _table()


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("cfg", TABLE, ids=[c.name for c in TABLE])
def test_parity(cfg):
    check_config(cfg)


LSTM_ROWS = [c for c in TABLE if c.family == "LSTM" and not c.proj]


@pytest.mark.parametrize("cfg", LSTM_ROWS, ids=[c.name for c in LSTM_ROWS])
def test_parity_lstm_through_onnx_op_rule(cfg, monkeypatch):
    """The LSTM rows again with training through the ONNX LSTM node and its gradient rule (the default
    training formulation is the gate-keeping Scan, ops.rnn.lstm_train)."""
    from onnxkit.ops import rnn as F
    monkeypatch.setattr(F, "TRAIN_FORMULATION", "op")
    check_config(cfg, export=False)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_proj_lstm_exports_as_scan():
    """No ONNX op expresses proj_size: inference and export use one Scan per direction (also at a static
    length), equal to torch."""
    torch.manual_seed(0)
    tm, om = torch.nn.LSTM(I, H, proj_size=P, bidirectional=True), nn.LSTM(I, H, proj_size=P, bidirectional=True)
    om.load_state_dict(tm.state_dict())
    model = ok.export(lambda x: om(x)[0], [ok.Input("x", (6, "N", I))])
    assert sum(n.op_type == "Scan" for n in model.graph.node) == 2 and len(model.graph.node) < 60
    x = np.random.default_rng(0).standard_normal((6, 3, I)).astype(np.float32)
    np.testing.assert_allclose(ok.Session(model).run({"x": x})["output"], tm(torch.tensor(x))[0].detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    with ok.no_grad():
        np.testing.assert_allclose(om(ok.tensor(x))[0].numpy(), tm(torch.tensor(x))[0].detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_table_size():
    assert len(TABLE) >= 60


# ----- cells -------------------------------------------------------------------------------------
CELLS = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("RNNCell", {"bias": False}),
         ("LSTMCell", {}), ("LSTMCell", {"bias": False}), ("GRUCell", {}), ("GRUCell", {"bias": False})]


@pytest.mark.parametrize("cls,kw", CELLS, ids=[f"{c}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, kw in CELLS])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("with_state", [True, False], ids=["hx", "nohx"])
def test_cell_parity(cls, kw, batched, with_state):
    torch.manual_seed(0)
    tm = getattr(torch.nn, cls)(I, H, **kw)
    om = getattr(nn, cls)(I, H, **kw)
    om.load_state_dict(tm.state_dict())
    assert [n for n, _ in om.named_parameters()] == [n for n, _ in tm.named_parameters()]
    rng = np.random.default_rng(0)
    lead = (3,) if batched else ()
    x = rng.standard_normal(lead + (I,)).astype(np.float32)
    h = rng.standard_normal(lead + (H,)).astype(np.float32)
    c = rng.standard_normal(lead + (H,)).astype(np.float32)
    tx, th, tc = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    ox, oh, oc = (ok.tensor(a, requires_grad=True) for a in (x, h, c))
    lstm = cls == "LSTMCell"
    t_hx = ((th, tc) if lstm else th) if with_state else None
    o_hx = ((oh, oc) if lstm else oh) if with_state else None
    t_out, o_out = tm(tx, t_hx), om(ox, o_hx)
    t_out = list(t_out) if lstm else [t_out]
    o_out = list(o_out) if lstm else [o_out]
    gs = [rng.standard_normal(tuple(t.shape)).astype(np.float32) for t in t_out]
    t_loss = sum((t * torch.tensor(g)).sum() for t, g in zip(t_out, gs))
    o_loss = sum(((o * ok.tensor(g)).sum() for o, g in zip(o_out, gs)), ok.tensor(np.float32(0)))
    t_wrt = [tx] + ([th, tc][:2 if lstm else 1] if with_state else []) + list(tm.parameters())
    o_wrt = [ox] + ([oh, oc][:2 if lstm else 1] if with_state else []) + list(om.parameters())
    for a, b in zip(o_out, t_out):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(ok.grad(o_loss, o_wrt), torch.autograd.grad(t_loss, t_wrt)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


def test_cell_export_symbolic_batch():
    torch.manual_seed(0)
    tm, om = torch.nn.LSTMCell(I, H), nn.LSTMCell(I, H)
    om.load_state_dict(tm.state_dict())
    model = ok.export(lambda x, h, c: om(x, (h, c)), [ok.Input("x", ("N", I)), ok.Input("h", ("N", H)),
                                                        ok.Input("c", ("N", H))])
    sess = ok.Session(model)
    for n in (1, 5):
        x, h, c = (np.random.default_rng(n).standard_normal((n, k)).astype(np.float32) for k in (I, H, H))
        got = sess.run({"x": x, "h": h, "c": c})
        want = tm(torch.tensor(x), (torch.tensor(h), torch.tensor(c)))
        for o, w in zip(model.graph.output, want):
            np.testing.assert_allclose(got[o.name], w.detach().numpy(), rtol=1e-5, atol=1e-6)


# ----- surface ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,kw", [("RNN", {}), ("LSTM", {"proj_size": 3}), ("GRU", {"bias": False}),
                                    ("LSTM", {"num_layers": 2, "bidirectional": True})])
def test_names_shapes_and_init(cls, kw):
    tm = getattr(torch.nn, cls)(5, 6, **kw)
    om = getattr(nn, cls)(5, 6, **kw)
    t_sd, o_sd = tm.state_dict(), om.state_dict()
    assert list(o_sd) == list(t_sd)
    for k in t_sd:
        assert tuple(o_sd[k].shape) == tuple(t_sd[k].shape), k
        v = np.asarray(o_sd[k].numpy() if hasattr(o_sd[k], "numpy") else o_sd[k])
        bound = 1 / np.sqrt(6)
        assert np.abs(v).max() <= bound and np.abs(v).max() > bound / 2, k  # uniform(-1/sqrt(H), 1/sqrt(H))
    assert om._flat_weights_names == tm._flat_weights_names
    assert repr(om) == repr(tm)
    om.flatten_parameters()


def test_rnn_positional_nonlinearity_and_errors():
    assert nn.RNN(3, 4, 1, "relu").nonlinearity == "relu"
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        nn.GRU(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.LSTM(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        nn.GRU(3, 0)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.LSTM(3, 4, dropout=0.5)


def test_bad_inputs_name_layer_and_values():
    m = nn.Sequential(nn.LSTM(3, 4, batch_first=True))
    with pytest.raises(RuntimeError, match=r"LSTM.*input_size\. Expected 3, got 5"):
        m(ok.randn(2, 7, 5))
    with pytest.raises(RuntimeError, match=r"LSTM: Expected input to be 2D or 3D, got 4D"):
        m(ok.randn(2, 7, 3, 1))
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(2, 6, 4\), got \(2, 5, 4\)"):
        lstm(ok.randn(7, 6, 3), (ok.zeros(2, 5, 4), ok.zeros(2, 6, 4)))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size \(2, 6, 4\), got \(1, 6, 4\)"):
        lstm(ok.randn(7, 6, 3), (ok.zeros(2, 6, 4), ok.zeros(1, 6, 4)))
    with pytest.raises(RuntimeError, match=r"For batched 3-D input, hidden should also be 3-D but got 2-D"):
        nn.GRU(3, 4)(ok.randn(7, 6, 3), ok.zeros(6, 4))
    with pytest.raises(RuntimeError, match=r"For unbatched 2-D input, hidden should also be 2-D but got 3-D"):
        nn.RNN(3, 4)(ok.randn(7, 3), ok.zeros(1, 1, 4))
    with pytest.raises(RuntimeError, match=r"GRUCell: input has inconsistent input_size: got 2, expected 3"):
        nn.GRUCell(3, 4)(ok.randn(5, 2))
    with pytest.raises(RuntimeError, match=r"LSTMCell: Input batch size 5 doesn't match hidden\[0\] batch size 4"):
        nn.LSTMCell(3, 4)(ok.randn(5, 3), (ok.zeros(4, 4), ok.zeros(5, 4)))
    with pytest.raises(RuntimeError, match=r"RNNCell: hidden has inconsistent hidden_size: got 3, expected 4"):
        nn.RNNCell(3, 4)(ok.randn(5, 3), ok.zeros(5, 3))
    # batch_first mismatch: (T, N, I) fed to a batch_first layer whose T equals input_size is caught by size
    with pytest.raises(RuntimeError, match=r"Expected 3, got 6.*batch_first=True"):
        nn.GRU(3, 4, batch_first=True)(ok.randn(2, 3, 6))


# ----- dropout between layers --------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_dropout_between_layers(family):
    torch.manual_seed(0)
    tm = getattr(torch.nn, family)(I, H, num_layers=2, dropout=1.0)
    om = getattr(nn, family)(I, H, num_layers=2, dropout=1.0)
    om.load_state_dict(tm.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 2, I)).astype(np.float32)
    # p = 1 in train mode: layer 2 sees zeros in both (an exact check of where dropout sits), gradients too
    tx, ox = torch.tensor(x, requires_grad=True), ok.tensor(x, requires_grad=True)
    (to, th), (oo, oh) = tm(tx), om(ox)
    th, oh = (th[0], oh[0]) if family == "LSTM" else (th, oh)
    np.testing.assert_allclose(oo.numpy(), to.detach().numpy(), rtol=1e-5, atol=1e-6)
    t_loss, o_loss = (to * to).sum() + th.sum(), (oo * oo).sum() + oh.sum()
    tg = torch.autograd.grad(t_loss, [tx] + list(tm.parameters()))
    og = ok.grad(o_loss, [ox] + list(om.parameters()))
    for a, b in zip(og, tg):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    om.dropout = 0.5
    om.train()
    a, b = om(ok.tensor(x))[0].numpy(), om(ok.tensor(x))[0].numpy()
    om.eval()
    c, d = om(ok.tensor(x))[0].numpy(), om(ok.tensor(x))[0].numpy()
    assert not np.allclose(a, b) and np.allclose(c, d)  # a fresh mask per call in train mode only


# ----- the ONNX ops' gradient rules on their own (imported models) ---------------------------------
def _onnx_rnn_model(op, direction, seq_lens, H2=3):
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    D = 2 if direction == "bidirectional" else 1
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    inits = [numpy_helper.from_array(rng.standard_normal((D, G * H2, 2)).astype(np.float32) * 0.5, "W"),
             numpy_helper.from_array(rng.standard_normal((D, G * H2, H2)).astype(np.float32) * 0.5, "R"),
             numpy_helper.from_array(rng.standard_normal((D, 2 * G * H2)).astype(np.float32) * 0.5, "B")]
    ins = ["X", "W", "R", "B", "lens" if seq_lens else "", "h0"] + (["c0"] if op == "LSTM" else [])
    attrs = {"hidden_size": H2, "direction": direction}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    outs = ["Y", "Yh"] + (["Yc"] if op == "LSTM" else [])
    node = helper.make_node(op, ins, outs, **attrs)
    dbl = TensorProto.FLOAT
    g_in = [helper.make_tensor_value_info("X", dbl, [4, 3, 2]), helper.make_tensor_value_info("h0", dbl, [D, 3, H2])]
    if op == "LSTM":
        g_in.append(helper.make_tensor_value_info("c0", dbl, [D, 3, H2]))
    if seq_lens:
        g_in.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [3]))
    g_out = [helper.make_tensor_value_info(o, dbl, None) for o in outs]
    graph = helper.make_graph([node], "g", g_in, g_out, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction,seq_lens", [("forward", False), ("reverse", True), ("bidirectional", True)])
def test_imported_op_gradient_finite_differences(op, direction, seq_lens):
    """Gradients of an imported LSTM/GRU/RNN node w.r.t. X, h0, c0 and the initializers W, R, B against
    central finite differences of onnxruntime's forward (float32: onnxruntime's LSTM has no double kernel)."""
    model = _onnx_rnn_model(op, direction, seq_lens)
    m = ok.load(model)
    rng = np.random.default_rng(4)
    D = 2 if direction == "bidirectional" else 1
    feeds = [rng.standard_normal((4, 3, 2)).astype(np.float32), rng.standard_normal((D, 3, 3)).astype(np.float32)]
    if op == "LSTM":
        feeds.append(rng.standard_normal((D, 3, 3)).astype(np.float32))
    lens = np.array([4, 2, 3], np.int32)
    args = [ok.tensor(f, requires_grad=True) for f in feeds] + ([ok.tensor(lens)] if seq_lens else [])
    params = dict(m.named_parameters())
    weights = [rng.standard_normal(shape).astype(np.float32) for shape in ((4, D, 3, 3), (D, 3, 3), (D, 3, 3))]

    def loss_of(outs):
        return sum((o * w).sum() for o, w in zip(outs, weights))

    outs = m(*args)
    outs = outs if isinstance(outs, tuple) else (outs,)
    wrt = args[:len(feeds)] + [params[k] for k in ("W", "R", "B")]
    grads = ok.grad(loss_of(outs), wrt)
    names = ["X", "h0"] + (["c0"] if op == "LSTM" else [])

    def f(vals):
        fd = dict(zip(names, vals[:len(names)]))
        if seq_lens:
            fd["lens"] = lens
        mm = onnx.ModelProto()
        mm.CopyFrom(model)
        from onnx import numpy_helper
        for k, init in enumerate(mm.graph.initializer):
            init.CopyFrom(numpy_helper.from_array(vals[len(names) + k], init.name))
        out = ok.Session(mm).run(fd)
        return sum(float((out[o.name].astype(np.float64) * w).sum()) for o, w in zip(mm.graph.output, weights))

    base = [np.asarray(a) for a in feeds] + [numpy_helper_to(model, k) for k in ("W", "R", "B")]
    eps = 1e-2
    for k, g in enumerate(grads):
        g = g.numpy()
        flat_idx = np.random.default_rng(k).choice(g.size, size=min(6, g.size), replace=False)
        for j in flat_idx:
            plus = [b.copy() for b in base]
            minus = [b.copy() for b in base]
            plus[k].flat[j] += eps
            minus[k].flat[j] -= eps
            fd = (f(plus) - f(minus)) / (2 * eps)
            assert abs(fd - g.flat[j]) < 2e-3 * max(1, abs(fd)), (op, direction, k, j, fd, g.flat[j])


def numpy_helper_to(model, name):
    from onnx import numpy_helper
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name).copy()


def test_unsupported_attribute_names_attribute_and_node():
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    W = numpy_helper.from_array(rng.standard_normal((1, 8, 2)).astype(np.float32), "W")
    R = numpy_helper.from_array(rng.standard_normal((1, 8, 2)).astype(np.float32), "R")
    node = helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=2, clip=0.5, name="enc")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [3, 1, 2])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], [W, R])
    m = ok.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10))
    y = m(ok.randn(3, 1, 2))
    with pytest.raises(NotImplementedError, match=r"LSTM node .*no gradient for attribute clip=0.5"):
        ok.grad(y.sum(), [dict(m.named_parameters())["W"]])


# ----- training --------------------------------------------------------------------------------------
def _classifier(lib):
    class Classifier(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = lib.nn.Embedding(50, 8)
            self.lstm = lib.nn.LSTM(8, 16, batch_first=True)
            self.fc = lib.nn.Linear(16, 4)

        def forward(self, tokens):
            out, _ = self.lstm(self.emb(tokens))
            return self.fc(out[:, -1])
    return Classifier()


@pytest.mark.parametrize("opt,formulation", [("Adam", "scan"), ("SGD", "scan"), ("Adam", "op")])
def test_lstm_classifier_trainer_follows_torch(opt, formulation, monkeypatch):
    from onnxkit.ops import rnn as F
    monkeypatch.setattr(F, "TRAIN_FORMULATION", formulation)
    torch.manual_seed(0)
    tm = _classifier(torch)
    om = _classifier(ok)
    om.load_state_dict(tm.state_dict())
    kw = {"lr": 0.01} if opt == "Adam" else {"lr": 0.2, "momentum": 0.9}
    t_opt = getattr(torch.optim, opt)(tm.parameters(), **kw)
    trainer = ok.Trainer(om, nn.CrossEntropyLoss(), getattr(ok.optim, opt)(om.parameters(), **kw), seed=0)
    rng = np.random.default_rng(0)
    t_losses, o_losses = [], []
    batches = [rng.integers(0, 50, size=(8, 7)).astype(np.int64) for _ in range(3)]
    for step in range(15):
        x = batches[step % 3]
        y = (x[:, -1] % 4).astype(np.int64)
        t_opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        t_opt.step()
        t_losses.append(loss.item())
        o_losses.append(float(trainer.step(x, y)))
    np.testing.assert_allclose(o_losses, t_losses, rtol=2e-3, atol=1e-4)
    assert t_losses[-1] < t_losses[0] - 0.1
    graph_ops = {n.op_type for n in trainer.training_model.graph.node}
    assert "Scan" in graph_ops and ("LSTM" in graph_ops) == (formulation == "op")
    assert "LSTM" in {n.op_type for n in trainer.eval_model.graph.node}  # inference keeps the ONNX op
    onnx.checker.check_model(trainer.training_model, full_check=True)
    onnx.shape_inference.infer_shapes(trainer.training_model, check_type=True, strict_mode=True)
    trained = dict(tm.named_parameters())
    for name, p in om.named_parameters():
        np.testing.assert_allclose(p.numpy(), trained[name].detach().numpy(), rtol=1e-3, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("family,packed", [("LSTM", False), ("GRU", True), ("RNN", True), ("LSTM", True)])
def test_gradient_graph_with_symbolic_dims(family, packed):
    """The gradient graph itself exports with symbolic sequence and batch dims (and lengths as an input)
    and gives torch's parameter gradients at two sizes."""
    from onnxkit.emit import build_model
    torch.manual_seed(0)
    tm = getattr(torch.nn, family)(I, H, bidirectional=True)
    om = getattr(nn, family)(I, H, bidirectional=True)
    om.load_state_dict(tm.state_dict())
    x = ok.Input("x", ("T", "N", I))
    lens = ok.Input("lengths", ("N",), "int64") if packed else None
    inp = nn.utils.rnn.pack_padded_sequence(x, lens, enforce_sorted=False) if packed else x
    out, hn = om(inp)
    if packed:
        out = nn.utils.rnn.pad_packed_sequence(out, total_length=None)[0]
    hn = hn[0] if family == "LSTM" else hn
    loss = (out * out).sum() + (hn * 3.0).sum()
    names = [n for n, _ in tm.named_parameters()]
    params = dict(om.named_parameters())
    grads = ok.grad(loss, [params[n] for n in names])
    model, _ = build_model(list(grads), output_names=names)
    sess = ok.Session(model)
    for T, N in ((6, 3), (3, 5)):
        rng = np.random.default_rng(T)
        xv = rng.standard_normal((T, N, I)).astype(np.float32)
        lv = rng.integers(1, T + 1, size=N).astype(np.int64)
        feeds = {"x": xv, **({"lengths": lv} if packed else {})}
        got = sess.run({k: v for k, v in feeds.items() if k in sess.input_names})
        tx = torch.tensor(xv)
        tinp = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lv), enforce_sorted=False) if packed else tx
        to, th = tm(tinp)
        if packed:
            to = torch.nn.utils.rnn.pad_packed_sequence(to)[0]
        th = th[0] if family == "LSTM" else th
        tloss = (to * to).sum() + (th * 3.0).sum()
        for n, g in zip(names, torch.autograd.grad(tloss, list(tm.parameters()))):
            np.testing.assert_allclose(got[n], g.numpy(), rtol=1e-3, atol=1e-4, err_msg=f"{family} T={T} N={N} {n}")


@pytest.mark.filterwarnings("ignore")  # the TorchScript exporter's tracer warnings
@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_torch_exported_model_fine_tunes(family):
    """A model exported by torch.onnx (TorchScript exporter) with 2 bidirectional layers: ok.load, then
    the gradients w.r.t. the input and the ONNX node's W, R, B initializers equal torch's (gate blocks
    reordered as the exporter does)."""
    import io
    torch.manual_seed(0)
    tm = getattr(torch.nn, family)(I, H, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, I)
    f = io.BytesIO()
    torch.onnx.export(tm, (x,), f, dynamo=False, input_names=["x"], opset_version=17)
    model = onnx.load_from_string(f.getvalue())
    om = ok.load(model)
    params = dict(om.named_parameters())
    nodes = [n for n in model.graph.node if n.op_type == family]
    ox = ok.tensor(x.numpy(), requires_grad=True)
    oy = om(ox)
    oy = oy[0] if isinstance(oy, tuple) else oy
    tx = x.clone().requires_grad_(True)
    ty, _ = tm(tx)
    g = np.random.default_rng(0).standard_normal(tuple(ty.shape)).astype(np.float32)
    np.testing.assert_allclose(oy.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    wrt = [ox] + [params[n] for node in nodes for n in node.input[1:4]]
    og = ok.grad((oy * ok.tensor(g)).sum(), wrt)
    tg = dict(zip(["x"] + [n for n, _ in tm.named_parameters()],
                  torch.autograd.grad((ty * torch.tensor(g)).sum(), [tx] + list(tm.parameters()))))
    np.testing.assert_allclose(og[0].numpy(), tg["x"].numpy(), rtol=1e-4, atol=1e-6)
    order = (0, 3, 1, 2) if family == "LSTM" else (1, 0, 2)

    def onnx_order(a):
        return np.concatenate([np.split(a.numpy(), len(order))[k] for k in order])

    k = 1
    for layer in range(2):
        want_W = np.stack([onnx_order(tg[f"weight_ih_l{layer}{s}"]) for s in ("", "_reverse")])
        want_R = np.stack([onnx_order(tg[f"weight_hh_l{layer}{s}"]) for s in ("", "_reverse")])
        want_B = np.stack([np.concatenate([onnx_order(tg[f"bias_{w}_l{layer}{s}"]) for w in ("ih", "hh")])
                           for s in ("", "_reverse")])
        for want in (want_W, want_R, want_B):
            np.testing.assert_allclose(og[k].numpy(), want, rtol=1e-4, atol=1e-6)
            k += 1


@pytest.mark.parametrize("formulation", ["scan", "op"])
@pytest.mark.parametrize("family", ["LSTM", "GRU", "RNN"])
def test_gradient_graph_runs_on_reference_evaluator(family, formulation, monkeypatch):
    """Training graphs use standard ops only, in forms onnx.reference runs too (no reversed Scan axes)."""
    from onnx.reference import ReferenceEvaluator
    from onnxkit.emit import build_model
    from onnxkit.ops import rnn as F
    monkeypatch.setattr(F, "TRAIN_FORMULATION", formulation)
    m = getattr(nn, family)(I, H, bidirectional=True)
    out, _ = m(ok.Input("x", ("T", "N", I)))
    grads = ok.grad((out * out).sum(), list(m.parameters()))
    model, _ = build_model(list(grads))
    xv = np.random.default_rng(0).standard_normal((5, 2, I)).astype(np.float32)
    want = ok.Session(model).run({"x": xv})
    for o, got in zip(model.graph.output, ReferenceEvaluator(model).run(None, {"x": xv})):
        np.testing.assert_allclose(got, want[o.name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("formulation", ["scan", "op"])
def test_second_order_is_exact_or_raises(formulation, monkeypatch):
    """Differentiating an LSTM gradient again (HVP-style) goes through the Scan nodes of the gradient
    graph: it equals torch's when a Scan gradient rule is registered, and otherwise raises naming Scan --
    never a silently wrong value from treating saved gates as constants."""
    from onnxkit.ops import rnn as F
    monkeypatch.setattr(F, "TRAIN_FORMULATION", formulation)
    torch.manual_seed(0)
    tm, om = torch.nn.LSTM(I, H), nn.LSTM(I, H)
    om.load_state_dict(tm.state_dict())
    xv = np.random.default_rng(0).standard_normal((5, 2, I)).astype(np.float32)
    ox, tx = ok.tensor(xv, requires_grad=True), torch.tensor(xv, requires_grad=True)
    (tg,) = torch.autograd.grad((tm(tx)[0] ** 2).sum(), [tx], create_graph=True)
    (th,) = torch.autograd.grad((tg * tg).sum(), [tx])
    (g,) = ok.grad((om(ox)[0] ** 2).sum(), [ox], create_graph=True)
    try:
        (h,) = ok.grad((g * g).sum(), [ox])
    except NotImplementedError as e:
        assert "Scan" in str(e)
        return
    np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-3, atol=1e-5)
