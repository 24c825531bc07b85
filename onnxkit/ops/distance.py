"""Distance functions (torch.nn.functional.cosine_similarity, pairwise_distance), composed from
ReduceL2/ReduceL1 and elementwise ops."""
from .autodiff_helpers import stop
from .core import as_tensor, relu
from .reduce import norm, sum
from .shape import expand

__all__ = ["cosine_similarity", "pairwise_distance"]


def _broadcast_pair(a, b):
    """Both operands expanded to their common shape (torch's expand_outplace); symbolic dims are
    taken from the operand that has them."""
    if a._shape == b._shape:
        return a, b
    r = max(len(a._shape), len(b._shape))
    sa, sb = (1,) * (r - len(a._shape)) + a.shape, (1,) * (r - len(b._shape)) + b.shape
    dims = [db if isinstance(da, int) and da == 1 else da for da, db in zip(sa, sb)]
    return expand(a, dims), expand(b, dims)


def clamp_min_no_grad(t, eps):
    """max(t, eps) whose gradient is that of t (torch clamps the norms under no_grad)."""
    return t + stop(relu(float(eps) - t))


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1/max(||x1||, eps) * x2/max(||x2||, eps), dim): torch 2.x clamps each norm separately."""
    x1, x2 = _broadcast_pair(as_tensor(x1), as_tensor(x2))
    n1 = clamp_min_no_grad(norm(x1, 2, dim, keepdim=True), eps)
    n2 = clamp_min_no_grad(norm(x2, 2, dim, keepdim=True), eps)
    return sum((x1 / n1) * (x2 / n2), dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """p-norm of (x1 - x2 + eps) over the last dim (eps is added to the difference, as torch)."""
    x1, x2 = as_tensor(x1), as_tensor(x2)
    diff = x1 - x2 + float(eps)
    return norm(diff, p, len(diff._shape) - 1, keepdim)
