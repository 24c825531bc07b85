"""Write the demos' artifacts: LeNet-5 (Conv2d, ReLU, MaxPool2d, Linear, Dropout; Adam) for scikit-learn's
bundled handwritten digits, exported with ok.training_artifacts, plus the data the demos train on.

    python js/demo/make_artifacts.py js/demo/artifacts [--batches 22] [--batch-size 64] [--size 28]

Data: the 1797 8x8 images of `sklearn.datasets.load_digits` (bundled with scikit-learn, no download) are
scaled to [0, 1], upscaled to 1 x size x size by bilinear interpolation (onnxkit.models.data.upscale, as
`python -m onnxkit.demo` does) and standardized with the training split's mean and std. The split is
onnxkit.models.data.load_digits's: a seed-0 permutation, the last 360 images held out.

Besides training.onnx, eval.onnx, state.safetensors and meta.json it writes
- batches.safetensors: `input` [B, N, 1, size, size] float32 and `target` [B, N] int64, the training
  batches stacked on a leading axis (step i trains on batch (i - first) % B), and the held-out split as
  `test/input` [T, 1, size, size] and `test/target` [T];
- digits.json: how a drawing becomes a model input, for the page's drawing canvas (the same steps as the
  training data: a 32x32 bitmap, counts of its 4x4 blocks, /16, bilinear upscale, standardize).
"""
import argparse
import json
import os
import sys

import numpy as np

import onnxkit as ok
from onnxkit import nn, optim

TEST_SIZE = 360  # onnxkit.models.data.load_digits's held-out split


def lenet5(num_classes=10, dropout=0.25):
    """LeNet-5 for 1x28x28 inputs (conv 5x5 padding 2 -> pool -> conv 5x5 -> pool -> 120 -> 84 -> 10, ReLU and
    max pooling as trained today), with dropout after the two hidden fully connected layers."""
    ok.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(120, 84), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(84, num_classes))


def digits(size=28):
    """(x_train, y_train, x_test, y_test, prep): float32 (n, 1, size, size) images and int64 labels, and the
    preprocessing record written to digits.json."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("make_artifacts.py needs scikit-learn for its bundled digits data (no download): "
                 "pip install scikit-learn, or pip install -e '.[test]'")
    from onnxkit.models.data import upscale
    d = load_digits()
    x = upscale(d.images.astype(np.float64) / 16.0, size)[:, None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    mean, std = float(x[:-TEST_SIZE].mean()), float(x[:-TEST_SIZE].std())
    norm = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    prep = {"dataset": "sklearn.datasets.load_digits", "bitmap": 32, "block": 4, "max_count": 16,
            "source": 8, "size": size, "upscale": "bilinear", "mean": mean, "std": std,
            "classes": [str(i) for i in range(10)]}
    return norm(x[:-TEST_SIZE]), y[:-TEST_SIZE], norm(x[-TEST_SIZE:]), y[-TEST_SIZE:], prep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--batches", type=int, default=22, help="training batches (22 x 64 of the 1437 training images)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--size", type=int, default=28, help="input height and width")
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args(argv)
    x, y, x_test, y_test, prep = digits(args.size)
    n = args.batches * args.batch_size
    if n > len(x):
        ap.error(f"{args.batches} x {args.batch_size} exceeds the {len(x)} training images")
    xb = x[:n].reshape(args.batches, args.batch_size, *x.shape[1:])
    yb = y[:n].reshape(args.batches, args.batch_size)
    m = lenet5()
    meta = ok.training_artifacts(m, nn.CrossEntropyLoss(), optim.Adam(m.parameters(), lr=args.lr), xb[0], yb[0],
                                 args.out)
    ok.save({meta["data"][0]: xb, meta["target"]: yb, "test/" + meta["data"][0]: x_test,
             "test/" + meta["target"]: y_test}, os.path.join(args.out, "batches.safetensors"))
    with open(os.path.join(args.out, "digits.json"), "w") as f:
        json.dump(prep, f, indent=1)
    print(f"wrote {args.out}: training.onnx, eval.onnx, state.safetensors, meta.json, batches.safetensors "
          f"({args.batches} x {args.batch_size} training images, {len(x_test)} held out), digits.json")
    return meta


if __name__ == "__main__":
    main()
