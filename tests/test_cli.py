"""onnx-run: every subcommand on models exported by onnxkit, by torch.onnx.export and built with
onnx.helper; the documented JSON fields and exit codes; one-line errors (exit 2) on every bad-input
path, tracebacks only with --debug; untrusted files (garbage, truncated, hostile external data)."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import onnxkit as ok
from onnxkit import nn
from onnxkit.cli import main

KINDS = ["onnxkit", "torch", "helper"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(r):
    lines = [line for line in r.output.splitlines() if line.strip()]
    return r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.output


# ----- models --------------------------------------------------------------------------------
def _torch_model(path):
    import torch
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.bn = torch.nn.BatchNorm2d(4)
            self.fc = torch.nn.Linear(4 * 6 * 6, 5)

        def forward(self, x):
            return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))

    torch.onnx.export(Net().eval(), (torch.randn(2, 1, 8, 8),), str(path), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      dynamo=False, opset_version=17)


def _helper_model(path):
    """Two inputs, an initializer and a Conv + BatchNormalization + Identity + Dropout chain that
    `optimize` should shrink."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array((rng.random(4) + 0.5).astype(np.float32), "scale"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "bias"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "mean"),
             numpy_helper.from_array((rng.random(4) + 0.5).astype(np.float32), "var")]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"]),
             helper.make_node("Identity", ["b"], ["i"]), helper.make_node("Dropout", ["i"], ["d"]),
             helper.make_node("Relu", ["d"], ["r"]), helper.make_node("Add", ["r", "shift"], ["y"])]
    g = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8]),
                                          helper.make_tensor_value_info("shift", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    ok.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    ok.export(m, [ok.Input("x", ("N", 4))], path=str(d / "onnxkit.onnx"))
    _torch_model(d / "torch.onnx")
    _helper_model(d / "helper.onnx")
    return {k: d / f"{k}.onnx" for k in KINDS}


def ort_run(path, feeds):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


# ----- version, layout -----------------------------------------------------------------------
def test_version():
    r = invoke("version")
    assert r.exit_code == 0 and r.output.startswith("onnxkit ")


def test_console_script_is_the_cli_folder():
    import onnxkit.cli
    assert os.path.basename(os.path.dirname(onnxkit.cli.__file__)) == "cli"
    r = subprocess.run(["onnx-run", "version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("onnxkit ")


def test_every_subcommand_has_help_with_an_example():
    for name in ["version", "info", "check", "run", "bench", "optimize", "train-graph", "plot", "view", "serve"]:
        r = invoke(name, "--help")
        assert r.exit_code == 0, (name, r.output)
        assert name == "version" or "Example" in r.output, name


# ----- info ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,inputs,outputs,params", [
    ("onnxkit", [{"name": "x", "dtype": "float32", "shape": ["N", 4]}],
     [{"name": "output", "dtype": "float32", "shape": ["N", 3]}], 4 * 8 + 8 + 8 * 3 + 3),
    ("torch", [{"name": "image", "dtype": "float32", "shape": ["batch", 1, 8, 8]}],
     [{"name": "logits", "dtype": "float32", "shape": ["batch", 5]}], 4 * 9 + 4 + 144 * 5 + 5),
    ("helper", [{"name": "x", "dtype": "float32", "shape": ["N", 1, 8, 8]},
                {"name": "shift", "dtype": "float32", "shape": [1]}],
     [{"name": "y", "dtype": "float32", "shape": ["N", 4, 6, 6]}], 36 + 4 * 4),
])
def test_info_json(models, kind, inputs, outputs, params):
    r = invoke("info", models[kind], "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert set(d) == {"ir_version", "opset", "producer", "inputs", "outputs", "nodes", "op_types", "parameters",
                      "parameter_bytes"}
    assert d["inputs"] == inputs and d["outputs"] == outputs
    assert d["parameters"] == params and d["parameter_bytes"] == 4 * params
    assert d["nodes"] == sum(d["op_types"].values()) > 0
    assert "ai.onnx" in d["opset"]
    if kind == "torch":
        assert d["producer"].startswith("pytorch ")


def test_info_counts_subgraph_nodes_and_unknown_dims(tmp_path):
    then = helper.make_graph([helper.make_node("Identity", ["a"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Neg", ["a"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)], "g",
                          [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                           helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    p = tmp_path / "if.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(p))
    d = json.loads(invoke("info", p, "--json").stdout)
    assert d["nodes"] == 3 and d["op_types"] == {"If": 1, "Identity": 1, "Neg": 1}
    assert d["inputs"][1]["shape"] == [None, 2] and d["inputs"][0]["dtype"] == "bool"
    assert d["outputs"][0]["shape"] is None


def test_info_text(models):
    r = invoke("info", models["torch"])
    assert r.exit_code == 0 and "(batch, 1, 8, 8)" in r.output and "parameters: 765" in r.output


# ----- check ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_check_valid(models, kind):
    r = invoke("check", models[kind], "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"valid": True, "errors": []}


def test_check_invalid_lists_problems_exit_1(tmp_path):
    g = helper.make_graph([helper.make_node("Add", ["a", "missing"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
                          "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("z", TensorProto.INT64, [3])])
    p = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(p))
    r = invoke("check", p, "--json")
    assert r.exit_code == 1
    d = json.loads(r.stdout)
    assert d["valid"] is False and len(d["errors"]) >= 2 and "missing" in " ".join(d["errors"])
    r = invoke("check", p)
    assert r.exit_code == 1 and r.output.startswith("invalid:")
    r = invoke("run", p)  # run refuses it before onnxruntime sees it
    assert one_error_line(r) and "onnx-run check" in r.output


def test_check_reports_onnxruntime_load_failure(tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["a"], ["y"], domain="my.domain")], "g",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    p = tmp_path / "custom.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("my.domain", 1)],
                                ir_version=10), str(p))
    r = invoke("check", p, "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 1 and d["valid"] is False and d["errors"][-1].startswith("onnxruntime:")


# ----- run ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_run_random_inputs_json(models, kind):
    r = invoke("run", models[kind], "--batch", 3, "--json")
    assert r.exit_code == 0, r.output
    outs = json.loads(r.stdout)["outputs"]
    (name, s), = outs.items()
    assert s["shape"][0] == 3 and s["dtype"] == "float32" and set(s) == {"shape", "dtype", "mean", "min", "max"}
    assert s["min"] <= s["mean"] <= s["max"]


def test_run_given_inputs_and_save_match_onnxruntime(models, tmp_path):
    x = np.random.default_rng(1).standard_normal((2, 1, 8, 8)).astype(np.float32)
    shift = np.array([0.5], np.float32)
    np.savez(tmp_path / "feeds.npz", x=x, shift=shift)
    r = invoke("run", models["helper"], "-i", tmp_path / "feeds.npz", "--save", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "y" in r.output and "(2, 4, 6, 6)" in r.output
    want = ort_run(models["helper"], {"x": x, "shift": shift})["y"]
    np.testing.assert_allclose(np.load(tmp_path / "out" / "y.npy"), want, rtol=1e-6)
    np.save(tmp_path / "x.npy", x[:1])
    r = invoke("run", models["torch"], "-i", f"image={tmp_path / 'x.npy'}", "--save", tmp_path / "o2")
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(np.load(tmp_path / "o2" / "logits.npy"), ort_run(models["torch"], {"image": x[:1]})["logits"],
                               rtol=1e-5, atol=1e-6)


def test_run_dims(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 3])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "T", 3])])
    p = tmp_path / "seq.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(p))
    shape = lambda *a: json.loads(invoke("run", p, "--json", *a).stdout)["outputs"]["y"]["shape"]  # noqa: E731
    assert shape() == [1, 1, 3]
    assert shape("--batch", 4) == [4, 1, 3]
    assert shape("--batch", 4, "--dim", "T=7") == [4, 7, 3]
    assert shape("--dim", "B=2", "--dim", "T=5") == [2, 5, 3]


def test_run_onnxkit_model_matches_module(tmp_path):
    ok.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    p = tmp_path / "m.onnx"
    ok.export(m, [ok.Input("x", ("N", 4))], path=str(p))
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = invoke("run", p, "-i", f"x={tmp_path / 'x.npy'}", "--save", tmp_path / "out")
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(np.load(tmp_path / "out" / "output.npy"), m(ok.tensor(x)).numpy(), rtol=1e-6)


# ----- bench ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_bench_json(models, kind):
    r = invoke("bench", models[kind], "--runs", 20, "--warmup", 2, "--batch", 4, "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert set(d) == {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "runs", "device", "throughput_per_s"}
    assert d["runs"] == 20 and d["device"] == "cpu" and 0 < d["p50_ms"] <= d["p90_ms"] <= d["p99_ms"]
    assert d["throughput_per_s"] == pytest.approx(1e3 / d["mean_ms"] * 4)


# ----- optimize -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_optimize_same_outputs_no_more_nodes_passes_check(models, kind, tmp_path):
    out = tmp_path / "opt.onnx"
    r = invoke("optimize", models[kind], "-o", out)
    assert r.exit_code == 0, r.output
    assert invoke("check", out).exit_code == 0
    a, b = onnx.load(str(models[kind])), onnx.load(str(out))
    assert len(b.graph.node) <= len(a.graph.node)
    assert all(n.domain in ("", "ai.onnx") for n in b.graph.node)
    assert {o.domain for o in b.opset_import} <= {"", "ai.onnx"}  # no unused com.microsoft & co. imports
    s = ort.InferenceSession(str(models[kind]), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal([d if isinstance(d, int) else 2 for d in i.shape]).astype(np.float32)
             for i in s.get_inputs()}
    for k, v in ort_run(models[kind], feeds).items():
        np.testing.assert_allclose(ort_run(out, feeds)[k], v, rtol=1e-4, atol=1e-5)


def test_optimize_folds_batchnorm_drops_identity_dropout_and_converts_opset(models, tmp_path):
    out = tmp_path / "opt.onnx"
    r = invoke("optimize", models["helper"], "-o", out, "--opset", 21)
    assert r.exit_code == 0, r.output
    m = onnx.load(str(out))
    assert [n.op_type for n in m.graph.node] == ["Conv", "Relu", "Add"]
    assert next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) == 21
    r = invoke("optimize", models["helper"], "-o", tmp_path / "x.onnx", "--level", "extended")
    assert r.exit_code == 0 and invoke("check", tmp_path / "x.onnx").exit_code == 0


def test_optimize_folds_batchnorm_into_gemm(tmp_path):
    rng = np.random.default_rng(0)
    for trans_b in (0, 1):
        w = rng.standard_normal((8, 4) if trans_b else (4, 8)).astype(np.float32)
        inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "C"),
                 numpy_helper.from_array((rng.random(8) + 0.5).astype(np.float32), "s"),
                 numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"),
                 numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "m"),
                 numpy_helper.from_array((rng.random(8) + 0.5).astype(np.float32), "v")]
        nodes = [helper.make_node("Gemm", ["x", "W", "C"], ["g"], transB=trans_b, alpha=0.5, beta=2.0),
                 helper.make_node("BatchNormalization", ["g", "s", "b", "m", "v"], ["y"], epsilon=1e-3)]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], inits)
        src, out = tmp_path / f"gb{trans_b}.onnx", tmp_path / f"gb{trans_b}.opt.onnx"
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(src))
        r = invoke("optimize", src, "-o", out)
        assert r.exit_code == 0, r.output
        m = onnx.load(str(out))
        assert [n.op_type for n in m.graph.node] == ["Gemm"] and invoke("check", out).exit_code == 0
        x = rng.standard_normal((3, 4)).astype(np.float32)
        np.testing.assert_allclose(ort_run(out, {"x": x})["y"], ort_run(src, {"x": x})["y"], rtol=1e-4, atol=1e-5)


