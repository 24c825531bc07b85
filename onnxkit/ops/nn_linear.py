"""linear and bilinear (torch.nn.functional)."""
from ..dims import format_shape
from ..tensor import apply
from .core import as_tensor, add, check_same_dtype
from .linalg import matmul, einsum
from .shape import t as _t


def linear(x, weight, bias=None):
    """x @ W^T + b: one Gemm(transB=1) for 2-D inputs, MatMul + Add otherwise."""
    x, weight = as_tensor(x), as_tensor(weight)
    check_same_dtype("linear", x, weight, None if bias is None else as_tensor(bias))
    k, kw = x._shape[-1] if x._shape else None, weight._shape[-1]
    if isinstance(k, int) and isinstance(kw, int) and k != kw:
        raise ValueError(f"linear: input of shape {format_shape(x._shape)} has {k} features, but the weight of "
                         f"shape {format_shape(weight._shape)} expects {kw}")
    if len(x._shape) == 2 and bias is not None and len(weight._shape) == 2:
        return apply("Gemm", [x, weight, as_tensor(bias)], {"transB": 1})
    y = matmul(x, _t(weight))
    return add(y, bias) if bias is not None else y


def bilinear(x1, x2, weight, bias=None):
    """y[..., o] = sum_ij x1[..., i] W[o, i, j] x2[..., j] + b[o]: one Einsum over a single
    flattened batch dim (an explicit equation, so its gradient needs no '...')."""
    from .shape import reshape
    x1, x2, weight = as_tensor(x1), as_tensor(x2), as_tensor(weight)
    lead = x1.shape[:-1]
    if len(lead) != 1:
        x1, x2 = reshape(x1, -1, x1.shape[-1]), reshape(x2, -1, x2.shape[-1])
    y = einsum("bi,oij,bj->bo", x1, weight, x2)
    y = add(y, bias) if bias is not None else y
    return reshape(y, *lead, weight.shape[0]) if len(lead) != 1 else y
