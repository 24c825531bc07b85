"""python -m onnxkit.cli: the same as onnx-run."""
from . import main

main()
