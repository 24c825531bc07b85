"""Padding layers (torch/nn/modules/padding.py): thin modules over onnxkit.ops.pad (one ONNX Pad)."""
from .. import ops
from .module import Module, ShapeError, dim_variants, shape_errors

__all__ = ["ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
           "ReplicationPad3d", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d",
           "ConstantPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d"]


class _PadNd(Module):
    """Pads the last `_n` dims. `padding`: an int for every side, or (left, right[, top, bottom[, front,
    back]]) as in F.pad; subclasses set `mode` (F.pad's) and `_n`."""
    mode, value = None, None

    def __init__(self, padding):
        super().__init__()
        n = 2 * self._n
        self.padding = (padding,) * n if isinstance(padding, int) else tuple(int(p) for p in padding)
        if len(self.padding) != n:
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple of {n} ints, got {padding}")

    def forward(self, input):
        x = ops.as_tensor(input)
        ranks = (self._n + 1, self._n + 2)
        if self.mode != "constant" and len(x._shape) not in ranks:
            raise ShapeError(f"expected {ranks[0]}D or {ranks[1]}D input (got {len(x._shape)}D input)")
        if len(x._shape) < self._n:
            raise ShapeError(f"expected at least {self._n}D input, got shape {tuple(x._shape)}")
        with shape_errors():
            return ops.pad(x, self.padding, self.mode, self.value)

    def extra_repr(self):
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    mode = "constant"

    def __init__(self, padding, value):
        super().__init__(padding)
        self.value = value

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class _ZeroPad:
    """ZeroPad{n}d is ConstantPad{n}d with value 0, as in torch (where it subclasses it)."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


ReflectionPad1d, ReflectionPad2d, ReflectionPad3d = dim_variants(
    _PadNd, "ReflectionPad", "Pad the last {n} dim(s) by reflecting the input at its border (ONNX Pad mode=reflect).",
    mode="reflect")
ReplicationPad1d, ReplicationPad2d, ReplicationPad3d = dim_variants(
    _PadNd, "ReplicationPad", "Pad the last {n} dim(s) by repeating the border values (ONNX Pad mode=edge).",
    mode="replicate")
CircularPad1d, CircularPad2d, CircularPad3d = dim_variants(
    _PadNd, "CircularPad", "Pad the last {n} dim(s) by wrapping the input around (ONNX Pad mode=wrap).",
    mode="circular")
ConstantPad1d, ConstantPad2d, ConstantPad3d = dim_variants(
    _ConstantPadNd, "ConstantPad", "Pad the last {n} dim(s) with a constant value (ONNX Pad mode=constant).")
ZeroPad1d, ZeroPad2d, ZeroPad3d = (
    type(f"ZeroPad{c._n}d", (_ZeroPad, c),
         {"__module__": __name__, "__doc__": f"Pad the last {c._n} dim(s) with zeros (ONNX Pad mode=constant)."})
    for c in (ConstantPad1d, ConstantPad2d, ConstantPad3d))
