"""The autodiff engine and the core rules (onnxkit/autodiff/rules.py).

One row per (expression, inputs): the float32 gradient graph is emitted, passes the full checker,
uses only the default domain, runs in onnxruntime and matches torch.autograd; then a float64 central
finite-difference check on ReferenceEvaluator (tests/gradcheck.py). Further down: symbolic batch
dims, Hessian-vector products against torch's double backward, and torch's autograd API semantics."""
import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as TF

import onnxkit as ok
from onnxkit import autodiff, runtime
from onnxkit.emit import build_model, topo
from onnxkit.tensor import apply, const
from gradcheck import compile_fn, gradcheck, hvp_check


# ----- input specs ----------------------------------------------------------------------------
def N(*shape):
    """Standard-normal float input."""
    return ("normal", shape)


def P(*shape):
    """Positive float input in [0.5, 2] (log, sqrt, pow bases, prod)."""
    return ("pos", shape)


def S(*shape):
    """Float input with distinct values spaced >= 0.1 apart (max/min without ties, kinks away)."""
    return ("spread", shape)


def I(*values):
    """A fixed int64 index array."""
    return np.array(values, np.int64)


def F32(values):
    """A fixed float input (still differentiated), e.g. to place ties or clip boundaries."""
    return np.array(values, np.float32)


def make(spec, rng):
    if isinstance(spec, np.ndarray):
        return spec
    kind, shape = spec
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "pos":
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.1 - 0.05 * n + 0.05).reshape(shape).astype(np.float32)


# ----- rows -----------------------------------------------------------------------------------
@dataclasses.dataclass
class G:
    name: str
    fn: Callable                   # called with onnxkit Tensors (and with torch tensors unless `tfn`)
    inputs: Sequence               # specs: N/P/S(shape), I(...) indices, F32(...) fixed floats, bool arrays
    op: str                        # the ONNX op whose rule this row exercises (must appear in the graph)
    tfn: Optional[Callable] = None  # torch version when the expression differs
    fd: bool = True                # float64 finite differences (off at kinks and ties)
    atol: float = 1e-5


def op(op_type, **attrs):
    """A row function that emits exactly one `op_type` node over its inputs."""
    return lambda *xs: apply(op_type, list(xs), attrs)


def red(op_type, axes, keepdims):
    return lambda x: apply(op_type, [x, const(axes, np.int64)] if axes is not None else [x], {"keepdims": keepdims})


def _dims(axes, x):
    return tuple(range(x.dim())) if axes is None else tuple(axes)


def _prod(x, axes, keep):
    for a in sorted((a % x.dim() for a in _dims(axes, x)), reverse=True):
        x = x.prod(a, keepdim=True)
    return x if keep else x.reshape([d for i, d in enumerate(x.shape) if i not in {a % x.dim() for a in _dims(axes, x)}])


TORCH_REDUCE = {
    "ReduceSum": lambda x, a, k: x.sum(_dims(a, x), keepdim=k),
    "ReduceMean": lambda x, a, k: x.mean(_dims(a, x), keepdim=k),
    "ReduceMax": lambda x, a, k: x.amax(_dims(a, x), keepdim=k),
    "ReduceMin": lambda x, a, k: x.amin(_dims(a, x), keepdim=k),
    "ReduceProd": _prod,
    "ReduceL1": lambda x, a, k: x.abs().sum(_dims(a, x), keepdim=k),
    "ReduceL2": lambda x, a, k: torch.linalg.vector_norm(x, 2, _dims(a, x), keepdim=k),
    "ReduceSumSquare": lambda x, a, k: (x * x).sum(_dims(a, x), keepdim=k),
    "ReduceLogSumExp": lambda x, a, k: torch.logsumexp(x, _dims(a, x), keepdim=k),
    "ReduceLogSum": lambda x, a, k: x.sum(_dims(a, x), keepdim=k).log(),
}


def reduce_rows():
    rows = []
    for op_type, tfn in TORCH_REDUCE.items():
        spec = P(2, 3, 2) if op_type in ("ReduceProd", "ReduceLogSum") else S(2, 3, 2)
        for axes, keep in ((None, 0), ([1], 1), ([0, 2], 0), ([-1, 0], 1)):
            rows.append(G(f"{op_type}-axes{axes}-keep{keep}", red(op_type, axes, keep), [spec], op_type,
                          tfn=lambda x, t=tfn, a=axes, k=keep: t(x, a, bool(k))))
    return rows


def elementwise(op_type, tfn, spec=S(2, 3), fd=True, tag="", **attrs):
    """A row for a one-input op given as (ONNX op, torch function, attributes)."""
    name = "-".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in attrs.items())
    return G(f"{op_type}{tag}{'-' if attrs else ''}{name}",
             op(op_type, **attrs), [spec], op_type, tfn=tfn, fd=fd)


def _cumsum_torch(x, dim, exclusive, reverse):
    y = x.flip(dim) if reverse else x
    c = y.cumsum(dim) - (y if exclusive else 0)
    return c.flip(dim) if reverse else c


