"""Training artifacts (DESIGN.md): a folder any ONNX runtime can drive with nothing but meta.json."""
import json

import numpy as np
import onnx
import pytest

import onnxkit as ok
from onnxkit import nn, optim
from onnxkit.serialization import load_state_dict_file

RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 4)).astype(np.float32)
Y = RNG.integers(0, 3, 16)


def _model(dropout=0.0):
    ok.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(dropout), nn.BatchNorm1d(8), nn.Linear(8, 3))


def drive(folder, steps, run=None):
    """A runtime-neutral driver reading only meta.json and state.safetensors (as the JS driver does)."""
    import onnxruntime as ort
    meta = json.load(open(folder / "meta.json"))
    state = load_state_dict_file(folder / meta["state_file"])
    if run is None:
        sess = ort.InferenceSession(str(folder / meta["training_model"]))
        names = [o.name for o in sess.get_outputs()]
        run = lambda feeds: dict(zip(names, sess.run(None, feeds)))  # noqa: E731
    losses = []
    for step in range(meta["step"]["first"], meta["step"]["first"] + steps):
        feeds = {meta["data"][0]: X, meta["target"]: Y, meta["step"]["input"]: np.array(step, np.int64),
                 meta["seed"]["input"]: np.array(meta["seed"]["value"], np.int64)}
        feeds.update({k: np.array(v, np.float64) for k, v in meta["hyperparameters"].items()})
        feeds.update(state)
        out = run(feeds)
        losses.append(float(out[meta["loss"]]))
        state.update({e["input"]: out[e["output"]] for e in meta["state"] if e["output"]})
    return np.array(losses), state, meta


@pytest.mark.parametrize("make_opt", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9), lambda p: optim.Adam(p, lr=1e-2)],
                         ids=["sgd-momentum", "adam"])
def test_artifacts_follow_the_trainer_exactly(tmp_path, make_opt):
    m = _model()
    meta = ok.training_artifacts(m, nn.CrossEntropyLoss(), make_opt(m.parameters()), X, Y, tmp_path)
    assert meta["format"] == "onnxkit-training/1" and meta["random"] == []
    for f in ("training.onnx", "eval.onnx"):
        model = onnx.load(tmp_path / f)
        onnx.checker.check_model(model, full_check=True)
        assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
    losses, state, meta = drive(tmp_path, 5)
    m2 = _model()
    tr = ok.Trainer(m2, nn.CrossEntropyLoss(), make_opt(m2.parameters()))
    want = [tr.step(X, Y) for _ in range(5)]
    np.testing.assert_allclose(losses, want, rtol=1e-5, atol=1e-6)
    sd = m2.state_dict()
    for e in meta["state"]:
        if e["kind"] != "optimizer":
            np.testing.assert_allclose(state[e["input"]], sd[e["key"]], rtol=1e-5, atol=1e-6, err_msg=e["key"])


def test_state_file_keys_are_the_training_inputs_and_frozen_parameters_have_no_output(tmp_path):
    m = _model()
    meta = ok.training_artifacts(m, nn.CrossEntropyLoss(), optim.SGD(m.parameters(), lr=0.1), X, Y, tmp_path,
                                 frozen=["0.*"])
    inputs = {i.name for i in onnx.load(tmp_path / "training.onnx").graph.input}
    assert set(load_state_dict_file(tmp_path / "state.safetensors")) <= inputs
    by_key = {e["key"]: e for e in meta["state"]}
    assert by_key["0.weight"]["output"] is None and by_key["4.weight"]["output"] == "updated/params/4.weight"
    assert by_key["3.running_mean"]["kind"] == "buffer" and by_key["3.running_mean"]["output"]


def test_dropout_masks_come_from_seed_and_step_and_agree_across_runtimes(tmp_path):
    m = _model(dropout=0.5)
    ok.training_artifacts(m, nn.CrossEntropyLoss(), optim.SGD(m.parameters(), lr=0.1), X, Y, tmp_path)
    a, _, _ = drive(tmp_path, 3)
    b, _, _ = drive(tmp_path, 3)
    np.testing.assert_array_equal(a, b)  # a pure function of seed and step
    from onnx.reference import ReferenceEvaluator
    ref = ReferenceEvaluator(str(tmp_path / "training.onnx"))
    names = [o.name for o in ref.proto_.graph.output]
    c, _, _ = drive(tmp_path, 3, run=lambda feeds: dict(zip(names, ref.run(None, feeds))))
    np.testing.assert_allclose(a, c, rtol=1e-4)
    assert len(set(np.round(a, 6))) == 3


def test_trainer_with_in_graph_randomness_follows_the_artifacts_with_dropout(tmp_path):
    m = _model(dropout=0.5)
    ok.training_artifacts(m, nn.CrossEntropyLoss(), optim.Adam(m.parameters(), lr=1e-2), X, Y, tmp_path, seed=7)
    losses, _, _ = drive(tmp_path, 4)
    m2 = _model(dropout=0.5)
    tr = ok.Trainer(m2, nn.CrossEntropyLoss(), optim.Adam(m2.parameters(), lr=1e-2), seed=7, random_in_graph=True)
    np.testing.assert_allclose([tr.step(X, Y) for _ in range(4)], losses, rtol=1e-5, atol=1e-6)
