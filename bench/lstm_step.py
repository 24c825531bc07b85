"""LSTM training step of ok.Trainer against torch eager (same process, interleaved medians).

Workload (issue 11): Embedding(5000, 64) -> LSTM(64, 128) -> last step -> Linear(128, 4), batch 32 x 35
tokens, CrossEntropyLoss, Adam lr 1e-3. torch.set_num_threads(2); onnxkit sessions with 2 intra-op
threads (spinning on, the Trainer default, and off as a second row). Each repeat runs --steps steps of
each runner in turn with a 20 ms pause between runners; the medians of all per-step times are
compared, and torch's own p50/p90 are printed as a control of the host's noise.

onnxkit's step is one graph. Default formulation ("scan", ops/rnn.py lstm_train): the forward is an ONNX
Scan (input projection hoisted as one MatMul; Gemm(h, R^T, x_t W^T) + Split + Sigmoid/Tanh in the body)
that also emits the gates and cell states; the backward recurrence is one reverse Scan whose body is five
elementwise ops and Gemm(dG_t, R, gY_{t-1}); the weight gradients are single MatMuls over all time steps.
Alternative row ("op rule"): the forward is the ONNX LSTM node and its gradient rule (autodiff/rules_rnn.py)
recomputes the gates from Y with two big MatMuls and the cell states with a forward Scan, then runs the
same backward Scan. Inference graphs (export, Trainer.eval_model) always use the ONNX LSTM node.

    python bench/lstm_step.py [--steps 20] [--repeats 10] [--json]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from train_step import time_steps  # noqa: E402  (the same per-step timer as the other workloads)
THREADS = 2
VOCAB, EMB, HID, CLASSES, BATCH, SEQ = 5000, 64, 128, 4, 32, 35


def classifier(lib):
    nn = lib.nn

    class LSTMClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, EMB)
            self.lstm = nn.LSTM(EMB, HID, batch_first=True)
            self.fc = nn.Linear(HID, CLASSES)

        def forward(self, tokens):
            out, _ = self.lstm(self.emb(tokens))
            return self.fc(out[:, -1])

    return LSTMClassifier()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-alternatives", action="store_true",
                    help="skip the row that trains through the ONNX LSTM node and its gradient rule")
    ap.add_argument("--threads", type=int, default=THREADS, help="torch threads and onnxruntime intra-op threads")
    args = ap.parse_args()
    import functools
    import torch
    import onnxkit as ok
    from onnxkit import runtime
    runtime.session_options = functools.partial(runtime.session_options, threads=args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, size=(BATCH, SEQ)).astype(np.int64)
    y = rng.integers(0, CLASSES, size=(BATCH,)).astype(np.int64)
    torch.manual_seed(0)
    tm = classifier(torch)
    topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
    tx, ty = torch.tensor(x), torch.tensor(y)

    def torch_step():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tm(tx), ty).backward()
        topt.step()

    from onnxkit.ops import rnn as F
    trainers = {}
    variants = [("onnxkit (spinning)", True, "scan"), ("onnxkit (no spinning)", False, "scan")]
    if not args.no_alternatives:
        variants.append(("onnxkit, op rule (no spinning)", False, "op"))
    for label, spinning, formulation in variants:
        om = classifier(ok)
        om.load_state_dict(tm.state_dict())
        tr = ok.Trainer(om, ok.nn.CrossEntropyLoss(), ok.optim.Adam(om.parameters(), lr=1e-3), spinning=spinning)
        F.TRAIN_FORMULATION = formulation
        tr.step(x, y)  # builds the training graph with this formulation
        trainers[label] = tr
    F.TRAIN_FORMULATION = "scan"
    runs = {k: (lambda tr=tr: tr.step(x, y)) for k, tr in trainers.items()}
    runs["torch eager"] = torch_step
    for fn in runs.values():  # warm up: build, compile, first runs
        for _ in range(5):
            fn()
    times = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, fn in runs.items():
            times[k] += time_steps(fn, args.steps)
            time.sleep(0.02)
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    t = np.array(times["torch eager"]) * 1e3
    graph = trainers["onnxkit (spinning)"].training_model.graph
    ops = {}
    for n in graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    res = {"workload": f"Embedding({VOCAB},{EMB})->LSTM({EMB},{HID})->last->Linear({HID},{CLASSES}), "
                       f"batch {BATCH}x{SEQ}, CrossEntropy, Adam",
           "threads": args.threads, "steps": args.steps, "repeats": args.repeats,
           "ms_per_step": med,
           "ratio_to_torch": {k: med[k] / med["torch eager"] for k in med if k != "torch eager"},
           "torch_p50_ms": float(np.percentile(t, 50)), "torch_p90_ms": float(np.percentile(t, 90)),
           "training_graph_nodes": len(graph.node), "scan_nodes": ops.get("Scan", 0), "lstm_nodes": ops.get("LSTM", 0)}
    if args.json:
        print(json.dumps(res))
        return
    print(res["workload"])
    print(f"{args.threads} thread(s) each, {args.repeats} interleaved blocks of {args.steps} steps, medians")
    for k, v in med.items():
        extra = "" if k == "torch eager" else f"   ratio to torch eager {v / med['torch eager']:.2f}x"
        print(f"  {k:24s} {v:7.2f} ms/step{extra}")
    print(f"  torch eager control: p50 {res['torch_p50_ms']:.2f} ms, p90 {res['torch_p90_ms']:.2f} ms")
    print(f"  training graph: {len(graph.node)} nodes ({ops.get('LSTM', 0)} LSTM, {ops.get('Scan', 0)} Scan)")


if __name__ == "__main__":
    main()
