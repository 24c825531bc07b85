"""Padding layers (torch/nn/modules/padding.py): thin modules over onnxkit.ops.pad (one ONNX Pad)."""
from .. import ops
from .module import Module, ShapeError

__all__ = ["ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
           "ReplicationPad3d", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d",
           "ConstantPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d"]


class _PadNd(Module):
    """`padding`: an int for every side, or (left, right[, top, bottom[, front, back]]) as in F.pad."""
    mode, dims = "constant", 1

    def __init__(self, padding, value=None):
        super().__init__()
        n = 2 * self.dims
        self.padding = (padding,) * n if isinstance(padding, int) else tuple(int(p) for p in padding)
        if len(self.padding) != n:
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple of {n} ints, got {padding}")
        self.value = value

    def forward(self, input):
        x = ops.as_tensor(input)
        ranks = (self.dims + 1, self.dims + 2)
        if self.mode != "constant" and len(x._shape) not in ranks:
            raise ShapeError(f"expected {ranks[0]}D or {ranks[1]}D input (got {len(x._shape)}D input)")
        if len(x._shape) < self.dims:
            raise ShapeError(f"expected at least {self.dims}D input, got shape {tuple(x._shape)}")
        try:
            return ops.pad(x, self.padding, self.mode, self.value)
        except ValueError as e:
            raise ShapeError(str(e)) from None

    def extra_repr(self):
        return f"{self.padding}" + (f", value={self.value}" if self.mode == "constant" else "")


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value):
        super().__init__(padding, value)


class _ZeroPadNd(_PadNd):
    def __init__(self, padding):
        super().__init__(padding, 0.0)


def _variant(name, base, mode, dims, doc):
    return type(name, (base,), {"mode": mode, "dims": dims, "__doc__": doc, "__module__": __name__})


_DOCS = {"reflect": "Pad by reflecting the input at its border (ONNX Pad mode=reflect).",
         "replicate": "Pad by repeating the border values (ONNX Pad mode=edge).",
         "circular": "Pad by wrapping the input around (ONNX Pad mode=wrap).",
         "constant": "Pad with a constant value (ONNX Pad mode=constant).",
         "zero": "Pad with zeros (ONNX Pad mode=constant)."}
_FAMILIES = {"Reflection": ("reflect", _PadNd), "Replication": ("replicate", _PadNd), "Circular": ("circular", _PadNd),
             "Constant": ("constant", _ConstantPadNd), "Zero": ("constant", _ZeroPadNd)}

for _family, (_mode, _base) in _FAMILIES.items():
    for _d in (1, 2, 3):
        _name = f"{_family}Pad{_d}d"
        _doc = _DOCS["zero" if _family == "Zero" else _mode]
        globals()[_name] = _variant(_name, _base, _mode, _d, f"{_doc} Pads the last {_d} dim(s).")
