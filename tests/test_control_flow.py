"""ok.cond / ok.while_loop / ok.scan (ONNX If / Loop / Scan): values and gradients against unrolled torch,
nesting, HVP through a scan, export, imported onnx.helper models checked by float64 finite differences,
and the errors for bad bodies."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import onnxkit as ok
from onnxkit.emit import build_model

torch = pytest.importorskip("torch", reason="torch is the test oracle: pip install torch==2.13.0 (test extra)")
RTOL, ATOL = 1e-4, 1e-5


def close(a, b, rtol=RTOL, atol=ATOL):
    b = b.detach().numpy() if hasattr(b, "detach") else b
    np.testing.assert_allclose(a.numpy() if hasattr(a, "numpy") and not isinstance(a, np.ndarray) else a, b,
                               rtol=rtol, atol=atol)


def leaves(*arrays):
    """The same values as onnxkit and torch leaves that require grad."""
    arrays = [np.asarray(a, np.float32) for a in arrays]
    return [ok.tensor(a, requires_grad=True) for a in arrays], [torch.tensor(a, requires_grad=True) for a in arrays]


def rng(seed=0):
    return np.random.default_rng(seed)


# ----- the seed's two examples ----------------------------------------------------------------------
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_seed_conditional_matches_torch(sign):
    """tf.cond-style: y = x * w1 if sum(x) > 0 else x @ w2, gradients through the branch taken."""
    r = rng(1)
    (x, w1, w2), (xt, w1t, w2t) = leaves(sign * np.abs(r.standard_normal((2, 3))), r.standard_normal((2, 3)),
                                         r.standard_normal((3, 3)))
    y = ok.cond(x.sum() > 0, lambda a: a * w1, lambda a: a @ w2, (x,))
    yt = xt * w1t if xt.sum() > 0 else xt @ w2t
    close(y, yt)
    loss, loss_t = (y * y).sum(), (yt * yt).sum()
    grads = ok.grad(loss, [x, w1, w2])
    grads_t = torch.autograd.grad(loss_t, [xt, w1t, w2t], allow_unused=True)
    for g, gt, ref in zip(grads, grads_t, (x, w1, w2)):
        close(g, gt if gt is not None else np.zeros(ref.shape, np.float32))


def test_seed_foldl_matches_unrolled_torch():
    """tf.foldl-style recurrence y_t = (y_{t-1} + x_t) * w, gradients w.r.t. the inputs, y0 and w."""
    r = rng(2)
    (xs, y0, w), (xst, y0t, wt) = leaves(r.standard_normal((5, 3)), r.standard_normal(3), r.standard_normal(3))
    final, ys = ok.scan(lambda y, x: ((y + x) * w, (y + x) * w), y0, xs)
    yt, outs = y0t, []
    for t in range(5):
        yt = (yt + xst[t]) * wt
        outs.append(yt)
    ys_t = torch.stack(outs)
    close(final, yt)
    close(ys, ys_t)
    weights = r.standard_normal((5, 3)).astype(np.float32)
    loss = (ys * ok.tensor(weights)).sum() + final.sum()
    loss_t = (ys_t * torch.tensor(weights)).sum() + yt.sum()
    grads_t = torch.autograd.grad(loss_t, [xst, y0t, wt])
    for g, gt in zip(ok.grad(loss, [xs, y0, w]), grads_t):
        close(g, gt)
    loss.backward()  # the same gradients through .backward()
    close(w.grad, grads_t[2])


# ----- cond -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("take_true", [True, False])
def test_cond_gradients_through_both_branches(take_true):
    """Each branch closes over its own tensor: the one the branch not taken uses gets a zero gradient."""
    r = rng(3)
    (x, a, b), (xt, at, bt) = leaves(r.standard_normal(4), r.standard_normal(4), r.standard_normal(4))
    p = ok.tensor(np.array(take_true))
    out = ok.cond(p, lambda v: (v * a).sin(), lambda v: v.exp() * b, (x,))
    out_t = (xt * at).sin() if take_true else xt.exp() * bt
    close(out, out_t)
    ga = ok.grad(out.sum(), [x, a, b])
    gt = torch.autograd.grad(out_t.sum(), [xt, at, bt], allow_unused=True)
    for g, want, ref in zip(ga, gt, (x, a, b)):
        close(g, want if want is not None else np.zeros(ref.shape, np.float32))


def test_cond_returns_tuples_and_symbolic_pred_exports():
    """Tuple outputs, a data-dependent predicate, export with a symbolic batch, run in onnxruntime."""
    w = ok.tensor(np.array([1.0, 2.0, 3.0], np.float32))

    def f(x):
        return ok.cond(x.mean() > 0, lambda v: (v * w, v.sum(1)), lambda v: (v - w, v.amax(1)), (x,))
    model = ok.export(f, [ok.Input("x", ("N", 3))])
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node].count("If") == 1
    sess = ok.Session(model, device="cpu")
    for x in (np.ones((2, 3), np.float32), -np.ones((5, 3), np.float32)):
        got = sess.run({"x": x})
        if x.mean() > 0:
            want = (x * w.numpy(), x.sum(1))
        else:
            want = (x - w.numpy(), x.max(1))
        np.testing.assert_allclose(got["output_0"], want[0])
        np.testing.assert_allclose(got["output_1"], want[1])


# ----- scan -------------------------------------------------------------------------------------------
def _torch_scan(fn, init, xs, dim, reverse):
    from torch._higher_order_ops.scan import scan
    return scan(fn, init, xs, dim=dim, reverse=reverse)


@pytest.mark.parametrize("dim,reverse", [(0, False), (0, True), (1, False), (1, True), (-1, False)])
def test_scan_dim_and_reverse_match_torch(dim, reverse):
    """Slices (2, 3) taken along `dim` of a 3-D xs, in order or reversed; ys stacked along `dim`."""
    r = rng(4)
    xs_shape = {0: (4, 2, 3), 1: (2, 4, 3), -1: (2, 3, 4)}[dim]
    (xs, h0, w), (xst, h0t, wt) = leaves(r.standard_normal(xs_shape), r.standard_normal((2, 3)),
                                         r.standard_normal((3, 3)))

    def step(h, x, lib, w):
        n = lib.tanh(h @ w + x)
        return n, n * 2.0
    c, ys = ok.scan(lambda h, x: step(h, x, ok, w), h0, xs, dim=dim, reverse=reverse)
    ct, yst = _torch_scan(lambda h, x: step(h, x, torch, wt), h0t, xst, dim, reverse)
    close(c, ct)
    close(ys, yst)
    weights = r.standard_normal(tuple(yst.shape)).astype(np.float32)
    loss = (ys * ok.tensor(weights)).sum() + c.sum()
    loss_t = (yst * torch.tensor(weights)).sum() + ct.sum()
    for g, gt in zip(ok.grad(loss, [xs, h0, w]), torch.autograd.grad(loss_t, [xst, h0t, wt])):
        close(g, gt)


def test_scan_pytree_carry_and_int_counter():
    """A (tensor, tensor) carry, an int counter carried along, several ys; only some outputs used."""
    r = rng(5)
    (xs, a), (xst, at) = leaves(r.standard_normal((6, 2)), r.standard_normal(2))

    def step(carry, x):
        s, n, k = carry
        s2 = s * a + x
        return (s2, n + s2.sum(), k + 1), (s2, s2.sum() * 0.5)
    (s, n, k), (ys, zs) = ok.scan(step, (ok.zeros(2), ok.zeros(()), ok.tensor(0)), xs)
    st, nt, outs = torch.zeros(2), torch.zeros(()), []
    for t in range(6):
        st = st * at + xst[t]
        nt = nt + st.sum()
        outs.append(st)
    assert int(k.numpy()) == 6
    close(s, st)
    close(n, nt)
    close(ys, torch.stack(outs))
    loss, loss_t = n + (ys * ys).sum(), nt + (torch.stack(outs) ** 2).sum()
    for g, gt in zip(ok.grad(loss, [xs, a]), torch.autograd.grad(loss_t, [xst, at])):
        close(g, gt)


def test_hvp_through_scan():
    """Gradient of a gradient: Hessian-vector product w.r.t. a weight the scan body closes over."""
    r = rng(6)
    (xs, w), (xst, wt) = leaves(r.standard_normal((4, 3)), 0.5 * r.standard_normal((3, 3)))
    v = r.standard_normal((3, 3)).astype(np.float32)

    def loss_ok(w):
        c, _ = ok.scan(lambda h, x: ((h @ w + x).tanh(), h), ok.zeros(3), xs)
        return (c * c).sum()

    def loss_torch(w):
        h = torch.zeros(3)
        for t in range(4):
            h = torch.tanh(h @ w + xst[t])
        return (h * h).sum()
    g, = ok.grad(loss_ok(w), [w], create_graph=True)
    hv, = ok.grad((g * ok.tensor(v)).sum(), [w])
    gt, = torch.autograd.grad(loss_torch(wt), [wt], create_graph=True)
    hvt, = torch.autograd.grad((gt * torch.tensor(v)).sum(), [wt])
    close(g, gt)
    close(hv, hvt, rtol=1e-3, atol=1e-4)


# ----- nesting ----------------------------------------------------------------------------------------
def test_cond_inside_scan():
    """Per step: relu-like choice through a cond on the data; gradients w.r.t. the inputs and a closure."""
    r = rng(7)
    (xs, w), (xst, wt) = leaves(r.standard_normal((5, 3)), r.standard_normal(3))

    def step(h, x):
        y = ok.cond(x.sum() > 0, lambda a, b: a * w + b, lambda a, b: a - b * w, (h, x))
        return y, y.sum()
    c, ys = ok.scan(step, ok.ones(3), xs)
    ht, outs = torch.ones(3), []
    for t in range(5):
        ht = ht * wt + xst[t] if xst[t].sum() > 0 else ht - xst[t] * wt
        outs.append(ht.sum())
    close(c, ht)
    close(ys, torch.stack(outs))
    loss, loss_t = c.sum() + (ys * ys).sum(), ht.sum() + (torch.stack(outs) ** 2).sum()
    for g, gt in zip(ok.grad(loss, [xs, w]), torch.autograd.grad(loss_t, [xst, wt])):
        close(g, gt)


def test_scan_inside_scan():
    """An outer scan over rows whose body runs an inner scan over the row's elements."""
    r = rng(8)
    (xs, w), (xst, wt) = leaves(r.standard_normal((3, 4)), r.standard_normal(()))

    def outer_step(acc, row):
        inner, cums = ok.scan(lambda c, v: (c * w + v, c * w + v), acc, row)
        return inner, cums.sum()
    c, ys = ok.scan(outer_step, ok.zeros(()), xs)
    acc, outs = torch.zeros(()), []
    for i in range(3):
        cums = []
        for j in range(4):
            acc = acc * wt + xst[i, j]
            cums.append(acc)
        outs.append(torch.stack(cums).sum())
    close(c, acc)
    close(ys, torch.stack(outs))
    loss, loss_t = c + (ys * ys).sum(), acc + (torch.stack(outs) ** 2).sum()
    for g, gt in zip(ok.grad(loss, [xs, w]), torch.autograd.grad(loss_t, [xst, wt])):
        close(g, gt)


