"""The seed's autograd examples written with onnxkit (seed/000_a6499d1d6222c8ac.txt):
`c = sum(x*y + z); c.backward()` and the two-layer MLP define-by-run training loop, checked against
the seed's hand-written numpy gradients and torch's trajectory; the loop must run on cached sessions."""
import numpy as np
import pytest
import torch

import onnxkit as ok
from onnxkit import runtime


def test_sum_of_products_backward():
    """a = x * y; b = a + z; c = sum(b); c.backward(): grads equal the seed's numpy derivation."""
    np.random.seed(0)
    N, D = 3, 4
    xs, ys, zs = (np.random.randn(N, D).astype(np.float32) for _ in range(3))
    x, y, z = (ok.tensor(v, requires_grad=True) for v in (xs, ys, zs))
    a = x * y
    b = a + z
    c = ok.sum(b)
    c.backward()
    # the seed's numpy backward pass
    grad_c = 1.0
    grad_b = grad_c * np.ones((N, D))
    grad_a = grad_b.copy()
    grad_z = grad_b.copy()
    grad_x = grad_a * ys
    grad_y = grad_a * xs
    np.testing.assert_allclose(c.item(), np.sum(xs * ys + zs), rtol=1e-6)
    for t, want in ((x, grad_x), (y, grad_y), (z, grad_z)):
        np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-6)
    tx, ty, tz = (torch.tensor(v, requires_grad=True) for v in (xs, ys, zs))
    torch.sum(tx * ty + tz).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


N, D_IN, H, D_OUT, LR = 64, 1000, 100, 10, 1e-6


def _data():
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(np.float32) for s in ((N, D_IN), (N, D_OUT), (D_IN, H), (H, D_OUT))]


def _torch_trajectory(arrays, steps):
    x, y = torch.tensor(arrays[0]), torch.tensor(arrays[1])
    w1 = torch.tensor(arrays[2], requires_grad=True)
    w2 = torch.tensor(arrays[3], requires_grad=True)
    losses = []
    for _ in range(steps):
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            w1 -= LR * w1.grad
            w2 -= LR * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
    return losses, w1.detach().numpy(), w2.detach().numpy()


def _reset_zero(w):
    w.grad.zero_()


def _reset_none(w):
    w.grad = None


# (name, how the loop resets .grad, whether it reads the loss every step)
LOOPS = [
    ("zero_-with-loss", _reset_zero, True),
    ("none-with-loss", _reset_none, True),
    ("zero_-as-in-seed", _reset_zero, False),
]


@pytest.mark.parametrize("name,reset,read_loss", LOOPS, ids=[row[0] for row in LOOPS])
def test_two_layer_mlp_loop_matches_torch_and_hits_cache(name, reset, read_loss):
    steps = 20
    arrays = _data()
    t_losses, t_w1, t_w2 = _torch_trajectory(arrays, steps)
    x, y = ok.tensor(arrays[0]), ok.tensor(arrays[1])
    w1 = ok.tensor(arrays[2], requires_grad=True)
    w2 = ok.tensor(arrays[3], requires_grad=True)
    misses = []
    for t in range(steps):
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        if read_loss:
            np.testing.assert_allclose(loss.item(), t_losses[t], rtol=1e-4, err_msg=f"{name}: loss at step {t}")
        loss.backward()
        with ok.no_grad():
            w1 -= LR * w1.grad
            w2 -= LR * w2.grad
            reset(w1)
            reset(w2)
        misses.append(runtime.stats["miss"])
    np.testing.assert_allclose(w1.numpy(), t_w1, rtol=1e-4, atol=1e-4, err_msg=f"{name}: w1 after {steps} steps")
    np.testing.assert_allclose(w2.numpy(), t_w2, rtol=1e-4, atol=1e-4, err_msg=f"{name}: w2 after {steps} steps")
    assert misses[-1] == misses[2], f"{name}: sessions compiled after the first iterations: {misses}"
    assert w1.requires_grad and w1.node is None  # still a leaf, holding the updated value
    assert w1.grad is None or not w1.grad.numpy().any()


def test_loop_runs_one_session_call_per_step():
    """Backward + update of one step is evaluated in a single onnxruntime run."""
    arrays = _data()
    x, y = ok.tensor(arrays[0]), ok.tensor(arrays[1])
    w1 = ok.tensor(arrays[2], requires_grad=True)
    w2 = ok.tensor(arrays[3], requires_grad=True)
    runs = []
    for _ in range(5):
        loss = (x.mm(w1).clamp(min=0).mm(w2) - y).pow(2).sum()
        loss.backward()
        with ok.no_grad():
            w1 -= LR * w1.grad
            w2 -= LR * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
        runs.append(runtime.stats["run"])
    assert np.diff(runs).tolist() == [1, 1, 1, 1]
