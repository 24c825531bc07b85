"""ok.Session.run vs a raw onnxruntime.InferenceSession.run on the seed MLP (batch 64).

Same process, same model bytes and session options, 1,000 calls each, interleaved in rounds;
prints per-call medians and the median of the per-round ratios (target: <= 1.05).
Run: python bench/session_overhead.py"""
import statistics
import time

import numpy as np
import onnxruntime as ort

import onnxkit as ok
from onnxkit import nn, runtime


def main(calls=1000, rounds=10):
    ok.manual_seed(0)
    model = ok.export(nn.Sequential(nn.Linear(1000, 100), nn.ReLU() if hasattr(nn, "ReLU") else nn.Identity(),
                                    nn.Linear(100, 10)), [ok.Input("x", ("N", 1000))])
    x = np.random.default_rng(0).standard_normal((64, 1000)).astype(np.float32)
    sess = ok.Session(model, device="cpu")
    raw = ort.InferenceSession(model.SerializeToString(), sess_options=runtime.session_options(),
                               providers=["CPUExecutionProvider"])
    feeds = {"x": x}
    np.testing.assert_allclose(sess.run(feeds)["output"], raw.run(None, feeds)[0])
    per = calls // rounds
    t_ok, t_raw, ratios = [], [], []
    for _ in range(rounds):
        for fn, acc in ((lambda: sess.run(feeds), t_ok), (lambda: raw.run(None, feeds), t_raw)):
            times = []
            for _ in range(per):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            acc.append(statistics.median(times))
        ratios.append(t_ok[-1] / t_raw[-1])
    print(f"ok.Session.run     median {statistics.median(t_ok) * 1e6:8.1f} us/call")
    print(f"ort.InferenceSession median {statistics.median(t_raw) * 1e6:8.1f} us/call")
    print(f"ratio (median of {rounds} interleaved rounds of {per} calls): {statistics.median(ratios):.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