# ----- while_loop -------------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [0.01, 3.0, 50.0])
def test_while_loop_data_dependent_trip_count_and_gradient(limit):
    """Multiply by w until the norm passes a limit: the trip count depends on the data (none at all for
    the smallest limit); the gradient w.r.t. w and the initial state follows the iterations actually run."""
    (x0, w), (x0t, wt) = leaves([0.3, -0.2], [[1.1, 0.3], [-0.2, 1.4]])
    i, x = ok.while_loop(lambda i, x: (x * x).sum() < limit, lambda i, x: (i + 1, x @ w + 0.1), (ok.tensor(0), x0))
    n, xt = 0, x0t
    while (xt * xt).sum() < limit:
        n, xt = n + 1, xt @ wt + 0.1
    assert int(i.numpy()) == n and (n > 1 or limit < 0.1)
    close(x, xt)
    grads_t = torch.autograd.grad((xt * xt).sum(), [x0t, wt], allow_unused=True)  # w unused when no iteration ran
    for g, gt, ref in zip(ok.grad((x * x).sum(), [x0, w]), grads_t, (x0, w)):
        close(g, gt if gt is not None else np.zeros(ref.shape, np.float32))


def test_while_loop_exports_and_runs_in_onnxruntime():
    w = ok.tensor(np.float32(1.5))

    def f(x):
        _, y = ok.while_loop(lambda k, v: v.sum() < 100.0, lambda k, v: (k + 1, v * w + 1.0), (ok.tensor(0), x))
        return y
    model = ok.export(f, [ok.Input("x", ("N",))])
    onnx.checker.check_model(model, full_check=True)
    x = np.array([1.0, 2.0, 0.5], np.float32)
    got = ok.Session(model, device="cpu").run({"x": x})["output"]
    want = x.copy()
    while want.sum() < 100:
        want = want * 1.5 + 1
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_exported_scan_training_graph_checks_and_runs():
    """The gradient graph of a scan (reverse Scan, saved carries) is a valid model onnxruntime runs."""
    w = ok.tensor(np.full((3, 3), 0.2, np.float32), requires_grad=True)
    xs = ok.Input("xs", ("T", "N", 3))
    c, ys = ok.scan(lambda h, x: ((h @ w + x).tanh(), h.sum(-1)), ok.zeros_like(xs[0]), xs)
    loss = (ys * ys).sum() + c.sum()
    g, = ok.grad(loss, [w])
    model, _ = build_model([loss, g], ["loss", "grad_w"])
    onnx.checker.check_model(model, full_check=True)
    sess = ok.Session(model, device="cpu")
    data = rng(9).standard_normal((5, 2, 3)).astype(np.float32)
    got = sess.run({"xs": data})
    wt = torch.full((3, 3), 0.2, requires_grad=True)
    h, outs = torch.zeros(2, 3), []
    for t in range(5):
        outs.append(h.sum(-1))
        h = torch.tanh(h @ wt + torch.tensor(data[t]))
    loss_t = (torch.stack(outs) ** 2).sum() + h.sum()
    np.testing.assert_allclose(got["loss"], loss_t.detach().numpy(), rtol=RTOL)
    np.testing.assert_allclose(got["grad_w"], torch.autograd.grad(loss_t, [wt])[0].numpy(), rtol=RTOL, atol=ATOL)


