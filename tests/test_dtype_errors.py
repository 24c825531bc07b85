"""Mixed dtypes where torch refuses to promote (matmul, linear, conv) fail at build time, naming the
layer path, both dtypes and the fix; elementwise ops promote as torch does."""
import numpy as np
import pytest

import onnxkit as ok
from onnxkit import nn
from onnxkit.ops.core import DTypeError

X64 = np.random.default_rng(0).standard_normal((2, 3))


@pytest.mark.parametrize("model,x,match", [
    (nn.Sequential(nn.Linear(3, 2)), X64, r"^0 \(Linear\): linear: .*input float64, weight float32, bias float32; "
                                          r"convert the input with .to\('float32'\)"),
    (nn.Conv1d(2, 4, 1), np.ones((1, 2, 5)), r"^Conv1d: conv1d: .*input float64, weight float32"),
    (nn.ConvTranspose2d(2, 4, 1), np.ones((1, 2, 3, 3)), r"conv_transpose2d: .*input float64, weight float32"),
])
def test_layer_dtype_mismatch_names_path_and_fix(model, x, match):
    with pytest.raises(DTypeError, match=match):
        model(ok.tensor(x))


def test_matmul_dtype_mismatch():
    with pytest.raises(TypeError, match="matmul: .*self float64, other float32"):
        ok.tensor(X64) @ ok.tensor(np.ones((3, 2), np.float32))


def test_module_to_double_then_runs():
    m = nn.Linear(3, 2).double()
    assert m(ok.tensor(X64)).numpy().dtype == np.float64


def test_elementwise_still_promotes():
    assert (ok.tensor(X64) + ok.tensor(np.ones(3, np.float32))).dtype == np.float64
