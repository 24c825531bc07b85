"""Matrix products: MatMul (numpy semantics), Gemm for the 2-D linear layer, Einsum."""
from ..tensor import apply
from .core import as_tensor, promote_operands


def _matmul_operands(a, b, what):
    a, b = promote_operands(a, b)
    if len(a._shape) == 0 or len(b._shape) == 0:
        raise ValueError(f"{what}: both arguments need at least 1 dimension, got shapes {a._shape} and {b._shape}")
    return a, b


def matmul(a, b):
    """numpy matmul. A 1-D right operand is lifted to a column first: onnxruntime 1.31 fuses
    Transpose + MatMul(matrix, vector) wrongly at optimization level EXTENDED and above."""
    a, b = _matmul_operands(a, b, "matmul")
    if len(b._shape) == 1 and len(a._shape) > 1:
        from .shape import unsqueeze, squeeze
        return squeeze(apply("MatMul", [a, unsqueeze(b, 1)]), -1)
    return apply("MatMul", [a, b])


def mm(a, b):
    a, b = _matmul_operands(a, b, "mm")
    if len(a._shape) != 2 or len(b._shape) != 2:
        raise ValueError(f"mm: expected 2-D tensors, got shapes {a._shape} and {b._shape}")
    return apply("MatMul", [a, b])


def bmm(a, b):
    a, b = _matmul_operands(a, b, "bmm")
    if len(a._shape) != 3 or len(b._shape) != 3:
        raise ValueError(f"bmm: expected 3-D tensors, got shapes {a._shape} and {b._shape}")
    return apply("MatMul", [a, b])


def mv(a, v):
    return matmul(a, v)


def dot(a, b):
    return matmul(a, b)


def outer(a, b):
    from .shape import unsqueeze
    return matmul(unsqueeze(as_tensor(a), 1), unsqueeze(as_tensor(b), 0))


def einsum(equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    ops = [as_tensor(o) for o in operands]
    return apply("Einsum", ops, {"equation": equation.replace(" ", "")})


def addmm(input, mat1, mat2, beta=1, alpha=1):
    from .core import add, mul
    prod = mm(mat1, mat2)
    return add(mul(input, beta) if beta != 1 else input, mul(prod, alpha) if alpha != 1 else prod)
