"""DESIGN.md's public API contract, run as written (with small data)."""
import numpy as np
import onnx

import onnxkit as ok
from onnxkit import nn, optim


def test_design_contract_snippet(tmp_path):
    x = ok.tensor(np.ones((3, 4), np.float32), requires_grad=True)
    w = ok.randn(4, 5, requires_grad=True)
    s = ok.Input("s", shape=("N", 4), dtype="float32")
    assert s.shape[1] == 4 and str(s.shape[0]) == "N"
    c = ((x * 2 + 1) @ w).relu().sum()
    c.backward()
    gx_acc = x.grad.numpy().copy()
    gx, gw = ok.grad(c, [x, w])
    np.testing.assert_allclose(gx.numpy(), gx_acc)
    assert c.shape == () and c.dtype == np.float32 and np.isfinite(c.numpy())

    model = nn.Sequential(nn.Linear(1000, 100), nn.ReLU(), nn.Linear(100, 10))
    batch = np.random.default_rng(0).standard_normal((8, 1000)).astype(np.float32)
    y = model(ok.tensor(batch))
    sd = model.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"] and sd["0.weight"].shape == (100, 1000)
    model.load_state_dict(sd)
    model.train(); model.eval()
    assert len(list(model.parameters())) == 4 and len(list(model.named_parameters())) == 4

    path = str(tmp_path / "mlp.onnx")
    onnx_model = ok.export(model, [ok.Input("x", ("N", 1000))], path=path)
    assert isinstance(onnx_model, onnx.ModelProto)
    imported = ok.load(path)
    np.testing.assert_allclose(imported(batch).numpy(), y.numpy(), rtol=1e-5, atol=1e-6)
    sess = ok.Session(path, device="auto")
    np.testing.assert_allclose(sess.run({"x": batch})["output"], y.numpy(), rtol=1e-5, atol=1e-6)

    opt = optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    trainer = ok.Trainer(model, nn.CrossEntropyLoss(), opt, device="auto")
    xb, yb = batch, np.arange(8) % 10
    loss = trainer.step(xb, yb)
    assert isinstance(loss, float) and np.isfinite(loss)
    history = trainer.fit(batch, yb, epochs=2, batch_size=4, validation=(batch, yb), verbose=False)
    assert len(history["loss"]) == 2 and "val_loss" in history
    assert isinstance(trainer.training_model, onnx.ModelProto) and isinstance(trainer.eval_model, onnx.ModelProto)
    assert not np.allclose(model.state_dict()["0.weight"], sd["0.weight"])  # trained values are read back


def test_functional_namespaces():
    import onnxkit.nn.functional as F
    t = ok.tensor(np.array([[1.0, -2.0], [3.0, 4.0]], np.float32))
    np.testing.assert_allclose(ok.sum(t, dim=1, keepdim=True).numpy(), [[-1.0], [7.0]])
    np.testing.assert_allclose(F.relu(t).numpy(), np.maximum(t.numpy(), 0))
    assert ok.cat([t, t], dim=0).shape == (4, 2)
    np.testing.assert_allclose(ok.where(t > 0, t, 0.0).numpy(), np.maximum(t.numpy(), 0))
    assert callable(ok.nn.utils.clip_grad_norm_) and callable(ok.nn.utils.weight_norm)
