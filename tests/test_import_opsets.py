"""ok.load converts older opsets up to 21 and keeps newer ones: what onnxkit builds on a newer model
(forward, gradients, re-export) is emitted at that model's opset."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxkit as ok


def _mlp(opset, with_rms=False):
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    inits = [w]
    if with_rms:  # RMSNormalization exists from opset 23 on
        nodes[-1] = helper.make_node("Relu", ["h"], ["r"])
        nodes.append(helper.make_node("RMSNormalization", ["r", "s"], ["y"], axis=-1))
        inits.append(numpy_helper.from_array(np.ones(3, np.float32), "s"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


@pytest.mark.parametrize("opset", [13, 21, 23, 24])
def test_older_converted_newer_kept_and_reexported_at_its_opset(opset):
    m = _mlp(opset)
    imp = ok.load(m)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    want = np.maximum(x @ numpy_helper.to_array(m.graph.initializer[0]), 0)
    np.testing.assert_allclose(imp(ok.tensor(x)).numpy(), want, rtol=1e-5)
    out = ok.export(imp)
    onnx.checker.check_model(out, full_check=True)
    assert next(o.version for o in out.opset_import if o.domain == "") == max(opset, 21)
    np.testing.assert_allclose(ok.Session(out).run({"x": x})["y"], want, rtol=1e-5)


def test_an_op_that_exists_only_in_a_newer_opset_runs_and_reexports():
    imp = ok.load(_mlp(23, with_rms=True))
    x = ok.tensor(np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32))
    y = imp(x)
    h = np.maximum(x.numpy() @ dict(imp.named_parameters())["w"].numpy(), 0)
    np.testing.assert_allclose(y.numpy(), h / np.sqrt((h ** 2).mean(-1, keepdims=True) + 1e-5), rtol=1e-4, atol=1e-5)
    out = ok.export(imp)
    onnx.checker.check_model(out, full_check=True)
    assert next(o.version for o in out.opset_import if o.domain == "") == 23


def test_a_newer_model_does_not_raise_the_opset_of_unrelated_graphs():
    ok.load(_mlp(24))
    from onnxkit import nn
    m = ok.export(nn.Linear(2, 3), [ok.Input("x", ("N", 2))])
    assert next(o.version for o in m.opset_import if o.domain == "") == 21
