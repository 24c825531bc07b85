"""Does `onnx-run bench`'s figure agree with a hand-timed IOBinding loop on the same session?

For each model: one ok.Session; in --rounds interleaved rounds (the order alternating), the p50 of
`onnxkit.cli.bench.measure` (the function `onnx-run bench` times with: inputs and outputs bound once
through IOBinding, --runs timed runs after --warmup) and the p50 of a hand-written loop: the same
binding built here, `run_with_iobinding` timed with perf_counter around each call. Prints the
medians over rounds, the median of the per-round ratios (target: within 0.9-1.1) and, for scale,
plain `InferenceSession.run` with numpy feeds (what IOBinding saves: the feed and output copies).
Last, `onnx-run bench --json` itself (its own session, in this process) as a cross-check.

Models: LeNet-5 at batch 32 (a ~0.3 ms run, where per-call overhead shows), a ResNet-8 at batch 8
and an MLP 1024-4096-4096-1000 at batch 1 (weights-bound, ~2-4 ms), all exported by onnxkit.
Run:  python bench/cli_bench.py        (about 30 s)
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
from click.testing import CliRunner

import onnxkit as ok
from onnxkit import nn
from onnxkit.cli import main as cli_main
from onnxkit.cli.bench import measure


def models(d):
    from onnxkit.models.lenet import LeNet5
    from onnxkit.models.resnet import ResNet
    ok.manual_seed(0)
    specs = [("lenet", LeNet5(), (1, 28, 28), 32), ("resnet8", ResNet(8, 16, 3), (3, 32, 32), 8),
             ("mlp", nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                                   nn.Linear(4096, 1000)), (1024,), 1)]
    for key, net, shape, batch in specs:
        path = os.path.join(d, f"{key}.onnx")
        ok.export(net.eval(), [ok.Input("x", ("N", *shape))], path=path)
        yield key, path, batch


def hand_loop(sess, feeds, runs, warmup):
    """Per-run ms of run_with_iobinding on a binding made here (inputs copied once)."""
    s = sess.ort_session
    b = s.io_binding()
    for name, v in feeds.items():
        b.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v), "cpu", 0))
    for name in sess.output_names:
        b.bind_output(name, "cpu")
    for _ in range(warmup):
        s.run_with_iobinding(b)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run_with_iobinding(b)
        out.append((time.perf_counter() - t0) * 1e3)
    return np.array(out)


def plain_loop(sess, feeds, runs, warmup):
    s = sess.ort_session
    for _ in range(warmup):
        s.run(None, feeds)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, feeds)
        out.append((time.perf_counter() - t0) * 1e3)
    return np.array(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=8, help="interleaved rounds per model")
    p.add_argument("--runs", type=int, default=100, help="timed runs per measurement (onnx-run bench --runs)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (onnx-run bench --warmup)")
    args = p.parse_args(argv)
    print(f"{os.cpu_count()} cores; p50 per measurement, median over {args.rounds} interleaved rounds")
    print(f"  {'model':<8} {'batch':>5}  {'onnx-run bench':>14}  {'hand IOBinding':>14}  {'ratio':>6}  "
          f"{'plain run':>9}  {'CLI --json p50':>14}")
    bad = []
    with tempfile.TemporaryDirectory() as d:
        for key, path, batch in models(d):
            sess = ok.Session(path, device="cpu")
            feeds = sess.random_feeds(batch=batch, seed=0)
            runs = max(20, args.runs // (10 if key == "mlp" else 1))
            cli, hand, plain, ratios = [], [], [], []
            for r in range(args.rounds):
                order = [("cli", cli), ("hand", hand)] if r % 2 == 0 else [("hand", hand), ("cli", cli)]
                got = {}
                for which, acc in order:
                    t = measure(sess, feeds, runs, args.warmup) if which == "cli" else \
                        hand_loop(sess, feeds, runs, args.warmup)
                    got[which] = float(np.median(t))
                    acc.append(got[which])
                ratios.append(got["cli"] / got["hand"])
                plain.append(float(np.median(plain_loop(sess, feeds, runs, args.warmup))))
            r = CliRunner().invoke(cli_main, ["bench", path, "--batch", str(batch), "--runs", str(runs),
                                              "--warmup", str(args.warmup), "--device", "cpu", "--json"])
            cli_p50 = json.loads(r.output)["p50_ms"] if r.exit_code == 0 else float("nan")
            ratio = statistics.median(ratios)
            print(f"  {key:<8} {batch:>5}  {statistics.median(cli):11.4f} ms  {statistics.median(hand):11.4f} ms  "
                  f"{ratio:6.3f}  {statistics.median(plain):6.4f} ms  {cli_p50:11.4f} ms")
            if not 0.9 <= ratio <= 1.1:
                bad.append(f"{key}: {ratio:.3f}")
    print("onnx-run bench agrees with the hand-timed IOBinding loop (median per-round ratio within 0.9-1.1): "
          + ("yes" if not bad else "no (" + ", ".join(bad) + ")"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
