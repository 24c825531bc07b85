"""Matrix products: MatMul (numpy semantics), Gemm for the 2-D linear layer, Einsum; products built on them
(kron, tensordot, matrix_power, cross), distances (cdist, pdist, dist), covariance, and determinants by
Gaussian elimination unrolled over a static size."""
import collections

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


# ----- more of torch's products and distances ---------------------------------------------------------
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def addr(input, vec1, vec2, *, beta=1, alpha=1):
    """beta * input + alpha * outer(vec1, vec2) (torch.addr)."""
    return _scaled_sum(input, outer(vec1, vec2), beta, alpha)


ger = outer


def vdot(input, other):
    """Inner product of two 1-D tensors (real tensors: dot)."""
    return matmul(*_matmul_operands(input, other, "vdot", (1, 1)))


def tensordot(a, b, dims=2, out=None):
    """Contract the last `dims` dims of a with the first `dims` of b, or the dims listed as
    ([a dims], [b dims]) (torch.tensordot; one Einsum)."""
    a, b = _matmul_operands(a, b, "tensordot") if len(as_tensor(a)._shape) and len(as_tensor(b)._shape) else \
        (as_tensor(a), as_tensor(b))
    ra, rb = len(a._shape), len(b._shape)
    if isinstance(dims, int) or (hasattr(dims, "ndim") and getattr(dims, "ndim", 1) == 0):
        k = int(dims)
        if k < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={k}")
        da, db = list(range(ra - k, ra)), list(range(k))
    else:
        da, db = ([int(d) for d in (x if isinstance(x, (list, tuple)) else [x])] for x in dims)
    da, db = [d % ra for d in da], [d % rb for d in db]
    if len(da) != len(db):
        raise RuntimeError("both dimension lists should have same length")
    la = list(_LETTERS[:ra])
    lb = list(_LETTERS[ra:ra + rb])
    for i, j in zip(da, db):
        lb[j] = la[i]
    out_letters = [c for i, c in enumerate(la) if i not in da] + [c for j, c in enumerate(lb) if j not in db]
    return einsum(f"{''.join(la)},{''.join(lb)}->{''.join(out_letters)}", a, b)


def inner(input, other):
    """Sum of products over the last dims (torch.inner); a 0-d operand scales the other."""
    a, b = as_tensor(input), as_tensor(other)
    if len(a._shape) == 0 or len(b._shape) == 0:
        from .core import mul
        return mul(a, b)
    return tensordot(a, b, ([-1], [-1]))


def kron(input, other):
    """Kronecker product: blocks a[i] * b (torch.kron); the lower-rank operand gets leading 1s."""
    from .core import mul
    from .shape import reshape
    a, b = as_tensor(input), as_tensor(other)
    r = max(len(a._shape), len(b._shape))
    sa = (1,) * (r - len(a._shape)) + tuple(a.shape)
    sb = (1,) * (r - len(b._shape)) + tuple(b.shape)
    pa = reshape(a, *[v for d in sa for v in (d, 1)]) if r else a
    pb = reshape(b, *[v for d in sb for v in (1, d)]) if r else b
    out = mul(pa, pb)
    return reshape(out, *[p * q for p, q in zip(sa, sb)]) if r else out


def chain_matmul(*matrices):
    """The product of 2-D matrices left to right (torch.chain_matmul)."""
    if len(matrices) == 1 and isinstance(matrices[0], (list, tuple)):
        matrices = matrices[0]
    out = as_tensor(matrices[0])
    for m in matrices[1:]:
        out = mm(out, m)
    return out


def matrix_power(input, n):
    """input multiplied by itself n times (n >= 0; square-and-multiply), the identity for n = 0."""
    from .core import zeros_of, add
    from ..tensor import const
    import numpy as np
    a = as_tensor(input)
    n = int(n)
    if n < 0:
        raise NotImplementedError("matrix_power with a negative exponent needs a matrix inverse, which standard "
                                  "ONNX lacks")
    if len(a._shape) < 2 or a._shape[-1] != a._shape[-2]:
        raise ValueError(f"matrix_power: expected a square matrix or batches of them, got shape "
                         f"{format_shape(a._shape)}")
    if n == 0:
        k = a._shape[-1]
        return add(zeros_of(a), const(np.eye(k), a.dtype))
    result, base = None, a
    while n:
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return result


