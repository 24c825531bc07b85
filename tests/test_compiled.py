"""Module.compile() (nn.compiled): a replayed forward gives the plain call's values, gradients, buffer
updates and dropout draws exactly; guards send every change to a fresh trace; forwards that cannot be
replayed (evaluations, in-place changes, hooks, foreign tensors) stay plain."""
import copy

import numpy as np
import pytest

import onnxkit as ok
import onnxkit.nn as nn
import onnxkit.nn.functional as F
from onnxkit.models import autoencoder, lenet, resnet, seq_classifier


class Net(nn.Module):
    """Conv, BatchNorm, dropout, a residual add and a tuple output: every kind of state a replay carries."""

    def __init__(self, p=0.3):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(p)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x, scale=1.0):
        h = F.relu(self.bn(self.conv(x))) * scale
        h = self.drop(h + self.conv(x))
        return self.fc(h.flatten(1)), h.mean()


def _data(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, 6, 6)).astype(np.float32),
            rng.integers(0, 5, n).astype(np.int64))


def _model(make, compiled, seed=0):
    """make() after ok.manual_seed(seed), compiled or not: the two sides of every comparison here."""
    ok.manual_seed(seed)
    model = make()
    if compiled:
        model.compile()
    return model


def _fit(model, opt, x, y, loss_fn=F.cross_entropy, steps=4):
    """`steps` torch-style steps: (losses, the state_dict's arrays, the op type of each call's output)."""
    losses, kinds = [], []
    for _ in range(steps):
        opt.zero_grad()
        out = model(x)
        kinds.append(out.node.op_type)
        loss = loss_fn(out, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: np.array(v) for k, v in model.state_dict().items()}, kinds


def _train(compiled, steps=6, accumulate=1, **call):
    model = _model(Net, compiled, seed=3)
    opt = ok.optim.Adam(model.parameters(), lr=0.01)
    x, y = (ok.tensor(a) for a in _data())
    losses, kinds = [], []
    for _ in range(steps):
        opt.zero_grad()
        for _ in range(accumulate):
            logits, aux = model(x, **call)
            kinds.append(logits.node.op_type)
            loss = F.cross_entropy(logits, y) + 0.1 * aux
            loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: np.array(v) for k, v in model.state_dict().items()}, kinds


def _assert_same_run(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        np.testing.assert_array_equal(a[1][k], b[1][k], err_msg=k)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_replayed_training_equals_plain_training(accumulate):
    plain, compiled = _train(False, accumulate=accumulate), _train(True, accumulate=accumulate)
    _assert_same_run(plain, compiled)
    assert "Macro" not in plain[2]
    assert compiled[2][:2] == [compiled[2][0]] * 2 and compiled[2][0] != "Macro"  # two plain traces ...
    assert set(compiled[2][2:]) == {"Macro"}  # ... then one macro node per call
    assert compiled[1]["bn.num_batches_tracked"] == 6 * accumulate


def test_replay_with_non_tensor_argument_and_eval_mode():
    _assert_same_run(_train(False, scale=2.0), _train(True, scale=2.0))
    ok.manual_seed(0)
    model = Net()
    model.compile()
    x = ok.tensor(_data()[0])
    for _ in range(3):
        model(x)  # results never evaluated: the running statistics still update (at the next evaluation)
    model.eval()
    plain = copy.deepcopy(model)
    object.__delattr__(plain, "_onnxkit_compiled")
    for _ in range(4):
        got, want = model(x, scale=0.5)[0].numpy(), plain(x, scale=0.5)[0].numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=0)
    assert model(x, scale=0.5)[0].node.op_type == "Macro"


def _calls(model, x, n=3):
    outs = [model(x) for _ in range(n)]
    return outs[-1]


