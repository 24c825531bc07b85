"""Training graphs (onnxkit.training): standard ops only, the full checker, the documented inputs and
outputs, the same results on onnxruntime and onnx.reference, stages that compose to the one-graph
step, randomness as a pure function of (seed, step), frozen parameters and BatchNorm buffers."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator

import onnxkit as ok
from onnxkit import nn, optim, random
from onnxkit.emit import build_model
from onnxkit.training import build_training_model

def rng():
    return np.random.default_rng(0)


def mlp():
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(3 * 3 * 3, 4))


def regression(n=4, r=None):
    r = r or rng()
    return r.standard_normal((n, 6)).astype(np.float32), r.standard_normal((n, 3)).astype(np.float32)


def classification(n=4):
    r = rng()
    return r.standard_normal((n, 6)).astype(np.float32), r.integers(0, 3, n)


def images(n=4):
    r = rng()
    return r.standard_normal((n, 1, 6, 6)).astype(np.float32), r.integers(0, 4, n)


# (id, model, loss, optimizer factory, data)
GRAPH_ROWS = [
    ("mlp-mse-sgd", mlp, nn.MSELoss, lambda p: optim.SGD(p, lr=0.1), regression),
    ("mlp-ce-adam-amsgrad", mlp, nn.CrossEntropyLoss, lambda p: optim.Adam(p, lr=0.01, amsgrad=True, weight_decay=0.1),
     classification),
    ("cnn-bn-dropout-rmsprop", cnn, nn.CrossEntropyLoss,
     lambda p: optim.RMSprop(p, lr=0.01, momentum=0.9, centered=True), images),
    ("mlp-ce-adagrad-clip", mlp, nn.CrossEntropyLoss, lambda p: optim.Adagrad(p, lr=0.1), classification),
]


def build(row, **kw):
    _, make_model, make_loss, make_opt, make_data = row
    ok.manual_seed(0)
    model = make_model()
    opt = make_opt(model.parameters())
    x, y = make_data()
    if row[0].endswith("clip"):
        kw.setdefault("clip_grad_norm", 0.5)
    return model, opt, x, y, build_training_model(model, make_loss(), opt, x, y, **kw)


@pytest.mark.parametrize("row", GRAPH_ROWS, ids=[r[0] for r in GRAPH_ROWS])
def test_training_graph_is_standard_checked_and_named(row):
    model, opt, x, y, g = build(row, stages=True)
    for m in (g.training_model, g.eval_model, g.gradient_model, g.update_model):
        onnx.checker.check_model(m, full_check=True)
        assert {n.domain for n in m.graph.node} <= {"", "ai.onnx"}
        assert m.opset_import[0].version == 21 and m.ir_version == 10
    names = [i.name for i in g.training_model.graph.input]
    keys = [k for k, _ in model.named_parameters()]
    expected = ["input", "target"] + [f"params/{k}" for k in keys] + [f"buffers/{k}" for k, _ in model.named_buffers()]
    assert names[:len(expected)] == expected
    k = len(g.random)
    assert names[len(names) - 2 - k:len(names) - k] == ["step", "seed"]
    assert names[len(names) - k:] == [f"random/{i}" for i in range(k)]  # dropout masks drawn on the host
    assert all(f"hparams/0/{h}" in names for h in opt.hyperparameters)
    outs = [o.name for o in g.training_model.graph.output]
    assert outs[0] == "loss" and outs[1:1 + len(keys)] == [f"updated/params/{k}" for k in keys]
    assert all(f"updated/state/{k}/{s}" in outs for k in keys for s in opt.slots(opt.param_groups[0]))
    batch = g.training_model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "N"


def run_steps(g, x, y, runner, steps=3, seed=7):
    """Run a few steps by hand on `runner` (feeds -> outputs dict), writing results back."""
    losses = []
    for step in range(1, steps + 1):
        out = runner(g.feeds(x, y, step=step, seed=seed))
        losses.append(g.apply(out, step))
    return np.array(losses)


def ort_runner(model):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return lambda feeds: dict(zip(names, s.run(None, feeds)))


def ref_runner(model):
    r = ReferenceEvaluator(model)
    return lambda feeds: dict(zip(r.output_names, r.run(None, feeds)))


@pytest.mark.parametrize("row", GRAPH_ROWS, ids=[r[0] for r in GRAPH_ROWS])
def test_onnxruntime_and_reference_evaluator_agree(row):
    results = []
    for runner in (ort_runner, ref_runner):
        model, opt, x, y, g = build(row)
        losses = run_steps(g, x, y, runner(g.training_model))
        results.append((losses, model.state_dict(), opt.state_dict()["state"]))
    (l1, p1, s1), (l2, p2, s2) = results
    np.testing.assert_allclose(l1, l2, rtol=1e-4, atol=1e-5)  # float32 kernels differ in rounding only
    for k in p1:
        np.testing.assert_allclose(p1[k], p2[k], rtol=1e-4, atol=1e-5, err_msg=k)
    for i in s1:
        for slot, v in s1[i].items():
            np.testing.assert_allclose(v, s2[i][slot], rtol=1e-4, atol=1e-5, err_msg=f"state {i} {slot}")


@pytest.mark.parametrize("row", GRAPH_ROWS, ids=[r[0] for r in GRAPH_ROWS])
def test_gradient_and_update_stages_compose_to_the_step(row):
    model, opt, x, y, g = build(row, stages=True)
    feeds = g.feeds(x, y, step=2, seed=3)
    whole = ort_runner(g.training_model)(feeds)
    grads = ort_runner(g.gradient_model)({i.name: feeds[i.name] for i in g.gradient_model.graph.input})
    np.testing.assert_allclose(grads["loss"], whole["loss"], rtol=1e-6)
    ufeeds = {**feeds, **grads}
    upd = ort_runner(g.update_model)({i.name: ufeeds[i.name] for i in g.update_model.graph.input})
    for name, v in upd.items():
        np.testing.assert_allclose(v, whole[name], rtol=1e-5, atol=1e-7, err_msg=name)
    for name in whole:
        if name.startswith("updated/buffers/"):
            np.testing.assert_allclose(grads[name], whole[name], rtol=1e-6, err_msg=name)


def dropout_losses(seeds_steps):
    ok.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.Dropout(0.5), nn.Linear(32, 3))
    x, y = regression(16)
    g = build_training_model(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.0), x, y)
    assert [r[0] for r in g.random] == ["random/0"]  # the mask is drawn on the host and fed
    run = ort_runner(g.training_model)
    return [float(run(g.feeds(x, y, step=st, seed=sd))["loss"]) for sd, st in seeds_steps]


def test_dropout_masks_are_a_function_of_seed_and_step():
    a = dropout_losses([(1, 1), (1, 2), (1, 1), (2, 1)])
    assert a[0] == a[2], "same seed and step: same mask"
    assert a[0] != a[1], "masks differ between steps"
    assert a[0] != a[3], "masks differ between seeds"


def test_in_graph_counter_uniform_is_standard_and_runtime_independent():
    """Draws whose shape is not known from the data dims are hashed in the graph (uint32 ops)."""
    seed, step = ok.Input("seed", (), "int64"), ok.Input("step", (), "int64")
    x = ok.Input("x", ("M", 5), "float32")
    with random.graph_rng(seed, step, dims=()) as fed:
        u = [random.rand_like(x) for _ in range(2)]
    assert fed == []
    m, _ = build_model(u, output_names=["u0", "u1"])
    onnx.checker.check_model(m, full_check=True)
    o, r = ort_runner(m), ref_runner(m)
    feeds = lambda st: {"seed": np.array(5), "step": np.array(st), "x": np.zeros((4000, 5), np.float32)}  # noqa: E731
    a, b = o(feeds(1)), r(feeds(1))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert 0.0 <= a[k].min() and a[k].max() < 1.0
        assert abs(a[k].mean() - 0.5) < 0.01 and abs(a[k].var() - 1 / 12) < 0.005
    assert not np.array_equal(a["u0"], a["u1"]) and not np.array_equal(a["u0"], o(feeds(2))["u0"])
    assert abs(np.corrcoef(a["u0"].ravel(), a["u1"].ravel())[0, 1]) < 0.02


def test_frozen_and_untrainable_parameters_are_inputs_without_updates():
    ok.manual_seed(0)
    model = mlp()
    model[2].bias.requires_grad = False
    x, y = regression()
    g = build_training_model(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), x, y, frozen=["0.*"])
    assert g.trainable == ["2.weight"]
    ins = [i.name for i in g.training_model.graph.input]
    outs = [o.name for o in g.training_model.graph.output]
    assert {"params/0.weight", "params/0.bias", "params/2.bias"} <= set(ins)
    assert [o for o in outs if o.startswith("updated/params/")] == ["updated/params/2.weight"]
    before = model.state_dict()
    run_steps(g, x, y, ort_runner(g.training_model), steps=2)
    after = model.state_dict()
    for k in ("0.weight", "0.bias", "2.bias"):
        np.testing.assert_array_equal(after[k], before[k])
    assert not np.array_equal(after["2.weight"], before["2.weight"])


def test_batchnorm_running_stats_follow_torch():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    om = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
    om.load_state_dict(tm.state_dict())
    t_opt = torch.optim.SGD(tm.parameters(), lr=0.1)
    tr = ok.Trainer(om, nn.MSELoss(), optim.SGD(om.parameters(), lr=0.1))
    r = rng()
    for _ in range(4):
        x, y = regression(8, r)
        t_opt.zero_grad()
        tl = torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y))
        tl.backward()
        t_opt.step()
        np.testing.assert_allclose(tr.step(x, y), tl.item(), rtol=1e-4)
    outs = [o.name for o in tr.training_model.graph.output]
    assert "updated/buffers/1.running_mean" in outs and "updated/buffers/1.num_batches_tracked" in outs
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(om.state_dict()[k], v.numpy(), rtol=1e-4, atol=1e-6, err_msg=k)
    tm.eval()
    x, _ = regression(5)
    np.testing.assert_allclose(tr.predict(x), tm(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_imported_onnx_model_trains_like_the_module():
    ok.manual_seed(0)
    model = mlp()
    x, y = regression(8)
    imported = ok.load(ok.export(model, [ok.Input("x", ("N", 6))]))
    a = ok.Trainer(model, nn.MSELoss(), optim.Adam(model.parameters(), lr=0.01))
    b = ok.Trainer(imported, nn.MSELoss(), optim.Adam(imported.parameters(), lr=0.01))
    for _ in range(5):
        np.testing.assert_allclose(b.step(x, y), a.step(x, y), rtol=1e-5)
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(imported.state_dict()[k], v, rtol=1e-5, atol=1e-7, err_msg=k)


def test_hyperparameters_are_inputs_and_zero_ness_rebuilds():
    ok.manual_seed(0)
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    tr = ok.Trainer(model, nn.MSELoss(), opt)
    x, y = regression()
    tr.step(x, y)
    built = tr._graph
    opt.param_groups[0]["lr"] = 0.05
    tr.step(x, y)
    assert tr._graph is built, "a new lr is a new input value, not a new graph"
    opt.param_groups[0]["weight_decay"] = 0.1
    tr.step(x, y)
    assert tr._graph is not built, "a weight decay that becomes nonzero adds its nodes"


def test_loss_must_be_a_scalar():
    model = mlp()
    x, y = regression()
    with pytest.raises(ValueError, match="scalar"):
        build_training_model(model, nn.MSELoss(reduction="none"), optim.SGD(model.parameters(), lr=0.1), x, y)


def test_target_with_its_own_leading_size():
    """Regression: the target (N*T,) of a sequence model flattened to (N*T, C) shared the data's batch
    dim name, so shape inference took N*T == N and the gradient Reshape read the wrong size."""
    class SeqModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.out = nn.Embedding(7, 4), nn.Linear(4, 7)

        def forward(self, idx):
            y = self.out(self.emb(idx))
            return y.reshape(-1, y.shape[-1])

    ok.manual_seed(0)
    m = SeqModel()
    tr = ok.Trainer(m, nn.CrossEntropyLoss(), optim.SGD(m.parameters(), lr=0.1))
    rng = np.random.default_rng(0)
    for batch in (4, 3):
        x = rng.integers(0, 7, (batch, 5))
        y = rng.integers(0, 7, batch * 5)
        want = nn.CrossEntropyLoss()(m(ok.tensor(x)), ok.tensor(y)).item()
        assert tr.step(x, y) == pytest.approx(want, rel=1e-5)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in tr.training_model.graph.input}
    assert dims["input"] == ["N", 5] and dims["target"] == ["N_target"]