def test_hvp_through_cond_and_while_loop_exported_runs_on_both_runtimes():
    """Second-order gradients through an If feeding a Loop, with a symbolic batch: one graph, valid,
    equal on onnxruntime and onnx.reference and to torch's double backward."""
    w = ok.tensor(np.array([0.5, -0.3], np.float32), requires_grad=True)
    x = ok.Input("x", ("N", 2))
    y = ok.cond(x.sum() > 0, lambda a: (a * w).sin(), lambda a: a * w * w, (x,))
    _, z = ok.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * w.exp() + 0.1), (ok.tensor(0), y))
    loss = (z * z).sum()
    g, = ok.grad(loss, [w], create_graph=True)
    v = np.array([1.0, 2.0], np.float32)
    hv, = ok.grad((g * ok.tensor(v)).sum(), [w])
    model, _ = build_model([loss, g, hv], ["loss", "g", "hv"])
    onnx.checker.check_model(model, full_check=True)
    wt = torch.tensor([0.5, -0.3], requires_grad=True)
    for xv in (np.array([[0.3, 0.4], [0.1, -0.2]], np.float32), -np.ones((3, 2), np.float32)):
        got = ok.Session(model, device="cpu").run({"x": xv})
        ref = ReferenceEvaluator(model).run(None, {"x": xv})
        xt = torch.tensor(xv)
        yt = (xt * wt).sin() if xt.sum() > 0 else xt * wt * wt
        for _ in range(3):
            yt = yt * wt.exp() + 0.1
        gt, = torch.autograd.grad((yt * yt).sum(), [wt], create_graph=True)
        hvt, = torch.autograd.grad((gt * torch.tensor(v)).sum(), [wt])
        for name, k, want in (("g", 1, gt), ("hv", 2, hvt)):
            close(got[name], want, rtol=1e-4, atol=1e-4)
            close(ref[k], want, rtol=1e-4, atol=1e-4)


