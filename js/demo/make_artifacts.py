"""Write the demos' artifacts: a small MLP (Linear, ReLU, Dropout, BatchNorm1d, Adam) classifying a 2-D
three-arm spiral, exported with ok.training_artifacts, plus batches.safetensors (the batches stacked on a
leading axis: `input` [B, N, 2] float32 and `target` [B, N] int64).

    python js/demo/make_artifacts.py js/demo/artifacts
"""
import argparse

import numpy as np

import onnxkit as ok
from onnxkit import nn, optim


def spiral(n, rng, arms=3):
    """n points per arm of a noisy `arms`-arm spiral in [-1, 1]^2 and their arm labels."""
    r = np.tile(np.linspace(0.05, 1.0, n), arms)
    label = np.repeat(np.arange(arms), n)
    theta = label * 2 * np.pi / arms + r * 3.0 + rng.normal(0, 0.12, r.shape)
    x = np.stack([r * np.sin(theta), r * np.cos(theta)], 1).astype(np.float32)
    return x, label.astype(np.int64)


def model():
    ok.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Dropout(0.1), nn.BatchNorm1d(64),
                         nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    x, y = spiral(args.batches * args.batch_size // 3 + 1, rng)
    order = rng.permutation(len(x))[: args.batches * args.batch_size]
    xb = x[order].reshape(args.batches, args.batch_size, 2)
    yb = y[order].reshape(args.batches, args.batch_size)
    m = model()
    meta = ok.training_artifacts(m, nn.CrossEntropyLoss(), optim.Adam(m.parameters(), lr=1e-2), xb[0], yb[0],
                                 args.out)
    ok.save({meta["data"][0]: xb, meta["target"]: yb}, f"{args.out}/batches.safetensors")
    print(f"wrote {args.out}: training.onnx, eval.onnx, state.safetensors, meta.json, batches.safetensors")


if __name__ == "__main__":
    main()
