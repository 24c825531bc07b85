"""Session: feed checks, device selection, IOBinding path; lazy evaluation: structure cache."""
import subprocess
import sys

import numpy as np
import onnx
import pytest

import onnxkit as ok
from onnxkit import nn, runtime


@pytest.fixture(scope="module")
def mlp_model():
    ok.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2))
    return ok.export(m, [ok.Input("x", ("N", 8))])


def test_run_returns_named_outputs(mlp_model):
    s = ok.Session(mlp_model, device="cpu")
    out = s.run({"x": np.ones((3, 8), np.float32)})
    assert list(out) == ["output"] and out["output"].shape == (3, 2)
    assert s.device == "cpu"


@pytest.mark.parametrize("feeds,match", [
    ({}, r"missing input\(s\) \['x'\]"),
    ({"x": np.ones((3, 8), np.float32), "y": np.ones(1)}, r"unexpected input\(s\) \['y'\]"),
    ({"x": np.ones((3, 8), np.float64)}, r"input 'x': expected dtype float32, got float64"),
    ({"x": np.ones((3, 8), np.int64)}, r"input 'x': expected dtype float32, got int64"),
    ({"x": np.ones((8,), np.float32)}, r"input 'x': expected rank 2 \(N, 8\), got shape \(8,\)"),
    ({"x": np.ones((3, 7), np.float32)}, r"input 'x': expected shape \(N, 8\), got \(3, 7\) \(dim 1 must be 8\)"),
])
def test_bad_feeds_name_the_input(mlp_model, feeds, match):
    s = ok.Session(mlp_model, device="cpu")
    with pytest.raises((ValueError, TypeError), match=match):
        s.run(feeds)


def test_session_from_path(tmp_path, mlp_model):
    p = tmp_path / "m.onnx"
    onnx.save(mlp_model, p)
    s = ok.Session(str(p))
    assert s.input_names == ["x"]


def test_bad_device_and_type():
    with pytest.raises(ValueError, match="device must be"):
        runtime.providers_for("tpu")
    with pytest.raises(TypeError, match="path or an onnx.ModelProto"):
        ok.Session(42)


def test_auto_device_is_quiet_without_gpu(tmp_path, mlp_model):
    """device='auto' on a CPU-only machine prints nothing (no CUDA provider load errors)."""
    p = tmp_path / "m.onnx"
    onnx.save(mlp_model, p)
    code = ("import onnxkit as ok, numpy as np; s = ok.Session(%r, device='auto'); "
            "s.run({'x': np.ones((2, 8), np.float32)}); print(s.device)" % str(p))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    expected = "cuda" if runtime.cuda_available() else "cpu"
    assert r.stdout.strip() == expected
    assert r.stderr.strip() == ""


def test_cuda_request_without_gpu_is_clear():
    if runtime.cuda_available():
        assert runtime.providers_for("cuda")[0] == "CUDAExecutionProvider"
    else:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            runtime.providers_for("cuda")


def test_iobinding_path_matches_run(mlp_model):
    s = ok.Session(mlp_model, device="cpu")
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    ref = s.run({"x": x})["output"]
    for _ in range(3):
        out = s.run_bound({"x": x})
        np.testing.assert_allclose(out["output"].numpy(), ref)


def test_spinning_disabled_by_default(mlp_model):
    so = runtime.session_options()
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"


# ----- lazy evaluation and the structure cache ------------------------------------------------
def _build(xv, wv):
    x, w = ok.tensor(xv), ok.tensor(wv)
    return ((x @ w).relu() * 2).sum(1)


def test_rebuilt_graph_hits_the_cache():
    rng = np.random.default_rng(0)
    _build(rng.standard_normal((4, 3), dtype=np.float32), rng.standard_normal((3, 2), dtype=np.float32)).numpy()
    misses = runtime.stats["miss"]
    for _ in range(5):
        xv, wv = rng.standard_normal((4, 3), dtype=np.float32), rng.standard_normal((3, 2), dtype=np.float32)
        np.testing.assert_allclose(_build(xv, wv).numpy(), (np.maximum(xv @ wv, 0) * 2).sum(1), rtol=1e-5)
    assert runtime.stats["miss"] == misses


def test_different_structure_misses():
    rng = np.random.default_rng(1)
    xv, wv = rng.standard_normal((4, 3), dtype=np.float32), rng.standard_normal((3, 2), dtype=np.float32)
    _build(xv, wv).numpy()
    misses = runtime.stats["miss"]
    (ok.tensor(xv) @ ok.tensor(wv)).sigmoid().numpy()
    assert runtime.stats["miss"] == misses + 1


def test_constants_are_part_of_the_key():
    x = ok.tensor(np.ones(3, np.float32))
    assert (x * 2).numpy()[0] == 2 and (x * 3).numpy()[0] == 3


def test_numpy_is_memoized():
    x = ok.tensor(np.ones(3, np.float32))
    y = x * 2
    runs = runtime.stats["run"]
    y.numpy(), y.numpy()
    assert runtime.stats["run"] == runs + 1


def test_deferred_assignment_applies_before_reads():
    w = ok.tensor(np.ones(3, np.float32), requires_grad=True)
    with ok.no_grad():
        w -= 0.5 * ok.tensor(np.ones(3, np.float32)) * 2
    np.testing.assert_allclose(w.numpy(), np.zeros(3))
    assert w.requires_grad and w.node is None


def test_a_session_run_again_and_again_spins_and_stops_when_another_alternates_with_it():
    """runtime._tune_spinning: promoted after PROMOTE_AFTER runs in a row, demoted for good on A, B, A."""
    w = ok.tensor(np.ones(3, np.float32))

    def run_a():
        return (w * 2.0 + 1.0).numpy()

    def run_b():
        return (w - 5.0).numpy()

    def entry_of(fn):
        fn()
        return runtime._streak[0]
    a, b = entry_of(run_a), entry_of(run_b)
    for _ in range(runtime.PROMOTE_AFTER):
        np.testing.assert_allclose(run_a(), [3.0, 3.0, 3.0])
    assert a.spins is True and b.spins is None
    run_b()
    np.testing.assert_allclose(run_a(), [3.0, 3.0, 3.0])  # a, b, a: alternating
    assert a.spins is False
    for _ in range(2 * runtime.PROMOTE_AFTER):
        run_a()
    assert a.spins is False  # not promoted again


def test_a_spinning_session_keeps_spinning_across_phases_of_another():
    """Train steps, an eval phase of PROMOTE_AFTER runs or more, train steps again: still spinning
    (a demotion there would leave every later epoch without it)."""
    w = ok.tensor(np.ones(3, np.float32))

    def run_a():
        return (w * 3.0 + 1.0).numpy()

    def run_b():
        return (w - 7.0).numpy()
    run_a()
    a = runtime._streak[0]
    for _ in range(runtime.PROMOTE_AFTER):
        run_a()
    assert a.spins is True
    for _ in range(runtime.PROMOTE_AFTER):
        np.testing.assert_allclose(run_b(), [-6.0, -6.0, -6.0])
    np.testing.assert_allclose(run_a(), [4.0, 4.0, 4.0])
    assert a.spins is True
