"""ok.load of models with BatchNormalization: running statistics are buffers, eval()/train() switch
between running and batch statistics (updating them as torch does), Trainer on an imported model;
re-export keeps the imported model's input and output names."""
import io

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import onnxkit as ok
from onnxkit import nn, optim


def bn_mlp(random_stats):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    if random_stats:
        with torch.no_grad():
            m[1].running_mean.uniform_(-0.5, 0.5)
            m[1].running_var.uniform_(0.5, 1.5)
    return m


def bn_cnn():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.3), torch.nn.ReLU(),
                            torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    with torch.no_grad():
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 1.5)
    return m


def export_torch(m, shape, training=False):
    f = io.BytesIO()
    mode = torch.onnx.TrainingMode.TRAINING if training else torch.onnx.TrainingMode.EVAL
    m.train(training)
    torch.onnx.export(m, torch.randn(*shape), f, opset_version=17, dynamo=False, training=mode,
                      do_constant_folding=False,  # folding would fuse Conv + BatchNorm
                      input_names=["features"], output_names=["logits"],
                      dynamic_axes={"features": {0: "N"}, "logits": {0: "N"}})
    return onnx.load_from_string(f.getvalue())


CASES = {"mlp-default-stats": (lambda: bn_mlp(False), (5, 4)),   # torch shares zeros/ones with bias/weight
         "mlp-random-stats": (lambda: bn_mlp(True), (5, 4)),
         "cnn": (bn_cnn, (3, 2, 6, 6))}


@pytest.mark.parametrize("case", list(CASES))
def test_running_statistics_are_buffers_with_torchs_names(case):
    factory, shape = CASES[case]
    tm = factory()
    imported = ok.load(export_torch(tm, shape))
    torch_params = {n for n, _ in tm.named_parameters()}
    assert {n for n, _ in imported.named_parameters()} == torch_params
    buffers = dict(imported.named_buffers())
    for stat in ("1.running_mean", "1.running_var"):
        assert stat in buffers, sorted(buffers)
        np.testing.assert_allclose(buffers[stat].numpy(), getattr(tm[1], stat[2:]).numpy())
    assert not any("running" in n for n, _ in imported.named_parameters())


@pytest.mark.parametrize("case", list(CASES))
def test_eval_and_train_switch_batch_norm_like_torch(case):
    factory, shape = CASES[case]
    tm = factory()
    imported = ok.load(export_torch(tm, shape))
    assert not imported.training  # the file is an eval-mode graph: it runs as exported
    rng = np.random.default_rng(1)
    x1, x2 = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    tm.eval()
    np.testing.assert_allclose(imported(x1).numpy(), tm(torch.tensor(x1)).detach().numpy(), rtol=1e-4, atol=1e-5)
    imported.train()
    tm.train()
    for x in (x1, x2):  # batch statistics, running statistics updated on every call
        np.testing.assert_allclose(imported(x).numpy(), tm(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
    sd = imported.state_dict()
    np.testing.assert_allclose(sd["1.running_mean"], tm[1].running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sd["1.running_var"], tm[1].running_var.numpy(), rtol=1e-5, atol=1e-6)
    imported.eval()
    tm.eval()
    np.testing.assert_allclose(imported(x1).numpy(), tm(torch.tensor(x1)).detach().numpy(), rtol=1e-4, atol=1e-5)
    if case == "mlp-default-stats":  # the shared bias was not changed by the running-mean update
        np.testing.assert_allclose(sd["1.bias"], tm[1].bias.detach().numpy())


def test_trainer_on_an_imported_batch_norm_model_matches_torch():
    tm = bn_mlp(True)
    imported = ok.load(export_torch(tm, (5, 4))).train()
    tm.train()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
    trainer = ok.Trainer(imported, nn.CrossEntropyLoss(), optim.SGD(imported.parameters(), lr=0.1, momentum=0.9))
    for _ in range(3):
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        topt.step()
        np.testing.assert_allclose(trainer.step(x, y), loss.item(), rtol=1e-4)
    sd = imported.state_dict()
    for k, v in tm.state_dict().items():
        if k in sd:
            np.testing.assert_allclose(sd[k], v.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    assert "updated/buffers/1.running_mean" in {o.name for o in trainer.training_model.graph.output}


@pytest.mark.filterwarnings("ignore")  # torch's tracer warns about training-mode export
def test_a_training_mode_file_starts_in_train_mode_and_eval_uses_running_stats():
    tm = bn_mlp(True)
    model = export_torch(tm, (5, 4), training=True)
    imported = ok.load(model)
    assert imported.training
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    tm.train()
    np.testing.assert_allclose(imported(x).numpy(), tm(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
    imported.eval()
    tm.eval()
    np.testing.assert_allclose(imported(x).numpy(), tm(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_batch_norm_extra_outputs_are_the_updated_statistics():
    """A training-mode BatchNormalization whose running-stat outputs are graph outputs."""
    c = 3
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "mean_out", "var_out")]
    inits = [helper.make_tensor(n, TensorProto.FLOAT, [c], v) for n, v in
             (("s", [1.0] * c), ("b", [0.0] * c), ("m", [0.1, 0.2, 0.3]), ("v", [1.0, 2.0, 3.0]))]
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "mean_out", "var_out"],
                            momentum=0.8, training_mode=1)
    model = helper.make_model(helper.make_graph([node], "g", [x], outs, inits),
                              opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    imported = ok.load(model)
    assert imported.training and [n for n, _ in imported.named_buffers()] == ["m", "v"]
    data = np.random.default_rng(0).standard_normal((6, c)).astype(np.float32)
    y, mean_out, var_out = (t.numpy() for t in imported(data))
    want_mean = 0.8 * np.array([0.1, 0.2, 0.3]) + 0.2 * data.mean(0)
    want_var = 0.8 * np.array([1.0, 2.0, 3.0]) + 0.2 * data.var(0, ddof=1)  # torch's unbiased update
    np.testing.assert_allclose(mean_out, want_mean, rtol=1e-5)
    np.testing.assert_allclose(var_out, want_var, rtol=1e-5)
    np.testing.assert_allclose(imported.state_dict()["m"], want_mean, rtol=1e-5)
    np.testing.assert_allclose(y, (data - data.mean(0)) / np.sqrt(data.var(0) + 1e-5), rtol=1e-4, atol=1e-5)


def test_reexport_keeps_the_imported_input_and_output_names():
    tm = bn_mlp(True)
    model = export_torch(tm, (5, 4))
    imported = ok.load(model)
    x = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
    for again in (ok.export(imported, imported.graph_inputs()), ok.export(imported), ok.export(imported, [x])):
        assert [i.name for i in again.graph.input] == ["features"]
        assert [o.name for o in again.graph.output] == ["logits"]
        np.testing.assert_allclose(ok.Session(again).run({"features": x})["logits"],
                                   ok.Session(model).run({"features": x})["logits"], rtol=1e-5, atol=1e-6)
    # an explicit output_names= still wins; several outputs keep theirs in order
    assert [o.name for o in ok.export(imported, output_names=["scores"]).graph.output] == ["scores"]
    xin = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 2]) for n in ("pos", "neg")]
    two = helper.make_model(helper.make_graph([helper.make_node("Relu", ["a"], ["pos"]),
                                               helper.make_node("Neg", ["a"], ["neg"])], "g", [xin], outs),
                            opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    assert [o.name for o in ok.export(ok.load(two)).graph.output] == ["pos", "neg"]
    with pytest.raises(TypeError, match="needs `inputs`"):
        ok.export(nn.Linear(2, 2))