def _scatter_nd_torch(data, idx, upd, reduction):
    """ScatterND with last-dim-1 indices on axis 0 (torch index_put)."""
    return data.index_put((idx[..., 0],), upd, accumulate=reduction == "add")


KINKS = F32([-4.0, -3.0, -1.0, 0.0, 0.5, 3.0, 4.0])

ROWS = [
    # arithmetic with broadcasting (size-1 dims on either side)
    G("Add-broadcast", lambda x, y: x + y, [N(2, 3), N(3)], "Add"),
    G("Add-size1", lambda x, y: x + y, [N(2, 1, 3), N(4, 1)], "Add"),
    G("Sub-size1", lambda x, y: x - y, [N(1, 3), N(2, 1)], "Sub"),
    G("Mul-broadcast", lambda x, y: x * y, [N(2, 3, 1), N(1, 4)], "Mul"),
    G("Div-broadcast", lambda x, y: x / y, [N(2, 3), P(2, 1)], "Div"),
    G("Pow-scalar", lambda x: x.pow(3), [N(2, 3)], "Pow"),
    G("Pow-square", lambda x: x.pow(2), [N(2, 3)], "Pow"),
    G("Pow-tensor-exponent", lambda x, y: x.pow(y), [P(2, 3), N(3)], "Pow"),
    G("Pow-scalar-base", lambda y: 2.0 ** y, [N(2, 3)], "Pow"),
    G("Neg", lambda x: -x, [N(2, 3)], "Neg"),
    G("Identity", lambda x: x.clone() * 2.0, [N(2, 3)], "Identity"),
    G("Cast-roundtrip", lambda x: x.double().sin(), [N(2, 3)], "Cast"),
    G("CastLike", lambda x, y: apply("CastLike", [x.double() * 3.0, y]).sin() * y, [N(2, 3), N(1)], "CastLike",
      tfn=lambda x, y: (x.double() * 3.0).float().sin() * y),
    G("Sum-variadic", op("Sum"), [N(2, 3), N(3), N(1, 3)], "Sum", tfn=lambda a, b, c: a + b + c),
    G("Mean-variadic", op("Mean"), [N(2, 3), N(3)], "Mean", tfn=lambda a, b: (a + b) / 2),
    # unary math and activations
    elementwise("Exp", torch.exp), elementwise("Log", torch.log, P(2, 3)), elementwise("Sqrt", torch.sqrt, P(2, 3)),
    elementwise("Reciprocal", torch.reciprocal, P(2, 3)), elementwise("Abs", torch.abs),
    elementwise("Sin", torch.sin), elementwise("Cos", torch.cos), elementwise("Tan", torch.tan),
    elementwise("Atan", torch.atan), elementwise("Erf", torch.erf), elementwise("Relu", torch.relu),
    elementwise("Tanh", torch.tanh), elementwise("Sigmoid", torch.sigmoid),
    elementwise("Asin", torch.asin, F32([[-0.7, -0.2, 0.1], [0.3, 0.5, 0.8]])),
    elementwise("Acos", torch.acos, F32([[-0.7, -0.2, 0.1], [0.3, 0.5, 0.8]])),
    elementwise("Atanh", torch.atanh, F32([[-0.7, -0.2, 0.1], [0.3, 0.5, 0.8]])),
    elementwise("Acosh", torch.acosh, F32([[1.2, 1.5, 2.0], [3.0, 4.5, 6.0]])),
    elementwise("Sinh", torch.sinh), elementwise("Cosh", torch.cosh), elementwise("Asinh", torch.asinh),
    elementwise("Mish", TF.mish), elementwise("Gelu", TF.gelu),
    elementwise("Gelu", lambda x: TF.gelu(x, approximate="tanh"), tag="-tanh", approximate="tanh"),
    elementwise("ThresholdedRelu", lambda x: torch.where(x > 0.5, x, torch.zeros_like(x)),
                F32([[-1.0, 0.2, 0.7], [1.3, -0.4, 2.0]]), alpha=0.5),
    elementwise("Shrink", lambda x: TF.hardshrink(x, 0.5), F32([[-1.0, 0.2, 0.7], [1.3, -0.4, 2.0]]), lambd=0.5),
    elementwise("LeakyRelu", lambda x: TF.leaky_relu(x, 0.1), alpha=0.1),
    elementwise("Elu", lambda x: TF.elu(x, 0.7), alpha=0.7), elementwise("Selu", TF.selu),
    elementwise("Celu", lambda x: TF.celu(x, 1.5), fd=False, alpha=1.5), elementwise("Softplus", TF.softplus),
    elementwise("Softsign", TF.softsign),
    elementwise("HardSigmoid", lambda x: TF.hardsigmoid(x), spec=F32([[-4.0, -2.5, -1.0], [0.3, 2.0, 3.5]]),
                alpha=1 / 6, beta=0.5),
    elementwise("HardSwish", TF.hardswish, spec=F32([[-4.0, -2.5, -1.0], [0.3, 2.0, 3.5]])),
    # at the kinks (0, +-3) the subgradient is torch's
    *[elementwise(o, t, spec=KINKS, fd=False, tag="-kinks", **a) for o, t, a in (
        ("Relu", torch.relu, {}), ("Abs", torch.abs, {}), ("LeakyRelu", lambda x: TF.leaky_relu(x, 0.1), {"alpha": 0.1}),
        ("Elu", TF.elu, {}), ("Selu", TF.selu, {}), ("Celu", TF.celu, {}), ("HardSwish", TF.hardswish, {}),
        ("HardSigmoid", TF.hardsigmoid, {"alpha": 1 / 6, "beta": 0.5}))],
    G("PRelu-at-0", op("PRelu"), [KINKS, F32([0.25])], "PRelu", tfn=TF.prelu, fd=False),
    G("PRelu", op("PRelu"), [S(2, 3, 2), P(3, 1)], "PRelu", tfn=lambda x, w: TF.prelu(x, w.reshape(-1))),
    # max/min: ties share the gradient (torch.maximum: half each); clip passes it at the bounds
    G("Max-broadcast", lambda x, y: ok.maximum(x, y), [S(2, 3), S(3)], "Max", tfn=torch.maximum),
    G("Min-broadcast", lambda x, y: ok.minimum(x, y), [S(2, 3), S(3)], "Min", tfn=torch.minimum),
    G("Max-ties", lambda x, y: ok.maximum(x, y), [F32([1.0, 2.0, 3.0]), F32([1.0, 0.0, 3.0])], "Max",
      tfn=torch.maximum, fd=False),
    G("Min-ties", lambda x, y: ok.minimum(x, y), [F32([1.0, 2.0, 3.0]), F32([1.0, 0.0, 3.0])], "Min",
      tfn=torch.minimum, fd=False),
    G("Clip-min-max", lambda x: x.clamp(-0.5, 0.5), [S(2, 3)], "Clip"),
    G("Clip-min-only", lambda x: x.clamp(min=0.0), [S(2, 3)], "Clip"),
    G("Clip-at-bounds", lambda x: x.clamp(0.0, 1.0), [F32([-1.0, 0.0, 0.5, 1.0, 2.0])], "Clip", fd=False),
    G("Where-broadcast", lambda c, x, y: ok.where(c, x, y), [np.array([[True], [False]]), N(2, 3), N(3)], "Where",
      tfn=torch.where),
    G("AMax-ties", lambda x: x.amax(1), [F32([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])], "ReduceMax", fd=False),
    G("AMin-ties-keepdim", lambda x: x.amin(0, keepdim=True), [F32([[1.0, 3.0], [1.0, 0.0]])], "ReduceMin", fd=False),
    *reduce_rows(),
    G("Sum-method", lambda x: x.sum((0, 2), keepdim=True), [N(2, 3, 2)], "ReduceSum"),
    G("Mean-method", lambda x: x.mean(-1), [N(2, 3, 2)], "ReduceMean"),
    *[G(f"Softmax-dim{d}", lambda x, d=d: x.softmax(d), [N(2, 3, 2)], "Softmax") for d in (0, 1, -1)],
    *[G(f"LogSoftmax-dim{d}", lambda x, d=d: x.log_softmax(d), [N(2, 3, 2)], "LogSoftmax") for d in (0, 1, -1)],
    # matrix products
    G("MatMul-1d-1d", lambda a, b: a @ b, [N(3), N(3)], "MatMul"),
    G("MatMul-1d-2d", lambda a, b: a @ b, [N(3), N(3, 2)], "MatMul"),
    G("MatMul-2d-1d", lambda a, b: a @ b, [N(2, 3), N(3)], "MatMul"),
    G("MatMul-2d-2d", lambda a, b: a @ b, [N(2, 3), N(3, 4)], "MatMul"),
    G("MatMul-batched", lambda a, b: a @ b, [N(2, 2, 3), N(2, 3, 2)], "MatMul"),
    G("MatMul-batch-broadcast", lambda a, b: a @ b, [N(2, 1, 2, 3), N(3, 3, 2)], "MatMul"),
    G("MatMul-3d-2d", lambda a, b: a @ b, [N(2, 2, 3), N(3, 2)], "MatMul"),
    G("MatMul-3d-1d", lambda a, b: a @ b, [N(2, 2, 3), N(3)], "MatMul"),
    G("MatMul-1d-3d", lambda a, b: a @ b, [N(3), N(2, 3, 2)], "MatMul"),
    G("Gemm-plain", op("Gemm"), [N(2, 3), N(3, 4), N(4)], "Gemm", tfn=lambda a, b, c: a @ b + c),
    G("Gemm-transA-alpha", op("Gemm", transA=1, alpha=0.5, beta=2.0), [N(3, 2), N(3, 4), N(1, 4)], "Gemm",
      tfn=lambda a, b, c: 0.5 * a.T @ b + 2.0 * c),
    G("Gemm-transB-beta", op("Gemm", transB=1, beta=-1.5), [N(2, 3), N(4, 3), N(2, 1)], "Gemm",
      tfn=lambda a, b, c: a @ b.T - 1.5 * c),
    G("Gemm-both-noC", op("Gemm", transA=1, transB=1, alpha=2.0), [N(3, 2), N(4, 3)], "Gemm",
      tfn=lambda a, b: 2.0 * a.T @ b.T),
    # shape ops
    G("Reshape", lambda x: x.reshape(3, -1) * x.reshape(3, 4)[:, :1], [N(2, 6)], "Reshape"),
    G("Flatten", lambda x: x.flatten(1), [N(2, 3, 2)], "Flatten"),
    G("Squeeze", lambda x: x.squeeze(1), [N(2, 1, 3)], "Squeeze"),
    G("Unsqueeze", lambda x: x.unsqueeze(0).unsqueeze(-1), [N(2, 3)], "Unsqueeze"),
    G("Expand", lambda x: x.expand(4, 2, 3), [N(2, 1)], "Expand"),
    G("Tile", lambda x: x.repeat(2, 1, 3), [N(2, 2)], "Tile"),
    G("Transpose", lambda x: x.permute(2, 0, 1), [N(2, 3, 2)], "Transpose"),
    G("Concat", lambda x, y: torch_or_ok(x).cat([x, y, x], 1), [N(2, 1), N(2, 3)], "Concat"),
    G("Split", lambda x: x.split([1, 2], 1)[1] * 2 + x.split([1, 2], 1)[0], [N(2, 3)], "Split"),
    G("Split-one-used", lambda x: x.split([2, 1], -1)[0], [N(2, 3)], "Split"),
    G("Slice-neg-start", lambda x: x[..., -3:-1], [N(2, 4)], "Slice"),
    G("Slice-step2", lambda x: x[1:, ::2], [N(3, 5)], "Slice"),
    G("Slice-neg-step", lambda x: x[::-2, -3:], [N(5, 4)], "Slice", tfn=lambda x: x.flip(0)[::2, -3:]),
    G("Slice-flip", lambda x: x.flip(1), [N(2, 3)], "Slice"),
    G("Gather-neg-idx", lambda x, i: x[i], [N(4, 2), I(0, -1, 2, -1)], "Gather"),
    G("Gather-numpy-idx", lambda x: x[np.array([1, -1, 1])], [N(3, 2)], "Gather"),
    G("Gather-axis1", lambda x, i: x[:, i], [N(2, 3, 2), I(-1, 0, 0)], "Gather"),
    G("Gather-2d-idx", lambda x, i: x[i], [N(3, 2), np.array([[0, 2], [2, -3]], np.int64)], "Gather"),
    G("Gather-axis-last", lambda x, i: x.index_select(2, i), [N(2, 2, 3), I(2, 0, 2)], "Gather"),
    G("GatherElements", lambda x, i: x.gather(1, i), [N(2, 3), np.array([[0, 0, 2, 1], [1, 1, 1, 0]], np.int64)],
      "GatherElements"),
    G("GatherND", lambda x, i, j: x[i, j], [N(3, 2, 2), I(0, 2, 2), I(1, 0, 0)], "GatherND"),
    G("ScatterElements", lambda x, i, u: x.scatter(1, i, u), [N(2, 4), np.array([[3, 0], [1, 2]], np.int64), N(2, 2)],
      "ScatterElements"),
    G("ScatterElements-add", lambda x, i, u: x.scatter_add(0, i, u), [N(3, 2), np.array([[0, 2], [0, 0]], np.int64),
                                                                       N(2, 2)], "ScatterElements"),
    *[G(f"ScatterND-{r}", lambda x, i, u, r=r: apply("ScatterND", [x, i, u], {"reduction": r}),
        [N(4, 2), np.array([[3], [0]], np.int64), N(2, 2)], "ScatterND",
        tfn=lambda x, i, u, r=r: _scatter_nd_torch(x, i, u, r)) for r in ("none", "add")],
    *[G(f"CumSum-excl{e}-rev{r}", lambda x, e=e, r=r: apply("CumSum", [x, const(1, np.int64)],
                                                             {"exclusive": e, "reverse": r}),
        [N(2, 4)], "CumSum", tfn=lambda x, e=e, r=r: _cumsum_torch(x, 1, e, r)) for e in (0, 1) for r in (0, 1)],
    G("CumSum-method", lambda x: x.cumsum(0), [N(3, 2)], "CumSum"),
]


