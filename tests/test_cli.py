"""onnx-run: version, run (random and given inputs, --save), one-line errors with exit code 2."""
import numpy as np
import pytest
from click.testing import CliRunner

import onnxkit as ok
from onnxkit import nn
from onnxkit.cli import main


@pytest.fixture()
def model_path(tmp_path):
    ok.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    p = tmp_path / "m.onnx"
    ok.export(m, [ok.Input("x", ("N", 4))], path=str(p))
    return p, m


def test_version():
    r = CliRunner().invoke(main, ["version"])
    assert r.exit_code == 0 and r.output.startswith("onnxkit ")


def test_run_random_inputs(model_path):
    p, _ = model_path
    r = CliRunner().invoke(main, ["run", str(p), "--batch", "5"])
    assert r.exit_code == 0, r.output
    assert "output: shape=(5, 3) dtype=float32" in r.output


def test_run_given_input_and_save(model_path, tmp_path):
    p, m = model_path
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = CliRunner().invoke(main, ["run", str(p), "-i", f"x={tmp_path / 'x.npy'}", "--save", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(np.load(tmp_path / "out" / "output.npy"), m(ok.tensor(x)).numpy(), rtol=1e-6)


@pytest.mark.parametrize("args,message", [
    (["-i", "x=missing.npy"], "No such file"),
    (["-i", "y=BAD"], "unexpected input(s) ['y']"),
])
def test_bad_input_is_one_line_exit_2(model_path, tmp_path, args, message):
    p, _ = model_path
    if "y=BAD" in args:
        np.save(tmp_path / "y.npy", np.ones((2, 4), np.float32))
        args = ["-i", f"y={tmp_path / 'y.npy'}"]
    r = CliRunner().invoke(main, ["run", str(p)] + args)
    assert r.exit_code == 2
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_bad_feed_format_and_debug(model_path):
    p, _ = model_path
    r = CliRunner().invoke(main, ["run", str(p), "-i", "nonsense"])
    assert r.exit_code == 2 and "NAME=FILE.npy" in r.output
    r = CliRunner().invoke(main, ["--debug", "run", str(p), "-i", "x=/nonexistent.npy"])
    assert r.exit_code != 0 and isinstance(r.exception, FileNotFoundError)


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    r = CliRunner().invoke(main, ["run", str(bad)])
    assert r.exit_code == 2 and r.output.startswith("error:") and len(r.output.strip().splitlines()) == 1