def test_guards_new_shapes_frozen_parameters_and_replaced_parameters():
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    model.compile()
    rng = np.random.default_rng(1)
    x = ok.tensor(rng.standard_normal((5, 4)).astype(np.float32))
    assert _calls(model, x).node.op_type == "Macro"
    x2 = ok.tensor(rng.standard_normal((7, 4)).astype(np.float32))
    assert model(x2).node.op_type != "Macro"  # a new shape: traced again
    model[0].weight.requires_grad_(False)
    out = _calls(model, x)
    out.sum().backward()
    assert model[0].weight.grad is None and model[2].weight.grad is not None
    model[2].weight = nn.Parameter(np.ones((2, 3), np.float32))
    want = np.tanh(x.numpy() @ model[0].weight.numpy().T + model[0].bias.numpy()) @ np.ones((3, 2)) \
        + model[2].bias.numpy()
    np.testing.assert_allclose(_calls(model, x).numpy(), want, rtol=1e-5, atol=1e-6)


def test_in_place_parameter_update_between_calls_is_seen():
    model = nn.Linear(3, 2)
    model.compile()
    x = ok.tensor(np.ones((1, 3), np.float32))
    outs = []
    for i in range(5):
        outs.append(model(x))
        with ok.no_grad():
            model.weight += 1.0
    for i, o in enumerate(outs):  # each value as of when it was built
        np.testing.assert_allclose(o.numpy(), (model.weight.numpy() - 5 + i).sum(1, keepdims=True).T
                                   + model.bias.numpy(), rtol=1e-6)
    assert outs[-1].node.op_type in ("Macro", "Identity")


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        h = self.fc(x)
        return h * 2 if h.sum().item() > 0 else h - 1  # a branch on data: never replayed


