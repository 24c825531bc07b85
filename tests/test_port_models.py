"""Ported models (issue 9's trial): each model is ONE source text, written the way PyTorch tutorials
write it, executed twice -- once after `import torch ...` and once after `import onnxkit as torch ...`.
Only the import header differs. Both runs start from the same weights (torch's state_dict loaded into
onnxkit) and see the same data; losses, logged metrics and final parameters must agree."""
import numpy as np
import onnx
import pytest
import torch as _torch

import onnxkit as ok

TORCH_IMPORTS = """
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import TensorDataset, DataLoader
"""

ONNXKIT_IMPORTS = """
import onnxkit as torch
import onnxkit.nn as nn
import onnxkit.nn.functional as F
import onnxkit.optim as optim
from onnxkit.utils.data import TensorDataset, DataLoader
"""


def port(src, lib):
    """Execute `src` under the imports of `lib` ("torch" or "onnxkit"); returns its namespace."""
    header = TORCH_IMPORTS if lib == "torch" else ONNXKIT_IMPORTS
    ns = {"__name__": f"ported_{lib}"}
    exec(compile(header + src, f"<ported model under {lib}>", "exec"), ns)
    return ns


def twin(src, cls, *args):
    """The model built under torch (seeded) and under onnxkit with torch's initial weights."""
    t, o = port(src, "torch"), port(src, "onnxkit")
    _torch.manual_seed(0)
    tm = t[cls](*args)
    om = o[cls](*args)
    om.load_state_dict(tm.state_dict())
    return t, o, tm, om


def assert_same_params(om, tm, rtol=1e-4, atol=1e-5):
    tsd, osd = tm.state_dict(), om.state_dict()
    assert list(tsd) == list(osd)
    for k in tsd:
        np.testing.assert_allclose(np.asarray(osd[k]), tsd[k].numpy(), rtol=rtol, atol=atol, err_msg=k)


# ----- 1. the PyTorch "Training a classifier" tutorial CNN, with its logging loop ------------------
CIFAR_SRC = '''
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)  # flatten all dimensions except batch
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def make_loader(images, labels):
    trainset = TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
    return DataLoader(trainset, batch_size=16, shuffle=False, num_workers=0)


def train(net, trainloader, epochs=2):
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    history = []
    for epoch in range(epochs):  # loop over the dataset multiple times
        running_loss = 0.0
        correct = 0
        total = 0
        step_losses = []
        for i, data in enumerate(trainloader, 0):
            # get the inputs; data is a list of [inputs, labels]
            inputs, labels = data
            inputs, labels = torch.as_tensor(inputs), torch.as_tensor(labels)

            # zero the parameter gradients
            optimizer.zero_grad()

            # forward + backward + optimize
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()

            # print statistics (read after the step: the loss of this step's forward)
            running_loss += loss.item()
            step_losses.append(loss.item())
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
        history.append((running_loss, correct, total, step_losses))
    return history


def evaluate(net, images, labels):
    correct = 0
    with torch.no_grad():
        outputs = net(torch.from_numpy(images))
        _, predicted = torch.max(outputs.data, 1)
        correct += (predicted == torch.from_numpy(labels)).sum().item()
    return correct, outputs.numpy()
'''


