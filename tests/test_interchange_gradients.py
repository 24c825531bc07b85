"""Gradients through what exporters emit, without any exporter installed: weights held in Constant nodes
promoted to parameters on request (`ok.load(..., trainable_constants=True)`), integer shape arithmetic
passed over without a rule, and a float op with no rule named with its node."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxkit as ok
from onnxkit import nn


def _model(nodes, inputs, outputs, inits=(), opsets=(("", 21),)):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], ir_version=10)


def _constant_weights_model():
    """y = (x @ W + b) * 0.5, W and b in Constant nodes (as constant-folding exporters write them), and the
    scale a scalar Constant; the output reshaped by a Shape -> Gather -> Concat int64 chain."""
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal(2).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(w)),
             helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(b)),
             helper.make_node("Constant", [], ["half"], value=numpy_helper.from_array(np.array(0.5, np.float32))),
             helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"]),
             helper.make_node("Mul", ["z", "half"], ["s"]),
             helper.make_node("Shape", ["s"], ["shp"]), helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0),
             helper.make_node("Concat", ["n", "two"], ["target"], axis=0),
             helper.make_node("Reshape", ["s", "target"], ["y"])]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([2], np.int64), "two")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], inits)
    return m, w, b


def test_constants_stay_constants_by_default():
    m, _, _ = _constant_weights_model()
    imp = ok.load(m)
    assert list(imp.named_parameters()) == []


def test_trainable_constants_become_parameters_and_train():
    m, w, b = _constant_weights_model()
    imp = ok.load(m, trainable_constants=True)
    params = dict(imp.named_parameters())
    assert set(params) == {"W", "b"}  # the scalar 0.5 stays a constant
    x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(imp(x).numpy(), (x @ w + b) * 0.5, rtol=1e-6)
    gw, gb = ok.grad(imp(ok.tensor(x)).sum(), [params["W"], params["b"]])
    np.testing.assert_allclose(gw.numpy(), np.broadcast_to(x.sum(0)[:, None] * 0.5, (3, 2)), rtol=1e-5)
    np.testing.assert_allclose(gb.numpy(), np.full(2, 2.5), rtol=1e-6)
    y = np.random.default_rng(2).standard_normal((5, 2)).astype(np.float32)
    trainer = ok.Trainer(imp, nn.MSELoss(), ok.optim.SGD(imp.parameters(), lr=0.1))
    losses = [trainer.step(x, y) for _ in range(3)]
    assert losses[-1] < losses[0]
    again = ok.export(imp, imp.graph_inputs())  # the promoted weights are initializers now
    assert {"W", "b"} <= {t.name for t in again.graph.initializer}


def test_trainable_constants_by_predicate():
    m, _, _ = _constant_weights_model()
    imp = ok.load(m, trainable_constants=lambda name, arr: name == "b")
    assert [n for n, _ in imp.named_parameters()] == ["b"]


def test_float_op_without_rule_names_op_and_node():
    w = numpy_helper.from_array(np.ones((3,), np.float32), "w")
    nodes = [helper.make_node("Mul", ["x", "w"], ["h"]),
             helper.make_node("Frobnicate", ["h"], ["y"], domain="vendor.ops", name="frob_1")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w],
               opsets=(("", 21), ("vendor.ops", 1)))
    imp = ok.load(m)
    out = imp(ok.tensor(np.ones((2, 3), np.float32)))
    with pytest.raises(NotImplementedError, match=r"Frobnicate.*vendor\.ops.*frob_1"):
        ok.grad(out.sum(), [dict(imp.named_parameters())["w"]])


def test_map_weights_by_name_then_unique_value():
    """Renamed and transposed weights map back by value; equal-valued ones are ambiguous and reported."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    inits = [numpy_helper.from_array(w.T.copy(), "onnx::MatMul_7"),  # a Linear weight, renamed and transposed
             numpy_helper.from_array(np.ones(4, np.float32), "scale_a"),
             numpy_helper.from_array(np.ones(4, np.float32), "scale_b"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "fc.bias")]
    nodes = [helper.make_node("MatMul", ["x", "onnx::MatMul_7"], ["h"]), helper.make_node("Mul", ["h", "scale_a"], ["a"]),
             helper.make_node("Mul", ["a", "scale_b"], ["b"]), helper.make_node("Add", ["b", "fc.bias"], ["y"])]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    imp = ok.load(m)
    target = {"fc.weight": w, "fc.bias": numpy_helper.to_array(inits[3]), "norm.weight": np.ones(4, np.float32)}
    state, unmapped = imp.map_weights(target)
    assert set(state) == {"fc.weight", "fc.bias"}  # norm.weight equals two weights: not guessed
    np.testing.assert_array_equal(state["fc.weight"], w)
    assert sorted(unmapped) == ["scale_a", "scale_b"]
