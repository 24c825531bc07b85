#!/usr/bin/env bash
# Install onnxkit and run the demo: train a model on bundled data, export it, run it with onnx-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[demo]"
python -m onnxkit.demo "$@"