def torch_or_ok(x):
    return torch if isinstance(x, torch.Tensor) else ok


# ----- row checks -----------------------------------------------------------------------------
def _arrays(row):
    rng = np.random.default_rng(0)
    return [make(s, rng) for s in row.inputs]


def _projection_weights(outs, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(int(d) for d in o.shape)).astype(np.float32) for o in outs]


def _as_list(y):
    return list(y) if isinstance(y, (tuple, list)) else [y]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_rule_vs_torch(row):
    """float32: forward and gradients equal torch's; the gradient graph is standard and checked."""
    arrays = _arrays(row)
    floats = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    tx = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    ty = _as_list((row.tfn or row.fn)(*tx))
    ws = _projection_weights(ty)
    tgrads = torch.autograd.grad(sum((y * torch.tensor(w)).sum() for y, w in zip(ty, ws)), [tx[i] for i in floats])

    ox = [ok.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    oy = _as_list(row.fn(*ox))
    loss = None
    for y, w in zip(oy, ws):
        term = (y * ok.tensor(w)).sum()
        loss = term if loss is None else loss + term
    ograds = ok.grad(loss, [ox[i] for i in floats])
    run = compile_fn(oy + list(ograds), ox, runtime="onnxruntime")  # full checker + default domain only
    values = run(arrays)
    forward_ops = {n.op_type for n in topo(oy)[0]}
    assert row.op in forward_ops, f"{row.name}: expected a {row.op} node, the forward has {sorted(forward_ops)}"
    for o, t in zip(values[:len(oy)], ty):
        np.testing.assert_allclose(o, t.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=f"{row.name} forward")
    for k, (o, t) in enumerate(zip(values[len(oy):], tgrads)):
        np.testing.assert_allclose(o, t.numpy(), rtol=1e-4, atol=1e-4, err_msg=f"{row.name} grad of input {floats[k]}")


FD_ROWS = [r for r in ROWS if r.fd]


@pytest.mark.parametrize("row", FD_ROWS, ids=[r.name for r in FD_ROWS])
def test_rule_finite_differences(row):
    """float64 central differences on onnx.reference.ReferenceEvaluator."""
    assert gradcheck(row.fn, _arrays(row), atol=row.atol)


def test_every_core_rule_has_a_row():
    """Each rule registered by rules.py is exercised by at least one row above."""
    core = {op_type for (domain, op_type), fn in autodiff.RULES.items() if fn.__module__ == "onnxkit.autodiff.rules"}
    covered = {r.op for r in ROWS}
    assert not core - covered, f"rules without a test row: {sorted(core - covered)}"


# ----- symbolic batch dims --------------------------------------------------------------------
SYMBOLIC = [
    # (name, expression over (x, w), w's shape); x is Input("x", ("N", 3)), w a value leaf
    ("add-bias", lambda x, w: x + w, (3,)),
    ("mul-row", lambda x, w: x * w, (1, 3)),
    ("matmul", lambda x, w: (x @ w).tanh(), (3, 2)),
    ("mean-over-batch", lambda x, w: (x - x.mean(0)) * w, (3,)),
    ("sum-batch-keepdim", lambda x, w: x.sum(0, keepdim=True) * w + x, (3,)),
    ("softmax", lambda x, w: (x * w).softmax(-1), (3,)),
    ("view-symbolic", lambda x, w: (x * w).view(x.shape[0], -1, 1).sum(-1), (3,)),
    ("slice-batch", lambda x, w: x[1:] * w, (3,)),
    ("slice-last-rows", lambda x, w: x[-2:] * w, (3,)),
    ("index-last-row", lambda x, w: x[-1] * w, (3,)),
    ("slice-neg-step-batch", lambda x, w: _every_other_reversed(x) * w, (3,)),
    ("concat-batch", lambda x, w: torch_or_ok(x).cat([x, x * w], 0), (3,)),
    ("gather-rows", lambda x, w: x[np.array([1, 0, -1])] * w, (3,)),
    ("amax-over-batch", lambda x, w: x.amax(0) * w, (3,)),
    ("expand-to-batch", lambda x, w: x + w.expand(x.shape[0], 3), (1, 3)),
]


def _every_other_reversed(x):
    """x[::-2] (torch has no negative steps: flip, then step 2)."""
    return x.flip(0)[::2] if isinstance(x, torch.Tensor) else x[::-2]


@pytest.mark.parametrize("name,fn,wshape", SYMBOLIC, ids=[s[0] for s in SYMBOLIC])
def test_symbolic_batch(name, fn, wshape):
    """Gradients w.r.t. an Input with a symbolic batch and a weight broadcast over it (un-broadcasting
    over 'N') export and run in onnxruntime at two batch sizes, equal to torch."""
    w_np = np.random.default_rng(3).standard_normal(wshape).astype(np.float32)
    x = ok.Input("x", ("N", 3)).requires_grad_()
    w = ok.tensor(w_np, requires_grad=True)
    y = fn(x, w)
    gx, gw = ok.grad((y * y).sum(), [x, w])
    assert gw._shape == wshape and gx._shape == ("N", 3)
    model, _ = build_model([y, gx, gw])
    onnx.checker.check_model(model, full_check=True)
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}
    sess = ok.Session(model, device="cpu")
    for batch in (2, 5):
        x_np = np.random.default_rng(batch).standard_normal((batch, 3)).astype(np.float32)
        out = list(sess.run({"x": x_np}).values())
        tx, tw = torch.tensor(x_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
        ty = fn(tx, tw)
        tgx, tgw = torch.autograd.grad((ty * ty).sum(), [tx, tw])
        for got, want in zip(out, (ty.detach(), tgx, tgw)):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4, err_msg=f"{name} batch {batch}")


