#!/usr/bin/env bash
# Install onnxkit with its test extras (torch CPU wheel as the oracle) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[test,interchange]"
# jax2onnx's own requirements would swap onnxruntime-gpu for onnxruntime; the interchange extra lists the rest
python -m pip install --quiet --disable-pip-version-check --no-deps "jax2onnx==0.17.1"
bash scripts/setup_js.sh  # node, chromium and js/node_modules for tests/test_js.py
python -m pytest -q "$@"
