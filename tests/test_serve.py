"""onnx-run serve / onnxkit.serve: the Open Inference Protocol (KServe v2) on 127.0.0.1, talked to
with tritonclient.http and plain HTTP; bad requests get 4xx + {"error"} and the server keeps
serving; dynamic batching; the CLI process starts, answers and shuts down gracefully."""
import concurrent.futures
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

pytest.importorskip("starlette", reason="onnx-run serve needs the serve extra: pip install -e '.[serve]'")
uvicorn = pytest.importorskip("uvicorn", reason="onnx-run serve needs the serve extra: pip install -e '.[serve]'")
requests = pytest.importorskip("requests", reason="the serve tests' client needs requests (test extra)")

import onnxkit as ok  # noqa: E402
from onnxkit import nn  # noqa: E402
from onnxkit.serve import create_app  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """uvicorn in a thread of the test process, bound to a free loopback port; always stopped."""

    def __init__(self, model, name, **kw):
        self.port = free_port()
        self.app = create_app(model, name, device="cpu", **kw)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive()


def _torch_model(path):
    import torch
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 5))
    torch.onnx.export(net.eval(), (torch.randn(2, 1, 8, 8),), str(path), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      dynamo=False)


def _helper_model(path):
    """Two inputs of different dtypes and a static shape (no batching possible)."""
    g = helper.make_graph([helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
                           helper.make_node("Mul", ["a", "nf"], ["y"])], "g",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3]),
                           helper.make_tensor_value_info("n", TensorProto.INT64, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(path))


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    ok.manual_seed(0)
    ok.export(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)), [ok.Input("x", ("N", 4))],
              path=str(d / "mlp.onnx"))
    _torch_model(d / "cnn.onnx")
    _helper_model(d / "hand.onnx")
    return d


@pytest.fixture(scope="module")
def cnn(paths):
    with ThreadServer(str(paths / "cnn.onnx"), "cnn", max_body_bytes=64 << 10, max_batch=16, max_delay_ms=20) as s:
        yield s


def reference(path, feeds):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def infer_json(url, name, inputs, **extra):
    body = {"inputs": [{"name": n, "shape": list(v.shape), "datatype": dt, "data": v.ravel().tolist()}
                       for n, (dt, v) in inputs.items()], **extra}
    return requests.post(f"{url}/v2/models/{name}/infer", json=body, timeout=30)


# ----- protocol with plain HTTP --------------------------------------------------------------------
def test_health_metadata_ready(cnn):
    assert requests.get(cnn.url + "/v2/health/live", timeout=5).status_code == 200
    assert requests.get(cnn.url + "/v2/health/ready", timeout=5).status_code == 200
    assert requests.get(cnn.url + "/v2/models/cnn/ready", timeout=5).status_code == 200
    meta = requests.get(cnn.url + "/v2/models/cnn", timeout=5).json()
    assert meta["name"] == "cnn"
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 5]}]
    assert "binary_tensor_data" in requests.get(cnn.url + "/v2", timeout=5).json()["extensions"]


def test_infer_json_matches_onnxruntime(cnn, paths):
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    r = infer_json(cnn.url, "cnn", {"image": ("FP32", x)}, id="req-1")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["model_name"] == "cnn" and d["id"] == "req-1"
    (out,) = d["outputs"]
    assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [3, 5]
    np.testing.assert_allclose(np.array(out["data"], np.float32).reshape(3, 5),
                               reference(paths / "cnn.onnx", {"image": x})["logits"], rtol=1e-5, atol=1e-6)


def _good(url):
    x = np.zeros((1, 1, 8, 8), np.float32)
    return infer_json(url, "cnn", {"image": ("FP32", x)}).status_code == 200


