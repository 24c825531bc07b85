"""Does a define-by-run step lose time in how evaluate feeds onnxruntime? The graph that a torch-style
loop (model.compile()) compiles for a bench/train_step.py workload is taken with the feeds of one step
and run, in one fresh session (2 intra-op threads, spinning), five ways: `sess.run` with numpy feeds
(what runtime.evaluate does), IOBinding with outputs handed back through DLPack (no copy), the
OrtValue entry point, IOBinding into preallocated double-buffered outputs (what ok.Trainer does), and
pre-bound inputs with onnxruntime-allocated outputs. Also the Trainer's own graph of the same model
through `sess.run`, to compare the graphs themselves. Interleaved medians.

    python bench/binding_modes.py [--workload lenet] [--repeats 12]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402  (the workloads)

_NP = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}


def loop_graph_and_feeds(name):
    """The model bytes and feeds of the compiled torch-style loop's session, captured from one step."""
    import onnxkit as ok
    from onnxkit import runtime
    model, _, (loss_fn, _), (opt, _), x, y, _ = train_step.workload(name)
    model.compile()
    step = train_step.torch_style_step(model, loss_fn, opt, ok.tensor(x), ok.tensor(y))
    for _ in range(15):
        step()
    entry, captured, tune = runtime._streak[0], {}, runtime._tune_spinning

    class Capture:
        def run(self, names, feeds):
            captured.update({k: np.array(v) for k, v in feeds.items()})
            return entry.sess.run(names, feeds)
    runtime._tune_spinning = lambda e: Capture()
    try:
        step()
    finally:
        runtime._tune_spinning = tune
    return entry.model, captured


def trainer_graph_and_feeds(name):
    import onnxkit as ok
    model, _, (loss_fn, _), (opt, _), x, y, _ = train_step.workload(name)
    trainer = ok.Trainer(model, loss_fn, opt)
    trainer.step(x, y)
    graph = trainer.training_model
    rng = np.random.default_rng(0)
    feeds = {}
    for i in graph.graph.input:
        dims = [d.dim_value if d.HasField("dim_value") else len(x) for d in i.type.tensor_type.shape.dim]
        dt = {1: np.float32, 11: np.float64, 7: np.int64}[i.type.tensor_type.elem_type]
        feeds[i.name] = np.asarray(rng.random(dims) * 0.1, dt) if dt != np.int64 else np.ones(dims, dt)
    feeds.update(zip(list(trainer._graph.data) + [trainer._graph.target], [x, y]))
    return graph.SerializeToString(), feeds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="lenet", choices=["mlp", "lenet", "resnet8", "lstm", "lm"])
    ap.add_argument("--repeats", type=int, default=12)
    args = ap.parse_args()
    import onnxruntime as ort
    from onnxkit import runtime
    model, feeds = loop_graph_and_feeds(args.workload)
    t_model, t_feeds = trainer_graph_and_feeds(args.workload)
    sess = ort.InferenceSession(model, runtime.session_options(True), providers=["CPUExecutionProvider"])
    t_sess = ort.InferenceSession(t_model, runtime.session_options(True), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]

    def dlpack():
        b = sess.io_binding()
        for k, v in feeds.items():
            b.bind_cpu_input(k, v)
        for n in names:
            b.bind_output(n, "cpu")
        sess.run_with_iobinding(b)
        return [np.from_dlpack(o._ortvalue) for o in b.get_outputs()]

    def ortvalues():
        return sess._sess.run_with_ort_values(
            {k: ort.OrtValue.ortvalue_from_numpy(v)._ortvalue for k, v in feeds.items()}, names, None)

    first = sess.run(None, feeds)
    buffers = [[ort.OrtValue.ortvalue_from_numpy(np.empty_like(a)) for a in first] for _ in range(2)]
    double, single = [], sess.io_binding()
    for j in range(2):
        b = sess.io_binding()
        for k, v in feeds.items():
            b.bind_cpu_input(k, v)
        for n, ov in zip(names, buffers[j]):
            b.bind_ortvalue_output(n, ov)
        double.append(b)
    for k, v in feeds.items():
        single.bind_cpu_input(k, v)
    for n in names:
        single.bind_output(n, "cpu")
    turn = [0]

    def preallocated():
        turn[0] = 1 - turn[0]
        sess.run_with_iobinding(double[turn[0]])

    runs = {"sess.run, numpy feeds (evaluate)": lambda: sess.run(None, feeds),
            "IOBinding, DLPack outputs": dlpack, "run_with_ort_values": ortvalues,
            "IOBinding, preallocated outputs": preallocated,
            "pre-bound inputs, ORT outputs": lambda: sess.run_with_iobinding(single),
            "Trainer's graph, sess.run": lambda: t_sess.run(None, t_feeds)}
    times = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, fn in runs.items():
            for _ in range(3):
                fn()
            t0 = time.perf_counter()
            for _ in range(30):
                fn()
            times[k].append((time.perf_counter() - t0) / 30 * 1e3)
    base = float(np.median(times["sess.run, numpy feeds (evaluate)"]))
    print(f"{args.workload}: the compiled torch-style loop's graph ({len(feeds)} inputs, {len(names)} outputs), "
          f"median ms per run over {args.repeats} blocks of 30")
    for k, v in times.items():
        print(f"  {k:36s} {np.median(v):7.3f} ms  ({np.median(v) / base:.2f}x)")


if __name__ == "__main__":
    main()