def cifar_like(n=128, seed=0):
    """Synthetic CIFAR-shaped data with a learnable signal: each class shifts its own channel/quadrant."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.int64)
    images = rng.standard_normal((n, 3, 32, 32)).astype(np.float32) * 0.5
    for i, c in enumerate(labels):
        images[i, c % 3, (c // 3) * 8:(c // 3) * 8 + 8, :] += 3.0
    return images, labels


def test_cifar_tutorial_cnn_logging_loop():
    images, labels = cifar_like()
    t, o, tm, om = twin(CIFAR_SRC, "Net")
    t_hist = t["train"](tm, t["make_loader"](images, labels))
    o_hist = o["train"](om, o["make_loader"](images, labels))
    assert len(t_hist) == len(o_hist) == 2
    for (t_run, t_cor, t_tot, t_steps), (o_run, o_cor, o_tot, o_steps) in zip(t_hist, o_hist):
        assert len(o_steps) == len(t_steps) == 8
        np.testing.assert_allclose(o_steps, t_steps, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(o_run, t_run, rtol=1e-4)
        assert isinstance(o_cor, int) and o_cor == t_cor
        assert o_tot == t_tot == 128
    assert t_hist[-1][0] < t_hist[0][0] - 0.5  # it learns (the comparison is not of a flat line)
    assert_same_params(om, tm, rtol=1e-3, atol=1e-5)
    t_cor, t_out = t["evaluate"](tm, images, labels)
    o_cor, o_out = o["evaluate"](om, images, labels)
    assert o_cor == t_cor
    np.testing.assert_allclose(o_out, t_out, rtol=1e-3, atol=1e-4)


# ----- 2. a convolutional autoencoder (Adam, MSE), exported with a symbolic batch ------------------
AE_SRC = '''
class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),    # 28 -> 14
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),   # 14 -> 7
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 7 -> 14
            nn.ConvTranspose2d(8, 1, 3, stride=2, padding=1, output_padding=1),              # 14 -> 28
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


def train(model, images, steps=6, batch_size=8):
    criterion = nn.MSELoss()
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    model.train()
    for step in range(steps):
        lo = (step * batch_size) % len(images)
        x = torch.from_numpy(images[lo:lo + batch_size])
        recon = model(x)
        loss = criterion(recon, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
'''


def test_conv_autoencoder_and_symbolic_export():
    rng = np.random.default_rng(1)
    images = rng.random((24, 1, 28, 28)).astype(np.float32)
    t, o, tm, om = twin(AE_SRC, "AutoEncoder")
    t_losses = t["train"](tm, images)
    o_losses = o["train"](om, images)
    np.testing.assert_allclose(o_losses, t_losses, rtol=1e-4, atol=1e-7)
    assert t_losses[-1] < t_losses[0]
    assert_same_params(om, tm, rtol=1e-3, atol=1e-5)

    tm.eval(), om.eval()
    m = ok.export(om, [ok.Input("x", ("N", 1, 28, 28))])
    onnx.checker.check_model(m, full_check=True)
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert m.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"
    sess = ok.Session(m)
    for n in (1, 5):
        x = rng.random((n, 1, 28, 28)).astype(np.float32)
        with _torch.no_grad():
            want = tm(_torch.from_numpy(x)).numpy()
        got = sess.run({"x": x})["output"]
        assert got.shape == (n, 1, 28, 28)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


# ----- 3. a tensor-heavy model built from the everyday tensor API -----------------------------------
MIXER_SRC = '''
class TokenMixer(nn.Module):
    """Causal token mixing plus rank-based pooling, the way people write it in torch."""

    def __init__(self, d=8, n_classes=4):
        super().__init__()
        self.inp = nn.Linear(d, d)
        self.gain_half = nn.Parameter(torch.ones(d // 2))
        self.out = nn.Linear(2 * d + 1, n_classes)

    def forward(self, x):                                      # x: (B, T, d)
        B, T, d = x.shape
        gain = self.gain_half.repeat_interleave(2)             # (d,)
        h = F.normalize(self.inp(x), dim=-1) * gain
        scores = h @ h.mT / d ** 0.5                           # (B, T, T)
        causal = torch.tril(torch.ones(T, T)) == 0
        scores = scores.masked_fill(causal, float("-inf"))
        h = F.softmax(scores, dim=-1) @ h
        h = h + torch.roll(h, shifts=1, dims=1)
        z = h.new_zeros(B, T, d)
        z[:, 0] = h[:, 0] * 2.0                                # item assignment
        z[:, 1:] = h[:, 1:]
        top, _ = torch.topk(z, k=2, dim=1)                     # (B, 2, d)
        srt, _ = torch.sort(z, dim=1, descending=True)
        order = torch.argsort(z.sum(-1), dim=1)                # (B, T)
        first = torch.gather(z.sum(-1), 1, order[:, :1])       # (B, 1): the smallest token sum
        pooled = torch.cat([top.mean(1), srt[:, -1], first], dim=-1)
        return self.out(pooled)


def loss_fn(logits, y, n_classes=4):
    target = F.one_hot(y, n_classes).float()
    mse = ((logits.softmax(-1) - target) ** 2).sum(-1).mean()
    pos = y > 0                                                # boolean-mask indexing for a loss term
    ce = F.cross_entropy(logits[pos], y[pos])
    return mse + ce


def train(model, xs, ys, steps=5):
    optimizer = optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    handle = model.gain_half.register_hook(lambda g: g * 0.5)
    losses = []
    for step in range(steps):
        x, y = torch.from_numpy(xs[step % len(xs)]), torch.from_numpy(ys[step % len(ys)])
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.gain_half.data.clamp_(0.9, 1.1)              # a .data update after the step
        model.inp.bias.data = model.inp.bias.data * 0.99
        losses.append(loss.item())
    handle.remove()
    return losses
'''


def test_tensor_heavy_model():
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((3, 6, 5, 8)).astype(np.float32)        # 3 batches of (B=6, T=5, d=8)
    ys = np.stack([rng.permutation(np.arange(6) % 4) for _ in range(3)]).astype(np.int64)
    t, o, tm, om = twin(MIXER_SRC, "TokenMixer")
    t_losses = t["train"](tm, xs, ys)
    o_losses = o["train"](om, xs, ys)
    np.testing.assert_allclose(o_losses, t_losses, rtol=1e-4, atol=1e-6)
    assert len(set(np.round(t_losses, 5))) > 1
    assert_same_params(om, tm, rtol=1e-4, atol=1e-5)
    with _torch.no_grad():
        want = tm(_torch.from_numpy(xs[0])).numpy()
    np.testing.assert_allclose(om(ok.tensor(xs[0])).numpy(), want, rtol=1e-4, atol=1e-5)


# ----- the value of a loss read after optimizer.step() ---------------------------------------------
LOOP_SRC = '''
def run(model, x, y, steps=4):
    optimizer = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    early = model(torch.from_numpy(x))                 # built before any training, read at the end
    losses, sums = [], []
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(torch.from_numpy(x))
        loss = criterion(out, torch.from_numpy(y))
        loss.backward()
        optimizer.step()
        sums.append(out.sum().item())                  # both read only after the step
        losses.append(loss.item())
    return losses, sums, early.detach().numpy()
'''


@pytest.mark.parametrize("read_before", [False, True])
def test_loss_item_after_step_is_pre_step_loss(read_before):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 6)).astype(np.float32)
    y = rng.integers(0, 3, 10).astype(np.int64)
    t, o = port(LOOP_SRC, "torch"), port(LOOP_SRC, "onnxkit")
    _torch.manual_seed(0)
    tm = _torch.nn.Sequential(_torch.nn.Linear(6, 16), _torch.nn.Tanh(), _torch.nn.Linear(16, 3))
    om = ok.nn.Sequential(ok.nn.Linear(6, 16), ok.nn.Tanh(), ok.nn.Linear(16, 3))
    om.load_state_dict(tm.state_dict())
    if read_before:  # reading a value once before the update must not change what a later read sees
        om(ok.tensor(x)).sum().item()
    t_losses, t_sums, t_early = t["run"](tm, x, y)
    o_losses, o_sums, o_early = o["run"](om, x, y)
    np.testing.assert_allclose(o_losses, t_losses, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(o_sums, t_sums, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(o_early, t_early, rtol=1e-5, atol=1e-6)
    assert len(set(np.round(t_losses, 4))) == len(t_losses)  # the loss changes every step


# ----- in-place writes of recorded values into a plain (non-grad) tensor ---------------------------
INPLACE_LEAF_SRC = '''
def run(w_np):
    w = torch.tensor(w_np, requires_grad=True)
    z = torch.zeros(2, 3)
    before = z.sum()
    z[0] = w * 2                      # z now has a history (torch: grad_fn=CopySlices)
    acc = torch.zeros(3)
    acc += w ** 2
    buf = torch.zeros(3)
    with torch.no_grad():
        buf[1] = w[1] * 10            # under no_grad: a plain value, no history
    out = (z.sum(0) * acc).sum() + (buf * w).sum()
    out.backward()
    return (z.requires_grad, acc.requires_grad, buf.requires_grad, before.item(), out.item(),
            w.grad.numpy(), z.detach().numpy())
'''


def test_inplace_write_into_plain_tensor_records_gradient():
    w = np.array([0.5, -1.0, 2.0], np.float32)
    want = port(INPLACE_LEAF_SRC, "torch")["run"](w)
    got = port(INPLACE_LEAF_SRC, "onnxkit")["run"](w)
    assert got[:3] == want[:3] == (True, True, False)
    for g, t in zip(got[3:], want[3:]):
        np.testing.assert_allclose(g, t, rtol=1e-6, atol=1e-6)


# ----- ResNet-8 (CIFAR-style, BatchNorm, projection shortcuts, Adam): the conv-net of issue 12 -----------
RESNET8_SRC = '''
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet8(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = BasicBlock(16, 16)
        self.layer2 = BasicBlock(16, 32, 2)
        self.layer3 = BasicBlock(32, 64, 2)
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def train(net, images, labels, steps=3):
    optimizer = optim.Adam(net.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    losses = []
    net.train()
    for i in range(steps):
        x = torch.from_numpy(images[i * 16:(i + 1) * 16])
        y = torch.from_numpy(labels[i * 16:(i + 1) * 16])
        optimizer.zero_grad()
        loss = criterion(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
'''


def test_resnet8_torch_style_loop_and_trainer_follow_torch():
    """Forward, Adam steps through BatchNorm and projection shortcuts, running statistics and the eval-mode
    output equal torch's, written torch-style and driven by ok.Trainer."""
    images, labels = cifar_like(48)
    t, o, tm, om = twin(RESNET8_SRC, "ResNet8")
    want = t["train"](tm, images, labels)
    got = o["train"](om, images, labels)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert_same_params(om, tm, rtol=2e-3, atol=2e-4)  # Adam divides by sqrt(v): rounding grows a little
    tm.eval()
    om.eval()
    np.testing.assert_allclose(om(ok.tensor(images[:8])).numpy(), tm(_torch.from_numpy(images[:8])).detach().numpy(),
                               rtol=1e-3, atol=1e-3)

    _, o2, tm2, om2 = twin(RESNET8_SRC, "ResNet8")
    tr = ok.Trainer(om2, ok.nn.CrossEntropyLoss(), ok.optim.Adam(om2.parameters(), lr=1e-3))
    losses = [tr.step(images[i * 16:(i + 1) * 16], labels[i * 16:(i + 1) * 16]) for i in range(3)]
    np.testing.assert_allclose(losses, want, rtol=1e-4, atol=1e-5)
