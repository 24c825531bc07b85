"""ms/step of the demo's LeNet-5 training artifacts in Python onnxruntime, onnxruntime-node and Chromium WASM.

One run drives the same artifacts with all three: the browser demo's LeNet-5 on the digits
(js/demo/make_artifacts.py: Conv2d, MaxPool2d, Dropout, Adam; batch 64, 1x28x28), onnxruntime-web's
WASM backend with 1 thread.

    bash scripts/setup_js.sh && python bench/js_step.py [--steps 50] [--repeats 3]

Prints ms/step (median of the repeats) and the ratio to Python onnxruntime (1 intra-op thread). Node and
Chromium times are measured inside each driver's loop, so they include the first step's warm-up."""
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
    ap.add_argument("--batches", type=int, default=8, help="training batches of 64 in the artifacts")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lenet = os.path.join(tmp, "lenet")
        subprocess.run([sys.executable, os.path.join(ROOT, "js", "demo", "make_artifacts.py"), lenet, "--batches",
                        str(args.batches)], check=True, capture_output=True)
        runs = [("python", python_ms), ("node", node_ms), ("chromium-wasm", chromium_ms)]
        times = {d: [] for d, _ in runs}
        for _ in range(args.repeats):  # interleaved
            for d, fn in runs:
                times[d].append(fn(lenet, args.steps))
        base = float(np.median(times["python"]))
        for d, v in times.items():
            med = float(np.median(v))
            print(f"lenet5-digits {d:14s} {med:8.2f} ms/step  ratio to python onnxruntime {med / base:5.2f}x")


if __name__ == "__main__":
    main()
