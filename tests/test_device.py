"""ok.device as torch.device; Tensor/Module .to(device) / .cuda() / .cpu() and where evaluation runs."""
import numpy as np
import pytest

import onnxkit as ok
from onnxkit import nn, runtime

torch = pytest.importorskip("torch", reason="torch is the test oracle: pip install torch==2.13.0 (test extra)")

NO_GPU = not ok.cuda.is_available()


@pytest.fixture(autouse=True)
def _restore_device():
    before = runtime.default_device
    yield
    runtime.default_device = before


@pytest.mark.parametrize("args", [("cpu",), ("cuda",), ("cuda:0",), ("cuda:1",), ("cuda", 0), ("cpu", 0), ("cpu:0",)])
def test_device_prints_and_compares_like_torch(args):
    mine, ref = ok.device(*args), torch.device(*args)
    assert (mine.type, mine.index) == (ref.type, ref.index)
    assert str(mine) == str(ref) and repr(mine) == repr(ref)
    assert mine == ok.device(str(ref)) == ok.device(ref) and hash(mine) == hash(ok.device(str(ref)))


def test_device_rejects_what_torch_rejects():
    with pytest.raises(RuntimeError, match="device type"):
        ok.device("tpu")
    with pytest.raises(RuntimeError, match="Invalid device string"):
        ok.device("cuda:x")
    with pytest.raises(ValueError, match="index"):
        ok.device("cuda:0", 1)
    assert ok.device("cpu") != ok.device("cuda") and ok.device("cuda") != ok.device("cuda:0")
    assert ok.device("cpu") != "cpu"  # as torch: a device never equals a string
    assert ok.device(0) == ok.device("cuda:0")  # an int is a CUDA index (torch: the current accelerator's)


def test_tensor_device_is_where_evaluation_runs():
    x = ok.tensor(np.ones(3, np.float32))
    assert x.device == ok.device("cpu" if NO_GPU else "cuda")
    assert x.device == ok.get_default_device()
    ok.set_default_device("cpu")
    assert runtime.default_device == "cpu" and (x * 2).device == ok.device("cpu")
    np.testing.assert_array_equal((x * 2).numpy(), 2 * np.ones(3))
    ok.set_default_device(None)
    assert runtime.default_device == "auto"


def test_to_cpu_and_dtypes():
    x = ok.tensor(np.ones((2, 3), np.float32))
    assert x.to("cpu") is x and x.cpu() is x and x.to(ok.device("cpu")) is x and x.to(torch.device("cpu")) is x
    assert x.to("cpu", torch.float64).dtype == np.float64
    assert x.to(device="cpu", dtype=torch.int64).dtype == np.int64
    assert x.to(torch.float16, non_blocking=True).dtype == np.float16
    assert x.to(ok.tensor(np.ones(1, np.int32))).dtype == np.int32
    y = x.to("cpu", copy=True)
    assert y is not x
    y.add_(1)
    np.testing.assert_array_equal(x.numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(y.numpy(), 2 * np.ones((2, 3)))


def test_module_to_cpu_and_dtype():
    m = nn.Linear(3, 2)
    assert m.to("cpu") is m and m.cpu() is m and m.to(torch.device("cpu")) is m
    m.to("cpu", torch.float64)
    assert m.weight.dtype == np.float64
    m.to(dtype=torch.float32)
    assert m.weight.dtype == np.float32


@pytest.mark.skipif(not NO_GPU, reason="checks the error raised without a usable GPU")
def test_cuda_without_gpu_raises_like_torch():
    x = ok.tensor(np.ones(3, np.float32))
    for call in (x.cuda, lambda: x.to("cuda"), lambda: x.to(ok.device("cuda:0")), lambda: nn.Linear(2, 2).cuda(),
                 lambda: nn.Linear(2, 2).to("cuda"), lambda: ok.set_default_device("cuda")):
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            call()
    assert runtime.default_device == "auto" and x.device == ok.device("cpu")


def test_cuda_moves_evaluation_when_a_gpu_is_usable(monkeypatch):
    """With a usable GPU (simulated here), .cuda() / .to("cuda") / Module.cuda() switch evaluation to CUDA;
    compiled sessions are cached per device, .cpu() leaves evaluation where it is."""
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    monkeypatch.setattr(runtime, "_compiled", runtime._compiled.__class__())
    ok.set_default_device("cpu")
    x = ok.tensor(np.ones(3, np.float32))
    assert x.cuda() is x and runtime.default_device == "cuda" and x.device == ok.device("cuda")
    assert x.cpu() is x and x.to("cpu") is x and x.device == ok.device("cuda")
    ok.set_default_device("cpu")
    assert nn.Linear(2, 2).cuda() is not None and runtime.default_device == "cuda"
    ok.set_default_device("cpu")
    x.to("cuda:0", torch.float64)
    assert runtime.default_device == "cuda"
    with pytest.raises(RuntimeError, match="device 0 only"):
        x.cuda(1)
    with pytest.raises(RuntimeError, match="must be cuda"):
        x.cuda("cpu")


def test_cuda_namespace():
    assert ok.cuda.is_available() == ok.cuda_available()
    assert ok.cuda.device_count() == int(ok.cuda_available())


@pytest.mark.skipif(NO_GPU, reason="needs a usable CUDA GPU")
def test_cuda_evaluation_on_a_gpu():
    x = ok.tensor(np.arange(6, dtype=np.float32)).cuda()
    assert x.device == ok.device("cuda")
    np.testing.assert_allclose(((x * 2).relu() + 1).numpy(), np.arange(6) * 2 + 1)
