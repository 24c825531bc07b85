"""Functional ops (like torch.nn.functional plus torch's tensor functions); each emits ONNX nodes.
Also importable as `onnxkit.nn.functional`."""
from .core import *  # noqa: F401,F403
from .core import abs_ as abs, round_ as round, pow_ as pow, as_tensor, cast  # noqa: F401
from .reduce import *  # noqa: F401,F403
from .reduce import sum, max, min, all, any  # noqa: F401
from .shape import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .nn_linear import linear, bilinear  # noqa: F401
from .conv import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .padding import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .distance import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .sparse import *  # noqa: F401,F403
from .vision import *  # noqa: F401,F403
from .indexing import *  # noqa: F401,F403
from .sorting import *  # noqa: F401,F403
from .random_ops import *  # noqa: F401,F403
from .creation import *  # noqa: F401,F403
from .fold import *  # noqa: F401,F403
from .aliases import *  # noqa: F401,F403
from .grid_sample import *  # noqa: F401,F403
from .fractional_pool import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from . import methods as _methods  # attaches the Tensor methods and operators

import types as _types
__all__ = [n for n, v in dict(globals()).items() if not n.startswith("_") and not isinstance(v, _types.ModuleType)]
