"""Where a torch-style define-by-run step spends its time, against ok.Trainer on the same model.

The loop is `opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step(); loss.item()`
on the workloads of bench/train_step.py. Prints the median ms per phase: Python building the forward,
backward() (one macro node), step() (one macro node and the deferred assignments), the Python part of
the evaluation (topological sort, structure key, feeds, results) and the onnxruntime run itself; then
the whole step, plain and with model.compile() (nn.compiled: the forward replayed as one macro node),
against Trainer.step in interleaved blocks.

    python bench/define_by_run.py [--workloads lenet resnet8] [--steps 20] [--repeats 6]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402  (the workloads)

import onnxkit as ok  # noqa: E402
from onnxkit import runtime  # noqa: E402


class _Timed:
    """An onnxruntime session whose run time is added up."""

    def __init__(self, sess, acc):
        self.sess, self.acc = sess, acc

    def run(self, *args):
        t0 = time.perf_counter()
        out = self.sess.run(*args)
        self.acc[0] += time.perf_counter() - t0
        return out


def phases(name, steps, compiled=False):
    """Median ms of each phase of the define-by-run step over `steps` steps after warm-up."""
    model, _, (loss_fn, _), (opt, _), x, y, _ = train_step.workload(name)
    if compiled:
        model.compile()
    ox, oy = ok.tensor(x), ok.tensor(y)
    acc, tune = [0.0], runtime._tune_spinning
    runtime._tune_spinning = lambda entry: _Timed(tune(entry), acc)
    rows = []
    try:
        for i in range(steps + 12):
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = loss_fn(model(ox), oy)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            before = acc[0]
            loss.item()
            t4 = time.perf_counter()
            ort = acc[0] - before
            if i >= 12:
                rows.append([t1 - t0, t2 - t1, t3 - t2, t4 - t3 - ort, ort])
    finally:
        runtime._tune_spinning = tune
    return np.median(np.array(rows), axis=0) * 1e3


def versus_trainer(name, steps, repeats, compiled=False):
    """(define-by-run ms, Trainer ms): medians of interleaved blocks. One define-by-run loop per
    comparison: two loops alternating would stop their sessions from spinning (runtime._tune_spinning)."""
    model, _, (loss_fn, _), (opt, _), x, y, _ = train_step.workload(name)
    model2, _, (loss2, _), (opt2, _), _, _, _ = train_step.workload(name)
    if compiled:
        model.compile()
    trainer = ok.Trainer(model2, loss2, opt2)
    loop = train_step.torch_style_step(model, loss_fn, opt, ok.tensor(x), ok.tensor(y))
    runs = {"define-by-run": loop, "Trainer": lambda: trainer.step(x, y)}
    for fn in runs.values():
        for _ in range(12):
            fn()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k] += train_step.time_steps(fn, steps)
            time.sleep(0.02)
    return [float(np.median(times[k])) * 1e3 for k in runs]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", default=["lenet", "resnet8"], choices=["mlp", "lenet", "resnet8", "lstm", "lm"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=6)
    args = ap.parse_args()
    for name in args.workloads:
        for compiled in (False, True):
            fwd, bwd, step, ev, ort = phases(name, args.steps, compiled)
            print(f"{name}{' (model.compile())' if compiled else ''}: forward build {fwd:.3f}  backward() {bwd:.3f}  "
                  f"step() {step:.3f}  evaluate (Python) {ev:.3f}  onnxruntime run {ort:.3f} ms")
        for compiled in (False, True):
            dbr, tr = versus_trainer(name, args.steps, args.repeats, compiled)
            print(f"{name}: define-by-run step{' with model.compile()' if compiled else ''} {dbr:.3f} ms, "
                  f"ok.Trainer step {tr:.3f} ms: {dbr / tr:.2f}x the Trainer (target <= 1.1)")

if __name__ == "__main__":
    main()
