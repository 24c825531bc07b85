"""ok.export and ok.load: checker, symbolic dims, torch-exported models at opsets 17/18,
round trips, initializer names, custom domains, subgraphs, external data."""
import io
import os

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import onnxkit as ok
from onnxkit import nn


class LeNet5(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 6, 5, padding=2)
        self.c2 = torch.nn.Conv2d(6, 16, 5)
        self.f1, self.f2, self.f3 = torch.nn.Linear(400, 120), torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
        x = x.flatten(1)
        return self.f3(torch.relu(self.f2(torch.relu(self.f1(x)))))


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))


def _cnn_bn():
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))
    with torch.no_grad():  # non-trivial running stats
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 1.5)
    return m


MODELS = {"mlp": (_mlp, (2, 20)), "lenet5": (LeNet5, (2, 1, 28, 28)), "cnn_bn": (_cnn_bn, (2, 3, 12, 12))}


def torch_export(name, opset):
    torch.manual_seed(0)
    factory, shape = MODELS[name]
    m = factory().eval()
    f = io.BytesIO()
    torch.onnx.export(m, torch.randn(*shape), f, opset_version=opset, dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return m, onnx.load_from_string(f.getvalue()), shape


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("name", list(MODELS))
def test_load_torch_export_matches_torch(name, opset):
    tm, model, shape = torch_export(name, opset)
    imported = ok.load(model)
    x = np.random.default_rng(0).standard_normal((3,) + shape[1:]).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(imported(x).numpy(), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(imported(x=ok.tensor(x)).numpy(), want, rtol=1e-4, atol=1e-5)
    # export(load(m)) gives the same outputs as m, with a symbolic batch, at the default opset
    again = ok.export(imported, imported.graph_inputs())
    assert again.opset_import[0].version == 21 and again.ir_version == 10
    onnx.checker.check_model(again, full_check=True)
    assert again.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    for batch in (1, 4):
        xb = np.random.default_rng(batch).standard_normal((batch,) + shape[1:]).astype(np.float32)
        got = ok.Session(again).run({"x": xb})["y"]  # the imported model's own output name
        ref = ok.Session(model).run({"x": xb})["y"]
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_initializer_names_become_parameters_and_buffers():
    _, model, _ = torch_export("mlp", 17)
    names = {t.name for t in model.graph.initializer}
    imported = ok.load(model)
    assert {n for n, _ in imported.named_parameters()} == names
    shape_const = helper.make_tensor("shape_c", TensorProto.INT64, [2], [1, -1])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Reshape", ["x", "shape_c"], ["y"])], "g", [x], [y], [shape_const])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    imp = ok.load(m)
    assert [n for n, _ in imp.named_buffers()] == ["shape_c"] and not list(imp.parameters())
    assert imp(np.ones((3, 4), np.float32)).numpy().shape == (1, 12)


def test_loaded_parameters_are_trainable():
    _, model, _ = torch_export("mlp", 18)
    imported = ok.load(model)
    x = ok.tensor(np.ones((2, 20), np.float32))
    loss = imported(x).sum()
    grads = ok.grad(loss, list(imported.parameters()))
    assert all(g is not None and g.numpy().shape == p.numpy().shape for g, p in zip(grads, imported.parameters()))


def test_custom_domain_ops_pass_through():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MyOp", ["r"], ["y"], domain="my.domain", k=3)]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("my.domain", 1)], ir_version=10)
    imported = ok.load(m)
    out = ok.export(imported, imported.graph_inputs(), check=False)
    custom = [n for n in out.graph.node if n.domain == "my.domain"]
    assert len(custom) == 1 and custom[0].op_type == "MyOp" and custom[0].attribute[0].i == 3
    assert any(o.domain == "my.domain" for o in out.opset_import)


def test_subgraph_attributes_are_kept():
    """An If node whose branches read an outer-scope value survives load -> export."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    then_g = helper.make_graph([helper.make_node("Add", ["d", "d"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["d"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [3])])
    nodes = [helper.make_node("Relu", ["x"], ["d"]), helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0])),
             helper.make_node("Greater", ["s", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 21)],
                          ir_version=10)
    imported = ok.load(m)
    for v in ([1.0, -0.5, 2.0], [-3.0, 1.0, -1.0]):
        arr = np.array(v, np.float32)
        d = np.maximum(arr, 0)
        want = d + d if arr.sum() > 0 else -d
        np.testing.assert_allclose(imported(arr).numpy(), want)
        again = ok.export(imported, imported.graph_inputs())
        np.testing.assert_allclose(ok.Session(again).run({"x": arr})["y"], want)


def test_export_names_and_checker(tmp_path):
    m = nn.Sequential(nn.Linear(6, 3), nn.Linear(3, 2))
    path = tmp_path / "mlp.onnx"
    model = ok.export(m, [ok.Input("features", ("batch", 6))], path=str(path))
    assert os.path.exists(path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert [i.name for i in model.graph.input] == ["features"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert {t.name for t in model.graph.initializer} == {"0.weight", "0.bias", "1.weight", "1.bias"}
    assert all(n.domain == "" for n in model.graph.node)
    assert model.ir_version == 10 and model.opset_import[0].version == 21


def test_export_multiple_outputs_and_names():
    def fn(x):
        return x * 2, x.sum(1)
    model = ok.export(fn, [ok.Input("x", ("N", 3))])
    assert [o.name for o in model.graph.output] == ["output_0", "output_1"]
    model = ok.export(fn, [ok.Input("x", ("N", 3))], output_names=["double", "total"])
    out = ok.Session(model).run({"x": np.ones((2, 3), np.float32)})
    np.testing.assert_allclose(out["total"], [3, 3])


def test_export_other_opset():
    model = ok.export(nn.Linear(3, 2), [ok.Input("x", ("N", 3))], opset=18)
    assert model.opset_import[0].version == 18
    onnx.checker.check_model(model, full_check=True)


def test_export_training_flag_sets_mode_and_restores():
    m = nn.Linear(3, 2)
    m.train()
    ok.export(m, [ok.Input("x", ("N", 3))])
    assert m.training


def test_external_data_roundtrip_and_path_traversal(tmp_path):
    from onnxkit.exporter import save
    m = nn.Linear(64, 64)
    model = ok.export(m, [ok.Input("x", ("N", 64))])
    path = tmp_path / "big.onnx"
    save(model, str(path), external=True)
    assert os.path.exists(str(path) + ".data")
    imported = ok.load(str(path))
    x = np.ones((2, 64), np.float32)
    np.testing.assert_allclose(imported(x).numpy(), m(ok.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
    evil = onnx.load(str(path), load_external_data=False)
    for t in evil.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../outside.data"
    onnx.save(evil, str(tmp_path / "evil.onnx"))
    with pytest.raises(ValueError, match="the model's directory"):
        ok.load(str(tmp_path / "evil.onnx"))


def test_load_errors():
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        ok.load("/nonexistent/model.onnx")
    _, model, _ = torch_export("mlp", 17)
    imported = ok.load(model)
    with pytest.raises(TypeError, match="missing input"):
        imported()
    with pytest.raises(TypeError, match="unexpected input 'z'"):
        imported(z=np.ones(2))
    # named when the module is called, not by onnxruntime when the result is evaluated
    with pytest.raises(TypeError, match="input 'x': expected dtype float32, got float64"):
        imported(np.ones((2, 20)))
    with pytest.raises(ValueError, match=r"input 'x': expected shape \(\?, 20\), got \(2, 7\)"):
        imported(np.ones((2, 7), np.float32))


def test_load_names_a_dangling_input():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    g = helper.make_graph([helper.make_node("Add", ["x", "ghost"], ["y"], name="add0")], "g", [x], [y])
    imported = ok.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10))
    with pytest.raises(ValueError, match="node add0 reads 'ghost', which no earlier node produces"):
        imported(np.ones(2, np.float32))


@pytest.mark.parametrize("inputs,output_names,match", [
    (["x", "x"], None, r"input name\(s\) \['x'\] are used more than once"),
    (["x", "y"], ["y"], "output name 'y' is already taken"),
])
def test_export_rejects_clashing_names(inputs, output_names, match):
    ins = [ok.Input(n, ("N", 3)) for n in inputs]
    with pytest.raises(ValueError, match=match):
        ok.export(lambda a, b: a + b, ins, output_names=output_names)


def test_local_functions_and_domain_versions_survive_load_and_export():
    """Regression: re-exported models declared custom domains at version 1 and dropped local functions."""
    fn = helper.make_function("local.fn", "ScaledRelu", ["a"], ["b"],
                              [helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Add", ["r", "r"], ["b"])],
                              opset_imports=[helper.make_opsetid("", 21)])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    m = helper.make_model(helper.make_graph([helper.make_node("ScaledRelu", ["x"], ["y"], domain="local.fn")],
                                            "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("local.fn", 3)],
                          functions=[fn], ir_version=10)
    onnx.checker.check_model(m, full_check=True)
    imported = ok.load(m)
    data = np.array([[-1.0, 2.0, 0.5]], np.float32)
    np.testing.assert_allclose(imported(data).numpy(), 2 * np.maximum(data, 0))  # eager run needs the function
    again = ok.export(imported, imported.graph_inputs())
    assert {(o.domain, o.version) for o in again.opset_import} >= {("local.fn", 3)}
    assert [f.name for f in again.functions] == ["ScaledRelu"]
    np.testing.assert_allclose(ok.Session(again).run({"x": data})["y"], 2 * np.maximum(data, 0))


def test_an_imported_model_reads_parameters_replaced_by_load_state_dict_assign(tmp_path):
    """load_state_dict(assign=True) puts new Parameter objects in the module: the imported graph must read
    them (it kept its own name -> tensor map before, so the old values stayed in use)."""
    from onnx import helper as h, numpy_helper
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    graph = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"])], "g",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 2])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])],
                         initializer=[numpy_helper.from_array(w, "w")])
    path = tmp_path / "mm.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=9), path)
    model = ok.load(str(path))
    x = ok.tensor(np.ones((1, 2), np.float32))
    np.testing.assert_allclose(model(x).numpy(), np.ones((1, 2)) @ w)
    model.load_state_dict({"w": np.full((2, 3), 2.0, np.float32)}, assign=True)
    np.testing.assert_allclose(model(x).numpy(), np.full((1, 3), 4.0))
