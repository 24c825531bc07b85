"""onnxkit.workflow and `onnx-run train` / `onnx-run plot`: config validation (one line naming the key,
exit 2), resume after an interruption (a KeyboardInterrupt mid-epoch, and SIGINT to a real process)
reaching the same result as an uninterrupted run, the PNGs, and serving the exported model."""
import json
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("sklearn", reason="the bundled datasets ship with scikit-learn: pip install -e '.[train]'")

from onnxkit import workflow  # noqa: E402
from onnxkit.cli import main  # noqa: E402

# small and fast: breast_cancer, an MLP with dropout (so the random stream matters for resume)
SMALL = {"name": "small", "data": "breast_cancer", "model": {"name": "mlp", "hidden": [16], "dropout": 0.2},
         "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "scheduler": {"name": "step", "step_size": 2},
         "epochs": 4, "batch_size": 32, "seed": 0, "device": "cpu", "export": {"training_artifacts": False}}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write(tmp_path, cfg, name="cfg.json"):
    p = tmp_path / name
    p.write_text(json.dumps(cfg))
    return p


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


# ----- validation ---------------------------------------------------------------------------------
BAD = [
    ({"epoch": 3}, "unknown key 'epoch'", "epochs"),
    ({"epochs": "three"}, "epochs: expected an integer", None),
    ({"epochs": True}, "epochs: expected an integer", None),
    ({"batch_size": 0}, "batch_size: must be >= 1", None),
    ({"model": {"name": "transformer9"}}, "model.name: unknown name 'transformer9'", "seq_classifier"),
    ({"model": {"name": "mlp", "hiddn": [4]}}, "model: unknown key 'hiddn'", "hidden"),
    ({"model": {"name": "mlp", "dropout": "lots"}}, "model.dropout: expected a number", None),
    ({"model": {"name": "lenet5"}}, "model.name: 'lenet5' does not do binary", "mlp"),
    ({"model": {"name": "resnet"}}, "model.name: 'resnet' takes image data", "mlp"),
    ({"data": {"name": "digits", "size": 32}, "model": {"name": "lenet5"}, "loss": "cross_entropy"},
     "data.size: lenet5 takes 28x28", "28"),
    ({"data": "digits", "model": {"name": "resnet", "depth": 9}, "loss": "cross_entropy"}, "model: depth must be",
     None),
    ({"loss": {"name": "bce_with_logits", "reduction": "none"}}, "loss.reduction: unknown name 'none'", "sum"),
    ({"optimizer": {"name": "adam", "lr": -1.0}}, "optimizer: Invalid learning rate", None),
    ({"loss": "hinge"}, "loss.name: unknown name 'hinge'", "bce_with_logits"),
    ({"loss": "cross_entropy"}, "loss: 'cross_entropy' does not fit task binary", "bce_with_logits"),
    ({"optimizer": {"name": "adam", "betas": 3}}, "optimizer.betas: expected a list", None),
    ({"optimizer": {"name": "lbfgs"}}, "optimizer.name: unknown name 'lbfgs'", "adamw"),
    ({"scheduler": {"name": "step"}}, "missing key 'scheduler.step_size'", None),
    ({"device": "tpu"}, "device: unknown name 'tpu'", "cuda"),
    ({"data": "mnist"}, "data.name: unknown name 'mnist'", "breast_cancer"),
    ({"data": {"name": "digits", "size": "big"}}, "data.size: expected an integer", None),
    ({"task": "regression"}, "task: data 'breast_cancer' is a binary task", None),
    ({"export": {"format": "tflite"}}, "export: unknown key 'format'", "opset"),
]