# ----- second order ---------------------------------------------------------------------------
_W = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
_C = np.random.default_rng(5).standard_normal((2, 3)).astype(np.float32)
HVP = [
    ("tanh-times-x", lambda x: x.tanh() * x),
    ("cube", lambda x: x.pow(3)),
    ("exp-over-quadratic", lambda x: x.exp() / (x * x + 1.0)),
    ("weighted-softmax", lambda x: x.softmax(-1) * _lift(x, _C)),
    ("log-softmax-sq", lambda x: x.log_softmax(0) ** 2),
    ("mlp-sigmoid", lambda x: (x @ _lift(x, _W)).sigmoid()),
    ("sqrt-sum-sq", lambda x: (x * x).sum(1).sqrt()),
]


def _lift(x, arr):
    return torch.tensor(arr) if isinstance(x, torch.Tensor) else ok.tensor(arr)


@pytest.mark.parametrize("name,fn", HVP, ids=[h[0] for h in HVP])
def test_hessian_vector_product(name, fn):
    rng = np.random.default_rng(6)
    x = rng.uniform(-1.0, 1.0, (2, 3)).astype(np.float32)
    v = rng.standard_normal((2, 3)).astype(np.float32)
    hvp_check(fn, x, v, fn)


def test_grad_of_grad_graph_is_standard():
    x = ok.tensor(np.array([0.3, -0.2], np.float32), requires_grad=True)
    g, = ok.grad((x.tanh() * x).sum(), [x], create_graph=True)
    h, = ok.grad(g.sum(), [x])
    model, _ = build_model([h])
    onnx.checker.check_model(model, full_check=True)
    assert {n.domain for n in model.graph.node} <= {""}
    np.testing.assert_allclose(h.numpy(), _torch_second(np.array([0.3, -0.2], np.float32)), rtol=1e-5)


