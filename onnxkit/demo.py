"""The README demo: train LeNet-5 (or an MLP) on scikit-learn's bundled digits upscaled to 28x28,
export it to an .onnx file, run that file with `onnx-run run` in a subprocess and report the test
accuracy of its outputs.  python -m onnxkit.demo [--model lenet|mlp] [--epochs 8] [--out DIR]"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _zoo():
    """The model zoo: models/ in the repository, installed as onnxkit.models."""
    from onnxkit.models import data, lenet, mlp
    return data, lenet, mlp


def onnx_run_command():
    """`onnx-run` when installed on PATH, else the same CLI through the interpreter."""
    exe = shutil.which("onnx-run")
    return [exe] if exe else [sys.executable, "-m", "onnxkit.cli"]


def main(argv=None):
    """Run the demo (command-line arguments `argv`); returns the exported model's test accuracy."""
    ap = argparse.ArgumentParser(prog="python -m onnxkit.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["lenet", "mlp"], default="lenet")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", help="directory for the .onnx file and the run's outputs (default: a temp dir)")
    args = ap.parse_args(argv)

    import onnxkit as ok
    from onnxkit import nn, optim
    data, lenet, mlp = _zoo()
    t0 = time.perf_counter()
    x_train, y_train, x_test, y_test = data.load_digits()
    print(f"digits: {len(x_train)} training and {len(x_test)} test images, 1x28x28 (scikit-learn's bundled set)")
    ok.manual_seed(0)
    model = lenet.LeNet5() if args.model == "lenet" else mlp.digits_mlp()
    trainer = ok.Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=2e-3), seed=0)
    print(f"training {type(model).__name__ if args.model == 'lenet' else 'MLP'} for {args.epochs} epochs "
          f"on onnxruntime ({trainer.device}), one training-graph run per step")
    trainer.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, validation=(x_test, y_test))

    out_dir = Path(args.out or tempfile.mkdtemp(prefix="onnxkit-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"digits_{args.model}.onnx"
    ok.export(model, [ok.Input("image", ("N", 1, 28, 28))], path=onnx_path)
    np.save(out_dir / "test_images.npy", x_test)
    cmd = onnx_run_command() + ["run", str(onnx_path), "-i", f"image={out_dir / 'test_images.npy'}",
                                "--save", str(out_dir / "outputs")]
    print(f"exported {onnx_path} ({os.path.getsize(onnx_path) / 1024:.0f} KiB); running: "
          f"onnx-run run {onnx_path.name} -i image=test_images.npy --save outputs")
    subprocess.run(cmd, check=True)
    logits = np.load(out_dir / "outputs" / "output.npy")
    accuracy = float((logits.argmax(axis=1) == y_test).mean())
    print(f"test accuracy of the exported model under onnx-run: {accuracy:.4f} "
          f"({time.perf_counter() - t0:.0f} s in all)")
    return accuracy


if __name__ == "__main__":
    main()
