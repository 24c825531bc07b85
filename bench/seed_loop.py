"""The seed's define-by-run MLP loop in onnxkit against one precompiled step graph, same process.

Loop: 500 iterations of `y_pred = x.mm(w1).clamp(min=0).mm(w2); loss = (y_pred - y).pow(2).sum();
loss.backward(); with ok.no_grad(): w -= lr * w.grad; w.grad.zero_()` (graph rebuilt each step,
sessions served by the structure cache). Peer: the same forward + backward + update built once with
the same Tensor code, run 500 times through its onnxruntime session with numpy feeds.
Repeats are interleaved; prints the medians (ms per step) and the ratio loop / precompiled.

    python bench/seed_loop.py [--steps 500] [--repeats 7]
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


def run_loop(steps, arrays):
    """The seed's loop, written exactly as in torch; returns the final weights."""
    x, y = ok.tensor(arrays[0]), ok.tensor(arrays[1])
    w1 = ok.tensor(arrays[2], requires_grad=True)
    w2 = ok.tensor(arrays[3], requires_grad=True)
    for _ in range(steps):
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with ok.no_grad():
            w1 -= LR * w1.grad
            w2 -= LR * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
    return w1.numpy(), w2.numpy()


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
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    arrays = data()
    sess = build_step(arrays)
    run_loop(3, arrays), run_step(sess, 3, arrays)  # warm up: compile the loop's graphs, touch the session
    loop_ms, step_ms = [], []
    for _ in range(args.repeats):
        t, (a1, a2) = timed(run_loop, args.steps, arrays)
        loop_ms.append(t / args.steps * 1e3)
        t, (b1, b2) = timed(run_step, sess, args.steps, arrays)
        step_ms.append(t / args.steps * 1e3)
    np.testing.assert_allclose(a1, b1, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(a2, b2, rtol=1e-3, atol=1e-3)
    lm, sm = statistics.median(loop_ms), statistics.median(step_ms)
    paired = statistics.median(a / b for a, b in zip(loop_ms, step_ms))  # neighbours share the host's load
    print(f"seed loop (define-by-run, cached): {lm:.3f} ms/step   runs: {' '.join(f'{v:.3f}' for v in loop_ms)}")
    print(f"precompiled step graph:            {sm:.3f} ms/step   runs: {' '.join(f'{v:.3f}' for v in step_ms)}")
    print(f"ratio loop / precompiled: {lm / sm:.2f}x (median of paired repeats {paired:.2f}x; target <= 3)   "
          f"cache: {dict(runtime.stats)}")


if __name__ == "__main__":
    main()
