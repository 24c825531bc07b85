"""onnxkit-train (js/): the same training artifacts driven by onnxruntime-node and by onnxruntime-web in
headless Chromium give Python's losses, and the state they export round-trips into the Python driver.

Needs node, js/node_modules and (for the browser tests) Debian's chromium: `bash scripts/setup_js.sh`
installs them and scripts/test.sh runs it first; without them these tests skip and say why."""
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


def reference(folder, steps, state=None, first=None):
    """tests/test_artifacts.py's `drive` with a batch per step: Python onnxruntime, meta.json and the state file."""
    import onnxruntime as ort
    meta = json.loads((folder / "meta.json").read_text())
    state = dict(load_state_dict_file(state or folder / meta["state_file"]))
    sess = ort.InferenceSession(str(folder / meta["training_model"]))
    names = [o.name for o in sess.get_outputs()]
    first = meta["step"]["first"] if first is None else first
    losses = []
    for step in range(first, first + steps):
        k = (step - meta["step"]["first"]) % len(XB)
        feeds = {meta["data"][0]: XB[k], meta["target"]: YB[k], meta["step"]["input"]: np.array(step, np.int64),
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


def _next_step(path):
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return int(json.loads(raw[8:8 + n])["__metadata__"]["onnxkit-train.next_step"])


def _check_state(path, folder, want):
    """An exported state file: the training inputs' keys, dtypes and shapes, the reference's values."""
    got = load_state_dict_file(path)
    orig = load_state_dict_file(folder / "state.safetensors")
    assert list(got) == list(orig)
    for k, v in got.items():
        assert v.dtype == orig[k].dtype and v.shape == orig[k].shape, k
        np.testing.assert_allclose(v, want[k], err_msg=k, **TOL)


@needs_node
def test_node_follows_ok_trainer_without_dropout(tmp_path):
    """ok.Trainer draws dropout masks its own way (not the artifacts' seed/step hash), so the Trainer
    comparison is on the same MLP with Dropout(0): Node's losses equal ok.Trainer's."""
    folder = _write(tmp_path, 0.0)
    m = _model(0.0)
    tr = ok.Trainer(m, nn.CrossEntropyLoss(), optim.Adam(m.parameters(), lr=1e-2))
    want = [tr.step(XB[i % len(XB)], YB[i % len(XB)]) for i in range(STEPS)]
    r = json.loads(_run([NODE, "demo/node-demo.js", str(folder), "--steps", str(STEPS), "--json"], 120))
    print("node vs ok.Trainer max |diff|:", np.abs(np.array(r["losses"]) - want).max())
    np.testing.assert_allclose(r["losses"], want, **TOL)


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
    r = json.loads(_run([NODE, "demo/browser-run.js", str(artifacts), "--steps", str(STEPS), "--save", str(saved),
                         "--screenshot", str(shot), "--chromium", CHROMIUM, "--timeout", "150"], 180))
    assert r["error"] is None and r["ep"] == "wasm", r
    got = np.array(r["losses"])
    print("chromium-wasm vs python max |diff|:", np.abs(got - want).max(), f"{r['ms_per_step']:.2f} ms/step")
    np.testing.assert_allclose(got, want, **TOL)
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
