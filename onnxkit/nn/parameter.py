"""Parameter and Buffer: leaf Tensors that a Module registers as trainable weights or as state."""
import numpy as np

from .. import dtypes
from ..tensor import Tensor


def _array(data):
    """A fresh numpy copy of data (numpy array, onnxkit Tensor, torch tensor, Python numbers);
    Python floats become float32 as in torch, numpy arrays keep their dtype."""
    if isinstance(data, Tensor):
        data = data.numpy()
    elif hasattr(data, "detach") and hasattr(data, "cpu"):  # a torch tensor, read without importing torch
        data = data.detach().cpu().numpy()
    arr = np.array(data, copy=True)
    if not isinstance(data, (np.ndarray, np.generic)):
        arr = arr.astype(np.float32) if arr.dtype == np.float64 else arr.astype(np.int64) if arr.dtype.kind in "iu" else arr
    return np.ascontiguousarray(arr).reshape(arr.shape)  # ascontiguousarray makes 0-d arrays 1-d


class Parameter(Tensor):
    """A value leaf with requires_grad=True by default (torch.nn.Parameter); holds a copy of `data`."""
    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        arr = np.zeros((0,), np.float32) if data is None else _array(data)
        super().__init__(arr.dtype, arr.shape, value=arr, kind="value")
        if requires_grad and not dtypes.is_floating(arr.dtype):
            raise RuntimeError(f"only floating-point tensors can require gradients, got {arr.dtype} "
                               "(pass requires_grad=False)")
        self.requires_grad = bool(requires_grad)

    def __repr__(self):
        if self.kind != "value":
            return super().__repr__()
        return f"Parameter containing:\n{self.numpy()!r}"


class Buffer(Tensor):
    """A value leaf that a Module registers as a buffer when assigned as an attribute
    (torch.nn.Buffer); persistent=False keeps it out of the state_dict."""
    __slots__ = ("persistent",)

    def __init__(self, data, *, persistent=True):
        arr = _array(data)
        super().__init__(arr.dtype, arr.shape, value=arr, kind="value")
        self.persistent = persistent