def _torch_second(x):
    t = torch.tensor(x, requires_grad=True)
    g, = torch.autograd.grad((t.tanh() * t).sum(), [t], create_graph=True)
    return torch.autograd.grad(g.sum(), [t])[0].numpy()


# ----- API semantics (torch's autograd) -------------------------------------------------------
def test_grad_accumulates_across_backward_calls():
    x = ok.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 7.0])


def test_grad_reset_with_none_and_zero_():
    x = ok.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    (x * x).sum().backward()
    x.grad = None
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])
    x.grad.zero_()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_requires_grad_propagation_and_no_grad():
    x = ok.tensor(np.ones(2, np.float32), requires_grad=True)
    c = ok.tensor(np.ones(2, np.float32))
    assert (x * c).requires_grad and not (c * 2.0).requires_grad
    assert not (x > 0).requires_grad  # bool outputs carry no gradient
    with ok.no_grad():
        y = x * 2.0
    assert not y.requires_grad
    assert ok.is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_inplace_update_under_no_grad_replaces_leaf_value():
    w = ok.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    (w * w).sum().backward()
    with ok.no_grad():
        w -= 0.25 * w.grad
    assert w.requires_grad and w.node is None
    np.testing.assert_allclose(w.numpy(), [0.5, 1.0])
    w.grad = None
    (w * w).sum().backward()  # the next graph reads the new value
    np.testing.assert_allclose(w.grad.numpy(), [1.0, 2.0])


