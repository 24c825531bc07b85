"""Macro nodes (onnxkit.macro): loss.backward() and optimizer.step() record one node each, expanded when a
structure is first compiled and served from the session cache afterwards. Every value must equal torch's
whatever is read when, and a cached session must never serve a graph whose hidden part differs."""
import numpy as np
import pytest
import torch

import onnxkit as ok
from onnxkit import nn, optim, runtime


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(8, 5), (5, 4), (4,), (8, 4)]]
    return arrays


def _loop(lib, arrays, steps, read_between=(), opt_name="SGD"):
    """A torch-style loop; in the steps listed in read_between, a forward intermediate and the loss are
    read between backward and step (the macro's forward cone is then evaluated, so it must be expanded
    before the structure key is taken)."""
    T = lib is torch
    x, w, b, y = (lib.tensor(a) for a in arrays)
    w.requires_grad_(True)
    b.requires_grad_(True)
    kw = dict(lr=0.05, momentum=0.9) if opt_name == "SGD" else dict(lr=0.05)
    opt = getattr(lib.optim, opt_name)([w, b], **kw)
    seen = []
    for i in range(steps):
        opt.zero_grad()
        h = lib.tanh(x.mm(w) + b)
        loss = ((h - y) ** 2).mean()
        loss.backward()
        if i in read_between:
            seen.append((h.detach().numpy() if T else h.numpy()).copy())
            seen.append(float(loss.item()))
        opt.step()
        seen.append(float(loss.item()))
    val = (lambda t: t.detach().numpy()) if T else (lambda t: t.numpy())
    return seen, val(w), val(b), val(w.grad), val(b.grad)


@pytest.mark.parametrize("opt_name", ["SGD", "Adam", "RMSprop"])
@pytest.mark.parametrize("read_between", [(), (1,), (0, 2, 3)])
def test_torch_style_loop_matches_torch(opt_name, read_between):
    arrays = _pair()
    got = _loop(ok, arrays, 5, read_between, opt_name)
    want = _loop(torch, arrays, 5, read_between, opt_name)
    assert len(got[0]) == len(want[0])
    for g, w in zip(got[0], want[0]):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    for g, w in zip(got[1:], want[1:]):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_a_repeated_step_is_served_by_the_cache():
    arrays = _pair(1)
    _loop(ok, arrays, 2)
    before = runtime.stats["miss"]
    _loop(ok, arrays, 4)  # same structure: backward and update are not rebuilt, nothing compiles
    assert runtime.stats["miss"] == before


@pytest.mark.parametrize("read_loss_first", [False, True])
def test_constants_behind_an_evaluated_loss_are_not_confused(read_loss_first):
    """Only the constant differs between the steps; with the loss read before backward, the constant lies
    behind an evaluated tensor, which the structure key does not see unless the macro is expanded first."""
    w = ok.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    x = ok.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    for c in (1.0, 2.0, 3.0, 2.0):
        w.grad = None
        loss = (x.mm(w) * c).sum()
        if read_loss_first:
            loss.item()
        loss.backward()
        want = c * np.arange(6, dtype=np.float32).reshape(2, 3).sum(0)[:, None] * np.ones((1, 2))
        np.testing.assert_allclose(w.grad.numpy(), want)


def test_backward_twice_accumulates_and_grad_of_an_unused_branch_is_zero_like_torch():
    w = ok.tensor(np.full((2,), 3.0, np.float32), requires_grad=True)
    v = ok.tensor(np.ones((2,), np.float32), requires_grad=True)
    loss = (w * w).sum() + (v * 0).sum()
    loss.backward()
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), [12.0, 12.0])
    np.testing.assert_allclose(v.grad.numpy(), [0.0, 0.0])


def test_export_of_a_graph_reading_a_deferred_grad():
    w = ok.tensor(np.full((2,), 3.0, np.float32), requires_grad=True)
    (w * w).sum().backward()
    model = ok.export(lambda: w.grad * 2, [])
    out = ok.Session(model).run({})
    np.testing.assert_allclose(list(out.values())[0], [12.0, 12.0])


def test_module_loop_with_batchnorm_and_dropout_off_matches_torch():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    om = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    om.load_state_dict(tm.state_dict())
    # SGD, not Adam: the bias before BatchNorm has a zero gradient up to rounding noise, which Adam would
    # normalize into steps of size lr in directions that differ between the two libraries
    to, oo = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9), optim.SGD(om.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x, y = rng.standard_normal((7, 5)).astype(np.float32), rng.integers(0, 3, 7)
        to.zero_grad(); lt = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y)); lt.backward()
        to.step()
        oo.zero_grad(); lo = ok.nn.functional.cross_entropy(om(ok.tensor(x)), ok.tensor(y)); lo.backward()
        oo.step()
        np.testing.assert_allclose(lo.item(), lt.item(), rtol=1e-5)
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(om.state_dict()[k].numpy() if hasattr(om.state_dict()[k], "numpy")
                                   else om.state_dict()[k], v.numpy(), rtol=1e-4, atol=1e-6)


def test_gradient_accumulation_and_clipping_between_backward_and_step_match_torch():
    """Two backward calls add their deferred gradients; clip_grad_norm_ reads and rescales them in place."""
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    om = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    om.load_state_dict(tm.state_dict())
    to, oo = torch.optim.SGD(tm.parameters(), lr=0.5, momentum=0.9), optim.SGD(om.parameters(), lr=0.5, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(4):
        to.zero_grad()
        oo.zero_grad()
        for _ in range(2):
            x, y = rng.standard_normal((4, 5)).astype(np.float32), rng.integers(0, 3, 4)
            torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y)).backward()
            ok.nn.functional.cross_entropy(om(ok.tensor(x)), ok.tensor(y)).backward()
        tn = torch.nn.utils.clip_grad_norm_(tm.parameters(), 0.1)
        on = ok.nn.utils.clip_grad_norm_(om.parameters(), 0.1)
        np.testing.assert_allclose(float(on), float(tn), rtol=1e-5)
        to.step()
        oo.step()
    for k, v in tm.state_dict().items():
        got = om.state_dict()[k]
        np.testing.assert_allclose(np.asarray(got.numpy() if hasattr(got, "numpy") else got), v.numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_a_read_forward_value_changed_in_place_afterwards_still_expands_the_backward_first():
    """Regression (found by the property test with more examples): the forward cone of a backward was read,
    then changed in place, so the snapshot that took over the node holds the read value. The macro must
    still be expanded before the structure key is taken, or two forwards that differ behind the cut share
    a session (here tanh's gradient would be served for p + p's)."""
    v = np.array([0.3, -0.7, 1.1], np.float32)
    for fn, want in ((ok.tanh, 1 - np.tanh(v) ** 2), (lambda p: p + p, np.full(3, 2.0, np.float32))):
        p = ok.tensor(v, requires_grad=True)
        h = fn(p)
        h.numpy()
        h.sum().backward()
        h.copy_(h * 0.5)
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-6)