def _p_norm(d, p, dim):
    """The p-norm of d over `dim` (None: all), with a zero gradient where the norm is 0, as torch's
    cdist and dist."""
    import math
    from .core import abs_, where, eq, sqrt, pow_, ne, cast
    from .reduce import sum as sum_, amax
    from ..tensor import const
    p = float(p)
    if p == math.inf:
        return amax(abs_(d), dim)
    if p == 0:
        return sum_(cast(ne(d, 0), d.dtype), dim)
    if p == 1:
        return sum_(abs_(d), dim)
    if p == 2:
        s = sum_(d * d, dim)
    else:
        s = sum_(pow_(abs_(d), p), dim)
    zero = eq(s, 0.0)
    safe = where(zero, const(1.0, s.dtype), s)
    root = sqrt(safe) if p == 2 else pow_(safe, 1.0 / p)
    return where(zero, const(0.0, s.dtype), root)


def dist(input, other, p=2):
    """The p-norm of input - other over all elements (torch.dist)."""
    from .core import sub
    return _p_norm(sub(input, other), p, None)


def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """Pairwise p-norm distances between the rows of x1 (..., P, M) and x2 (..., R, M): (..., P, R)."""
    from .core import sub
    from .shape import unsqueeze
    a, b = as_tensor(x1), as_tensor(x2)
    if len(a._shape) < 2 or len(b._shape) < 2:
        raise ValueError(f"cdist only supports at least 2D tensors, X1 got: {len(a._shape)}D")
    if a._shape[-1] != b._shape[-1]:
        raise ValueError(f"X1 and X2 must have the same number of columns. X1: {a._shape[-1]} X2: {b._shape[-1]}")
    if p < 0:
        raise ValueError(f"cdist only supports non-negative p values, got {p}")
    return _p_norm(sub(unsqueeze(a, -2), unsqueeze(b, -3)), p, -1)


def block_diag(*tensors):
    """The inputs as blocks on the diagonal of a 2-D matrix, zeros elsewhere (torch.block_diag)."""
    import numpy as np
    from .. import dtypes
    from .core import cast
    from .shape import cat, reshape
    from ..tensor import const
    blocks = []
    for t in tensors:
        t = as_tensor(t)
        r = len(t._shape)
        if r > 2:
            raise ValueError(f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input has {r} "
                             "dimensions")
        blocks.append(reshape(t, 1, 1) if r == 0 else reshape(t, 1, -1) if r == 1 else t)
    if not blocks:
        return const(np.zeros((1, 0), np.float32), np.float32)
    dt = blocks[0].dtype
    for t in blocks[1:]:
        dt = dtypes.promote(dt, t.dtype)
    widths = [int(t._shape[1]) for t in blocks]
    total = sum(widths)
    rows, left = [], 0
    for t, w in zip(blocks, widths):
        h = int(t._shape[0])
        parts = ([const(np.zeros((h, left), dt), dt)] if left else []) + [cast(t, dt)] + \
                ([const(np.zeros((h, total - left - w), dt), dt)] if total - left - w else [])
        rows.append(cat(parts, 1) if len(parts) > 1 else parts[0])
        left += w
    return cat(rows, 0) if len(rows) > 1 else rows[0]


def cartesian_prod(*tensors):
    """Every combination of the elements of the 1-D inputs, as rows (torch.cartesian_prod)."""
    from .shape import meshgrid, reshape, stack
    if len(tensors) == 1:
        return as_tensor(tensors[0])
    grids = meshgrid(*tensors, indexing="ij")
    return stack([reshape(g, -1) for g in grids], 1)


