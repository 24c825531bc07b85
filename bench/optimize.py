"""`onnx-run optimize` (onnxkit.optimize, level basic) against onnxslim and onnxsim on the same models.

Models: a Conv+BatchNorm CNN exported by onnxkit (with Dropout and a BatchNorm after a Linear), a
small ResNet exported by `torch.onnx.export` (TorchScript exporter, constant folding off, so the
BatchNorms stay), torch's TransformerEncoderLayer exported by `torch.onnx.export(dynamo=True,
optimize=False)` (the TorchScript exporter fails on it in torch 2.13; optimize=False leaves the raw
graph, the exporter's own optimizer being onnxscript's) and onnxkit's TransformerEncoderLayer. For each model and
each tool: node count, whether the outputs equal the original's (rtol 1e-4, atol 1e-5, seeded random
inputs at two batch sizes), whether the result passes `onnx-run check`, whether it keeps to standard
ops, and the median onnxruntime latency (CPU, batch --batch) twice: with onnxruntime's own graph
optimizations on (the default a user gets) and with them off (what a runtime without onnxruntime's
optimizer sees). Latencies are medians over --rounds interleaved rounds (every tool's session timed
in turn each round), so a noisy machine hits all alike; ratios are against onnxkit.

A tool that is not installed (pip install onnxslim onnxsim) or that fails on a model is skipped with
a message. Run:  python bench/optimize.py     (about a minute)
"""
import argparse
import contextlib
import io
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np
import onnx

import onnxkit as ok
from onnxkit import nn
from onnxkit.model_files import problems
from onnxkit.optimize import node_count, optimize


# ----- models ------------------------------------------------------------------------------------------------
def cnn_onnxkit():
    ok.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Dropout(0.2), nn.Flatten(), nn.Linear(32 * 16 * 16, 64), nn.BatchNorm1d(64), nn.ReLU(),
                        nn.Dropout(0.2), nn.Linear(64, 10))
    _randomize_bn(net)
    return ok.export(net.eval(), [ok.Input("x", ("N", 3, 32, 32))])


def _randomize_bn(net):
    """Non-trivial running statistics, so a wrong BatchNorm fold shows in the outputs."""
    rng = np.random.default_rng(1)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean = ok.tensor(rng.standard_normal(c).astype(np.float32) * 0.1)
            m.running_var = ok.tensor((rng.random(c) + 0.5).astype(np.float32))


def resnet_torch(d):
    import torch
    torch.manual_seed(0)

    class Block(torch.nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = torch.nn.BatchNorm2d(cout)
            self.c2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = torch.nn.BatchNorm2d(cout)
            self.short = (torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False),
                                              torch.nn.BatchNorm2d(cout)) if stride != 1 or cin != cout
                          else torch.nn.Identity())

        def forward(self, x):
            return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.short(x))

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                              Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Dropout(0.1),
                              torch.nn.Linear(64, 10))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = os.path.join(d, "resnet_torch.onnx")
    torch.onnx.export(net.eval(), (torch.randn(2, 3, 32, 32),), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, dynamo=False, opset_version=17,
                      do_constant_folding=False)
    return onnx.load(path)


def transformer_torch(d):
    import torch
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(128, 4, 512, dropout=0.1, batch_first=True).eval()
    path = os.path.join(d, "transformer_torch.onnx")
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
        torch.onnx.export(layer, (torch.randn(2, 16, 128),), path, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N", 1: "T"}, "y": {0: "N", 1: "T"}}, dynamo=True,
                          optimize=False, opset_version=18)
    return onnx.load(path)


def transformer_onnxkit():
    ok.manual_seed(0)
    layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.1, batch_first=True)
    return ok.export(layer.eval(), [ok.Input("x", ("N", 16, 128))])


MODELS = {
    "cnn-onnxkit": ("Conv+BN CNN, onnxkit", lambda d: cnn_onnxkit()),
    "resnet-torch": ("ResNet-ish, torch.onnx.export", resnet_torch),
    "transformer-torch": ("transformer block, torch.onnx.export", transformer_torch),
    "transformer-onnxkit": ("transformer block, onnxkit", lambda d: transformer_onnxkit()),
}


# ----- tools ------------------------------------------------------------------------------------------------
def tool_onnxkit(model):
    return optimize(model, "basic")[0]


def tool_onnxslim(model):
    import onnxslim
    return onnxslim.slim(model)


def tool_onnxsim(model):
    import onnxsim
    out, ok_ = onnxsim.simplify(model)
    if not ok_:
        raise RuntimeError("onnxsim's own check failed")
    return out


TOOLS = {"onnxkit": tool_onnxkit, "onnxslim": tool_onnxslim, "onnxsim": tool_onnxsim}