@pytest.mark.parametrize("case,status,fragment", [
    ("malformed", 400, "malformed JSON"),
    ("not_object", 400, "JSON object"),
    ("no_inputs", 400, "inputs"),
    ("unknown_input", 400, "unknown input"),
    ("datatype", 400, "datatype"),
    ("shape", 400, "shape"),
    ("rank", 400, "shape"),
    ("count", 400, "values for shape"),
    ("not_numbers", 400, "not FP32"),
    ("unknown_output", 400, "unknown output"),
    ("unknown_model", 404, "unknown model"),
    ("too_big", 413, "limit"),
    ("too_big_chunked", 413, "limit"),
    ("binary_overrun", 400, "binary"),
    ("get_infer", 405, ""),
    ("no_route", 404, ""),
])
def test_bad_requests_get_4xx_and_server_keeps_serving(cnn, case, status, fragment):
    url = cnn.url + "/v2/models/cnn/infer"
    good = {"name": "image", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.0] * 64}
    post = lambda body: requests.post(url, json=body, timeout=10)  # noqa: E731
    r = {
        "malformed": lambda: requests.post(url, data=b'{"inputs": [', timeout=10),
        "not_object": lambda: post([1, 2]),
        "no_inputs": lambda: post({"inputs": []}),
        "unknown_input": lambda: post({"inputs": [dict(good, name="nope")]}),
        "datatype": lambda: post({"inputs": [dict(good, datatype="INT64")]}),
        "shape": lambda: post({"inputs": [dict(good, shape=[1, 2, 8, 4])]}),
        "rank": lambda: post({"inputs": [dict(good, shape=[64])]}),
        "count": lambda: post({"inputs": [dict(good, data=[0.0] * 63)]}),
        "not_numbers": lambda: post({"inputs": [dict(good, data=["a"] * 64)]}),
        "unknown_output": lambda: post({"inputs": [good], "outputs": [{"name": "nope"}]}),
        "unknown_model": lambda: requests.post(cnn.url + "/v2/models/other/infer", json={"inputs": [good]}, timeout=10),
        "too_big": lambda: requests.post(url, data=b" " * (65 << 10), timeout=10),
        "too_big_chunked": lambda: requests.post(url, data=iter([b" " * 8192] * 10), timeout=10),
        "binary_overrun": lambda: requests.post(
            url, data=json.dumps({"inputs": [dict(good, data=None, parameters={"binary_data_size": 256})]}).encode()
            + b"\0" * 16, headers={"Inference-Header-Content-Length": str(len(json.dumps(
                {"inputs": [dict(good, data=None, parameters={"binary_data_size": 256})]})))}, timeout=10),
        "get_infer": lambda: requests.get(url, timeout=10),
        "no_route": lambda: requests.get(cnn.url + "/v3/nothing", timeout=10),
    }[case]()
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"]
    assert _good(cnn.url)  # still serving


