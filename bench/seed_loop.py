"""The seed's define-by-run MLP loop in onnxkit against one precompiled step graph and torch eager, same process.

Loop: 500 iterations of `y_pred = x.mm(w1).clamp(min=0).mm(w2); loss = (y_pred - y).pow(2).sum();
loss.backward(); with ok.no_grad(): w -= lr * w.grad; w.grad.zero_()` (graph rebuilt each step,
sessions served by the structure cache). Peer: the same forward + backward + update built once with
the same Tensor code, run 500 times through its onnxruntime session with numpy feeds; and torch eager
running the same loop (torch.set_num_threads(2), as onnxkit's 2 intra-op threads). Repeats are
interleaved; prints the medians (ms per step) of the repeats, torch's p50/p90 over repeats as the
control of host noise, and the ratios.

    python bench/seed_loop.py [--steps 500] [--repeats 10]
"""
import argparse
import statistics
import time

import numpy as np

import onnxkit as ok
from onnxkit import runtime
from onnxkit.emit import build_model

N, D_IN, H, D_OUT, LR = 64, 1000, 100, 10, 1e-6


def data(seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(N, D_IN), (N, D_OUT), (D_IN, H), (H, D_OUT)]
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def run_loop(lib, steps, arrays):
    """The seed's loop, written exactly as in torch, with `lib` onnxkit or torch; returns the final weights."""
    x, y = lib.tensor(arrays[0]), lib.tensor(arrays[1])
    w1 = lib.tensor(arrays[2], requires_grad=True)
    w2 = lib.tensor(arrays[3], requires_grad=True)
    for _ in range(steps):
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with lib.no_grad():
            w1 -= LR * w1.grad
            w2 -= LR * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
    return w1.detach().numpy(), w2.detach().numpy()


def build_step(arrays):
    """One graph: (x, y, w1, w2) -> (new w1, new w2), built with the same Tensor code; its session."""
    x, y = ok.tensor(arrays[0]), ok.tensor(arrays[1])
    w1 = ok.tensor(arrays[2], requires_grad=True)
    w2 = ok.tensor(arrays[3], requires_grad=True)
    y_pred = x.mm(w1).clamp(min=0).mm(w2)
    loss = (y_pred - y).pow(2).sum()
    g1, g2 = ok.grad(loss, [w1, w2])
    with ok.no_grad():
        new = [w1 - LR * g1, w2 - LR * g2]
    fed = {id(x): "x", id(y): "y", id(w1): "w1", id(w2): "w2"}
    model, _ = build_model(new, fed=fed)
    return runtime.make_inference_session(model, "cpu")


def run_step(sess, steps, arrays):
    x, y, w1, w2 = arrays
    for _ in range(steps):
        w1, w2 = sess.run(None, {"x": x, "y": y, "w1": w1, "w2": w2})
    return w1, w2


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(2)
    arrays = data()
    sess = build_step(arrays)
    runners = {"onnxkit define-by-run loop": lambda n, a: run_loop(ok, n, a),
               "onnxkit precompiled step": lambda n, a: run_step(sess, n, a),
               "torch eager, same loop": lambda n, a: run_loop(torch, n, a)}
    for fn in runners.values():  # warm up: compile the loop's graphs, touch the sessions
        fn(3, arrays)
    ms, finals = {k: [] for k in runners}, {}
    for _ in range(args.repeats):
        for k, fn in runners.items():
            t, finals[k] = timed(fn, args.steps, arrays)
            ms[k].append(t / args.steps * 1e3)
    for k in runners:  # all three ran the same arithmetic
        for a, b in zip(finals[k], finals["torch eager, same loop"]):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    torch_ms = statistics.median(ms["torch eager, same loop"])
    print(f"{args.repeats} interleaved repeats of {args.steps} steps; ms/step, median over repeats (p90)")
    for k, v in ms.items():
        p50, p90 = np.percentile(v, [50, 90])
        print(f"  {k:28s} {p50:7.3f}  (p90 {p90:7.3f})  {p50 / torch_ms:5.2f}x torch")
    loop, pre = statistics.median(ms["onnxkit define-by-run loop"]), statistics.median(ms["onnxkit precompiled step"])
    print(f"loop / precompiled {loop / pre:.2f}x; loop / torch eager {loop / torch_ms:.2f}x (target <= 1.0); "
          f"cache: {dict(runtime.stats)}")


if __name__ == "__main__":
    main()