def test_exported_scan_with_symbolic_length_runs_at_two_lengths():
    """ok.export of a function using ok.scan (reverse, dim=1): symbolic batch and sequence length."""
    w_np = np.array([[0.9, 0.1], [-0.2, 0.8]], np.float32)
    w, wt = ok.tensor(w_np), torch.tensor(w_np)

    def f(x):
        c, ys = ok.scan(lambda h, xt: ((h @ w + xt).tanh(), h * 2), ok.zeros_like(x[:, 0]), x, dim=1, reverse=True)
        return c, ys
    model = ok.export(f, [ok.Input("x", ("N", "T", 2))])
    onnx.checker.check_model(model, full_check=True)
    sess = ok.Session(model, device="cpu")
    for n, t in ((3, 5), (1, 2)):
        xv = rng(n).standard_normal((n, t, 2)).astype(np.float32)
        got = sess.run({"x": xv})
        ct, yst = _torch_scan(lambda h, xt: (torch.tanh(h @ wt + xt), h * 2), torch.zeros(n, 2),
                              torch.tensor(xv), 1, True)
        close(got["output_0"], ct)
        close(got["output_1"], yst)


def test_define_by_run_training_loop_matches_torch_and_compiles_once():
    """SGD on two scans with structurally identical bodies over different weights, then a cond whose
    branches differ only in the tensor they read: torch's trajectory, one compiled session for all steps."""
    from onnxkit import runtime
    w_np, w2_np = np.full((3, 3), 0.1, np.float32), np.full((3, 3), 0.2, np.float32)
    (w, w2), (wt, w2t) = leaves(w_np, w2_np)
    misses = None
    for step in range(4):
        x_np = rng(step).standard_normal((5, 3)).astype(np.float32)
        xs, xst = ok.tensor(x_np), torch.tensor(x_np)
        c, ys = ok.scan(lambda h, x: ((h @ w + x).tanh(), h), ok.zeros(3), xs)
        c, _ = ok.scan(lambda h, x: ((h @ w2 + x).tanh(), h), c, xs)
        c = ok.cond(c.sum() > 0, lambda a: a * w2[0], lambda a: a * w[0], (c,))
        loss = (c * c).sum() + ys.sum()
        h, outs = torch.zeros(3), []
        for t in range(5):
            outs.append(h)
            h = torch.tanh(h @ wt + xst[t])
        for t in range(5):
            h = torch.tanh(h @ w2t + xst[t])
        h = h * w2t[0] if h.sum() > 0 else h * wt[0]
        loss_t = (h * h).sum() + torch.stack(outs).sum()
        loss.backward()
        loss_t.backward()
        close(loss, loss_t)
        with ok.no_grad(), torch.no_grad():
            for p, pt in ((w, wt), (w2, w2t)):
                p -= 0.5 * p.grad
                pt -= 0.5 * pt.grad
                p.grad, pt.grad = None, None
        if step == 1:
            misses = runtime.stats["miss"]
    close(w, wt)
    close(w2, w2t)
    assert runtime.stats["miss"] == misses, "re-traced bodies must reuse the compiled session"