def test_optimize_folds_shape_computations_with_onnxscript(tmp_path):
    """x / sqrt(x.shape[-1]) with symbolic leading dims: onnxruntime's offline pass cannot fold the
    Shape (the shape is not fully known); onnxscript's optimizer can, leaving one Div."""
    pytest.importorskip("onnxscript", reason="onnxscript's optimizer comes with the interchange extra")
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=-1),
             helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("Sqrt", ["sf"], ["r"]), helper.make_node("Div", ["x", "r"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "T", 16])])
    src, out = tmp_path / "scale.onnx", tmp_path / "scale.opt.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(src))
    r = invoke("optimize", src, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["nodes_before"] == 4 and d["nodes_after"] == 1 and any("onnxscript" in n for n in d["notes"])
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["Div"] and invoke("check", out).exit_code == 0
    x = np.random.default_rng(0).standard_normal((2, 3, 16)).astype(np.float32)
    np.testing.assert_allclose(ort_run(out, {"x": x})["y"], ort_run(src, {"x": x})["y"], rtol=1e-6)


# ----- train-graph ------------------------------------------------------------------------------
def test_train_graph_artifacts_drive_without_onnxkit(tmp_path):
    import torch
    from safetensors.numpy import load_file
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    src = tmp_path / "mlp.onnx"
    torch.onnx.export(net, (torch.randn(2, 4),), str(src), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    out = tmp_path / "art"
    r = invoke("train-graph", src, "-o", out, "--loss", "cross_entropy", "--optimizer", "adam", "--lr", 0.05,
               "--freeze", "0.bias")
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["format"] == "onnxkit-training/1" and meta["data"] == ["x"] and meta["target"] == "target"
    assert meta["random"] == [] and meta["step"] == {"input": "step", "first": 1}
    frozen = [e for e in meta["state"] if e["key"] == "0.bias"]
    assert frozen and frozen[0]["output"] is None
    training = onnx.load(str(out / meta["training_model"]))
    assert all(n.domain in ("", "ai.onnx") for n in training.graph.node)
    state = load_file(str(out / meta["state_file"]))
    assert {e["input"] for e in meta["state"]} == set(state)
    sess = ort.InferenceSession(str(out / "training.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    losses, bias0 = [], state["params/0.bias"].copy()
    for step in range(meta["step"]["first"], meta["step"]["first"] + 30):
        feeds = {"x": x, "target": y, "step": np.array(step, np.int64), "seed": np.array(0, np.int64)}
        feeds.update({k: np.array(v, np.float64) for k, v in meta["hyperparameters"].items()})
        feeds.update(state)
        res = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        losses.append(float(res[meta["loss"]]))
        for e in meta["state"]:
            if e["output"]:
                state[e["input"]] = res[e["output"]]
    assert losses[-1] < 0.5 * losses[0]
    np.testing.assert_array_equal(state["params/0.bias"], bias0)


def test_train_graph_regression_loss_on_helper_model(models, tmp_path):
    r = invoke("train-graph", models["onnxkit"], "-o", tmp_path / "a", "--loss", "mse", "--optimizer", "sgd")
    assert r.exit_code == 0, r.output
    assert invoke("check", tmp_path / "a" / "training.onnx").exit_code == 0


def test_train_graph_bad_usage(models, tmp_path):
    assert one_error_line(invoke("train-graph", models["onnxkit"], "-o", tmp_path, "--loss", "nope"))
    assert one_error_line(invoke("train-graph", models["onnxkit"], "-o", tmp_path, "--loss", "mse",
                                 "--freeze", "nothing*"))
    assert one_error_line(invoke("train-graph", models["onnxkit"], "-o", tmp_path, "--loss", "mse",
                                 "--output", "nope"))


# ----- plot, view ---------------------------------------------------------------------------------
def test_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="onnx-run plot needs matplotlib: pip install -e '.[train]'")
    (tmp_path / "metrics.json").write_text(json.dumps(
        {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.7, 0.5], "val_accuracy": [0.5, 0.7, 0.8],
         "confusion_matrix": [[5, 1], [2, 7]]}))
    r = invoke("plot", tmp_path)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "confusion.png").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert one_error_line(invoke("plot", empty))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_view_serves_netron_on_loopback(models):
    pytest.importorskip("netron", reason="onnx-run view needs netron: pip install -e '.[view]'")
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "onnxkit.cli", "view", str(models["torch"]), "--port", str(port),
                          "--no-browse"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, status = time.time() + 30, None
        while time.time() < deadline and status is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status
            except OSError:
                time.sleep(0.2)
        assert status == 200
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ----- bad input: one line, exit 2; --debug -------------------------------------------------------
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, models):
    d = tmp_path_factory.mktemp("bad")
    (d / "garbage.onnx").write_bytes(b"\x08\x07garbage that is not a model\xff\xfe" * 10)
    (d / "empty.onnx").write_bytes(b"")
    raw = models["torch"].read_bytes()
    (d / "truncated.onnx").write_bytes(raw[: len(raw) // 2])
    (d / "weights.pt").write_bytes(b"\x80\x02}q\x00.")
    (d / "zip.onnx").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    return d


@pytest.mark.parametrize("sub", ["info", "check", "run", "bench", "optimize", "train-graph", "serve"])
@pytest.mark.parametrize("bad", ["garbage.onnx", "empty.onnx", "truncated.onnx", "weights.pt", "zip.onnx", "missing.onnx"])
def test_unreadable_model_is_one_line_exit_2(bad_files, tmp_path, sub, bad):
    extra = {"optimize": ["-o", tmp_path / "o.onnx"], "train-graph": ["-o", tmp_path, "--loss", "mse"]}.get(sub, [])
    r = invoke(sub, bad_files / bad, *extra)
    assert one_error_line(r), r.output


@pytest.mark.parametrize("args,message", [
    (["run", "{m}", "-i", "x=missing.npy"], "No such file"),
    (["run", "{m}", "-i", "nonsense"], "NAME=FILE.npy"),
    (["run", "{m}", "--dim", "N"], "NAME=SIZE"),
    (["run", "{m}", "--device", "tpu"], "tpu"),
    (["run", "{m}", "--bogus"], "bogus"),
    (["bench", "{m}", "--runs", "0"], "runs"),
    (["run"], "MODEL"),
    (["nosuchcommand"], "nosuchcommand"),
    (["optimize", "{m}"], "-o"),
])
def test_bad_usage_is_one_line_exit_2(models, args, message):
    r = invoke(*[a.replace("{m}", str(models["onnxkit"])) for a in args])
    assert one_error_line(r), r.output
    assert message in r.output


def test_bad_feeds_name_the_input(models, tmp_path):
    np.save(tmp_path / "y.npy", np.ones((2, 4), np.float32))
    r = invoke("run", models["onnxkit"], "-i", f"y={tmp_path / 'y.npy'}")
    assert one_error_line(r) and "unexpected input(s) ['y']" in r.output
    np.save(tmp_path / "x.npy", np.ones((2, 5), np.float32))
    r = invoke("run", models["onnxkit"], "-i", f"x={tmp_path / 'x.npy'}")
    assert one_error_line(r) and "'x'" in r.output
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    r = invoke("run", models["onnxkit"], "-i", f"x={tmp_path / 'obj.npy'}")
    assert one_error_line(r)  # never unpickled


def test_debug_shows_traceback_and_exits_2(models):
    r = invoke("--debug", "run", models["onnxkit"], "-i", "x=/nonexistent.npy")
    assert r.exit_code == 2 and "Traceback" in r.output
    r = subprocess.run(["onnx-run", "--debug", "info", "/nonexistent.onnx"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    r = subprocess.run(["onnx-run", "info", "/nonexistent.onnx", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1


# ----- untrusted external data -----------------------------------------------------------------------
def _external_model(d, location):
    """A model whose initializer `w` lives in external data at `location` (not checked by onnx)."""
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "16")):
        w.external_data.add(key=k, value=v)
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w])
    p = d / "ext.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(p))
    return p


def test_external_data_inside_the_directory_is_read(tmp_path):
    (tmp_path / "w.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    p = _external_model(tmp_path, "w.bin")
    r = invoke("run", p, "--json")
    assert r.exit_code == 0, r.output
    assert invoke("check", p).exit_code == 0


@pytest.mark.parametrize("location", ["/etc/passwd", "../secret.bin", "sub/../../secret.bin", "link.bin", "nothere.bin",
                                      "short.bin"])
def test_external_data_outside_the_directory_is_refused(tmp_path, location):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00" * 64)
    d = tmp_path / "model"
    d.mkdir()
    (d / "sub").mkdir()
    os.symlink(secret, d / "link.bin")
    (d / "short.bin").write_bytes(b"\x00" * 8)
    p = _external_model(d, location)
    for sub in ("info", "check", "run", "serve"):
        r = invoke(sub, p)
        assert one_error_line(r), (sub, r.output)
        assert "refusing" in r.output or "missing" in r.output or "beyond" in r.output


# ----- fuzz: mutated real models end in a clean error or a valid run, never a crash or a hang ------------
_FUZZ_WORKER = r"""
import sys, json, random
import numpy as np
from click.testing import CliRunner
from onnxkit.cli import main
import onnxkit
runner = CliRunner()
for line in sys.stdin:
    path = line.strip()
    r = runner.invoke(main, ["check", path])
    ok = r.exit_code in (0, 1, 2) and (r.exit_code != 2 or r.output.startswith("error:"))
    for api in (onnxkit.load, onnxkit.Session):  # a Python exception is a clean error; a crash kills the worker
        try:
            api(path)
        except Exception:
            pass
    sys.stdout.write("RESULT " + json.dumps({"path": path, "code": r.exit_code, "ok": ok,
                                 "exc": None if r.exit_code in (0, 1, 2) else repr(r.exception)}) + "\n")
    sys.stdout.flush()
"""


def _mutations(raw, model, rng, n):
    """Seeded byte flips, truncations, and field edits through the protobuf API."""
    for k in range(n):
        kind = k % 4
        if kind == 0:
            b = bytearray(raw)
            for _ in range(rng.integers(1, 8)):
                b[rng.integers(len(b))] = rng.integers(256)
            yield bytes(b)
        elif kind == 1:
            yield raw[: rng.integers(1, len(raw))]
        else:
            m = onnx.ModelProto()
            m.CopyFrom(model)
            node = m.graph.node[rng.integers(len(m.graph.node))]
            edit = rng.integers(7)
            if edit == 0:
                node.op_type = ["Foo", "Conv", "Loop", "", "Gemm"][rng.integers(5)]
            elif edit == 1 and node.input:
                node.input[rng.integers(len(node.input))] = ["nope", "", m.graph.output[0].name][rng.integers(3)]
            elif edit == 2:
                m.graph.input[0].type.tensor_type.elem_type = int(rng.integers(0, 25))
            elif edit == 3 and m.graph.initializer:
                t = m.graph.initializer[rng.integers(len(m.graph.initializer))]
                t.dims.append(int(rng.integers(0, 1 << 20)))
            elif edit == 4:
                m.opset_import[0].version = int(rng.integers(-2, 40))
            elif edit == 5:
                m.ir_version = int(rng.integers(-1, 20))
            elif m.graph.initializer:  # external data at a hostile or broken location
                t = m.graph.initializer[rng.integers(len(m.graph.initializer))]
                t.ClearField("raw_data")
                t.ClearField("float_data")
                t.data_location = TensorProto.EXTERNAL
                loc = ["/etc/passwd", "../../x.bin", "a/../../b", "", "nothere.bin", "\\..\\x", "C:/x"][rng.integers(7)]
                t.external_data.add(key="location", value=loc)
                t.external_data.add(key="length", value=str(int(rng.integers(-5, 1 << 30))))
            yield m.SerializeToString()


def test_fuzz_check_load_session_never_crash(models, tmp_path):
    """1,050 seeded mutations through `onnx-run check`, ok.load and ok.Session in one worker process."""
    cases = []
    rng = np.random.default_rng(0)
    for kind in KINDS:
        raw = models[kind].read_bytes()
        model = onnx.load_from_string(raw)
        for i, data in enumerate(_mutations(raw, model, rng, 350)):
            p = tmp_path / f"{kind}_{i}.onnx"
            p.write_bytes(data)
            cases.append(str(p))
    results, todo = [], list(cases)
    while todo:  # one worker; restarted after a case kills it (a crash is a finding)
        w = subprocess.Popen([sys.executable, "-c", _FUZZ_WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        try:
            out, _ = w.communicate("\n".join(todo) + "\n", timeout=120)
        except subprocess.TimeoutExpired:
            w.kill()
            out, _ = w.communicate()
        done = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
        results += done
        todo = todo[len(done):]
        if todo:
            results.append({"path": todo[0], "code": None, "ok": False, "exc": f"worker died: {w.returncode}"})
            todo = todo[1:]
    bad = [r for r in results if not r["ok"]]
    assert len(results) == len(cases) and not bad, bad[:5]


def test_watchdog_ends_a_hanging_load_with_one_line(models):
    """A file that makes loading hang (here: a parser slowed down on purpose) ends in exit 2 and one
    line after ONNXKIT_LOAD_TIMEOUT seconds, not a hung command."""
    code = ("import sys, time, onnxkit.model_files as mf\n"
            "orig = mf.parse\n"
            "mf.parse = lambda p: (time.sleep(30), orig(p))[1]\n"
            "from onnxkit.cli import main\n"
            "main(['check', sys.argv[1]])\n")
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", code, str(models["onnxkit"])], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "ONNXKIT_LOAD_TIMEOUT": "0.5"})
    assert r.returncode == 2 and time.time() - t0 < 20
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "took longer than 0.5 s" in r.stderr
