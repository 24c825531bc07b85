"""Training-step time of the same training artifacts driven by Python onnxruntime, onnxruntime-node
and (for the demo MLP, whose page draws 2-D decision regions) Chromium's onnxruntime-web WASM, in one
run. LeNet-5 on digits (batch 64, SGD momentum) and the demo's spiral MLP (batch 64, Adam).

    bash scripts/setup_js.sh && python bench/js_step.py [--steps 50] [--repeats 3]

Prints ms/step (median of the repeats) and the ratio to Python onnxruntime. Node and Chromium times
include their own session start-up amortized over --steps (measured inside each driver's loop)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def lenet_artifacts(out, batches=8, batch_size=64):
    import onnxkit as ok
    from onnxkit import nn, optim
    from onnxkit.models.data import load_digits
    from onnxkit.models.lenet import LeNet5
    x, y, _, _ = load_digits()
    xb = x[: batches * batch_size].reshape(batches, batch_size, 1, 28, 28)
    yb = y[: batches * batch_size].reshape(batches, batch_size)
    ok.manual_seed(0)
    m = LeNet5()
    meta = ok.training_artifacts(m, nn.CrossEntropyLoss(), optim.SGD(m.parameters(), lr=1e-2, momentum=0.9),
                                 xb[0], yb[0], out)
    ok.save({meta["data"][0]: xb, meta["target"]: yb}, os.path.join(out, "batches.safetensors"))


def python_ms(folder, steps):
    """ms/step of a plain onnxruntime driver reading only meta.json and the two safetensors files."""
    import onnxruntime as ort
    from onnxkit.serialization import load_state_dict_file
    meta = json.load(open(os.path.join(folder, "meta.json")))
    state = load_state_dict_file(os.path.join(folder, meta["state_file"]))
    data = load_state_dict_file(os.path.join(folder, "batches.safetensors"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(folder, meta["training_model"]), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    xb, yb = data[meta["data"][0]], data[meta["target"]]
    t0 = time.perf_counter()
    for i in range(steps):
        feeds = {meta["data"][0]: xb[i % len(xb)], meta["target"]: yb[i % len(yb)],
                 "step": np.array(i + 1, np.int64), "seed": np.array(meta["seed"]["value"], np.int64)}
        feeds.update({k: np.array(v, np.float64) for k, v in meta["hyperparameters"].items()})
        feeds.update(state)
        out = dict(zip(names, sess.run(None, feeds)))
        state.update({e["input"]: out[e["output"]] for e in meta["state"] if e["output"]})
    return (time.perf_counter() - t0) / steps * 1e3


def node_ms(folder, steps):
    r = subprocess.run(["node", os.path.join(ROOT, "js", "demo", "node-demo.js"), folder, "--steps", str(steps),
                        "--json"], capture_output=True, text=True, timeout=600, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])["ms_per_step"]


def chromium_ms(folder, steps):
    r = subprocess.run(["node", os.path.join(ROOT, "js", "demo", "browser-run.js"), folder, "--steps", str(steps)],
                       capture_output=True, text=True, timeout=600, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])["ms_per_step"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lenet, mlp = os.path.join(tmp, "lenet"), os.path.join(tmp, "mlp")
        lenet_artifacts(lenet)
        subprocess.run([sys.executable, os.path.join(ROOT, "js", "demo", "make_artifacts.py"), mlp], check=True,
                       capture_output=True)
        runs = [("lenet", "python", python_ms, lenet), ("lenet", "node", node_ms, lenet),
                ("mlp", "python", python_ms, mlp), ("mlp", "node", node_ms, mlp), ("mlp", "chromium-wasm", chromium_ms, mlp)]
        times = {(w, d): [] for w, d, _, _ in runs}
        for _ in range(args.repeats):  # interleaved
            for w, d, fn, folder in runs:
                times[w, d].append(fn(folder, args.steps))
        for w in ("lenet", "mlp"):
            base = float(np.median(times[w, "python"]))
            for (ww, d), v in times.items():
                if ww == w:
                    med = float(np.median(v))
                    print(f"{w:6s} {d:14s} {med:8.2f} ms/step  ratio to python onnxruntime {med / base:5.2f}x")


if __name__ == "__main__":
    main()