def test_augmented_assignment_keeps_the_gradient():
    """`h += x` on a computed tensor is a new node (it used to evaluate h and cut it from the graph)."""
    x = ok.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    h = x * 3.0
    h += x * x
    h *= 2.0
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (3 + 2 * np.array([1.0, 2.0])))


@pytest.mark.parametrize("update", [lambda t: t.__iadd__(1.0), lambda t: t.mul_(2.0), lambda t: t.copy_(t * 2)],
                         ids=["iadd", "mul_", "copy_"])
def test_inplace_on_a_leaf_that_requires_grad_raises_as_in_torch(update):
    w = ok.tensor(np.ones(2, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        update(w)


def test_inplace_method_on_a_computed_tensor_is_recorded_as_in_torch():
    import torch
    w = ok.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    wt = torch.tensor([1.0, 2.0], requires_grad=True)
    for lib, x in ((ok, w), (torch, wt)):
        h = x * 3
        h.add_(x * x).mul_(2.0).clamp_(max=10.0)
        h.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy())


def test_grad_output_count_and_shape_are_checked():
    x = ok.tensor(np.ones(3, np.float32), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="2 entries for 1 outputs"):
        ok.grad([y], [x], grad_outputs=[np.ones(3, np.float32), np.ones(3, np.float32)])
    with pytest.raises(RuntimeError, match=r"gradient has shape \(1,\) and the output has shape \(3,\)"):
        y.backward(np.ones(1, np.float32))


SINGULAR = [  # torch's gradient at points where the textbook formula gives 0/0 or 0*inf
    ("pow-zero-exponent", lambda x: x ** 0.0, [0.0, 2.0]),
    ("pow-exponent-at-zero-base", lambda x: (x * 0.0) ** (x + 1.0), [0.5, 1.0]),
    ("pow-tensor-zero-exponent", lambda x: x ** (x * 0.0), [0.0, 2.0]),
    ("l2-norm-of-zeros", lambda x: (x * _lift(x, np.array([[0.0], [1.0]], np.float32))).norm(dim=1), [1.0, 2.0]),
]


@pytest.mark.parametrize("name,fn,values", SINGULAR, ids=[s[0] for s in SINGULAR])
def test_gradients_at_singular_points_match_torch(name, fn, values):
    v = np.array(values, np.float32)
    x = ok.tensor(v, requires_grad=True)
    g, = ok.grad(fn(x).sum(), [x])
    tx = torch.tensor(v, requires_grad=True)
    tg, = torch.autograd.grad(fn(tx).sum(), [tx])
    np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-5, atol=1e-6)