def test_module_with_scan_trains_with_trainer_like_torch():
    """A Module whose forward scans a Linear cell over time (dim=1, symbolic batch in the training graph):
    ok.Trainer with Adam follows torch's loss trajectory; the one-graph training step passes the checker."""
    from onnxkit import nn, optim

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell, self.head = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h, _ = ok.scan(lambda h, xt: ((self.cell(h) + xt).tanh(), h), ok.zeros_like(x[:, 0]), x, dim=1)
            return self.head(h)
    model = Recurrent()
    cell, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    for mod, prefix in ((cell, "cell."), (head, "head.")):
        mod.load_state_dict({k[len(prefix):]: torch.tensor(v) for k, v in model.state_dict().items()
                             if k.startswith(prefix)})
    x = rng(11).standard_normal((8, 5, 4)).astype(np.float32)
    y = rng(12).integers(0, 2, 8)
    trainer = ok.Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-2), device="cpu")
    opt_t = torch.optim.Adam(list(cell.parameters()) + list(head.parameters()), lr=1e-2)
    for _ in range(4):
        h = torch.zeros(8, 4)
        for t in range(5):
            h = torch.tanh(cell(h) + torch.tensor(x[:, t]))
        loss_t = torch.nn.functional.cross_entropy(head(h), torch.tensor(y))
        opt_t.zero_grad()
        loss_t.backward()
        opt_t.step()
        np.testing.assert_allclose(trainer.step(x, y), loss_t.item(), rtol=1e-4)
    onnx.checker.check_model(trainer.training_model, full_check=True)
    close(model.cell.weight, cell.weight)