def cross(input, other, dim=None):
    """Cross product of 3-vectors along `dim` (torch.cross; dim=None takes the first dim of size 3, as torch
    does). Inputs broadcast."""
    from .core import mul, sub
    from .shape import index_select, broadcast_tensors, _norm_dim
    from ..tensor import const
    import numpy as np
    a, b = broadcast_tensors(as_tensor(input), as_tensor(other))
    if dim is None:
        dim = next((i for i, d in enumerate(a._shape) if d == 3), None)
        if dim is None:
            raise RuntimeError(f"no dimension of size 3 in input of shape {format_shape(a._shape)}")
    d = _norm_dim(dim, len(a._shape))
    if a._shape[d] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {a._shape[d]} and "
                           f"{b._shape[d]}")

    def rot(t, order):
        return index_select(t, d, const(np.array(order), np.int64))
    return sub(mul(rot(a, [1, 2, 0]), rot(b, [2, 0, 1])), mul(rot(a, [2, 0, 1]), rot(b, [1, 2, 0])))


def pdist(input, p=2):
    """The p-norm distances between every pair of rows i < j of a 2-D input, in row-major order
    (torch.pdist: the upper triangle of cdist)."""
    import numpy as np
    from ..tensor import const
    from .shape import reshape
    from .shape import take
    x = as_tensor(input)
    if len(x._shape) != 2:
        raise ValueError(f"pdist only supports 2D tensors, got: {len(x._shape)}D")
    n = x._shape[0]
    if not isinstance(n, int):
        raise ValueError("pdist: the number of rows must be static")
    rows, cols = np.triu_indices(n, 1)
    return take(reshape(cdist(x, x, p), -1), const(rows * n + cols, np.int64))


def cov(input, *, correction=1, fweights=None, aweights=None):
    """Covariance of the variables in the rows of input (observations in columns), with torch.cov's
    frequency and analytic weights and correction."""
    from .core import mul, sub, div, cast, _floating
    from .reduce import sum as sum_
    from .shape import reshape
    x = as_tensor(input)
    if len(x._shape) > 2:
        raise ValueError(f"cov(): expected input to have two or fewer dimensions but got an input with "
                         f"{len(x._shape)} dimensions")
    x = _floating(x)
    if len(x._shape) < 2:  # one variable: a 0-d result
        return reshape(cov(reshape(x, 1, -1), correction=correction, fweights=fweights, aweights=aweights), ())
    w = None
    if fweights is not None:
        w = cast(as_tensor(fweights), x.dtype)
    if aweights is not None:
        aw = cast(as_tensor(aweights), x.dtype)
        w = aw if w is None else mul(w, aw)
    if w is None:
        total = x._shape[1]
        avg = div(sum_(x, 1, keepdim=True), float(total))
        norm = float(total - correction) if isinstance(total, int) else sub(cast(x.shape[1].tensor(), x.dtype),
                                                                              float(correction))
        centered = sub(x, avg)
        return div(matmul(centered, centered.T), norm if not isinstance(norm, float) else max(norm, 0.0))
    total = sum_(w)
    avg = div(sum_(mul(x, w), 1, keepdim=True), total)
    if correction == 0:
        norm = total
    elif aweights is None:
        norm = sub(total, float(correction))
    else:
        norm = sub(total, div(mul(sum_(mul(w, aw)), float(correction)), total))
    centered = sub(x, avg)
    return div(matmul(mul(centered, w), centered.T), norm)


def corrcoef(input):
    """Pearson correlation coefficients of the variables in the rows of input, clipped to [-1, 1]
    (torch.corrcoef)."""
    from .core import div, sqrt, clamp
    from .shape import unsqueeze
    from .indexing import diagonal
    c = cov(input)
    if len(c._shape) == 0:
        return div(c, c)
    d = sqrt(diagonal(c))
    return clamp(div(div(c, unsqueeze(d, 1)), unsqueeze(d, 0)), -1.0, 1.0)


