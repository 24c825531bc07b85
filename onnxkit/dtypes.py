"""numpy <-> ONNX element types and torch's type-promotion rules."""
import numpy as np
from onnx import TensorProto

_NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.float16): TensorProto.FLOAT16, np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32, np.dtype(np.int16): TensorProto.INT16,
    np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.uint16): TensorProto.UINT16, np.dtype(np.uint32): TensorProto.UINT32,
    np.dtype(np.uint64): TensorProto.UINT64, np.dtype(np.bool_): TensorProto.BOOL,
    np.dtype(object): TensorProto.STRING,  # strings: numpy object arrays of str, as onnxruntime returns them
}
STRING = np.dtype(object)
_ONNX_TO_NP = {v: k for k, v in _NP_TO_ONNX.items()}
try:  # bfloat16 through ml_dtypes when present (onnx depends on it)
    import ml_dtypes
    _ONNX_TO_NP[TensorProto.BFLOAT16] = np.dtype(ml_dtypes.bfloat16)
    _NP_TO_ONNX[np.dtype(ml_dtypes.bfloat16)] = TensorProto.BFLOAT16
except ImportError:  # pragma: no cover
    pass

_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
            "bool": "bool", "string": "object", "str": "object"}


def as_dtype(d) -> np.dtype:
    """Normalize a dtype-like (numpy dtype, string, python type, ONNX enum, torch dtype) to numpy.
    Text dtypes (numpy `<U`/`S`, `str`, "string", ONNX STRING) are the object dtype: onnxruntime's
    string tensors are object arrays of str."""
    if isinstance(d, np.dtype):
        return STRING if d.kind in "USO" else d
    if d is str or d is bytes or d is object:
        return STRING
    if isinstance(d, int) and not isinstance(d, bool) and d in _ONNX_TO_NP:
        return _ONNX_TO_NP[d]
    if isinstance(d, type) and issubclass(d, np.generic):
        return as_dtype(np.dtype(d))
    if d is float:
        return np.dtype(np.float32)
    if d is int:
        return np.dtype(np.int64)
    if d is bool:
        return np.dtype(np.bool_)
    s = str(d).replace("torch.", "")
    return as_dtype(np.dtype(_ALIASES.get(s, s)))


def to_onnx(d) -> int:
    d = as_dtype(d)
    if d not in _NP_TO_ONNX:
        raise TypeError(f"dtype {d} has no ONNX equivalent")
    return _NP_TO_ONNX[d]


def from_onnx(elem_type: int) -> np.dtype:
    if elem_type not in _ONNX_TO_NP:
        raise TypeError(f"ONNX element type {TensorProto.DataType.Name(elem_type)} is not supported")
    return _ONNX_TO_NP[elem_type]


def is_string(d) -> bool:
    """Whether `d` is onnxkit's string dtype (numpy object, ONNX STRING)."""
    return as_dtype(d) == STRING


def is_floating(d) -> bool:
    if d.__class__ is not np.dtype and not isinstance(d, np.dtype):
        d = as_dtype(d)
    return d.kind == "f" or d.name == "bfloat16"


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "V": 2, "O": 3}  # strings above all: `s + 1` stays a
# string op, which infer.check_strings then refuses naming the op, rather than a silent Cast to number


def _category(d):
    return 2 if is_floating(d) else _CATEGORY.get(d.kind, 1)


def promote(a, b, a_scalar=False, b_scalar=False) -> np.dtype:
    """Result dtype of a binary op, following torch: a Python scalar only lifts the category
    (int tensor * 2.5 -> float32), tensors of one category promote to the wider type."""
    if a_scalar and not b_scalar:
        return b if _category(b) >= _category(a) else (np.dtype(np.float32) if _category(a) == 2 else np.dtype(np.int64))
    if b_scalar and not a_scalar:
        return promote(b, a, True, False)
    if a == b:
        return a
    ca, cb = _category(a), _category(b)
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)
