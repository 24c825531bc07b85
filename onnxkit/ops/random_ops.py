"""Host-side random draws with torch's names (randperm, multinomial, bernoulli). They read onnxkit's
seeded numpy generator (`onnxkit.tensor.rng()`), so `ok.manual_seed` makes them reproducible; the
streams differ from torch's. Results are value leaves, drawn once per call."""
import numpy as np

from .. import dtypes
from ..tensor import Tensor, rng, tensor

__all__ = ["randperm", "multinomial", "bernoulli", "normal", "randint_like", "poisson", "binomial"]


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


def _concrete_shape(t, what):
    if t._shape is None or not all(isinstance(d, int) for d in t._shape):
        raise ValueError(f"{what} draws on the host, so it needs a static shape; got {t!r}")
    return tuple(t._shape)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, out=None, dtype=None, layout=None, device=None,
           pin_memory=False, requires_grad=False):
    """Draws from N(mean, std^2) (torch.normal): mean and std are floats (then `size` is needed) or tensors
    (broadcast together). The standard-normal noise is drawn on the host; mean + std * noise is recorded,
    so gradients flow to tensor means and stds, as in torch."""
    from .core import add, mul, as_tensor
    from ..infer import broadcast_shapes
    tensors = [t for t in (mean, std) if isinstance(t, Tensor)]
    if not tensors:
        if size is None:
            raise TypeError("normal() with float mean and std needs a size")
        shape = tuple(int(s) for s in (size if isinstance(size, (tuple, list)) else (size,)))
        dt = dtypes.as_dtype("float32" if dtype is None else dtype)
        if float(std) < 0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
        return tensor((rng().standard_normal(shape) * float(std) + float(mean)).astype(dt), requires_grad=requires_grad)
    shape = broadcast_shapes(*(_concrete_shape(t, "normal") for t in tensors))
    dt = (mean if isinstance(mean, Tensor) else std).dtype
    if not dtypes.is_floating(dt):
        raise TypeError(f"normal expects floating-point mean and std, got {dt}")
    noise = tensor(rng().standard_normal(tuple(shape)).astype(dt))
    return add(as_tensor(mean, dt), mul(as_tensor(std, dt), noise))


def randint_like(input, low=0, high=None, *, dtype=None, layout=None, device=None, pin_memory=False,
                 requires_grad=False, memory_format=None):
    """Uniform integers in [low, high) with input's shape and dtype (torch.randint_like(input, high) or
    (input, low, high))."""
    if high is None:
        low, high = 0, low
    t = input if isinstance(input, Tensor) else tensor(input)
    dt = t.dtype if dtype is None else dtypes.as_dtype(dtype)
    draws = rng().integers(int(low), int(high), size=_concrete_shape(t, "randint_like"))
    return tensor(draws.astype(dt), requires_grad=requires_grad)


def poisson(input, generator=None):
    """Draws from Poisson(rate) for each rate in input, with input's dtype (torch.poisson)."""
    rates = np.asarray(_host_values(input, "poisson"))
    if (rates < 0).any():
        raise RuntimeError("poisson: rates must be non-negative")
    return tensor(rng().poisson(rates).astype(rates.dtype))


def binomial(count, prob, generator=None):
    """Draws from Binomial(count, prob) elementwise, with count's dtype (torch.binomial)."""
    n = np.asarray(_host_values(count, "binomial"))
    p = np.asarray(_host_values(prob, "binomial"))
    return tensor(rng().binomial(n.astype(np.int64), np.clip(p, 0.0, 1.0)).astype(n.dtype))
