"""Models written by PyTorch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`, which needs
onnxscript): import, parity with torch, export round trip at another batch size, 3 SGD steps equal to
torch's, and the trained weights loaded back into the torch module by state_dict name.

Tolerance: the same float32 math in a different kernel order: rtol 1e-5, atol 1e-5 for outputs; losses
and weights after 3 SGD steps rtol 1e-4, atol 1e-5."""
import logging
import warnings

import numpy as np
import pytest

import onnxkit as ok
from onnxkit import nn

pytestmark = pytest.mark.interchange
torch = pytest.importorskip("torch", reason="torch is the test oracle: pip install torch==2.13.0 (test extra)")
pytest.importorskip("onnxscript", reason="onnxscript is not installed: torch's dynamo exporter needs it "
                                         "(pip install -e '.[interchange]')")


class _Net(torch.nn.Module):
    """Conv, LayerNorm over channels-last, GELU (erf), a residual Linear: the dynamo exporter's idioms
    (Gemm/MatMul, LayerNormalization, Erf-free Gelu at opset 20, Reshape with computed shapes)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.norm = torch.nn.LayerNorm(4)
        self.fc = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        h = self.conv(x).permute(0, 2, 3, 1)
        h = torch.nn.functional.gelu(self.norm(h)).mean(dim=(1, 2))
        return self.head(h + torch.tanh(self.fc(h)))


@pytest.fixture(scope="module")
def exported():
    torch.manual_seed(0)
    net = _Net().eval()
    x = torch.randn(2, 3, 6, 6)
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prog = torch.onnx.export(net, (x,), dynamo=True, input_names=["x"], output_names=["y"],
                                     dynamic_shapes=({0: torch.export.Dim("N")},), verbose=False)
    finally:
        logging.disable(logging.NOTSET)
    return net, prog.model_proto


def _x(n, seed):
    return np.random.default_rng(seed).standard_normal((n, 3, 6, 6)).astype(np.float32)


def test_import_matches_torch_and_round_trips(exported):
    net, model = exported
    imp = ok.load(model)
    assert {n for n, _ in imp.named_parameters()} >= {k for k in net.state_dict()}  # the exporter keeps names
    x = _x(3, 1)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(imp(x).numpy(), want, rtol=1e-5, atol=1e-5)
    again = ok.export(imp, imp.graph_inputs(), output_names=imp.output_names)
    xb = _x(5, 2)
    with torch.no_grad():
        want = net(torch.from_numpy(xb)).numpy()
    np.testing.assert_allclose(ok.Session(again).run({"x": xb})["y"], want, rtol=1e-5, atol=1e-5)


def test_sgd_steps_equal_torch_and_map_back(exported):
    net, model = exported
    imp = ok.load(model)
    ref = _Net()
    ref.load_state_dict(net.state_dict())
    x, y = _x(4, 3), np.random.default_rng(4).standard_normal((4, 3)).astype(np.float32)
    trainer = ok.Trainer(imp, nn.MSELoss(), ok.optim.SGD(imp.parameters(), lr=0.1))
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    ours, theirs = [], []
    for _ in range(3):
        ours.append(trainer.step(x, y))
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(ref(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert ours[-1] < ours[0]
    trainer.sync()
    state, unmapped = imp.map_weights(net.state_dict())
    assert set(state) == set(net.state_dict()) and unmapped == []
    back = _Net()
    back.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    for k, v in back.state_dict().items():
        np.testing.assert_allclose(v.numpy(), ref.state_dict()[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    imp.eval()
    with torch.no_grad():
        np.testing.assert_allclose(imp(x).numpy(), back(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)
