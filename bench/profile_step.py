"""Where ok.Trainer's training step spends its time: onnxruntime's profiler on the training graph of a
bench/train_step.py workload, kernel time per op type and for the slowest nodes.

The graph is run by a plain 2-thread session with the Trainer's batch and random parameter values
(kernel times do not depend on the values). Profiling adds overhead per node, so compare shares, not
totals; Scan bodies report their nodes once per iteration.

    python bench/profile_step.py [--workload resnet8] [--runs 20] [--top 20]
"""
import argparse
import collections
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402  (the workloads)

_NP = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="resnet8", choices=["mlp", "lenet", "resnet8", "lstm", "lm"])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    import onnxruntime as ort
    import onnxkit as ok
    model, _, (loss_fn, _), (opt, _), x, y, _ = train_step.workload(args.workload)
    trainer = ok.Trainer(model, loss_fn, opt)
    trainer.step(x, y)
    graph = trainer.training_model
    ops = collections.Counter(n.op_type for n in graph.graph.node)
    print(f"{args.workload}: {len(graph.graph.node)} nodes; most used: {ops.most_common(10)}")
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.enable_profiling, so.log_severity_level = 2, True, 3
    sess = ort.InferenceSession(graph.SerializeToString(), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else len(x) for d in i.shape]
        dt = _NP[i.type]
        feeds[i.name] = (np.asarray(rng.random(shape) * 0.1, dt) if dt != np.int64 else np.ones(shape, dt))
    feeds.update(zip(list(trainer._graph.data) + [trainer._graph.target], [x, y]))
    for _ in range(3):
        sess.run(None, feeds)
    for _ in range(args.runs):
        sess.run(None, feeds)
    path = sess.end_profiling()
    with open(path) as f:
        events = [e for e in json.load(f) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    os.remove(path)
    n = args.runs + 3
    by_op, per_node, count, shape = collections.Counter(), collections.Counter(), collections.Counter(), {}
    for e in events:
        op = e["args"]["op_name"]
        by_op[op] += e["dur"]
        count[op] += 1
        per_node[e["name"]] += e["dur"]
        shape[e["name"]] = (op, str(e["args"].get("output_type_shape"))[:80])
    total = sum(by_op.values()) / n / 1e3
    print(f"kernel time per run {total:.2f} ms (profiled)\nper op type:")
    for op, d in by_op.most_common(args.top):
        print(f"  {op:22s} {d / n / 1e3:8.2f} ms  {d / n / 1e3 / total:5.1%}  {count[op] // n:4d} nodes")
    print("slowest nodes:")
    for name, d in per_node.most_common(args.top):
        print(f"  {d / n / 1e3:6.2f} ms  {shape[name][0]:14s} {name.replace('_kernel_time', '')[:44]:44s} {shape[name][1]}")


if __name__ == "__main__":
    main()
