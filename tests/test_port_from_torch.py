"""The porting story: the same model code, written once against a `torch`-like namespace, runs on
torch and on onnxkit by changing the imports; trajectories agree step by step."""
import numpy as np
import pytest
import torch

import onnxkit as ok


def make_model(nn, F):
    """A small residual CNN written in torch's idiom (only `nn` and `F` differ between the runs)."""

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.blocks = nn.ModuleList([Block(8), Block(8)])
            self.pool = nn.AdaptiveAvgPool2d((1, 1))
            self.drop = nn.Dropout(0.0)
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            x = self.stem(x)
            for b in self.blocks:
                x = b(x)
            x = self.pool(x).flatten(1)
            return self.fc(self.drop(x))

    return Net()


def train(lib, nn, F, optim, model, x, y, steps):
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    losses = []
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(lib.tensor(x)), lib.tensor(y))
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("steps", [5])
def test_same_code_same_trajectory(steps):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 12, 12)).astype(np.float32)
    y = rng.integers(0, 5, 6)
    torch.manual_seed(0)
    tm = make_model(torch.nn, torch.nn.functional)
    om = make_model(ok.nn, ok.nn.functional)
    om.load_state_dict(tm.state_dict())
    t_losses = train(torch, torch.nn, torch.nn.functional, torch.optim, tm, x, y, steps)
    o_losses = train(ok, ok.nn, ok.nn.functional, ok.optim, om, x, y, steps)
    np.testing.assert_allclose(o_losses, t_losses, rtol=2e-4, atol=1e-5)
    tsd, osd = tm.state_dict(), om.state_dict()
    assert list(tsd) == list(osd)
    for k in tsd:
        np.testing.assert_allclose(osd[k], tsd[k].numpy(), rtol=2e-3, atol=2e-4, err_msg=k)
    tm.eval(), om.eval()
    with torch.no_grad():
        want = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(om(ok.tensor(x)).numpy(), want, rtol=1e-3, atol=1e-4)
    onnx_model = ok.export(om, [ok.Input("x", ("N", 3, 12, 12))])
    np.testing.assert_allclose(ok.Session(onnx_model).run({"x": x})["output"], want, rtol=1e-3, atol=1e-4)
