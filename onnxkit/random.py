"""Random draws for masks (dropout, rrelu). `rand_like` is the one entry point: in define-by-run code it
draws from a host stream seeded by ok.manual_seed; while a training graph is traced (`graph_rng`) the
draw becomes a pure function of the graph's seed and step inputs.

A training graph's draws depend only on (seed, step, draw index), so masks differ between steps,
reproduce from the seed after a checkpoint resume, and are equal on onnxruntime and the reference
evaluator (whose RandomUniform streams restart per session or repeat). Measured for a 64x512 mask
(2 threads): a uniform drawn on the host and fed in costs ~70 us, an in-graph counter-based hash
~160 us (uint32 ops; ~800 us with int64, whose Div is slow). So a draw whose shape is known from the
data inputs' dims is a graph input `random/<k>` filled by `host_uniform`; any other draw is hashed
in-graph from the `seed` and `step` inputs (`counter_uniform`)."""
import contextlib
import threading

import numpy as np

_gen = np.random.default_rng(0)
_graph = threading.local()


def seed(n):
    """Restart the host stream from seed n (called by ok.manual_seed)."""
    global _gen
    _gen = np.random.default_rng(n)


def generator():
    """The host stream (a numpy Generator); Trainer checkpoints save and restore its state."""
    return _gen


def rand_like(x):
    """Uniform [0, 1) shaped like x (x's float dtype, else float32), one fresh draw per call: under
    graph_rng a training-graph draw (graph_rand_like), else a draw of the host stream."""
    return graph_rand_like(x) if in_graph_rng() else _host_rand_like(x)


def _host_rand_like(x):
    """Static shapes: drawn here from the host stream and fed as a value leaf (a cached session is
    reused). Symbolic shapes: one ONNX RandomUniformLike whose seed is drawn from the same stream."""
    from . import dtypes
    from .tensor import apply, made_leaves, no_grad, tensor
    dtype = _uniform_dtype(x)
    if all(isinstance(d, int) for d in x._shape):
        made = made_leaves()
        if made is not None and made.queue is not None:  # a compiled forward being expanded: no new draw,
            return next(made.queue)                       # the draw made for this call
        draw = tensor(host_draw(x._shape, dtype))
        if made is not None:
            made.random.add(id(draw))
        return draw
    with no_grad():
        return apply("RandomUniformLike", [x], {"dtype": dtypes.to_onnx(dtype), "seed": float(_gen.integers(1, 2 ** 31))},
                     types=[(dtype, x._shape)])


def host_draw(shape, dtype):
    """The next uniform [0, 1) array of the host stream (float64 draws for float64, else float32)."""
    return _gen.random(shape, dtype=np.float64 if dtype == np.float64 else np.float32).astype(dtype, copy=False)


def _uniform_dtype(x):
    """x's dtype when floating, else float32."""
    from . import dtypes
    return x.dtype if dtypes.is_floating(x.dtype) else np.dtype(np.float32)


# ----- randomness in training graphs -------------------------------------------------------------
class _GraphRNG:
    """The tracing state: the seed and step Tensors, the dim names fed inputs may use, the draws so far."""

    def __init__(self, seed, step, dims):
        self.seed, self.step, self.draws, self.fed = seed, step, 0, []
        self.dims = None if dims is None else set(dims)


@contextlib.contextmanager
def graph_rng(seed, step, dims=()):
    """While tracing a training graph, random draws (rand_like) depend only on the int64 scalar
    Tensors `seed` and `step` and the draw index. Draws whose dims are ints or names in `dims`
    (dims=None: none, every draw is hashed in the graph) become fed inputs: the list [(name, shape, dtype, draw index)] is yielded for the caller."""
    prev = getattr(_graph, "state", None)
    _graph.state = _GraphRNG(seed, step, dims)
    try:
        yield _graph.state.fed
    finally:
        _graph.state = prev


def in_graph_rng():
    """Whether a training graph is being traced (inside graph_rng)."""
    return getattr(_graph, "state", None) is not None


def host_uniform(seed, step, draw, shape, dtype=np.float32):
    """The values fed to input `random/<draw>` at a step: a generator keyed by (seed, step, draw)."""
    g = np.random.default_rng([int(seed) & (2 ** 64 - 1), int(step) & (2 ** 64 - 1), int(draw)])
    dt = np.dtype(dtype)
    return g.random(shape, dtype=np.float64 if dt == np.float64 else np.float32).astype(dt, copy=False)


def graph_rand_like(x):
    """Uniform [0, 1) shaped like x (x's float dtype, else float32) under graph_rng: an Input fed by
    host_uniform when x's shape resolves from the data dims, else counter_uniform in the graph."""
    from .tensor import Input
    st = _graph.state
    draw, st.draws = st.draws, st.draws + 1
    dtype = _uniform_dtype(x)
    if st.dims is not None and x._shape is not None and all(isinstance(d, int) or d in st.dims for d in x._shape):
        name = f"random/{draw}"
        st.fed.append((name, x._shape, dtype, draw))
        return Input(name, x._shape, dtype)
    return counter_uniform(x, st.seed, st.step, draw, dtype)


def _mix32(h):
    """lowbias32 avalanche on uint32 (BitShift, BitwiseXor, Mul; products wrap mod 2**32)."""
    from .tensor import apply, const

    def xorshift(v, k):
        return apply("BitwiseXor", [v, apply("BitShift", [v, const(k, np.uint32)], {"direction": "RIGHT"})])

    h = apply("Mul", [xorshift(h, 16), const(0x21F0AAAD, np.uint32)])
    h = apply("Mul", [xorshift(h, 15), const(0x735A2D97, np.uint32)])
    return xorshift(h, 15)


def counter_uniform(x, seed, step, draw, dtype):
    """In-graph uniform [0, 1) shaped like x: u_i = (mix32(K * i + key) >> 8) * 2**-24 with
    key = mix32(mix32(seed + draw constant) ^ step), all in standard integer ops."""
    from . import dtypes
    from .tensor import apply, const, no_grad
    from .ops import reshape
    from .ops.shape import shape_tensor
    u32, i64 = np.dtype(np.uint32), np.dtype(np.int64)

    def low32(t):  # int64 scalar -> uint32 (keep the low 32 bits)
        return apply("Cast", [apply("BitwiseAnd", [t, const(0xFFFFFFFF, i64)])], {"to": dtypes.to_onnx(u32)},
                     types=[(u32, ())])

    with no_grad():
        key = apply("Add", [low32(seed), const((0x9E3779B9 * (draw + 1)) & 0xFFFFFFFF, u32)])
        key = _mix32(apply("BitwiseXor", [_mix32(key), low32(step)]))
        n = apply("ReduceProd", [shape_tensor(x.shape)], {"keepdims": 0}, types=[(i64, ())])
        idx = apply("Cast", [apply("Range", [const(0, i64), n, const(1, i64)], types=[(i64, ("numel",))])],
                    {"to": dtypes.to_onnx(u32)}, types=[(u32, ("numel",))])
        h = _mix32(apply("Add", [apply("Mul", [idx, const(0x2C1B3C6D, u32)]), key]))
        bits = apply("BitShift", [h, const(8, u32)], {"direction": "RIGHT"})
        u = apply("Mul", [apply("Cast", [bits], {"to": dtypes.to_onnx(dtype)}, types=[(dtype, ("numel",))]),
                          const(2.0 ** -24, dtype)])
        return reshape(u, x.shape)
