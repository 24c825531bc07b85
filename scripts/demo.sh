#!/usr/bin/env bash
# Install onnxkit and run the demo: train a model on bundled data, export it, run it with onnx-run;
# then the config workflow end to end: the seed's PyText BiLSTM config -> train -> curves -> model.onnx.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[demo,train]"
python -m onnxkit.demo "$@"
out="$(mktemp -d)/lstm"
onnx-run train models/configs/lstm_digits_rows.json -o "$out"
onnx-run run "$out/model.onnx" --batch 4
echo "curves, confusion matrix, metrics and training artifacts: $(ls "$out" | tr '\n' ' ')"