# ----- determinants by Gaussian elimination with partial pivoting (unrolled over a static size) ------------
def _eliminate(a):
    """(sign of the row permutation, diagonal of U) of the LU factorization with partial pivoting of the
    square matrices in a (..., n, n): n - 1 unrolled steps of argmax pivot, row swap (GatherElements) and
    row updates, all standard ops, so gradients come from their rules."""
    import numpy as np
    from ..tensor import const
    from .core import abs_, add, div, eq, mul, ne, sub, where
    from .reduce import argmax
    from .shape import cat, expand, narrow, reshape, unsqueeze
    from .indexing import diagonal
    n = a._shape[-1]
    batch = a.shape[:-2]
    u = a
    sign = None
    rows = const(np.arange(n), np.int64)
    for k in range(n - 1):
        col = narrow(narrow(u, -1, k, 1), -2, k, n - k)  # (..., n - k, 1)
        p = add(argmax(abs_(col), -2, keepdim=True), k)  # (..., 1, 1)
        order = where(eq(rows, reshape(p, *batch, 1)), const(k, np.int64),
                      where(eq(rows, k), reshape(p, *batch, 1), rows))  # (..., n): rows k and p swapped
        u = apply("GatherElements", [u, expand(unsqueeze(order, -1), *batch, n, n)], {"axis": len(a._shape) - 2},
                  types=[(a.dtype, a._shape)])
        flip = where(ne(reshape(p, *batch), k), const(-1.0, a.dtype), const(1.0, a.dtype))
        sign = flip if sign is None else mul(sign, flip)
        pivot_row = narrow(u, -2, k, 1)  # (..., 1, n)
        pivot = narrow(pivot_row, -1, k, 1)  # (..., 1, 1)
        zero = eq(pivot, 0.0)  # the column is zero from row k down: nothing to eliminate, det 0
        below = narrow(u, -2, k + 1, n - k - 1)
        safe = where(zero, const(1.0, a.dtype), pivot)
        factors = where(zero, const(0.0, a.dtype), div(narrow(below, -1, k, 1), safe))
        below = sub(below, mul(factors, pivot_row))
        u = cat([narrow(u, -2, 0, k + 1), below], -2)
    if sign is None:
        sign = reshape(mul(narrow(narrow(a, -1, 0, 1), -2, 0, 1), 0.0), *batch) if batch else const(0.0, a.dtype)
        sign = add(sign, 1.0)
    return sign, diagonal(u, 0, -2, -1)


def _square(input, what):
    from .core import _floating
    a = _floating(input)
    if len(a._shape) < 2 or a._shape[-1] != a._shape[-2] or not isinstance(a._shape[-1], int):
        raise ValueError(f"{what}: expected a tensor of static square matrices (..., n, n), got shape "
                         f"{format_shape(a._shape)}")
    return a


def det(input):
    """Determinant of square matrices (..., n, n) (torch.det): Gaussian elimination with partial pivoting,
    unrolled over the static n."""
    from .core import mul
    from .reduce import prod
    a = _square(input, "det")
    if a._shape[-1] == 0:
        return _batch_ones(a)
    sign, diag = _eliminate(a)
    return mul(sign, prod(diag, -1))


def _batch_ones(a):
    import numpy as np
    from ..tensor import const
    from .shape import expand
    batch = a.shape[:-2]
    return expand(const(1.0, a.dtype), *batch) if batch else const(np.float32(1.0).astype(a.dtype), a.dtype)


SLogDet = collections.namedtuple("slogdet", ["sign", "logabsdet"])


def slogdet(input):
    """(sign, log|det|) of square matrices (torch.slogdet); sign 0 and logabsdet -inf for singular ones."""
    from .core import abs_, log, mul, sign as sign_
    from .reduce import prod, sum as sum_
    a = _square(input, "slogdet")
    s, diag = _eliminate(a)
    return SLogDet(mul(s, prod(sign_(diag), -1)), sum_(log(abs_(diag)), -1))


def logdet(input):
    """log(det) of square matrices (torch.logdet): NaN for a negative determinant, -inf for a singular one."""
    from .core import log
    return log(det(input))
