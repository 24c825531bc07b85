"""Neural-network layers with torch.nn's names, arguments, defaults and parameter layouts."""
from .module import Module, ShapeError  # noqa: F401
from .parameter import Parameter, Buffer  # noqa: F401
from .container import Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict  # noqa: F401
from . import init  # noqa: F401
from .linear import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .distance import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .padding import *  # noqa: F401,F403
from .sparse import *  # noqa: F401,F403
from .vision import *  # noqa: F401,F403
from .baseline import *  # noqa: F401,F403
from .fold import *  # noqa: F401,F403
from .lazy import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
from . import utils  # noqa: F401
from .. import ops as functional  # noqa: F401  (import onnxkit.nn.functional as F)
import sys as _sys
_sys.modules[__name__ + ".functional"] = functional