# ----- imported models: If / Loop / Scan differentiated w.r.t. their initializers -------------------------
D = TensorProto.DOUBLE


def _model(nodes, inputs, outputs, inits):
    g = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    onnx.checker.check_model(m, full_check=True)
    return m


def _if_model(inits):
    then_g = helper.make_graph([helper.make_node("Mul", ["x", "W"], ["t_out"]),
                                helper.make_node("Tanh", ["t_out"], ["t_y"])],
                               "then", [], [helper.make_tensor_value_info("t_y", D, [3])])
    else_g = helper.make_graph([helper.make_node("Add", ["x", "B"], ["e_out"]),
                                helper.make_node("Mul", ["e_out", "e_out"], ["e_y"])],
                               "else", [], [helper.make_tensor_value_info("e_y", D, [3])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["p"]),
             helper.make_node("If", ["p"], ["y"], then_branch=then_g, else_branch=else_g)]
    inits = dict(inits, zero=np.array(0.0))
    return _model(nodes, [helper.make_tensor_value_info("x", D, [3])], [helper.make_tensor_value_info("y", D, [3])],
                  inits)


def _scan_model(inits, directed=False):
    body = helper.make_graph(
        [helper.make_node("MatMul", ["h_in", "W"], ["hw"]), helper.make_node("Add", ["hw", "x_t"], ["pre"]),
         helper.make_node("Tanh", ["pre"], ["h_out"]), helper.make_node("Mul", ["h_out", "B"], ["y_t"])],
        "body", [helper.make_tensor_value_info("h_in", D, [2]), helper.make_tensor_value_info("x_t", D, [2])],
        [helper.make_tensor_value_info("h_out", D, [2]), helper.make_tensor_value_info("y_t", D, [2])])
    attrs = {"scan_input_directions": [1], "scan_output_axes": [1], "scan_output_directions": [1]} if directed else {}
    nodes = [helper.make_node("Scan", ["H0", "x"], ["h", "ys"], body=body, num_scan_inputs=1, **attrs)]
    return _model(nodes, [helper.make_tensor_value_info("x", D, [4, 2])],
                  [helper.make_tensor_value_info("h", D, [2]),
                   helper.make_tensor_value_info("ys", D, [2, 4] if directed else [4, 2])], inits)


