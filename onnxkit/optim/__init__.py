"""Optimizers and learning-rate schedulers with torch.optim's names, arguments and numerics. Each
optimizer is an update rule written with the Tensor API: `opt.step()` records it on the graph of a
torch-style loop, and `onnxkit.training` appends it to a one-graph training step."""
from .optimizer import Optimizer  # noqa: F401
from .sgd import SGD  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from .adagrad import Adagrad  # noqa: F401
from .adadelta import Adadelta  # noqa: F401
from .adamax import Adamax  # noqa: F401
from . import lr_scheduler  # noqa: F401
