"""onnxkit-train (js/): the same training artifacts driven by onnxruntime-node and by onnxruntime-web in
headless Chromium give Python's losses (the onnxruntime driver's and ok.Trainer(random_in_graph=True)'s),
the state they export round-trips into both, and the LeNet-5 digits demo page trains, charts, scores and
classifies a digit drawn with the mouse.

Needs node, js/node_modules and (for the browser tests) Debian's chromium: `bash scripts/setup_js.sh`
installs them and scripts/test.sh runs it first; without them these tests skip and say why."""
import importlib.util
import json
import os
import shutil
import signal
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import onnxkit as ok
from onnxkit import nn, optim
from onnxkit.serialization import load_state_dict_file

JS = Path(__file__).resolve().parent.parent / "js"
NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium")
STEPS = 20
TOL = dict(rtol=1e-5, atol=1e-6)  # float32 kernels; measured differences are ~1e-7 or exactly 0

needs_node = pytest.mark.skipif(
    NODE is None or not (JS / "node_modules" / "onnxruntime-node").is_dir(),
    reason="node or js/node_modules missing: run `bash scripts/setup_js.sh` (apt nodejs npm, npm ci in js/)")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or not (JS / "node_modules" / "playwright-core").is_dir(),
    reason="chromium or playwright-core missing: run `bash scripts/setup_js.sh` (apt chromium, npm ci in js/)")

RNG = np.random.default_rng(0)
XB = RNG.standard_normal((4, 16, 4)).astype(np.float32)  # 4 batches of 16 rows; step i trains on batch i % 4
YB = RNG.integers(0, 3, (4, 16)).astype(np.int64)


def _model(dropout=0.5):
    ok.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(dropout), nn.BatchNorm1d(8), nn.Linear(8, 3))


def _write(folder, dropout):
    m = _model(dropout)
    meta = ok.training_artifacts(m, nn.CrossEntropyLoss(), optim.Adam(m.parameters(), lr=1e-2), XB[0], YB[0], folder)
    ok.save({meta["data"][0]: XB, meta["target"]: YB}, folder / "batches.safetensors")
    return folder


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """An MLP with Dropout(0.5) and BatchNorm1d trained by Adam."""
    return _write(tmp_path_factory.mktemp("js-artifacts"), 0.5)