def test_grad_allow_unused_and_errors():
    x = ok.tensor(np.ones(2, np.float32), requires_grad=True)
    u = ok.tensor(np.ones(2, np.float32), requires_grad=True)
    y = (x * 2.0).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        ok.grad(y, [x, u])
    gx, gu = ok.grad(y, [x, u], allow_unused=True)
    assert gu is None
    np.testing.assert_allclose(gx.numpy(), [2.0, 2.0])
    plain = ok.tensor(np.ones(2, np.float32))
    with pytest.raises(RuntimeError, match="does not require grad"):
        ok.grad((x * plain).sum(), [plain])
    with pytest.raises(RuntimeError, match="scalar"):
        ok.grad(x * 2.0, [x])


def test_grad_wrt_intermediate_and_one_element_output():
    x = ok.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    h = x * 3.0
    gh, gx = ok.grad((h * h).sum(), [h, x])
    np.testing.assert_allclose(gh.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(gx.numpy(), [18.0, 36.0])
    g, = ok.grad((x * x).sum(0, keepdim=True), [x])  # shape (1,): an implicit gradient, as in torch
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0])


def test_grad_outputs_and_gradient_argument():
    x = ok.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    g, = ok.grad(x * x, [x], grad_outputs=ok.tensor(np.array([1.0, -1.0], np.float32)))
    np.testing.assert_allclose(g.numpy(), [2.0, -4.0])
    (x * 3.0).backward(np.array([2.0, 1.0], np.float32))
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 3.0])


def test_non_differentiable_ops_give_no_gradient():
    x = ok.tensor(np.array([[1.0, 3.0], [2.0, 0.0]], np.float32), requires_grad=True)
    idx = x.argmax(1)
    mask = ok.eq(x, 2.0)
    n = ok.dim_size(x, 0)  # Shape + Gather
    assert not idx.requires_grad and not mask.requires_grad and not n.requires_grad
    ops_in_graph = {nd.op_type for nd in topo([idx, mask, n])[0]}
    assert {"ArgMax", "Equal", "Shape"} <= ops_in_graph
    y = (ok.where(mask, x, x * 3.0) * ok.cast(n, np.float32)).sum() + ok.cast(idx, np.float32).sum()
    g, = ok.grad(y, [x])
    np.testing.assert_allclose(g.numpy(), [[6.0, 6.0], [2.0, 6.0]])


def _custom_op(x):
    """A fake custom-domain op without a gradient rule."""
    return apply("Triple", [x], domain="my.domain", types=[(x.dtype, x._shape)])


def test_missing_rule_error_names_op_and_node():
    x = ok.tensor(np.ones(2, np.float32), requires_grad=True)
    from onnxkit.tensor import name_scope
    with name_scope("block.1"):
        y = _custom_op(x)
    with pytest.raises(NotImplementedError, match=r"Triple.*my\.domain.*block\.1/Triple"):
        ok.grad(y.sum(), [x])


def test_register_rule_for_custom_domain_op():
    autodiff.register("Triple3", domain="my.domain")(lambda node, g: [g[0] * 3.0])
    try:
        x = ok.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
        y = apply("Triple3", [x], domain="my.domain", types=[(x.dtype, x._shape)])
        g, = ok.grad(y.sum(), [x])
        model, _ = build_model([g])
        onnx.checker.check_model(model, full_check=True)  # the gradient graph does not contain Triple3
        assert all(n.domain == "" for n in model.graph.node)
        np.testing.assert_allclose(g.numpy(), [3.0, 3.0])
    finally:
        del autodiff.RULES[("my.domain", "Triple3")]


def test_register_non_differentiable_custom_op():
    autodiff.register_non_differentiable("Label", domain="my.domain")
    x = ok.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    lbl = apply("Label", [x], domain="my.domain", types=[(np.dtype(np.float32), (2,))])
    g, = ok.grad((x * 2.0 + lbl).sum(), [x])
    np.testing.assert_allclose(g.numpy(), [2.0, 2.0])


class ScaledSquare(autodiff.Function):
    """y = x*x*s with a deliberately distinctive backward (the true derivative)."""

    @staticmethod
    def forward(ctx, x, s):
        ctx.save_for_backward(x)
        ctx.s = s
        return x * x * s

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g * x * (2.0 * ctx.s), None


