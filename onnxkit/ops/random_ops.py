"""Host-side random draws with torch's names (randperm, multinomial, bernoulli). They read onnxkit's
seeded numpy generator (`onnxkit.tensor.rng()`), so `ok.manual_seed` makes them reproducible; the
streams differ from torch's. Results are value leaves, drawn once per call."""
import numpy as np

from .. import dtypes
from ..tensor import Tensor, rng, tensor

__all__ = ["randperm", "multinomial", "bernoulli"]


def randperm(n, *, dtype="int64", requires_grad=False, **_ignored):
    """A random permutation of 0..n-1 (torch.randperm); device/generator arguments are accepted and ignored."""
    n = int(n)
    if n < 0:
        raise ValueError(f"randperm: n must be non-negative, got {n}")
    return tensor(rng().permutation(n).astype(dtypes.as_dtype(dtype)), requires_grad=requires_grad)


def _host_values(input, what):
    """input's values on the host; a tensor that depends on a graph input cannot be sampled here."""
    if isinstance(input, Tensor):
        from .indexing import concrete_value
        v = concrete_value(input, evaluate=True)
        if v is None:
            raise ValueError(f"{what} draws on the host from onnxkit's seeded generator, so its input needs a "
                             "value; this one depends on a graph input (ok.Input)")
        return v
    return np.asarray(input)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """int64 indices drawn from the categories weighted by each row of `input` (1-D or 2-D, non-negative,
    not necessarily normalized), as torch.multinomial. Without replacement a category appears at most
    once (weighted sampling by exponential keys, zero-weight categories last)."""
    p = np.asarray(_host_values(input, "multinomial"), np.float64)
    if p.ndim not in (1, 2):
        raise ValueError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {p.shape}")
    rows = p.reshape(-1, p.shape[-1])
    k, n = int(num_samples), rows.shape[1]
    if k <= 0:
        raise ValueError(f"multinomial: cannot sample n_sample <= 0 samples, got {k}")
    if not replacement and k > n:
        raise ValueError(f"multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement "
                         f"({k} > {n})")
    if not np.isfinite(rows).all() or (rows < 0).any():
        raise ValueError("multinomial: probability tensor contains either `inf`, `nan` or element < 0")
    totals = rows.sum(1, keepdims=True)
    if (totals <= 0).any():
        raise ValueError("multinomial: invalid multinomial distribution (sum of probabilities <= 0)")
    g = rng()
    if replacement:  # inverse CDF: zero-weight categories have empty intervals
        cdf = np.cumsum(rows, 1)
        u = g.random((rows.shape[0], k)) * totals
        out = np.stack([np.minimum(np.searchsorted(c, ui, side="right"), n - 1) for c, ui in zip(cdf, u)])
    else:
        keys = rows / g.exponential(size=rows.shape)
        out = np.argsort(-keys, axis=1, kind="stable")[:, :k]
    return tensor(out.reshape(p.shape[:-1] + (k,)).astype(np.int64))


def bernoulli(input, p=None, *, generator=None):
    """0/1 draws with probability `input` (or the scalar `p`), in input's dtype (torch.bernoulli)."""
    probs = np.asarray(_host_values(input, "bernoulli"))
    prob = probs if p is None else np.full(probs.shape, float(p))
    if (prob < 0).any() or (prob > 1).any() or not np.isfinite(prob).all():
        raise ValueError("bernoulli: expected all probabilities in [0, 1]")
    draws = rng().random(probs.shape) < prob
    dtype = probs.dtype if isinstance(input, Tensor) or probs.dtype.kind == "f" else np.float32
    return tensor(draws.astype(dtype))