def available(tool):
    if tool == "onnxkit":
        return None
    import importlib.util
    return None if importlib.util.find_spec(tool) else f"{tool} is not installed (pip install {tool}); skipped"


# ----- measurements -----------------------------------------------------------------------------------------------
def feeds_for(sess, batch, seed):
    return sess.random_feeds(batch=batch, dims={"T": 16}, seed=seed)  # T: the transformers' sequence


def outputs_equal(ref_sess, sess, batches=(1, 3)):
    for b in batches:
        feeds = feeds_for(ref_sess, b, seed=b)
        want, got = ref_sess.run(feeds), sess.run(feeds)
        for name, v in want.items():
            if name not in got or got[name].shape != v.shape:
                return False
            if not np.allclose(got[name], v, rtol=1e-4, atol=1e-5):
                return False
    return True


def session(model, opt):
    import onnxruntime as ort
    from onnxkit.runtime import make_inference_session
    level = None if opt else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return make_inference_session(model, "cpu", optimization=level)


def latencies(models, batch, rounds, calls):
    """{tool: (median ms with ORT optimizations, median ms without)}, interleaved rounds."""
    sessions = {t: [session(m, True), session(m, False)] for t, m in models.items()}
    ref = ok.Session(next(iter(models.values())), device="cpu")
    feeds = feeds_for(ref, batch, seed=0)
    times = {t: ([], []) for t in models}
    for s_pair in sessions.values():
        for s in s_pair:
            for _ in range(3):
                s.run(None, feeds)
    for _ in range(rounds):
        for t, s_pair in sessions.items():
            for k, s in enumerate(s_pair):
                ts = []
                for _ in range(calls):
                    t0 = time.perf_counter()
                    s.run(None, feeds)
                    ts.append(time.perf_counter() - t0)
                times[t][k].append(statistics.median(ts))
    return {t: (statistics.median(a) * 1e3, statistics.median(b) * 1e3) for t, (a, b) in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated: " + ", ".join(TOOLS))
    p.add_argument("--batch", type=int, default=8, help="batch size of the timed runs")
    p.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    p.add_argument("--calls", type=int, default=30, help="runs per session per round")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")  # exporters' deprecation and tracer warnings
    logging.disable(logging.WARNING)  # torch.onnx's "torchvision is not installed" lines
    tools = []
    for t in args.tools.split(","):
        why = available(t)
        if why:
            print(why)
        else:
            tools.append(t)
    worse = []
    with tempfile.TemporaryDirectory() as d:
        for key in args.models.split(","):
            desc, make = MODELS[key]
            src = make(d)
            ref = ok.Session(src, device="cpu")
            results = {"original": src}
            notes = {}
            for t in tools:
                m = onnx.ModelProto()
                m.CopyFrom(src)
                t0 = time.perf_counter()
                try:
                    results[t] = TOOLS[t](m)
                except Exception as e:  # noqa: BLE001  one tool failing on one model is a finding, not a crash
                    notes[t] = f"failed: {' '.join(str(e).split())[:160]}"
                    continue
                notes[t] = f"{time.perf_counter() - t0:.1f} s"
            lat = latencies(results, args.batch, args.rounds, args.calls)
            print(f"\n{desc} ({key}), batch {args.batch}, median of {args.rounds} interleaved rounds")
            print(f"  {'tool':<10} {'nodes':>5}  {'equal':<5}  {'check':<5}  {'std ops':<7}  "
                  f"{'ORT opt ms':>10}  {'ratio':>6}  {'no-opt ms':>9}  {'ratio':>6}  time")
            base = lat.get("onnxkit")
            for t, m in results.items():
                equal = t == "original" or outputs_equal(ref, ok.Session(m, device="cpu"))
                valid = not problems(m)
                std = all(n.domain in ("", "ai.onnx") for n in m.graph.node)
                a, b = lat[t]
                ra = f"{a / base[0]:6.2f}" if base else "     -"
                rb = f"{b / base[1]:6.2f}" if base else "     -"
                print(f"  {t:<10} {node_count(m):>5}  {str(equal):<5}  {str(valid):<5}  {str(std):<7}  "
                      f"{a:10.3f}  {ra}  {b:9.3f}  {rb}  {notes.get(t, '')}")
                if t not in ("original", "onnxkit") and base and equal:
                    if node_count(m) < node_count(results["onnxkit"]):
                        worse.append(f"{key}: {t} has fewer nodes ({node_count(m)} < {node_count(results['onnxkit'])})")
                    if a < 0.95 * base[0]:
                        worse.append(f"{key}: {t} is {base[0] / a:.2f}x faster with ORT optimizations")
            for t, n in notes.items():
                if n.startswith("failed"):
                    print(f"  {t}: {n}")
    print("\nonnxkit at least as good as the others (nodes; latency within 5 %): "
          + ("yes" if not worse else "no\n  " + "\n  ".join(worse)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
