"""Functional ops (like torch.nn.functional plus torch's tensor functions); each emits ONNX nodes.
Also importable as `onnxkit.nn.functional`."""
from .core import *  # noqa: F401,F403
from .core import abs_ as abs, round_ as round, pow_ as pow, as_tensor, cast  # noqa: F401
from .reduce import *  # noqa: F401,F403
from .reduce import sum, max, min, all, any  # noqa: F401
from .shape import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .nn_linear import linear, bilinear  # noqa: F401
from . import methods as _methods  # attaches the Tensor methods and operators

__all__ = [n for n in dir() if not n.startswith("_")]