def _demo_module():
    """js/demo/make_artifacts.py as a module (the LeNet-5 digits demo's model and data)."""
    spec = importlib.util.spec_from_file_location("js_demo_make_artifacts", JS / "demo" / "make_artifacts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The demo's LeNet-5 digits artifacts (4 training batches of 64, Adam) and its module."""
    pytest.importorskip("sklearn", reason="the digits demo needs scikit-learn (the test extra)")
    mod = _demo_module()
    folder = tmp_path_factory.mktemp("js-digits")
    mod.main([str(folder), "--batches", "4"])
    return folder, mod


def _batches(folder):
    meta = json.loads((folder / "meta.json").read_text())
    b = load_state_dict_file(folder / "batches.safetensors")
    return meta, b[meta["data"][0]], b[meta["target"]]


def reference(folder, steps, state=None, first=None):
    """tests/test_artifacts.py's `drive` with a batch per step (from the folder's batches.safetensors):
    Python onnxruntime, meta.json and the state file."""
    import onnxruntime as ort
    meta, xb, yb = _batches(folder)
    state = dict(load_state_dict_file(state or folder / meta["state_file"]))
    sess = ort.InferenceSession(str(folder / meta["training_model"]))
    names = [o.name for o in sess.get_outputs()]
    first = meta["step"]["first"] if first is None else first
    losses = []
    for step in range(first, first + steps):
        k = (step - meta["step"]["first"]) % len(xb)
        feeds = {meta["data"][0]: xb[k], meta["target"]: yb[k], meta["step"]["input"]: np.array(step, np.int64),
                 meta["seed"]["input"]: np.array(meta["seed"]["value"], np.int64)}
        feeds.update({n: np.array(v, np.float64) for n, v in meta["hyperparameters"].items()})
        feeds.update(state)
        out = dict(zip(names, sess.run(None, feeds)))
        losses.append(float(out[meta["loss"]]))
        state.update({e["input"]: out[e["output"]] for e in meta["state"] if e["output"]})
    return np.array(losses), state


def _run(cmd, timeout, env=None):
    """Run cmd in its own process group (node, and Chromium under it); the whole group is killed at the end."""
    proc = subprocess.Popen(cmd, cwd=JS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{cmd[:3]} ran past {timeout}s\n{out[-2000:]}\n{err[-2000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers (a browser) of our own group only
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, f"{cmd[:3]} exited {proc.returncode}\n{out[-3000:]}\n{err[-3000:]}"
    return out


def _browser_run(folder, saved, shot, want, label):
    """demo/browser-run.js on `folder` in headless Chromium (WASM) for STEPS steps, saving the state and a
    screenshot; its losses must equal `want` (Python's). Returns the script's JSON report."""
    r = json.loads(_run([NODE, "demo/browser-run.js", str(folder), "--steps", str(STEPS), "--save", str(saved),
                         "--screenshot", str(shot), "--chromium", CHROMIUM, "--timeout", "150"], 180))
    assert r["error"] is None and r["ep"] == "wasm", r
    got = np.array(r["losses"])
    print(f"{label} vs python max |diff|:", np.abs(got - want).max(), f"{r['ms_per_step']:.2f} ms/step")
    np.testing.assert_allclose(got, want, **TOL)
    return r


def _next_step(path):
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return int(json.loads(raw[8:8 + n])["__metadata__"]["onnxkit-train.next_step"])


def _check_state(path, folder, want, tol=TOL):
    """An exported state file: the training inputs' keys, dtypes and shapes, the reference's values."""
    got = load_state_dict_file(path)
    orig = load_state_dict_file(folder / "state.safetensors")
    assert list(got) == list(orig)
    for k, v in got.items():
        assert v.dtype == orig[k].dtype and v.shape == orig[k].shape, k
        np.testing.assert_allclose(v, want[k], err_msg=k, **tol)


def ok_trainer(folder, model, optimizer, steps, state=None):
    """ok.Trainer's losses on the folder's batches, dropout hashed in the graph from the artifacts' seed and
    step as training.onnx does (random_in_graph=True, seed=meta.seed.value). `state`: a state.safetensors
    (keys = the training inputs, e.g. one exported from JS) loaded into model and optimizer first with
    ok.load_training_state; the Trainer then continues from its step."""
    meta, xb, yb = _batches(folder)
    if state is not None:
        ok.load_training_state(folder, model, optimizer, state)
    tr = ok.Trainer(model, nn.CrossEntropyLoss(), optimizer, random_in_graph=True, seed=meta["seed"]["value"])
    start = tr.step_count
    return [tr.step(xb[(start + i) % len(xb)], yb[(start + i) % len(xb)]) for i in range(steps)]


@needs_node
def test_node_follows_ok_trainer_without_dropout(tmp_path):
    """The MLP with Dropout(0) and ok.Trainer's default host-side random draws (random_in_graph=False):
    Node's losses equal ok.Trainer's."""
    folder = _write(tmp_path, 0.0)
    m = _model(0.0)
    tr = ok.Trainer(m, nn.CrossEntropyLoss(), optim.Adam(m.parameters(), lr=1e-2))
    want = [tr.step(XB[i % len(XB)], YB[i % len(XB)]) for i in range(STEPS)]
    r = json.loads(_run([NODE, "demo/node-demo.js", str(folder), "--steps", str(STEPS), "--json"], 120))
    print("node vs ok.Trainer max |diff|:", np.abs(np.array(r["losses"]) - want).max())
    np.testing.assert_allclose(r["losses"], want, **TOL)


@needs_node
def test_node_follows_ok_trainer_with_dropout_and_state_loads_back(artifacts, tmp_path):
    """Dropout(0.5): ok.Trainer(random_in_graph=True, seed=meta.seed.value) hashes the same masks from seed
    and step as training.onnx, so Node's first 20 losses equal it. (ok.Trainer's seed defaults to a random
    draw, so without seed= the masks, and the losses, differ.) Node's exported state.safetensors, loaded into
    a fresh model and optimizer through ok.load_training_state, makes ok.Trainer continue the trajectory."""
    m = _model(0.5)
    want = ok_trainer(artifacts, m, optim.Adam(m.parameters(), lr=1e-2), STEPS + 5)
    saved = tmp_path / "node-state.safetensors"
    r = json.loads(_run([NODE, "demo/node-demo.js", str(artifacts), "--steps", str(STEPS), "--save", str(saved),
                         "--json"], 120))
    print("node vs ok.Trainer(random_in_graph=True) max |diff|:", np.abs(np.array(r["losses"]) - want[:STEPS]).max())
    np.testing.assert_allclose(r["losses"], want[:STEPS], **TOL)
    assert len(set(np.round(r["losses"], 6))) == STEPS
    m2 = _model(0.5)
    cont = ok_trainer(artifacts, m2, optim.Adam(m2.parameters(), lr=1e-2), 5, state=saved)
    np.testing.assert_allclose(cont, want[STEPS:], **TOL)


@needs_node
def test_node_package_tests(artifacts):
    out = _run([NODE, "--test", "test/"], 120, env={"ONNXKIT_TRAIN_ARTIFACTS": str(artifacts)})
    assert "# fail 0" in out and "# skipped 0" in out, out[-1500:]


@needs_node
def test_node_losses_equal_python_and_state_round_trips(artifacts, tmp_path):
    want, want_state = reference(artifacts, STEPS)
    saved = tmp_path / "node-state.safetensors"
    r = json.loads(_run([NODE, "demo/node-demo.js", str(artifacts), "--steps", str(STEPS), "--save", str(saved),
                         "--json"], 120))
    got = np.array(r["losses"])
    print("node vs python max |diff|:", np.abs(got - want).max())
    np.testing.assert_allclose(got, want, **TOL)
    assert len(set(np.round(got, 6))) == STEPS  # dropout masks differ per step
    _check_state(saved, artifacts, want_state)
    assert _next_step(saved) == STEPS + 1
    # the trajectory continues: Python from the JS state, and Node resuming its own file, equal an unbroken run
    whole, _ = reference(artifacts, STEPS + 5)
    cont, _ = reference(artifacts, 5, state=saved, first=STEPS + 1)
    np.testing.assert_allclose(cont, whole[STEPS:], **TOL)
    r2 = json.loads(_run([NODE, "demo/node-demo.js", str(artifacts), "--steps", "5", "--resume", str(saved),
                          "--json"], 120))
    np.testing.assert_allclose(r2["losses"], whole[STEPS:], **TOL)


@needs_node
@needs_chromium
def test_browser_wasm_losses_equal_python_and_state_round_trips(artifacts, tmp_path):
    want, want_state = reference(artifacts, STEPS)
    saved, shot = tmp_path / "browser-state.safetensors", tmp_path / "page.png"
    r = _browser_run(artifacts, saved, shot, want, "chromium-wasm")
    _check_state(saved, artifacts, want_state)
    assert _next_step(saved) == STEPS + 1
    assert 0 <= r["accuracy"] <= 1 and r["page"]["lossPoints"] == STEPS and r["page"]["accuracyText"].endswith("%")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_node
def test_node_rejects_other_formats(artifacts, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(artifacts, bad)
    meta = json.loads((bad / "meta.json").read_text())
    (bad / "meta.json").write_text(json.dumps({**meta, "format": "something-else/2"}))
    proc = subprocess.run([NODE, "demo/node-demo.js", str(bad), "--steps", "1"], cwd=JS, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and "onnxkit-training/1" in proc.stderr


@needs_node
def test_node_lenet_digits_follows_ok_trainer(digits):
    """The demo's LeNet-5 (Conv2d, MaxPool2d, Dropout, Adam) on the digits: Node equals ok.Trainer."""
    folder, mod = digits
    m = mod.lenet5()
    want = ok_trainer(folder, m, optim.Adam(m.parameters(), lr=2e-3), STEPS)
    r = json.loads(_run([NODE, "demo/node-demo.js", str(folder), "--steps", str(STEPS), "--json"], 180))
    print("lenet: node vs ok.Trainer max |diff|:", np.abs(np.array(r["losses"]) - want).max(),
          f"{r['ms_per_step']:.2f} ms/step")
    np.testing.assert_allclose(r["losses"], want, **TOL)
    assert r["losses"][-1] < r["losses"][0]


@needs_node
def test_drawing_becomes_the_training_inputs(digits):
    """js/demo/digits.js turns a 32x32 bitmap into the model input as make_artifacts.py scales the digits:
    a bitmap whose 4x4 block counts are a held-out 8x8 digit gives that digit's training-style input."""
    from sklearn.datasets import load_digits
    folder, mod = digits
    prep = json.loads((folder / "digits.json").read_text())
    _, _, x_test, _, _ = mod.digits(prep["size"])
    images = load_digits().images.astype(np.int64)[np.random.default_rng(0).permutation(1797)][-len(x_test):]
    bitmaps = []
    for img in images[:3]:  # on-pixels: the first `count` of each 4x4 block
        bm = np.zeros((8, 4, 8, 4), np.int64)
        for (r, c), n in np.ndenumerate(img):
            bm[r, :, c, :].flat[:n] = 1
        bitmaps.append(bm.reshape(32, 32).ravel().tolist())
    script = ("import { bitmapToInput } from './demo/digits.js';"
              f"const prep = {json.dumps(prep)}; const bitmaps = {json.dumps(bitmaps)};"
              "console.log(JSON.stringify(bitmaps.map((b) => Array.from(bitmapToInput(b, prep).input))));")
    got = np.array(json.loads(_run([NODE, "--input-type=module", "-e", script], 60)))
    np.testing.assert_allclose(got.reshape(-1, 1, prep["size"], prep["size"]), x_test[:3], rtol=0, atol=1e-5)


@needs_node
@needs_chromium
def test_browser_lenet_digits_demo(digits, tmp_path):
    """The demo page on the LeNet-5 digits artifacts, headless Chromium with WASM: the first 20 losses equal
    Python's (onnxruntime and ok.Trainer), the page shows the loss curve and the held-out accuracy, the
    drawing canvas and prediction elements exist, a "7" drawn with the mouse is classified (a class and
    10 probabilities), and the exported state continues the trajectory in ok.Trainer."""
    folder, mod = digits
    want, want_state = reference(folder, STEPS)
    m = mod.lenet5()
    whole = ok_trainer(folder, m, optim.Adam(m.parameters(), lr=2e-3), STEPS + 5)
    np.testing.assert_allclose(whole[:STEPS], want, **TOL)
    saved, shot = tmp_path / "browser-state.safetensors", tmp_path / "digits-page.png"
    r = _browser_run(folder, saved, shot, want, "lenet: chromium-wasm")
    page = r["page"]
    assert page["lossPoints"] == STEPS and page["accuracyText"].endswith("%")
    assert "360 held-out" in page["accuracyLabel"]
    assert page["canDraw"] and all(page["elements"].values()), page
    assert 0 <= r["accuracy"] <= 1
    drawn = r["drawn"]
    assert drawn and drawn["ink"] > 0 and drawn["rows"] == 10 and drawn["text"] == str(drawn["label"]), drawn
    assert len(drawn["probabilities"]) == 10 and abs(sum(drawn["probabilities"]) - 1) < 1e-5
    assert drawn["label"] == int(np.argmax(drawn["probabilities"]))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # WASM's conv/GEMM kernels round differently from x86's; Adam's m / (sqrt(v) + eps) magnifies that in the
    # few weights whose gradients stay near zero: ~2e-6 apart after 20 steps, while the losses stay within TOL
    _check_state(saved, folder, want_state, tol=dict(rtol=1e-4, atol=1e-5))
    m2 = mod.lenet5()
    cont = ok_trainer(folder, m2, optim.Adam(m2.parameters(), lr=2e-3), 5, state=saved)
    np.testing.assert_allclose(cont, whole[STEPS:], **TOL)


def test_load_training_state_names_a_folder_that_is_not_artifacts(tmp_path):
    m = nn.Linear(2, 2)
    with pytest.raises(FileNotFoundError, match="not a training-artifacts folder"):
        ok.load_training_state(tmp_path, m, optim.SGD(m.parameters(), lr=0.1))