@pytest.mark.parametrize("change,message,allowed", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_config_is_one_line_naming_the_key_exit_2(tmp_path, change, message, allowed):
    cfg = {**SMALL, **change}
    r = cli("train", write(tmp_path, cfg), "-o", tmp_path / "run")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config: ") and message in lines[0], r.stderr
    if allowed:
        assert "allowed" in lines[0] and allowed in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("missing", ["data", "model"])
def test_missing_section(tmp_path, missing):
    cfg = {k: v for k, v in SMALL.items() if k != missing}
    r = cli("train", write(tmp_path, cfg))
    assert r.exit_code == 2 and r.stderr.strip() == f"error: config: missing key '{missing}'"


def test_not_json_and_yaml(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text("{data: ")
    r = cli("train", p)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "not valid JSON" in r.stderr
    yaml = pytest.importorskip("yaml", reason="YAML configs need PyYAML: pip install -e '.[train]'")
    y = tmp_path / "small.yaml"
    y.write_text(yaml.safe_dump(SMALL))
    cfg = workflow.load_config(y)
    assert cfg["model"] == SMALL["model"] and cfg["loss"]["name"] == "bce_with_logits"  # the baseline head's loss


def test_shipped_configs_validate():
    folder = os.path.join(os.path.dirname(__file__), "..", "models", "configs")
    for f in os.listdir(folder):
        cfg = workflow.load_config(os.path.join(folder, f))
        assert cfg["seed"] == 0


# ----- a full run through the CLI, the pictures, plot, serve ------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("wf")
    cfg = write(d, SMALL)
    r = cli("train", cfg, "-o", d / "run", "--quiet")
    assert r.exit_code == 0, r.output + r.stderr
    assert "test accuracy" in r.stdout
    return d / "run"


def test_cli_run_writes_everything(small_run):
    m = json.loads((small_run / "metrics.json").read_text())
    assert m["epochs"] == 4 and m["test"]["accuracy"] >= 0.9
    assert set(m["history"]) == {"loss", "val_loss", "accuracy", "val_accuracy"}
    assert m["onnx_test"]["accuracy"] == m["test"]["accuracy"]
    assert (small_run / "model.onnx").is_file() and not (small_run / "training").exists()


def test_existing_run_needs_resume(small_run):
    r = cli("train", small_run.parent / "cfg.json", "-o", small_run)
    assert r.exit_code == 2 and "--resume" in r.stderr


def test_pngs_and_plot_regenerates_them(small_run):
    import matplotlib.image as mpimg
    curves, confusion = small_run / "curves.png", small_run / "confusion.png"
    assert png_size(curves) == (1200, 400) and png_size(confusion) == (500, 500)
    assert mpimg.imread(curves).shape[:2] == (400, 1200)   # decodes as an image
    os.remove(curves)
    os.remove(confusion)
    r = cli("plot", small_run)
    assert r.exit_code == 0, r.output + r.stderr
    assert png_size(curves) == (1200, 400) and png_size(confusion) == (500, 500)
    assert mpimg.imread(confusion).shape[:2] == (500, 500)
    from onnxkit import plotting   # the Python API draws the same files
    os.remove(curves)
    assert [os.path.basename(p) for p in plotting.plot_run(small_run)] == ["curves.png", "confusion.png"]
    assert png_size(curves) == (1200, 400)


def test_regression_run_has_curves_but_no_confusion(tmp_path):
    cfg = {**SMALL, "data": "diabetes", "model": {"name": "mlp", "hidden": [8]}, "scheduler": None,
           "optimizer": {"name": "adam", "lr": 0.01}, "epochs": 2}
    m = workflow.train(cfg, tmp_path, progress=False)
    assert m["task"] == "regression" and "r2" in m["test"] and "linear_baseline_mse" in m
    assert png_size(tmp_path / "curves.png") == (1200, 400) and not (tmp_path / "confusion.png").exists()


def test_exported_model_runs_and_serves(small_run):
    from onnxkit.models import data
    ds = data.load("breast_cancer")
    np.save(small_run / "x.npy", ds.x_test[:5])
    r = cli("run", small_run / "model.onnx", "-i", f"x={small_run / 'x.npy'}", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["outputs"]["output"]["shape"] == [5, 1]
    pytest.importorskip("starlette", reason="onnx-run serve needs the serve extra: pip install -e '.[serve]'")
    uvicorn = pytest.importorskip("uvicorn", reason="onnx-run serve needs the serve extra: pip install -e '.[serve]'")
    requests = pytest.importorskip("requests", reason="the serve tests' client needs requests (test extra)")
    import socket
    import threading
    from onnxkit.serve import create_app
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(str(small_run / "model.onnx"), "cancer", device="cpu"),
                                           host="127.0.0.1", port=port, log_level="error"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    try:
        deadline = time.time() + 20
        while not server.started:
            assert time.time() < deadline
            time.sleep(0.02)
        x = ds.x_test[:5]
        body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
        resp = requests.post(f"http://127.0.0.1:{port}/v2/models/cancer/infer", json=body, timeout=30)
        assert resp.status_code == 200, resp.text
        logits = np.array(resp.json()["outputs"][0]["data"], np.float32).reshape(5, 1)
        import onnxruntime as ort
        ref = ort.InferenceSession(str(small_run / "model.onnx"), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(logits, ref.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)
    finally:
        server.should_exit = True
        t.join(15)


# ----- interruption and resume ------------------------------------------------------------------------
def test_keyboard_interrupt_mid_epoch_then_resume_matches(tmp_path):
    reference = workflow.train(SMALL, tmp_path / "ref", progress=False)

    def stop(epoch, batch, loss):
        if epoch == 3 and batch == 5:
            raise KeyboardInterrupt

    with pytest.raises(workflow.Interrupted) as e:
        workflow.train(SMALL, tmp_path / "cut", progress=False, on_batch=stop)
    assert e.value.epoch == 3 and "checkpoint of epoch 2" in str(e.value) and "--resume" in str(e.value)
    assert os.path.isfile(e.value.checkpoint) and not (tmp_path / "cut" / "model.onnx").exists()
    resumed = workflow.train(SMALL, tmp_path / "cut", resume=True, progress=False)
    assert resumed["history"] == reference["history"]
    assert resumed["test"] == reference["test"]
    # more epochs on an existing run: --resume with a larger `epochs` trains on; other changes are refused
    with pytest.raises(workflow.ConfigError, match="optimizer"):
        workflow.train({**SMALL, "optimizer": {"name": "adam"}}, tmp_path / "cut", resume=True, progress=False)
    more = workflow.train({**SMALL, "epochs": 5}, tmp_path / "cut", resume=True, progress=False)
    assert more["epochs"] == 5 and more["history"]["loss"][:4] == reference["history"]["loss"]


def test_sigint_to_the_process_then_cli_resume_matches(tmp_path):
    cfg = {**SMALL, "epochs": 12, "batch_size": 8, "scheduler": None}
    path = write(tmp_path, cfg)
    reference = workflow.train(cfg, tmp_path / "ref", progress=False)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "onnxkit.cli", "train", str(path), "-o", str(run), "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoint.safetensors").exists():   # after epoch 1: interrupt somewhere later
            assert p.poll() is None and time.time() < deadline, p.communicate()
            time.sleep(0.01)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    if p.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted in epoch") and "--resume" in err
    assert (run / "checkpoint.safetensors").is_file() and not (run / "model.onnx").exists()
    r = cli("train", path, "-o", run, "--resume", "--quiet")
    assert r.exit_code == 0, r.output + r.stderr
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["history"] == reference["history"] and resumed["test"] == reference["test"]
