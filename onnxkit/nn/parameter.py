"""Parameter: a leaf Tensor that a Module registers as trainable."""
import numpy as np

from ..tensor import Tensor


class Parameter(Tensor):
    """A value leaf with requires_grad=True by default (torch.nn.Parameter)."""
    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.zeros((0,), np.float32)
        if isinstance(data, Tensor):
            data = data.numpy()
        if hasattr(data, "detach") and hasattr(data, "cpu"):
            data = data.detach().cpu().numpy()
        arr = np.array(data, copy=True)
        if arr.dtype == np.float64 and not isinstance(data, np.ndarray):
            arr = arr.astype(np.float32)
        super().__init__(arr.dtype, arr.shape, value=arr, kind="value")
        self.requires_grad = bool(requires_grad) and (arr.dtype.kind == "f")

    def __repr__(self):
        return "Parameter containing:\n" + repr(self.numpy()) if self.kind == "value" else super().__repr__()

    @property
    def data(self):
        return self

    @data.setter
    def data(self, value):
        self._assign(value)


class Buffer(Tensor):
    """Marker type for `register_buffer` values given as arrays."""
    __slots__ = ()
