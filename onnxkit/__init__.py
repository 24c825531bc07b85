"""onnxkit: build neural networks as ONNX graphs with a PyTorch-shaped API, train them with
gradient and optimizer nodes appended to the graph, and run them on stock onnxruntime."""
import importlib

from .tensor import (Tensor, Input, tensor, no_grad, enable_grad, set_grad_enabled, is_grad_enabled, manual_seed,
                     randn, rand, randint, zeros, ones, empty, full, arange, eye, linspace, zeros_like, ones_like,
                     randn_like, rand_like, full_like, empty_like)
from .dims import Dim
from .device import device, set_default_device, get_default_device, cuda  # noqa: F401
from .ops import *  # noqa: F401,F403  torch-style functions: ok.cat, ok.where, ok.sum, ...
from .ops import abs, round, pow, sum, max, min, all, any  # noqa: F401
from .control_flow import cond, while_loop, scan  # noqa: F401
from .tensor import attach_inplace_variants as _attach_inplace_variants
_attach_inplace_variants()

__version__ = "0.1.0"
float32, float64, float16, int64, int32, int8, uint8 = "float32", "float64", "float16", "int64", "int32", "int8", "uint8"
bool_ = "bool"

_LAZY = {
    "export": ("onnxkit.exporter", "export"), "load": ("onnxkit.importer", "load"),
    "Session": ("onnxkit.runtime", "Session"), "grad": ("onnxkit.autodiff", "grad"),
    "Function": ("onnxkit.autodiff", "Function"), "Trainer": ("onnxkit.trainer", "Trainer"),
    "nn": ("onnxkit.nn", None), "optim": ("onnxkit.optim", None), "autodiff": ("onnxkit.autodiff", None),
    "cuda_available": ("onnxkit.runtime", "cuda_available"),
    "save": ("onnxkit.serialization", "save"),
    "load_state_dict_file": ("onnxkit.serialization", "load_state_dict_file"),
    "utils": ("onnxkit.utils", None),
    "training_artifacts": ("onnxkit.artifacts", "training_artifacts"),
    "load_training_state": ("onnxkit.artifacts", "load_training_state"),
    "distributed": ("onnxkit.distributed", None),
    "compile": ("onnxkit.nn.compiled", "compile"),
}


def __getattr__(name):
    """Heavy parts (onnxruntime, nn, optim) import on first use to keep `import onnxkit` light."""
    if name in _LAZY:
        mod, attr = _LAZY[name]
        m = importlib.import_module(mod)
        return m if attr is None else getattr(m, attr)
    raise AttributeError(f"module 'onnxkit' has no attribute {name!r}")