class Mutates(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        x.add_(1.0)  # changes the caller's tensor: never replayed
        return self.fc(x)


class Keeps(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        self.last = self.fc(x)  # kept for inspection: a replay would leave it stale
        return self.last * 2


class Foreign(nn.Module):
    def __init__(self, other):
        super().__init__()
        self.fc, self.other = nn.Linear(2, 2), other  # `other`: a tensor that is no parameter or buffer

    def forward(self, x):
        return self.fc(x) + self.other


@pytest.mark.parametrize("make", [Branchy, Mutates, Keeps, lambda: Foreign(ok.tensor(np.ones(2, np.float32)))])
def test_forwards_that_cannot_be_replayed_stay_plain(make):
    ok.manual_seed(0)
    model = make()
    plain = copy.deepcopy(model)
    model.compile()
    rng = np.random.default_rng(0)
    for _ in range(4):
        a = rng.standard_normal((3, 2)).astype(np.float32)
        x1, x2 = ok.tensor(a), ok.tensor(a)
        got, want = model(x1), plain(x2)
        assert got.node.op_type != "Macro"
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
        np.testing.assert_allclose(x1.numpy(), x2.numpy())


def test_hooks_stop_replay_and_removing_them_resumes_it():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    model.compile()
    x = ok.tensor(np.ones((1, 2), np.float32))
    assert _calls(model, x).node.op_type == "Macro"
    seen = []
    handle = model[0].register_forward_hook(lambda m, a, o: seen.append(o))
    assert _calls(model, x).node.op_type != "Macro" and len(seen) == 3
    handle.remove()
    assert _calls(model, x).node.op_type == "Macro"


def test_gradients_of_gradients_and_grad_hooks_through_a_replayed_forward():
    def run(compiled):
        ok.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
        if compiled:
            model.compile()
        x = ok.tensor(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), requires_grad=True)
        for _ in range(3):
            out = model(x)
        seen = []
        out.register_hook(lambda g: seen.append(g.numpy()))
        (gx,) = ok.grad(out.sum(), [x], create_graph=True)
        penalty = (gx ** 2).sum()
        penalty.backward()
        grads = [None if p.grad is None else p.grad.numpy() for p in model.parameters()]
        return out.node.op_type, gx.numpy(), grads, seen
    plain, compiled = run(False), run(True)
    assert compiled[0] in ("Macro", "Identity")
    np.testing.assert_allclose(compiled[1], plain[1], rtol=1e-6)
    assert [g is None for g in compiled[2]] == [g is None for g in plain[2]] == [False, False, False, True]
    for a, b in zip(compiled[2][:3], plain[2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert len(compiled[3]) == len(plain[3]) == 1


def test_tied_weights_and_state_dict_keys():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x))

    def run(compiled):
        ok.manual_seed(0)
        model = Tied()
        keys = list(model.state_dict())
        if compiled:
            model = ok.compile(model)
            assert list(model.state_dict()) == keys
        x = ok.tensor(np.eye(3, dtype=np.float32))
        for _ in range(3):
            model.zero_grad()
            model(x).sum().backward()
        return model.a.weight.grad.numpy()
    np.testing.assert_allclose(run(True), run(False), rtol=1e-6)


def test_export_trainer_and_nested_calls_of_a_compiled_model(tmp_path):
    ok.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    model.compile()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    want = _calls(model, ok.tensor(x)).numpy()
    path = tmp_path / "m.onnx"
    ok.export(model, ok.Input("x", ("N", 4)), str(path))
    np.testing.assert_allclose(list(ok.Session(str(path)).run({"x": x}).values())[0], want, rtol=1e-5)
    outer = nn.Sequential(model, nn.Tanh())
    np.testing.assert_allclose(outer(ok.tensor(x)).numpy(), np.tanh(want), rtol=1e-5)
    trainer = ok.Trainer(model, nn.CrossEntropyLoss(), ok.optim.SGD(model.parameters(), lr=0.1))
    assert np.isfinite(trainer.step(x, np.zeros(5, np.int64)))


def test_a_deep_copy_records_its_own_replays():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    model.compile()
    x = ok.tensor(np.ones((1, 2), np.float32))
    _calls(model, x)
    twin = copy.deepcopy(model)
    with ok.no_grad():
        twin[0].weight.fill_(0.0)
        twin[0].bias.fill_(1.0)
    np.testing.assert_allclose(_calls(twin, x).numpy(), [[1.0, 1.0]])
    assert twin._onnxkit_compiled is not model._onnxkit_compiled
    np.testing.assert_allclose(_calls(model, x).numpy(), F.relu(model[0](x)).numpy())


def test_compile_entry_points():
    def f(x):
        return x * 2
    assert ok.compile(f) is f
    assert ok.compile(mode="max-autotune")(f) is f
    model = nn.Linear(2, 2)
    assert ok.compile(model, fullgraph=True) is model and "_onnxkit_compiled" in model.__dict__
    other = nn.Linear(2, 2)
    assert ok.compile(other, disable=True) is other and "_onnxkit_compiled" not in other.__dict__
    assert model.compile() is None
    with pytest.raises(TypeError, match="Module or a callable"):
        ok.compile(3)


def test_loss_modules_replay_and_keep_their_value_checks_and_settings():
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    logits = ok.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    target = np.array([0, 2, 1, 1])
    want = F.cross_entropy(logits, ok.tensor(target)).numpy()
    got = loss_fn(logits, ok.tensor(target))
    assert got.node.op_type == "Macro"  # onnxkit's own losses replay from the first call
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):
        loss_fn(logits, ok.tensor(np.array([0, 3, 1, 1])))
    loss_fn.reduction = "sum"  # a setting: a new guard, so a new trace
    np.testing.assert_allclose(loss_fn(logits, ok.tensor(target)).numpy(), want * 4, rtol=1e-6)


