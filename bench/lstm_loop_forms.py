"""Where the LSTM training step's floor lies: the forward recurrence of bench/lstm_step.py's workload
(T=35, N=32, H=128) as the ONNX Scan that ops/rnn.py builds, and fully unrolled into one graph (the
same nodes per step, no Scan); one onnxruntime session each (2 intra-op threads, spinning on, as the
Trainer), interleaved medians. If the unrolled graph is no faster than the Scan, the cost is the
per-step nodes themselves, not the loop. (The fused ONNX LSTM op: bench/lstm_step.py's "op rule" row.)

    python bench/lstm_loop_forms.py [--seq 35] [--batch 32] [--hidden 128] [--repeats 15]
"""
import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper as h

F32 = TensorProto.FLOAT


def _session(graph):
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = 2, 1, 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1")
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)], ir_version=9)
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _inputs(T, N, H):
    vi = h.make_tensor_value_info
    return [vi("h0", F32, [N, H]), vi("c0", F32, [N, H]), vi("gx", F32, [T, N, 4 * H]), vi("RT", F32, [H, 4 * H])]


def scan_graph(T, N, H):
    """The body of ops.rnn._lstm_scan_forward: Gemm, Split, Sigmoid, Tanh, Split, the cell update."""
    n, vi = h.make_node, h.make_tensor_value_info
    body = [n("Gemm", ["h", "RT", "gx"], ["pre"]), n("Split", ["pre", "sizes"], ["p_s", "p_c"], axis=1),
            n("Sigmoid", ["p_s"], ["s"]), n("Tanh", ["p_c"], ["gc"]),
            n("Split", ["s"], ["i", "o", "f"], axis=1, num_outputs=3),
            n("Mul", ["f", "c"], ["fc"]), n("Mul", ["i", "gc"], ["ig"]), n("Add", ["fc", "ig"], ["c_new"]),
            n("Tanh", ["c_new"], ["tc"]), n("Mul", ["o", "tc"], ["h_new"]), n("Identity", ["c_new"], ["c_seq"])]
    outs = [("h_new", H), ("c_new", H), ("c_seq", H), ("s", 3 * H), ("gc", H)]
    g = h.make_graph(body, "body", [vi("h", F32, [None, H]), vi("c", F32, [None, H]), vi("gx", F32, [None, 4 * H])],
                     [vi(name, F32, [None, k]) for name, k in outs],
                     initializer=[h.make_tensor("sizes", TensorProto.INT64, [2], [3 * H, H])])
    scan = n("Scan", ["h0", "c0", "gx"], ["hT", "cT", "C", "S", "G"], body=g, num_scan_inputs=1)
    return h.make_graph([scan], "scan", _inputs(T, N, H), [vi(x, F32, None) for x in ("hT", "cT", "C", "S", "G")])


def unrolled_graph(T, N, H):
    """The same per-step nodes written out T times (MatMul + Add in place of Gemm: 3-D steps)."""
    n, vi = h.make_node, h.make_tensor_value_info
    nodes = [n("Split", ["gx"], [f"gx{t}" for t in range(T)], axis=0, num_outputs=T),
             n("Unsqueeze", ["h0", "zero"], ["h_init"]), n("Unsqueeze", ["c0", "zero"], ["c_init"])]
    hp, cp = "h_init", "c_init"
    for t in range(T):
        s = f"_{t}"
        nodes += [n("MatMul", [hp, "RT"], ["mm" + s]), n("Add", ["mm" + s, f"gx{t}"], ["pre" + s]),
                  n("Split", ["pre" + s, "sizes"], ["ps" + s, "pc" + s], axis=2),
                  n("Sigmoid", ["ps" + s], ["s" + s]), n("Tanh", ["pc" + s], ["gc" + s]),
                  n("Split", ["s" + s], ["i" + s, "o" + s, "f" + s], axis=2, num_outputs=3),
                  n("Mul", ["f" + s, cp], ["fc" + s]), n("Mul", ["i" + s, "gc" + s], ["ig" + s]),
                  n("Add", ["fc" + s, "ig" + s], ["c" + s]), n("Tanh", ["c" + s], ["tc" + s]),
                  n("Mul", ["o" + s, "tc" + s], ["h" + s])]
        hp, cp = "h" + s, "c" + s
    nodes += [n("Concat", [f"{k}_{t}" for t in range(T)], [out], axis=0) for k, out in (("c", "C"), ("s", "S"), ("gc", "G"))]
    nodes += [n("Identity", [hp], ["hT"]), n("Identity", [cp], ["cT"])]
    return h.make_graph(nodes, "unrolled", _inputs(T, N, H), [vi(x, F32, None) for x in ("hT", "cT", "C", "S", "G")],
                        initializer=[h.make_tensor("sizes", TensorProto.INT64, [2], [3 * H, H]),
                                     h.make_tensor("zero", TensorProto.INT64, [1], [0])])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq", type=int, default=35)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    T, N, H = args.seq, args.batch, args.hidden
    rng = np.random.default_rng(0)
    feeds = {"h0": rng.standard_normal((N, H)), "c0": rng.standard_normal((N, H)),
             "gx": rng.standard_normal((T, N, 4 * H)), "RT": rng.standard_normal((H, 4 * H))}
    feeds = {k: (v * 0.1).astype(np.float32) for k, v in feeds.items()}
    runs = {"Scan (ops/rnn.py's body)": _session(scan_graph(T, N, H)),
            "unrolled, same nodes": _session(unrolled_graph(T, N, H))}
    scan_out, unrolled_out = (sess.run(None, feeds) for sess in runs.values())
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(scan_out, unrolled_out)), "the forms disagree"
    times = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, sess in runs.items():
            for _ in range(3):
                sess.run(None, feeds)
            t0 = time.perf_counter()
            for _ in range(20):
                sess.run(None, feeds)
            times[k].append((time.perf_counter() - t0) / 20 * 1e3)
    base = float(np.median(times["Scan (ops/rnn.py's body)"]))
    print(f"LSTM forward recurrence, T={T} N={N} H={H}, 2 threads, median ms over {args.repeats} blocks of 20 runs")
    for k, v in times.items():
        print(f"  {k:28s} {np.median(v):7.3f} ms  ({np.median(v) / base:.2f}x the Scan)")


if __name__ == "__main__":
    main()