def _loop_model(inits):
    """while sum(v) < 5: v = v * W + (i + 1) * B, also emitting v each iteration (a data-dependent trip count)."""
    body = helper.make_graph(
        [helper.make_node("Mul", ["v_in", "W"], ["vw"]), helper.make_node("Cast", ["i"], ["fi"], to=D),
         helper.make_node("Mul", ["fi", "B"], ["bi"]), helper.make_node("Add", ["vw", "bi"], ["vwb"]),
         helper.make_node("Add", ["vwb", "B"], ["v_out"]),
         helper.make_node("ReduceSum", ["v_out"], ["vs"], keepdims=0),
         helper.make_node("Less", ["vs", "limit"], ["c_out"]), helper.make_node("Identity", ["v_out"], ["scan_v"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", D, [2])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []), helper.make_tensor_value_info("v_out", D, [2]),
         helper.make_tensor_value_info("scan_v", D, [None, 2])])
    body.output[2].type.tensor_type.shape.ClearField("dim")
    body.output[2].type.tensor_type.shape.dim.add().dim_value = 2
    nodes = [helper.make_node("Constant", [], ["limit"], value=numpy_helper.from_array(np.array(5.0), "limit")),
             helper.make_node("Constant", [], ["tru"], value=numpy_helper.from_array(np.array(True), "tru")),
             helper.make_node("Loop", ["", "tru", "x"], ["v", "vs_all"], body=body)]
    return _model(nodes, [helper.make_tensor_value_info("x", D, [2])],
                  [helper.make_tensor_value_info("v", D, [2]), helper.make_tensor_value_info("vs_all", D, [None, 2])],
                  inits)


def _nested_model(inits):
    """Loop with a fixed trip count whose body branches on the iteration number (If inside Loop): even
    steps v * W, odd steps v + B, where W and B are top-level initializers read two scopes down; each
    iteration also emits W or sin(B)."""
    then_g = helper.make_graph([helper.make_node("Mul", ["v_in", "W"], ["t_v"]),
                               helper.make_node("Identity", ["W"], ["t_w"])], "then", [], [helper.make_tensor_value_info("t_v", D, [2]),
                                           helper.make_tensor_value_info("t_w", D, [2])])
    else_g = helper.make_graph([helper.make_node("Add", ["v_in", "B"], ["e_v"]),
                               helper.make_node("Sin", ["B"], ["e_b"])], "else", [], [helper.make_tensor_value_info("e_v", D, [2]),
                                           helper.make_tensor_value_info("e_b", D, [2])])
    body = helper.make_graph(
        [helper.make_node("Mod", ["i", "two"], ["r"]), helper.make_node("Equal", ["r", "zero_i"], ["even"]),
         helper.make_node("If", ["even"], ["v_out", "extra"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Identity", ["c_in"], ["c_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", D, [2])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []), helper.make_tensor_value_info("v_out", D, [2]),
         helper.make_tensor_value_info("extra", D, [2])])
    nodes = [helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2, np.int64), "two")),
             helper.make_node("Constant", [], ["zero_i"], value=numpy_helper.from_array(np.array(0, np.int64), "z")),
             helper.make_node("Constant", [], ["m"], value=numpy_helper.from_array(np.array(3, np.int64), "m")),
             helper.make_node("Constant", [], ["tru"], value=numpy_helper.from_array(np.array(True), "tru")),
             helper.make_node("Loop", ["m", "tru", "x"], ["v", "extras"], body=body)]
    return _model(nodes, [helper.make_tensor_value_info("x", D, [2])],
                  [helper.make_tensor_value_info("v", D, [2]), helper.make_tensor_value_info("extras", D, [3, 2])],
                  inits)


IMPORTED = {
    "if_in_loop": (_nested_model, {"W": [1.3, -0.7], "B": [0.2, 0.4]}, [0.5, 0.4]),
    "if_true": (_if_model, {"W": [0.5, -0.3, 0.8], "B": [0.1, 0.2, 0.3]}, [1.0, 0.5, 0.2]),
    "if_false": (_if_model, {"W": [0.5, -0.3, 0.8], "B": [0.1, 0.2, 0.3]}, [-1.0, 0.5, -0.2]),
    "scan": (_scan_model, {"W": [[0.5, -0.4], [0.3, 0.8]], "B": [1.5, -0.7], "H0": [0.1, -0.2]},
             [[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6], [0.7, 0.8]]),
    "scan_reversed_axis1": (lambda inits: _scan_model(inits, directed=True),
                            {"W": [[0.5, -0.4], [0.3, 0.8]], "B": [1.5, -0.7], "H0": [0.1, -0.2]},
                            [[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6], [0.7, 0.8]]),
    "loop": (_loop_model, {"W": [1.3, 1.1], "B": [0.2, 0.1]}, [0.5, 0.4]),
}


@pytest.mark.parametrize("case", list(IMPORTED))
def test_imported_control_flow_gradients_by_finite_differences(case):
    """ok.load keeps the subgraphs; ok.grad w.r.t. the initializers matches float64 central differences
    (the model run by onnxruntime, whose CPU provider has float64 kernels for these ops; onnx.reference
    checks the forward where it can run the model: it has no reversed or non-zero-axis Scan)."""
    make, inits, x = IMPORTED[case]
    inits = {k: np.asarray(v, np.float64) for k, v in inits.items()}
    x = np.asarray(x, np.float64)
    proj_rng = rng(10)
    model = make(inits)
    def run(m):
        return ok.Session(m, device="cpu").run({"x": x}).values()
    mod = ok.load(model)
    params = dict(mod.named_parameters())
    names = [k for k in inits if k in params]
    outs = mod(ok.tensor(x))
    outs = [outs] if isinstance(outs, ok.Tensor) else list(outs)
    want = list(run(model))
    if case != "scan_reversed_axis1":
        for w, r in zip(want, ReferenceEvaluator(model).run(None, {"x": x})):
            np.testing.assert_allclose(w, r, rtol=1e-12)
    for o, w in zip(outs, want):
        np.testing.assert_allclose(o.numpy(), w, rtol=1e-10)
    projs = [proj_rng.standard_normal(w.shape) for w in want]
    loss = sum((o * ok.tensor(p)).sum() for o, p in zip(outs, projs))
    grads = ok.grad(loss, [params[k] for k in names])

    def f(vals):
        m = make(dict(inits, **vals))
        return sum(float((o * p).sum()) for o, p in zip(run(m), projs))
    eps = 1e-6
    for k, g in zip(names, grads):
        num = np.zeros_like(inits[k])
        for j in range(num.size):
            plus, minus = inits[k].copy(), inits[k].copy()
            plus.reshape(-1)[j] += eps
            minus.reshape(-1)[j] -= eps
            num.reshape(-1)[j] = (f({k: plus}) - f({k: minus})) / (2 * eps)
        np.testing.assert_allclose(g.numpy(), num, rtol=1e-6, atol=1e-8, err_msg=f"{case}: gradient of {k}")


def test_imported_scan_reexports_with_gradient():
    """An imported Scan model's gradient graph passes the checker and runs in onnxruntime (float32)."""
    inits = {k: np.asarray(v, np.float64) for k, v in IMPORTED["scan"][1].items()}
    model = _scan_model(inits)
    mod = ok.load(model)
    x = ok.Input("x", (4, 2), "float64")
    h, ys = mod(x)
    loss = (ys * ys).sum() + h.sum()
    g = ok.grad(loss, [mod.W])[0]
    out, _ = build_model([loss, g], ["loss", "gW"])
    onnx.checker.check_model(out, full_check=True)
    res = ReferenceEvaluator(out).run(None, {"x": np.asarray(IMPORTED["scan"][2])})
    assert np.isfinite(res[1]).all() and res[1].shape == (2, 2)


# ----- bad input ----------------------------------------------------------------------------------------
def test_cond_branches_with_different_shapes_or_dtypes_raise():
    x = ok.tensor(np.ones((2, 3), np.float32))

    def same(v):
        return v * 2

    def wider(v):
        return ok.cat([v, v], 1)

    def as_int(v):
        return v.long()
    with pytest.raises(ValueError, match=r"output 0 of same is \(2, 3\) float32 but output 0 of wider is \(2, 6\)"):
        ok.cond(x.sum() > 0, same, wider, (x,))
    with pytest.raises(ValueError, match=r"as_int.*int64"):
        ok.cond(x.sum() > 0, same, as_int, (x,))


def test_while_loop_body_changing_a_carry_shape_raises():
    def grow(i, v):
        return i + 1, ok.cat([v, v])
    with pytest.raises(ValueError, match=r"grow.*carry 1 expected \(3,\) float32, got \(6,\) float32"):
        ok.while_loop(lambda i, v: i < 3, grow, (ok.tensor(0), ok.ones(3)))


def test_scan_combine_fn_changing_the_carry_dtype_raises():
    def step(c, x):
        return c.double(), x
    with pytest.raises(ValueError, match=r"step.*expected \(2,\) float32, got \(2,\) float64"):
        ok.scan(step, ok.zeros(2), ok.ones(3, 2))


@pytest.mark.parametrize("dim", [0, 1])
def test_scan_over_an_empty_sequence_returns_init_and_empty_outputs(dim):
    """onnxruntime's Scan cannot slice a zero-length sequence; ok.scan does not emit one."""
    xs = ok.tensor(np.zeros((0, 3) if dim == 0 else (3, 0), np.float32))
    init = ok.tensor(np.full(3, 2.0, np.float32), requires_grad=True)

    def body(c, x):
        c2 = c * x
        return c2, c2 * 2
    c, ys = ok.scan(body, init, xs, dim=dim)
    np.testing.assert_allclose(c.numpy(), [2.0, 2.0, 2.0])
    assert ys.numpy().shape == ((0, 3) if dim == 0 else (3, 0))
    c.sum().backward()
    np.testing.assert_allclose(init.grad.numpy(), [1.0, 1.0, 1.0])