# ----- tritonclient --------------------------------------------------------------------------------------
def test_tritonclient_binary_and_json(cnn, paths):
    httpclient = pytest.importorskip("tritonclient.http", reason="the stock-client test needs tritonclient[http] (test extra)")
    client = httpclient.InferenceServerClient(f"127.0.0.1:{cnn.port}", concurrency=4)
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("cnn")
        assert client.get_model_metadata("cnn")["inputs"][0]["shape"] == [-1, 1, 8, 8]
        x = np.random.default_rng(1).standard_normal((4, 1, 8, 8)).astype(np.float32)
        want = reference(paths / "cnn.onnx", {"image": x})["logits"]
        for binary_in, binary_out in [(True, True), (False, False), (True, False), (False, True)]:
            inp = httpclient.InferInput("image", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary_in)
            out = httpclient.InferRequestedOutput("logits", binary_data=binary_out)
            res = client.infer("cnn", [inp], outputs=[out])
            np.testing.assert_allclose(res.as_numpy("logits"), want, rtol=1e-5, atol=1e-6)
        inp = httpclient.InferInput("image", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        np.testing.assert_allclose(client.infer("cnn", [inp]).as_numpy("logits"), want, rtol=1e-5, atol=1e-6)
        bad = httpclient.InferInput("image", [4, 64], "FP32")
        bad.set_data_from_numpy(x.reshape(4, 64))
        with pytest.raises(Exception, match="shape"):
            client.infer("cnn", [bad])
        with pytest.raises(Exception, match="unknown model"):
            client.infer("missing", [inp])
        assert client.is_server_live()
    finally:
        client.close()


def test_dynamic_batching_combines_concurrent_requests(cnn, paths):
    before = requests.get(cnn.url + "/v2/models/cnn/stats", timeout=5).json()["model_stats"][0]
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((int(rng.integers(1, 3)), 1, 8, 8)).astype(np.float32) for _ in range(24)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        rs = list(pool.map(lambda x: infer_json(cnn.url, "cnn", {"image": ("FP32", x)}), xs))
    for x, r in zip(xs, rs):
        assert r.status_code == 200, r.text
        got = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(len(x), 5)
        np.testing.assert_allclose(got, reference(paths / "cnn.onnx", {"image": x})["logits"], rtol=1e-5, atol=1e-5)
    after = requests.get(cnn.url + "/v2/models/cnn/stats", timeout=5).json()["model_stats"][0]
    rows = after["inference_count"] - before["inference_count"]
    runs = after["execution_count"] - before["execution_count"]
    assert rows == sum(len(x) for x in xs) and runs < len(xs)  # some requests shared a run


def test_lone_request_does_not_wait_for_the_batching_delay(paths):
    """One client at a time: the batcher runs each request at once instead of waiting max-delay-ms
    for others (at one client the batching server answers as fast as the plain one)."""
    x = np.ones((1, 1, 8, 8), np.float32)
    with ThreadServer(str(paths / "cnn.onnx"), "cnn", max_batch=16, max_delay_ms=500) as s:
        infer_json(s.url, "cnn", {"image": ("FP32", x)})
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            assert infer_json(s.url, "cnn", {"image": ("FP32", x)}).status_code == 200
            times.append(time.perf_counter() - t0)
        assert sorted(times)[2] < 0.25, times  # median well under the 0.5 s delay
        stats = requests.get(s.url + "/v2/models/cnn/stats", timeout=5).json()["model_stats"][0]
        assert stats["execution_count"] == stats["inference_count"] == 6


def test_onnxkit_and_helper_models_without_batching(paths):
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    with ThreadServer(str(paths / "mlp.onnx"), "mlp", max_batch=8) as s:
        assert s.app.state.batching
        r = infer_json(s.url, "mlp", {"x": ("FP32", x)})
        np.testing.assert_allclose(np.array(r.json()["outputs"][0]["data"], np.float32).reshape(5, 2),
                                   reference(paths / "mlp.onnx", {"x": x})["output"], rtol=1e-5, atol=1e-6)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    n = np.full((2, 3), 2, np.int64)
    with ThreadServer(onnx.load(str(paths / "hand.onnx")), "hand", max_batch=8) as s:
        assert not s.app.state.batching  # static first dim
        r = infer_json(s.url, "hand", {"a": ("FP32", a), "n": ("INT64", n)})
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == (a * 2).ravel().tolist()
        r = infer_json(s.url, "hand", {"a": ("FP32", a), "n": ("FP32", n.astype(np.float32))})
        assert r.status_code == 400 and "INT64" in r.json()["error"]
        r = infer_json(s.url, "hand", {"a": ("FP32", a)})
        assert r.status_code == 400 and "missing input" in r.json()["error"]


# ----- the CLI process -------------------------------------------------------------------------------
def test_cli_serve_process_binds_loopback_and_stops_gracefully(paths):
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "onnxkit.cli", "serve", str(paths / "cnn.onnx"), "--port", str(port),
                          "--name", "net", "--max-batch", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline, up = time.time() + 60, False
        while time.time() < deadline and not up and p.poll() is None:
            try:
                up = requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200
            except requests.ConnectionError:
                time.sleep(0.2)
        assert up, p.stderr.read() if p.poll() is not None else "not up"
        x = np.ones((2, 1, 8, 8), np.float32)
        assert infer_json(f"http://127.0.0.1:{port}", "net", {"image": ("FP32", x)}).status_code == 200
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
        assert p.returncode == 0, err
        assert "127.0.0.1" in err and "Traceback" not in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_cli_serve_refuses_bad_model_with_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    r = subprocess.run([sys.executable, "-m", "onnxkit.cli", "serve", str(bad), "--port", str(free_port())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error:")


def test_cli_serve_port_in_use_is_one_line(paths):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = subprocess.run([sys.executable, "-m", "onnxkit.cli", "serve", str(paths / "cnn.onnx"), "--port",
                            str(s.getsockname()[1])], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: cannot listen on 127.0.0.1:")
    assert len(r.stderr.strip().splitlines()) == 1