class SumDiff(autodiff.Function):
    """Two outputs (a + b, a - b), backward written by hand."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b, a - b

    @staticmethod
    def backward(ctx, gs, gd):
        return gs + gd, gs - gd


class StraightThrough(autodiff.Function):
    """Sign in the forward, identity in the backward: the custom backward must win."""

    @staticmethod
    def forward(ctx, x):
        return ok.sign(x)

    @staticmethod
    def backward(ctx, g):
        return g


def test_function_single_output_used_twice():
    x = ok.tensor(np.array([1.0, -2.0], np.float32), requires_grad=True)
    y = ScaledSquare.apply(x, 0.5)
    z = ScaledSquare.apply(y, 2.0)  # used twice in one graph, chained
    loss = (z + y).sum()
    g, = ok.grad(loss, [x])
    tx = torch.tensor([1.0, -2.0], requires_grad=True)
    ty = tx * tx * 0.5
    tz = ty * ty * 2.0
    tg, = torch.autograd.grad((tz + ty).sum(), [tx])
    np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-5)
    np.testing.assert_allclose(loss.numpy(), (tz + ty).sum().item(), rtol=1e-5)


class ArgmaxAndMax(autodiff.Function):
    """An integer output next to a float one; backward never saves anything."""

    @staticmethod
    def forward(ctx, x):
        return x.argmax(), x.amax()

    @staticmethod
    def backward(ctx, g_idx, g_max):
        assert ctx.saved_tensors == ()
        return g_max * 0.0


def test_function_integer_outputs_do_not_require_grad():
    x = ok.tensor(np.array([1.0, 3.0], np.float32), requires_grad=True)
    idx, m = ArgmaxAndMax.apply(x)
    assert not idx.requires_grad and m.requires_grad
    g, = ok.grad(m, [x])
    np.testing.assert_allclose(g.numpy(), [0.0, 0.0])


def test_function_multiple_outputs_and_custom_backward_wins():
    a = ok.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    b = ok.tensor(np.array([3.0, 5.0], np.float32), requires_grad=True)
    s, d = SumDiff.apply(a, b)
    ga, gb = ok.grad((s * 2.0 + d * d).sum(), [a, b])
    np.testing.assert_allclose(ga.numpy(), 2.0 + 2 * np.array([-2.0, -3.0]))
    np.testing.assert_allclose(gb.numpy(), 2.0 - 2 * np.array([-2.0, -3.0]))
    s2, _ = SumDiff.apply(a, b)  # only the first output used: the other gets a zero gradient
    ga2, = ok.grad(s2.sum(), [a])
    np.testing.assert_allclose(ga2.numpy(), [1.0, 1.0])
    x = ok.tensor(np.array([0.5, -0.5], np.float32), requires_grad=True)
    gx, = ok.grad((StraightThrough.apply(x) * 3.0).sum(), [x])
    np.testing.assert_allclose(gx.numpy(), [3.0, 3.0])
    model, _ = build_model([gx])
    onnx.checker.check_model(model, full_check=True)


def test_fed_indices_may_turn_negative_under_a_cached_graph():
    """Index values are fed, not part of the structure key: the gradient graph must not assume
    the build-time indices were non-negative."""
    w = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    for vals in ([0, 1], [-1, 0], [2, -3]):
        x = ok.tensor(np.zeros((3, 2), np.float32), requires_grad=True)
        g, = ok.grad((x[ok.tensor(np.array(vals))] * ok.tensor(w)).sum(), [x])
        want = np.zeros((3, 2), np.float32)
        np.add.at(want, np.array(vals), w)
        np.testing.assert_allclose(g.numpy(), want, err_msg=f"indices {vals}")


def test_backward_walk_reuses_cached_sessions():
    """Rebuilding the same expression hits the structure cache."""
    x = ok.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    for step in range(3):
        x.grad = None
        ((x * 2.0).exp().sum()).backward()
        x.grad.numpy()
        if step == 0:
            misses = runtime.stats["miss"]
    assert runtime.stats["miss"] == misses


def test_no_grad_as_decorator_and_set_grad_enabled():
    x = ok.tensor(np.ones(2, np.float32), requires_grad=True)

    @ok.no_grad()
    def double(t):
        return t * 2
    assert not double(x).requires_grad and (x * 2).requires_grad
    with ok.set_grad_enabled(False):
        assert not (x * 2).requires_grad
        with ok.enable_grad():
            assert (x * 2).requires_grad
    assert ok.is_grad_enabled()


@pytest.mark.parametrize("data", [[[1.0, 2.0, 3.0], [0.0, 2.0, 3.0]], [[0.0, 0.0, 3.0], [4.0, 5.0, 6.0]],
                                  [[2.0, -1.0, 0.5], [1e-3, 3.0, 0.0]]])
@pytest.mark.parametrize("dim", [None, 0, 1])
def test_prod_gradient_with_zeros_matches_torch(data, dim):
    """Regression: the ReduceProd gradient was out / x, NaN wherever x == 0."""
    a = np.array(data, np.float32)
    x, xt = ok.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, yt = (x.prod(), xt.prod()) if dim is None else (x.prod(dim), xt.prod(dim))
    g, = ok.grad(y.sum(), [x])
    gt, = torch.autograd.grad(yt.sum(), [xt])
    np.testing.assert_allclose(g.numpy(), gt.numpy(), rtol=1e-5, atol=1e-6)