def test_a_counter_in_a_setting_and_a_setting_added_later_are_guarded():
    class Counted(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.calls = nn.Linear(2, 2), 0

        def forward(self, x):
            self.calls += 1
            out = self.fc(x) * self.calls
            return out * self.extra if hasattr(self, "extra") else out

    model = Counted()
    model.compile()
    x = ok.tensor(np.ones((1, 2), np.float32))
    base = model.fc(x).numpy()
    for k in range(1, 5):
        np.testing.assert_allclose(model(x).numpy(), base * k, rtol=1e-6)  # 1, 2, 3, 4: never replayed
    model2 = nn.Sequential(nn.Linear(2, 2))
    model2.compile()
    outs = [model2(x) for _ in range(3)]
    assert outs[-1].node.op_type == "Macro"
    model2[0].extra_flag = True  # a new setting: the tree is read again and the guard includes it
    assert model2(x).node.op_type != "Macro"


def test_a_setting_or_hook_changed_between_building_and_evaluating_does_not_reach_the_replay():
    model = nn.Sequential(nn.Linear(3, 3), nn.LeakyReLU(0.5))
    model.compile()
    x = ok.tensor(-np.ones((1, 3), np.float32) * 10)
    pre = model[0](x).numpy()
    for _ in range(2):
        model(x).numpy()
    out = model(x)  # replayed (a macro of the guard with negative_slope 0.5), not evaluated yet
    model[1].negative_slope = 0.01
    model[1].register_forward_hook(lambda m, a, o: o * 100)  # nor does a hook added meanwhile
    got = out.numpy()  # the first compile of this structure expands the macro now
    np.testing.assert_allclose(got, np.where(pre > 0, pre, 0.5 * pre), rtol=1e-6)
    np.testing.assert_allclose(model(x).numpy(), np.where(pre > 0, pre, 0.01 * pre) * 100, rtol=1e-6)


def test_a_users_subclass_of_a_loss_is_not_trusted():
    class Counting(nn.MSELoss):
        def __init__(self):
            super().__init__()
            self.calls = []

        def forward(self, a, b):
            self.calls.append(1)  # Python state: a replay would skip it
            return super().forward(a, b) * len(self.calls)

    loss_fn = Counting()
    x = ok.tensor(np.ones(3, np.float32))
    got = [loss_fn(x, x * 2).item() for _ in range(4)]
    assert got == [1.0, 2.0, 3.0, 4.0] and "_onnxkit_compiled" not in loss_fn.__dict__


def test_settings_and_index_checks_of_a_compiled_model():
    class Pick(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.scale = nn.Linear(3, 3), 1.0

        def forward(self, x, idx):
            return self.fc(x)[idx] * self.scale

    model = Pick()
    model.compile()
    x = ok.tensor(np.eye(3, dtype=np.float32))
    for _ in range(3):
        out = model(x, ok.tensor(np.array([0, 2])))
    assert out.node.op_type == "Macro"
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        model(x, ok.tensor(np.array([0, 3])))
    base = model(x, ok.tensor(np.array([1]))).numpy()
    model.scale = 2.0
    np.testing.assert_allclose(model(x, ok.tensor(np.array([1]))).numpy(), 2 * base, rtol=1e-6)


class Seq(nn.Module):
    """Embedding, a Transformer encoder layer (attention, LayerNorm, dropout) and an LSTM (onnxkit's
    own autodiff.Function inside, recorded once with the replayed forward)."""

    def __init__(self, lstm):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1, batch_first=True)
        self.lstm = nn.LSTM(8, 8, batch_first=True) if lstm else None
        self.head = nn.Linear(8, 3)

    def forward(self, tokens):
        h = self.enc(self.emb(tokens))
        if self.lstm is not None:
            h = self.lstm(h)[0]
        return self.head(h[:, -1])


@pytest.mark.parametrize("lstm", [False, True])
def test_sequence_models_train_the_same_compiled(lstm):
    def run(compiled):
        model = _model(lambda: Seq(lstm), compiled, seed=1)
        tokens = ok.tensor(np.random.default_rng(0).integers(0, 20, (4, 5)))
        return _fit(model, ok.optim.AdamW(model.parameters(), lr=0.01), tokens, ok.tensor(np.array([0, 1, 2, 1])))
    plain, compiled = run(False), run(True)
    _assert_same_run(plain, compiled)
    assert compiled[2][-1] == "Macro"


class Positions(nn.Module):
    """Makes tensors in forward: positions with ok.arange (a constant: replayed) and, when `noisy`,
    ok.randn noise (new values each call: never replayed)."""

    def __init__(self, noisy=False):
        super().__init__()
        self.pos, self.noisy = nn.Embedding(8, 4), noisy

    def forward(self, x):
        h = x + self.pos(ok.arange(x.size(1)))
        return h + ok.randn(*h.shape) if self.noisy else h


@pytest.mark.parametrize("noisy", [False, True])
def test_tensors_made_in_forward(noisy):
    def run(compiled):
        model = _model(lambda: Positions(noisy), compiled)
        x = ok.tensor(np.ones((2, 5, 4), np.float32))
        outs = [model(x) for _ in range(6)]
        return [o.node.op_type for o in outs], [o.numpy() for o in outs]
    (_, want), (kinds, got) = run(False), run(True)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert (kinds[-1] == "Macro") == (not noisy)


ZOO = {  # the model zoo (onnxkit.models), each with an input batch and its loss
    "lenet": (lambda: lenet.LeNet5(), (4, 1, 28, 28), 10),
    "resnet": (lambda: resnet.ResNet(), (2, 1, 28, 28), 10),
    "bilstm-dropout": (lambda: seq_classifier.SeqClassifier(8, 4, hidden_size=16, num_layers=2,
                                                            bidirectional=True, dropout=0.3), (5, 7, 8), 4),
    "gru": (lambda: seq_classifier.SeqClassifier(8, 4, hidden_size=16, num_layers=2, bidirectional=False,
                                                 dropout=0.2, cell="gru"), (5, 7, 8), 4),
    "autoencoder": (lambda: autoencoder.ConvAutoencoder(1, (8, 16)), (3, 1, 16, 16), None),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_train_and_evaluate_the_same_compiled(name):
    make, shape, classes = ZOO[name]
    rng = np.random.default_rng(0)
    x = ok.tensor(rng.standard_normal(shape).astype(np.float32))
    y = ok.tensor(rng.integers(0, classes, shape[0])) if classes else x
    loss_fn = nn.CrossEntropyLoss() if classes else nn.MSELoss()

    def run(compiled):
        model = _model(make, compiled)
        losses, state, kinds = _fit(model, ok.optim.Adam(model.parameters(), lr=1e-2), x, y, loss_fn)
        model.eval()
        return losses, state, model(x).numpy(), kinds
    plain, compiled = run(False), run(True)
    _assert_same_run(plain, compiled)
    np.testing.assert_array_equal(plain[2], compiled[2])
    assert compiled[3][2:] == ["Macro", "Macro"]


def test_an_imported_onnx_model_compiles_and_fine_tunes_the_same(tmp_path):
    """ok.load's module replays an ONNX graph node by node (its own method names must not meet the
    compiled state's attribute): compiled, it fine-tunes exactly as plain."""
    import onnx
    from onnx import helper as h, numpy_helper
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((6, 3)).astype(np.float32)
    graph = h.make_graph(
        [h.make_node("MatMul", ["x", "w1"], ["h"]), h.make_node("Relu", ["h"], ["r"]),
         h.make_node("MatMul", ["r", "w2"], ["y"])], "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    path = tmp_path / "mlp.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=9), path)
    x = ok.tensor(rng.standard_normal((5, 4)).astype(np.float32))
    y = ok.tensor(rng.integers(0, 3, 5))

    def run(compiled):
        model = _model(lambda: ok.load(str(path)), compiled)
        return _fit(model, ok.optim.SGD(model.parameters(), lr=0.1), x, y)
    plain, compiled = run(False), run(True)
    _assert_same_run(plain, compiled)
    assert compiled[2][-1] == "Macro"
