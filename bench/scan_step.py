"""Cost of the generic Scan gradient (autodiff/rules_control.py) against torch eager (same process,
interleaved medians).

Workload: an Elman cell written with ok.scan, h_t = tanh(h_{t-1} W + x_t) over x of shape (T, B, H),
loss = sum(h_T^2) + sum(ys^2); one step computes the loss and its gradients w.r.t. W and x. onnxkit runs
one compiled graph (forward Scan, the rule's recompute Scan that saves the carries, the reverse Scan that
replays the body and differentiates it); torch runs the unrolled loop and backward. torch's own p50/p90
are printed as a control of the host's noise.

    python bench/scan_step.py [--steps 20] [--repeats 10] [--seq 35] [--batch 32] [--hidden 128]
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
THREADS = 2


def onnxkit_runner(T, B, H, w0):
    import onnxkit as ok
    from onnxkit.emit import build_model
    w = ok.tensor(w0, requires_grad=True)
    xs = ok.Input("xs", ("T", "B", H))
    h, ys = ok.scan(lambda h, x: ((h @ w + x).tanh(), h), ok.zeros_like(xs[0]), xs)
    loss = (h * h).sum() + (ys * ys).sum()
    gw, = ok.grad(loss, [w])
    model, _ = build_model([loss, gw], ["loss", "grad_w"])
    sess = ok.Session(model, device="cpu")  # spinning off: a spinning session slows torch in the same process
    return lambda x: sess.run({"xs": x})


def torch_runner(w0):
    import torch
    torch.set_num_threads(THREADS)
    w = torch.tensor(w0, requires_grad=True)

    def step(x):
        x = torch.from_numpy(x)
        h, loss = torch.zeros(x.shape[1:]), 0.0
        for t in range(x.shape[0]):
            loss = loss + (h * h).sum()
            h = torch.tanh(h @ w + x[t])
        loss = loss + (h * h).sum()
        return torch.autograd.grad(loss, [w])
    return step


def timed(fn, x, steps):
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--seq", type=int, default=35)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    w0 = (rng.standard_normal((a.hidden, a.hidden)) / np.sqrt(a.hidden)).astype(np.float32)
    x = rng.standard_normal((a.seq, a.batch, a.hidden)).astype(np.float32)
    ours, theirs = onnxkit_runner(a.seq, a.batch, a.hidden, w0), torch_runner(w0)
    np.testing.assert_allclose(ours(x)["grad_w"], theirs(x)[0].numpy(), rtol=1e-3, atol=1e-3)
    ok_t, torch_t = [], []
    for _ in range(a.repeats):  # interleaved
        ok_t += timed(ours, x, a.steps)
        time.sleep(0.02)
        torch_t += timed(theirs, x, a.steps)
        time.sleep(0.02)
    ms = lambda v, q=50: 1e3 * float(np.percentile(v, q))  # noqa: E731
    print(f"Elman scan T={a.seq} B={a.batch} H={a.hidden}, loss + grad_w per step (torch {THREADS} threads, "
          f"onnxruntime min(cores, 8))")
    print(f"  onnxkit (Scan + rule)  p50 {ms(ok_t):7.2f} ms")
    print(f"  torch eager            p50 {ms(torch_t):7.2f} ms  (p90 {ms(torch_t, 90):.2f})")
    print(f"  ratio onnxkit / torch  {ms(ok_t) / ms(torch_t):.2f}x")


if __name__ == "__main__":
    main()
