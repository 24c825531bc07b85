"""Matrix products: MatMul (numpy semantics), Gemm for the 2-D linear layer, Einsum."""
from ..dims import format_shape
from ..tensor import apply
from .core import as_tensor, check_same_dtype


def _matmul_operands(a, b, what, ranks=None):
    """Both operands as Tensors of one dtype (mixed dtypes raise, as in torch); with `ranks`, their
    required ranks (torch's mm, bmm, ...)."""
    a, b = as_tensor(a), as_tensor(b)
    check_same_dtype(what, a, b, names=("self", "other"))
    if len(a._shape) == 0 or len(b._shape) == 0:
        raise ValueError(f"{what}: both arguments need at least 1 dimension, got shapes {format_shape(a._shape)} "
                         f"and {format_shape(b._shape)}")
    if ranks is not None and (len(a._shape), len(b._shape)) != ranks:
        raise ValueError(f"{what}: expected {ranks[0]}-D and {ranks[1]}-D tensors, got shapes "
                         f"{format_shape(a._shape)} and {format_shape(b._shape)}")
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
    """Matrix product of two 2-D tensors (MatMul)."""
    return apply("MatMul", list(_matmul_operands(a, b, "mm", (2, 2))))


def bmm(a, b):
    """Batched matrix product of two 3-D tensors (MatMul)."""
    return apply("MatMul", list(_matmul_operands(a, b, "bmm", (3, 3))))


def mv(a, v):
    """Matrix-vector product (MatMul)."""
    return matmul(*_matmul_operands(a, v, "mv", (2, 1)))


def dot(a, b):
    """Inner product of two 1-D tensors (MatMul)."""
    return matmul(*_matmul_operands(a, b, "dot", (1, 1)))


def outer(a, b):
    """Outer product of two vectors: column times row (MatMul)."""
    from .shape import unsqueeze
    return matmul(unsqueeze(as_tensor(a), 1), unsqueeze(as_tensor(b), 0))


def einsum(equation, *operands):
    """torch.einsum (one Einsum); operands may also be given as one list."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    ops = [as_tensor(o) for o in operands]
    return apply("Einsum", ops, {"equation": equation.replace(" ", "")})


def _scaled_sum(input, prod, beta, alpha):
    """beta * input + alpha * prod; beta = 0 ignores input (NaN included), as torch."""
    from .core import add, mul
    prod = prod if alpha == 1 else mul(prod, alpha)
    if beta == 0:
        from .core import zeros_of
        return add(zeros_of(as_tensor(input), prod.dtype), prod)
    return add(input if beta == 1 else mul(input, beta), prod)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """beta * input + alpha * (mat1 @ mat2) (torch.addmm; MatMul)."""
    return _scaled_sum(input, mm(mat1, mat2), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * (batch1 @ batch2) for 3-D batches (torch.baddbmm; MatMul)."""
    return _scaled_sum(input, bmm(batch1, batch2), beta, alpha)


def addmv(input, mat, vec, *, beta=1, alpha=1):
    """beta * input + alpha * (mat @ vec) (torch.addmv; MatMul)."""
    return _scaled_sum(input, mv(mat, vec), beta, alpha)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * sum_b(batch1[b] @ batch2[b]) (torch.addbmm; MatMul + ReduceSum)."""
    from .reduce import sum as sum_
    return _scaled_sum(input, sum_(bmm(batch1, batch2), 0), beta, alpha)
