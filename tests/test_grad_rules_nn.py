"""Gradient rules of the NN ops (onnxkit/autodiff/rules_nn.py), one ONNX node per case built with
`apply`: (a) against torch.autograd in float32 on onnxruntime, (b) by central finite differences in
float64 on onnx.reference.ReferenceEvaluator (tests/gradcheck.py, which also asserts that the gradient
graph passes the full checker and uses only the default domain). Plus grad-of-grad checks."""
import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import onnxkit as ok
from onnxkit.tensor import apply, const

from gradcheck import gradcheck, compile_fn


@dataclasses.dataclass
class Case:
    name: str
    build: Callable                    # onnxkit leaves -> Tensor (one node built with apply)
    shapes: Sequence[tuple]            # float inputs (standard normal), or `make` below
    torch_fn: Optional[Callable] = None  # torch tensors -> Tensor; None: finite differences only
    make: Optional[Callable] = None    # rng -> list of numpy inputs (ints allowed)
    fd: bool = True                    # run the float64 finite-difference check
    wrt: Optional[Sequence[int]] = None  # inputs to differentiate (default: all float ones)
    distinct: bool = False             # spaced values (no near-ties for max/top-k under finite differences)
    rtol: float = 1e-4
    atol: float = 1e-5


def _inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    if case.make is not None:
        return [np.asarray(a) for a in case.make(rng)]
    if case.distinct:
        return [(rng.permutation(int(np.prod(s))) * (4.0 / np.prod(s)) - 2.0).reshape(s).astype(np.float32)
                for s in case.shapes]
    return [rng.standard_normal(s).astype(np.float32) for s in case.shapes]


def _wrt(case, arrays):
    return [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if case.wrt is None else list(case.wrt)


def check_torch(case):
    """Forward and the gradient of a random projection, onnxkit on onnxruntime vs torch.autograd."""
    arrays = _inputs(case)
    wrt = _wrt(case, arrays)
    leaves = [ok.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    out = case.build(*leaves)
    w = np.random.default_rng(1).standard_normal([int(d) for d in out.shape]).astype(np.float32)
    grads = ok.grad((out * ok.tensor(w)).sum(), [leaves[i] for i in wrt])
    got = compile_fn([out] + list(grads), leaves, runtime="ort")(arrays)  # also: full checker, default domain
    tx = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    ty = case.torch_fn(*tx)
    want = torch.autograd.grad((ty * torch.tensor(w)).sum(), [tx[i] for i in wrt])
    np.testing.assert_allclose(got[0], ty.detach().numpy(), rtol=case.rtol, atol=case.atol, err_msg="forward")
    for i, g, t in zip(wrt, got[1:], want):
        np.testing.assert_allclose(g, t.numpy(), rtol=case.rtol, atol=case.atol, err_msg=f"gradient of input {i}")


def like_const(v, like):
    """A constant in the dtype of `like` (the cases run in float32 and float64)."""
    return const(v, like.dtype)


def node(op, n_out=1, pick=0, same_shape=False, **attrs):
    """build(*leaves) applying one ONNX op; `pick` selects the output of a multi-output node;
    `same_shape` gives the output type (for ops ONNX's inference leaves without a shape)."""
    def build(*xs):
        types = [(xs[0].dtype, xs[0]._shape)] if same_shape else None
        out = apply(op, list(xs), attrs, n_out=n_out, types=types)
        return out if n_out == 1 else out[pick]
    return build


# ----- convolution ---------------------------------------------------------------------------
def conv_case(name, c, m, k, hw, s, pads, d=None, g=1, fd=True, bias=True, wrt=None):
    n = len(k)
    d = d or [1] * n
    shapes = [(2, c) + tuple(hw), (m, c // g) + tuple(k)] + ([(m,)] if bias else [])
    tf = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
    sym = pads[:n] == pads[n:]
    return Case(name, node("Conv", strides=s, pads=pads, dilations=d, group=g), shapes,
                (lambda x, w, b=None: tf(x, w, b, s, pads[:n], d, g)) if sym else None, fd=fd, wrt=wrt)


def conv_t_case(name, c, m, k, hw, s, pads, op, d=None, g=1, fd=True):
    n = len(k)
    d = d or [1] * n
    tf = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[n]
    sym = pads[:n] == pads[n:]
    return Case(name, node("ConvTranspose", strides=s, pads=pads, dilations=d, group=g, output_padding=op),
                [(2, c) + tuple(hw), (c, m // g) + tuple(k), (m,)],
                (lambda x, w, b: tf(x, w, b, s, pads[:n], op, g, d)) if sym else None, fd=fd)


CONV = [
    conv_case("conv2d-s2-p1", 2, 3, (3, 3), (7, 8), [2, 2], [1, 1, 1, 1]),
    conv_case("conv2d-s3x2-dil2x1", 2, 3, (3, 2), (8, 7), [3, 2], [0, 1, 0, 1], d=[2, 1]),
    conv_case("conv2d-asym-pads", 2, 2, (3, 3), (5, 6), [2, 2], [1, 0, 2, 1]),
    conv_case("conv2d-groups2-s2-dil2", 4, 6, (3, 3), (7, 7), [2, 1], [1, 2, 1, 2], d=[1, 2], g=2),
    conv_case("conv2d-depthwise", 3, 3, (3, 3), (5, 5), [1, 1], [1, 1, 1, 1], g=3),
    conv_case("conv2d-depthwise-s2", 2, 4, (2, 2), (5, 5), [2, 2], [0, 1, 0, 1], g=2),
    conv_case("conv2d-16ch-flipped", 16, 16, (3, 3), (4, 4), [1, 1], [1, 1, 1, 1], wrt=[0]),
    conv_case("conv2d-1ch-p2-row-halves", 1, 3, (5, 5), (8, 8), [1, 1], [2, 2, 2, 2]),  # LeNet conv1's W path
    conv_case("conv2d-1ch-s2-dil2-odd-rows", 1, 2, (3, 2), (11, 8), [2, 1], [1, 0, 1, 0], d=[2, 1]),
    conv_case("conv2d-1ch-asym-pads", 1, 2, (3, 3), (6, 7), [1, 2], [2, 0, 0, 1]),
    conv_case("conv1d-s3-pad-gt-kernel", 1, 2, (2,), (7,), [3], [3, 2], bias=False),
    conv_case("conv1d-s2-dil2", 3, 2, (3,), (9,), [2], [2, 2], d=[2]),
    conv_case("conv3d-s2", 2, 2, (2, 2, 2), (4, 5, 4), [2, 1, 2], [1, 0, 1, 1, 0, 1]),
    Case("conv2d-same-upper", node("Conv", strides=[2, 2], auto_pad="SAME_UPPER"), [(1, 2, 5, 6), (2, 2, 3, 3)],
         lambda x, w: F.conv2d(F.pad(x, [0, 1, 1, 1]), w, stride=2)),
    conv_t_case("convT2d-s2-op1", 2, 3, (3, 3), (4, 5), [2, 2], [1, 1, 1, 1], [1, 1]),
    conv_t_case("convT2d-s2-dil2", 2, 2, (2, 3), (3, 4), [2, 3], [0, 1, 0, 1], [1, 2], d=[2, 1]),
    conv_t_case("convT2d-asym", 2, 2, (3, 3), (3, 3), [2, 1], [1, 0, 0, 1], [0, 0]),
    conv_t_case("convT2d-groups2", 4, 6, (3, 3), (4, 4), [2, 2], [1, 1, 1, 1], [1, 0], g=2, fd=False),
    conv_t_case("convT2d-1out-s2", 2, 1, (3, 3), (4, 3), [2, 2], [1, 1, 1, 1], [1, 0]),
    conv_t_case("convT1d-s3", 2, 3, (4,), (5,), [3], [1, 1], [2]),
    conv_t_case("convT3d-s2", 2, 2, (2, 2, 2), (3, 2, 3), [2, 1, 2], [0, 0, 1, 0, 0, 1], [1, 0, 1]),
]

# ----- pooling -------------------------------------------------------------------------------
def max_case(name, k, s, p, d=1, ceil=0, n_out=1, hw=(7, 8), fd=True):
    n = len(hw)
    tf = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]
    return Case(name, node("MaxPool", n_out=n_out, kernel_shape=[k] * n, strides=[s] * n, pads=[p] * 2 * n,
                           dilations=[d] * n, ceil_mode=ceil), [(2, 3) + hw],
                lambda x: tf(x, k, s, p, d, bool(ceil)), fd=fd, distinct=True)


def avg_case(name, k, s, p, ceil=0, cip=0, hw=(7, 8), fd=True):
    n = len(hw)
    tf = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[n]
    return Case(name, node("AveragePool", kernel_shape=[k] * n, strides=[s] * n, pads=[p] * 2 * n, ceil_mode=ceil,
                           count_include_pad=cip), [(2, 3) + hw], lambda x: tf(x, k, s, p, bool(ceil), bool(cip)), fd=fd)


def lp_torch(k, s, p):
    return lambda x: F.lp_pool2d(F.pad(x, [p] * 4), 2, k, s)


POOL = [
    max_case("maxpool2d-k2s2", 2, 2, 0),
    max_case("maxpool2d-k3s2p1-ceil-2out", 3, 2, 1, ceil=1, n_out=2),
    max_case("maxpool2d-k3s1p1-dil2", 3, 1, 1, d=2),
    max_case("maxpool2d-k2s1", 2, 1, 0, fd=False),  # onnx.reference: wrong Indices when all strides are 1
    max_case("maxpool2d-k3s2-ceil", 3, 2, 0, ceil=1, hw=(5, 6)),
    max_case("maxpool1d-k3s2p1", 3, 2, 1, hw=(6,)),
    max_case("maxpool3d-k2s2", 2, 2, 0, hw=(4, 4, 5)),
    Case("maxpool2d-2out-storage-order1",
         node("MaxPool", n_out=2, kernel_shape=[2, 2], strides=[2, 2], storage_order=1), [(2, 2, 4, 6)],
         lambda x: F.max_pool2d(x, 2, 2), distinct=True),
    Case("maxpool2d-k2s2-ties", node("MaxPool", kernel_shape=[2, 2], strides=[2, 2]), [], lambda x: F.max_pool2d(x, 2),
         make=lambda rng: [np.maximum(np.round(rng.standard_normal((2, 3, 6, 8)) * 1.5), 0).astype(np.float32)],
         fd=False),  # ReLU'd integers: many tied windows; the first maximum gets the gradient, as in torch
    Case("maxpool2d-k2x3-ties-floor-crop", node("MaxPool", kernel_shape=[2, 3], strides=[2, 3]), [],
         lambda x: F.max_pool2d(x, (2, 3)), fd=False,
         make=lambda rng: [np.round(rng.standard_normal((2, 2, 5, 8))).astype(np.float32)]),
    Case("maxpool2d-same-upper", node("MaxPool", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
         [(1, 2, 5, 6)], lambda x: F.max_pool2d(F.pad(x, [0, 1, 1, 1], value=-np.inf), 3, 2), distinct=True),
    Case("avgpool2d-same-lower", node("AveragePool", kernel_shape=[2, 3], strides=[2, 2], auto_pad="SAME_LOWER"),
         [(1, 2, 5, 6)]),
    avg_case("avgpool2d-k2s2", 2, 2, 0),
    avg_case("avgpool2d-k3s2p1-excl", 3, 2, 1),
    avg_case("avgpool2d-k3s2p1-incl", 3, 2, 1, cip=1),
    avg_case("avgpool2d-k3s2p1-ceil-incl", 3, 2, 1, ceil=1, cip=1),
    avg_case("avgpool2d-k3s2-ceil-excl", 3, 2, 0, ceil=1, hw=(5, 6)),
    avg_case("avgpool1d-k3s1p1", 3, 1, 1, hw=(6,)),
    avg_case("avgpool3d-k2s2p1", 2, 2, 1, cip=1, hw=(3, 4, 4)),
    Case("avgpool2d-dil2", node("AveragePool", kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1]), [(1, 2, 5, 5)]),
    Case("lppool2d-p2-k2s2", node("LpPool", kernel_shape=[2, 2], strides=[2, 2]), [(2, 3, 6, 7)], lp_torch(2, 2, 0)),
    Case("lppool2d-p2-k3s1p1", node("LpPool", kernel_shape=[3, 3], pads=[1, 1, 1, 1]), [(2, 2, 5, 5)], lp_torch(3, 1, 1)),
    # onnx.reference rescales windows that overhang in ceil_mode; onnxruntime sums the real inputs, as torch on zero padding
    Case("lppool2d-p1-ceil", node("LpPool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, p=1), [(1, 2, 5, 5)],
         lambda x: F.lp_pool2d(F.pad(x.abs(), [0, 1, 0, 1]), 1, 2, 2), fd=False),
    Case("lppool2d-p2-ceil", node("LpPool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), [(1, 2, 6, 6)],
         lambda x: F.lp_pool2d(F.pad(x, [0, 1, 0, 1]), 2, 3, 2), fd=False),
    Case("lppool1d-p3-dil2", node("LpPool", kernel_shape=[2], dilations=[2], p=3), [(1, 2, 6)]),
    Case("globalavgpool2d", node("GlobalAveragePool"), [(2, 3, 4, 5)], lambda x: F.adaptive_avg_pool2d(x, 1)),
    Case("globalavgpool1d", node("GlobalAveragePool"), [(2, 3, 5)], lambda x: F.adaptive_avg_pool1d(x, 1)),
    Case("globalmaxpool2d", node("GlobalMaxPool"), [(2, 3, 4, 5)], lambda x: F.adaptive_max_pool2d(x, 1), distinct=True),
    Case("globalmaxpool3d", node("GlobalMaxPool"), [(1, 2, 2, 3, 2)], lambda x: F.adaptive_max_pool3d(x, 1),
         fd=False),  # onnx.reference reduces the wrong axes of non-4-D inputs
    # GlobalLpPool: no onnx.reference kernel, no float64 onnxruntime kernel
    Case("globallppool2d-p2", node("GlobalLpPool"), [(2, 3, 3, 4)],
         lambda x: x.pow(2).sum((2, 3), keepdim=True).sqrt(), fd=False),
    Case("globallppool1d-p3", node("GlobalLpPool", p=3), [(1, 2, 5)],
         lambda x: x.abs().pow(3).sum(2, keepdim=True).pow(1 / 3), fd=False),
]

# ----- normalization -------------------------------------------------------------------------
def bn_inputs(shape, c):
    def make(rng):
        return [rng.standard_normal(shape), rng.standard_normal(c), rng.standard_normal(c),
                rng.standard_normal(c), rng.uniform(0.5, 2.0, c)]
    return make


def bn_f32(make):
    return lambda rng: [a.astype(np.float32) for a in make(rng)]


NORM = [
    Case("batchnorm2d-train", node("BatchNormalization", n_out=3, epsilon=1e-3, training_mode=1), [],
         lambda x, s, b, m, v: F.batch_norm(x, None, None, s, b, True, eps=1e-3),
         make=bn_f32(bn_inputs((3, 2, 3, 4), 2)), wrt=[0, 1, 2]),
    Case("batchnorm1d-train", node("BatchNormalization", n_out=3, training_mode=1), [],
         lambda x, s, b, m, v: F.batch_norm(x, None, None, s, b, True),
         make=bn_f32(bn_inputs((5, 3), 3)), wrt=[0, 1, 2]),
    Case("batchnorm3d-train-momentum", node("BatchNormalization", n_out=3, training_mode=1, momentum=0.8), [],
         lambda x, s, b, m, v: F.batch_norm(x, None, None, s, b, True),
         make=bn_f32(bn_inputs((2, 2, 2, 3, 2), 2)), wrt=[0, 1, 2]),
    # ops.batch_norm in training (batch statistics + the inference op): one rule through the statistics
    Case("batch_norm-train-2d", lambda x, s, b, m, v: ok.nn.functional.batch_norm(x, m, v, s, b, True, eps=1e-3), [],
         lambda x, s, b, m, v: F.batch_norm(x, None, None, s, b, True, eps=1e-3),
         make=bn_f32(bn_inputs((3, 2, 3, 4), 2)), wrt=[0, 1, 2]),
    Case("batch_norm-train-1d-no-affine", lambda x, s, b, m, v: ok.nn.functional.batch_norm(x, m, v, None, None, True),
         [], lambda x, s, b, m, v: F.batch_norm(x, None, None, None, None, True),
         make=bn_f32(bn_inputs((5, 3), 3)), wrt=[0]),
    Case("layer_norm-functional", lambda x, s, b: ok.nn.functional.layer_norm(x, (3, 4), s, b, eps=1e-3),
         [(2, 3, 4), (3, 4), (3, 4)], lambda x, s, b: F.layer_norm(x, (3, 4), s, b, eps=1e-3)),
    Case("layer_norm-functional-no-affine", lambda x: ok.nn.functional.layer_norm(x, 4), [(2, 3, 4)],
         lambda x: F.layer_norm(x, (4,))),
    Case("group_norm-functional", lambda x, s, b: ok.nn.functional.group_norm(x, 2, s, b, eps=1e-3),
         [(2, 4, 3, 3), (4,), (4,)], lambda x, s, b: F.group_norm(x, 2, s, b, eps=1e-3)),
    Case("batchnorm2d-eval", node("BatchNormalization"), [],
         lambda x, s, b, m, v: F.batch_norm(x, m, v, s, b, False),
         make=bn_f32(bn_inputs((2, 3, 2, 3), 3)), wrt=[0, 1, 2]),
    Case("batchnorm2d-eval-stats-grad", node("BatchNormalization", epsilon=1e-2), [],
         make=bn_inputs((2, 2, 2, 2), 2)),
    Case("instancenorm2d", node("InstanceNormalization", epsilon=1e-3), [(2, 3, 3, 4), (3,), (3,)],
         lambda x, s, b: F.instance_norm(x, weight=s, bias=b, eps=1e-3)),
    Case("instancenorm1d", node("InstanceNormalization"), [(2, 2, 5), (2,), (2,)],
         lambda x, s, b: F.instance_norm(x, weight=s, bias=b)),
    Case("layernorm-last", node("LayerNormalization"), [(2, 3, 5), (5,), (5,)],
         lambda x, s, b: F.layer_norm(x, (5,), s, b)),
    Case("layernorm-axis1-eps", node("LayerNormalization", axis=1, epsilon=1e-3), [(2, 3, 4), (3, 4), (3, 4)],
         lambda x, s, b: F.layer_norm(x, (3, 4), s, b, eps=1e-3)),
    Case("layernorm-no-bias", node("LayerNormalization", axis=-2), [(3, 2, 4), (2, 4)],
         lambda x, s: F.layer_norm(x, (2, 4), s)),
    Case("layernorm-mean-output", node("LayerNormalization", n_out=3, pick=1), [(2, 3, 4), (4,), (4,)],
         lambda x, s, b: x.mean(-1, keepdim=True), wrt=[0]),
    Case("layernorm-invstd-output", node("LayerNormalization", n_out=3, pick=2, axis=1), [(2, 3, 4), (3, 4), (3, 4)],
         lambda x, s, b: (x.var((1, 2), unbiased=False, keepdim=True) + 1e-5).rsqrt(), wrt=[0]),
    Case("groupnorm-2groups", node("GroupNormalization", same_shape=True, num_groups=2, epsilon=1e-3, stash_type=11),
         [(2, 4, 3, 3), (4,), (4,)], lambda x, s, b: F.group_norm(x, 2, s, b, eps=1e-3)),
    Case("groupnorm-1d-3groups", node("GroupNormalization", same_shape=True, num_groups=3, stash_type=11),
         [(2, 6, 4), (6,), (6,)],
         lambda x, s, b: F.group_norm(x, 3, s, b)),
    # onnx.reference's LRN loops over the batch instead of the channels: N == C keeps it right
    Case("lrn-size3", node("LRN", size=3, alpha=0.1, beta=0.75, bias=1.5), [(5, 5, 2, 2)],
         lambda x: F.local_response_norm(x, 3, 0.1, 0.75, 1.5)),
    Case("lrn-size5-default", node("LRN", size=5), [(6, 6, 1, 2)], lambda x: F.local_response_norm(x, 5)),
    Case("lrn-size2-even", node("LRN", size=2, alpha=0.5), [(4, 4, 1, 2)]),
]

# ----- einsum, resize, rearrangements --------------------------------------------------------
def resize(mode, scales=None, sizes=None, **attrs):
    def build(x):
        sc = const(scales, np.float32) if scales is not None else None
        sz = const(sizes, np.int64) if sizes is not None else None
        return apply("Resize", [x, None, sc, sz], dict(attrs, mode=mode))
    return build


def space_to_depth_torch(b):
    def f(x):
        n, c, h, w = x.shape
        return x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)
    return f


def depth_to_space_dcr_torch(b):
    def f(x):
        n, c, h, w = x.shape
        return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)
    return f


def max_unpool_inputs(rng):
    """Pooled values and the global flat indices ONNX uses (torch's are per (n, c) plane)."""
    x = torch.tensor(rng.standard_normal((2, 2, 4, 6)).astype(np.float32))
    v, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    plane = (torch.arange(4).reshape(2, 2, 1, 1) * 24)
    return [v.numpy(), (idx + plane).numpy().astype(np.int64)]


def max_unpool_torch(v, idx):
    plane = (torch.arange(4).reshape(2, 2, 1, 1) * 24)
    return F.max_unpool2d(v, idx - plane, 2, 2)


def pad(mode, pads, axes=None, value=None):
    def build(x, *rest):
        v = rest[0] if rest else (like_const(value, x) if value is not None else None)
        ax = const(axes, np.int64) if axes is not None else None
        return apply("Pad", [x, const(pads, np.int64), v, ax], {"mode": mode})
    return build


OTHER = [
    Case("col2im-s2-dil-pads", lambda c: apply("Col2Im", [c, const([5, 6], np.int64), const([2, 3], np.int64)],
                                                {"strides": [2, 1], "dilations": [1, 2], "pads": [1, 0, 0, 1]}),
         [(2, 2 * 6, 3 * 3)], lambda c: F.fold(c, (6, 7), (2, 3), (1, 2), 0, (2, 1))[:, :, 1:, :6]),  # pads cropped
    Case("einsum-bmm", node("Einsum", equation="bij,bjk->bik"), [(2, 3, 4), (2, 4, 2)],
         lambda a, b: torch.einsum("bij,bjk->bik", a, b)),
    Case("einsum-matvec", node("Einsum", equation="ij,j->i"), [(3, 4), (4,)], lambda a, b: torch.einsum("ij,j->i", a, b)),
    Case("einsum-sum-only-in-one", node("Einsum", equation="ij,k->ik"), [(3, 4), (2,)],
         lambda a, b: torch.einsum("ij,k->ik", a, b)),
    Case("einsum-three-operands", node("Einsum", equation="abc,cd,a->bd"), [(2, 3, 4), (4, 2), (2,)],
         lambda a, b, c: torch.einsum("abc,cd,a->bd", a, b, c)),
    Case("einsum-permute", node("Einsum", equation="abc->cab"), [(2, 3, 4)], lambda a: torch.einsum("abc->cab", a)),
    Case("resize-nearest-x2", resize("nearest", [1, 1, 2, 2], coordinate_transformation_mode="asymmetric",
                                     nearest_mode="floor"), [(2, 2, 3, 4)],
         lambda x: F.interpolate(x, scale_factor=2, mode="nearest")),
    Case("resize-nearest-sizes", resize("nearest", sizes=[2, 2, 5, 7], coordinate_transformation_mode="asymmetric",
                                        nearest_mode="floor"), [(2, 2, 3, 4)],
         lambda x: F.interpolate(x, size=(5, 7), mode="nearest")),
    Case("resize-nearest-half-pixel-round", resize("nearest", [1, 1, 1.5, 0.5]), [(1, 2, 4, 6)]),
    Case("resize-nearest-ceil-pytorch-half-pixel",
         resize("nearest", [1, 1, 1.75, 0.6], nearest_mode="ceil", coordinate_transformation_mode="pytorch_half_pixel"),
         [(1, 2, 4, 5)]),
    Case("resize-nearest-prefer-ceil-symmetric",
         resize("nearest", [1, 1, 2.5, 1.4], nearest_mode="round_prefer_ceil",
                coordinate_transformation_mode="half_pixel_symmetric"), [(1, 1, 3, 5)]),
    Case("resize-linear-half-pixel", resize("linear", [1, 1, 2, 1.5]), [(2, 2, 3, 4)],
         lambda x: F.interpolate(x, scale_factor=(2, 1.5), mode="bilinear", align_corners=False)),
    Case("resize-linear-down", resize("linear", sizes=[2, 2, 3, 2]), [(2, 2, 6, 5)],
         lambda x: F.interpolate(x, size=(3, 2), mode="bilinear", align_corners=False)),
    Case("resize-linear-align-corners", resize("linear", sizes=[1, 2, 5, 7], coordinate_transformation_mode="align_corners"),
         [(1, 2, 3, 4)], lambda x: F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=True)),
    Case("resize-linear-1d-axes", resize("linear", [2.5], axes=[2]), [(2, 3, 4)],
         lambda x: F.interpolate(x, scale_factor=2.5, mode="linear")),
    Case("resize-linear-keep-aspect", resize("linear", sizes=[7, 7], axes=[2, 3], keep_aspect_ratio_policy="not_larger"),
         [(1, 2, 4, 6)]),
    Case("resize-linear-3d", resize("linear", [1, 1, 2, 1, 2]), [(1, 2, 2, 3, 2)],
         lambda x: F.interpolate(x, scale_factor=(2, 1, 2), mode="trilinear")),
    # antialias: onnxruntime agrees with onnx.reference, torch's antialiasing filter differs
    Case("resize-linear-antialias-down", resize("linear", sizes=[1, 1, 3, 4], antialias=1), [(1, 1, 7, 9)]),
    Case("resize-cubic-antialias-down", resize("cubic", [1, 1, 0.6, 0.5], antialias=1), [(1, 1, 5, 6)]),
    Case("resize-cubic", resize("cubic", [1, 1, 2, 2]), [(2, 2, 4, 3)],
         lambda x: F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)),
    Case("resize-cubic-align-corners", resize("cubic", sizes=[1, 1, 5, 3], coordinate_transformation_mode="align_corners"),
         [(1, 1, 4, 4)], lambda x: F.interpolate(x, size=(5, 3), mode="bicubic", align_corners=True)),
    Case("resize-cubic-exclude-outside", resize("cubic", [1, 1, 1.5, 2], cubic_coeff_a=-0.5, exclude_outside=1),
         [(1, 2, 4, 3)]),
    Case("resize-tf-crop", lambda x: apply("Resize", [x, like_const([0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2], x), None,
                                                      const([1, 2, 4, 5], np.int64)],
                                           {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
                                            "extrapolation_value": 3.0}), [(1, 2, 3, 4)]),
    Case("depth-to-space-dcr", node("DepthToSpace", blocksize=2), [(2, 8, 2, 3)], depth_to_space_dcr_torch(2)),
    Case("depth-to-space-crd", node("DepthToSpace", blocksize=2, mode="CRD"), [(2, 8, 2, 3)],
         lambda x: F.pixel_shuffle(x, 2)),
    Case("space-to-depth", node("SpaceToDepth", blocksize=2), [(2, 3, 4, 6)], space_to_depth_torch(2)),
    Case("max-unpool2d", node("MaxUnpool", kernel_shape=[2, 2], strides=[2, 2]), [], max_unpool_torch,
         make=max_unpool_inputs),
    Case("trilu-upper-k1", lambda x: apply("Trilu", [x, const(1, np.int64)]), [(2, 4, 5)],
         lambda x: torch.triu(x, 1)),
    Case("trilu-lower", node("Trilu", upper=0), [(4, 3)], lambda x: torch.tril(x)),
    Case("topk-largest", lambda x: apply("TopK", [x, const([3], np.int64)], {"axis": 1}, n_out=2)[0], [(2, 5, 3)],
         lambda x: torch.topk(x, 3, 1).values, distinct=True),
    Case("topk-smallest-last", lambda x: apply("TopK", [x, const([2], np.int64)], {"largest": 0}, n_out=2)[0],
         [(3, 4)], lambda x: torch.topk(x, 2, -1, largest=False).values, distinct=True),
    Case("pad-constant", pad("constant", [0, 1, 2, 0, 2, 1], value=0.5), [(2, 3, 4)],
         lambda x: F.pad(x, [2, 1, 1, 2], value=0.5)),
    Case("pad-constant-crop", pad("constant", [0, -1, 2, 0, 1, -1]), [(2, 3, 4)], lambda x: F.pad(x, [2, -1, -1, 1]),
         fd=False),  # onnx.reference's Pad rejects negative pads
    Case("pad-constant-value-grad", lambda x, v: apply("Pad", [x, const([1, 0, 0, 2], np.int64), v]), [(2, 3), ()]),
    Case("pad-reflect", pad("reflect", [0, 0, 2, 1, 0, 0, 1, 3]), [(1, 2, 4, 5)],
         lambda x: F.pad(x, [1, 3, 2, 1], mode="reflect")),
    Case("pad-edge", pad("edge", [0, 0, 3, 1, 0, 0, 1, 2]), [(1, 2, 3, 4)],
         lambda x: F.pad(x, [1, 2, 3, 1], mode="replicate")),
    Case("pad-wrap", pad("wrap", [0, 0, 1, 2, 0, 0, 2, 1]), [(1, 2, 3, 4)],
         lambda x: F.pad(x, [2, 1, 1, 2], mode="circular")),
    Case("pad-reflect-axes", pad("reflect", [2, 1], axes=[-1]), [(2, 3, 4)], lambda x: F.pad(x, [2, 1], mode="reflect")),
]

CASES = CONV + POOL + NORM + OTHER


@pytest.mark.parametrize("case", [c for c in CASES if c.torch_fn is not None],
                         ids=[c.name for c in CASES if c.torch_fn is not None])
def test_against_torch(case):
    check_torch(case)


@pytest.mark.parametrize("case", [c for c in CASES if c.fd], ids=[c.name for c in CASES if c.fd])
def test_finite_differences(case):
    arrays = _inputs(case, seed=2)
    gradcheck(case.build, arrays, wrt=_wrt(case, arrays))


# ----- second order --------------------------------------------------------------------------
SECOND_ORDER = [
    ("conv2d-s2-transpose-path", node("Conv", strides=[2, 2], pads=[1, 1, 1, 1]), [(2, 2, 5, 6), (3, 2, 3, 3)],
     lambda x, w: F.conv2d(x, w, None, 2, 1)),
    ("conv2d-groups-flipped-path", node("Conv", strides=[2, 1], group=2, dilations=[1, 2]), [(1, 4, 6, 6), (4, 2, 2, 2)],
     lambda x, w: F.conv2d(x, w, None, (2, 1), 0, (1, 2), 2)),
    ("convT2d", node("ConvTranspose", strides=[2, 2], output_padding=[1, 0]), [(1, 2, 3, 3), (2, 2, 2, 2)],
     lambda x, w: F.conv_transpose2d(x, w, None, 2, 0, (1, 0))),
    ("layernorm", node("LayerNormalization", axis=-2), [(2, 3, 4), (3, 4), (3, 4)],
     lambda x, s, b: F.layer_norm(x, (3, 4), s, b)),
    ("batchnorm-train", node("BatchNormalization", n_out=3, training_mode=1), [(3, 2, 2, 2), (2,), (2,), (2,), (2,)],
     lambda x, s, b, m, v: F.batch_norm(x, None, None, s, b, True)),
    ("batch_norm-train-composed", lambda x, s, b, m, v: ok.nn.functional.batch_norm(x, None, None, s, b, True),
     [(3, 2, 2, 2), (2,), (2,), (2,), (2,)], lambda x, s, b, m, v: F.batch_norm(x, None, None, s, b, True)),
    ("groupnorm", node("GroupNormalization", same_shape=True, num_groups=2), [(2, 4, 2, 2), (4,), (4,)],
     lambda x, s, b: F.group_norm(x, 2, s, b)),
    ("lppool", node("LpPool", kernel_shape=[2, 2], strides=[1, 1]), [(1, 2, 3, 3)], lambda x: F.lp_pool2d(x, 2, 2, 1)),
    ("lrn", node("LRN", size=3, alpha=0.3), [(2, 4, 2, 2)], lambda x: F.local_response_norm(x, 3, 0.3)),
]


@pytest.mark.parametrize("name,build,shapes,torch_fn", SECOND_ORDER, ids=[r[0] for r in SECOND_ORDER])
def test_hessian_vector_product_against_torch(name, build, shapes, torch_fn):
    """Differentiate the gradient graph again: (d/dx_i) sum_j <grad_j, v_j> equals torch's double backward."""
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    if name.startswith("batch"):
        arrays[4] = np.abs(arrays[4]) + 0.5
    wrt = [0, 1, 2] if name.startswith("batch") else list(range(len(arrays)))
    w = rng.standard_normal(torch_fn(*[torch.tensor(a) for a in arrays]).shape).astype(np.float32)
    vs = [rng.standard_normal(arrays[i].shape).astype(np.float32) for i in wrt]

    leaves = [ok.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    proj = (build(*leaves) * ok.tensor(w)).sum()
    gs = ok.grad(proj, [leaves[i] for i in wrt], create_graph=True)
    dot = sum((g * ok.tensor(v)).sum() for g, v in zip(gs, vs))
    hv = ok.grad(dot, [leaves[i] for i in wrt], allow_unused=True)
    used = [(i, h) for i, h in zip(wrt, hv) if h is not None]
    got = compile_fn([proj] + [h for _, h in used], leaves, runtime="ort")(arrays)[1:]

    tx = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    tg = torch.autograd.grad((torch_fn(*tx) * torch.tensor(w)).sum(), [tx[i] for i in wrt], create_graph=True)
    tdot = sum((g * torch.tensor(v)).sum() for g, v in zip(tg, vs))
    thv = torch.autograd.grad(tdot, [tx[i] for i in wrt], allow_unused=True)
    for k, i in enumerate(wrt):
        want = np.zeros_like(arrays[i]) if thv[k] is None else thv[k].numpy()
        have = dict((j, v) for (j, _), v in zip(used, got)).get(i, np.zeros_like(arrays[i]))
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4, err_msg=f"{name}: input {i}")


@pytest.mark.parametrize("name", ["conv", "layernorm", "instancenorm"])
def test_second_order_finite_differences(name):
    """Finite differences of a gradient graph (float64, ReferenceEvaluator): the rules' outputs are
    differentiable again."""
    conv = node("Conv", strides=[2, 1], pads=[1, 0, 0, 1], dilations=[1, 2])
    builds = {
        "conv": (lambda x, w: ok.grad((conv(x, w) ** 2).sum(), [x, w], create_graph=True), [(1, 2, 5, 5), (2, 2, 2, 2)]),
        "layernorm": (lambda x, s: ok.grad((node("LayerNormalization")(x, s) ** 3).sum(), [x, s], create_graph=True),
                      [(2, 5), (5,)]),
        "instancenorm": (lambda x, s, b: ok.grad((node("InstanceNormalization")(x, s, b) ** 3).sum(), [x, s],
                                                 create_graph=True), [(2, 2, 4), (2,), (2,)]),
    }
    fn, shapes = builds[name]
    rng = np.random.default_rng(4)
    gradcheck(fn, [rng.standard_normal(s) for s in shapes])


# ----- dropout, errors, symbolic batch -------------------------------------------------------
@pytest.mark.parametrize("training", ["const-true", "fed-true", "fed-false", "absent"])
def test_dropout_gradient_uses_the_forward_mask(training):
    x = np.random.default_rng(5).standard_normal((4, 6)).astype(np.float32)
    w = np.random.default_rng(6).standard_normal((4, 6)).astype(np.float32)
    leaf = ok.tensor(x, requires_grad=True)
    mode = {"const-true": const(True, np.bool_), "fed-true": ok.tensor(np.array(True)),
            "fed-false": ok.tensor(np.array(False)), "absent": None}[training]
    inputs = [leaf, const(0.25, np.float32), mode] if mode is not None else [leaf]
    y, mask = apply("Dropout", inputs, {"seed": 7}, n_out=2)
    g, = ok.grad((y * ok.tensor(w)).sum(), [leaf])
    yv, mv, gv = compile_fn([y, ok.cast(mask, np.float32), g], [leaf], runtime="ort")([x])
    if training in ("const-true", "fed-true"):
        assert 0 < mv.sum() < mv.size
        np.testing.assert_allclose(yv, x * mv / 0.75, rtol=1e-6)
        np.testing.assert_allclose(gv, w * mv / 0.75, rtol=1e-6)
    else:
        np.testing.assert_allclose(gv, w)


def test_dropout_training_without_mask_output_raises():
    leaf = ok.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = apply("Dropout", [leaf, const(0.5, np.float32), const(True, np.bool_)])
    with pytest.raises(NotImplementedError, match="mask output"):
        ok.grad(y.sum(), [leaf])


@pytest.mark.parametrize("equation,shapes,match", [
    ("ii->i", [(3, 3)], "repeated index"),
    ("...ij->...ji", [(2, 3, 4)], "explicit equation"),
    ("ij,jk", [(2, 3), (3, 4)], "explicit equation"),
])
def test_einsum_unsupported_equations_raise(equation, shapes, match):
    leaves = [ok.tensor(np.ones(s, np.float32), requires_grad=True) for s in shapes]
    y = apply("Einsum", leaves, {"equation": equation})
    with pytest.raises(NotImplementedError, match=match):
        ok.grad(y.sum(), leaves)


def test_symbolic_batch_norm_conv_pool():
    """BatchNormalization(train) -> Conv -> MaxPool (1 output) -> AveragePool(ceil) with a symbolic batch:
    one gradient graph runs at two batch sizes and matches torch."""
    from onnxkit.emit import build_model
    rng = np.random.default_rng(8)
    wv, sv = rng.standard_normal((4, 2, 3, 3)).astype(np.float32), rng.standard_normal(2).astype(np.float32)
    stats = [np.zeros(2, np.float32), np.zeros(2, np.float32), np.ones(2, np.float32)]
    x = ok.Input("x", ("N", 2, 9, 9))
    w, scale = ok.tensor(wv, requires_grad=True), ok.tensor(sv, requires_grad=True)
    bias, mean, var = (ok.tensor(a) for a in stats)
    y = apply("BatchNormalization", [x, scale, bias, mean, var], {"training_mode": 1}, n_out=3)[0]
    y = apply("Conv", [y, w], {"strides": [2, 2], "pads": [1, 1, 1, 1]})
    y = apply("MaxPool", [y], {"kernel_shape": [2, 2], "strides": [1, 1]})
    y = apply("AveragePool", [y], {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1})
    grads = ok.grad((y * y * y).sum(), [w, scale])
    # the BatchNormalization parameters are fed: with all of them initializers, onnxruntime 1.31's
    # ORT_ENABLE_ALL optimizations compute training-mode BatchNormalization wrongly
    model, _ = build_model(list(grads), fed={id(t): k for t, k in zip((scale, bias, mean, var), "sbmv")})
    sess = ok.Session(model, device="cpu")
    for n in (2, 3):
        xv = rng.standard_normal((n, 2, 9, 9)).astype(np.float32)
        got = list(sess.run({"x": xv, "s": sv, "b": stats[0], "m": stats[1], "v": stats[2]}).values())
        tw, ts = (torch.tensor(a, requires_grad=True) for a in (wv, sv))
        ty = F.conv2d(F.batch_norm(torch.tensor(xv), None, None, ts, None, True), tw, None, 2, 1)
        ty = F.avg_pool2d(F.max_pool2d(ty, 2, 1), 2, 2, ceil_mode=True)
        want = torch.autograd.grad((ty ** 3).sum(), [tw, ts])
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("scales", [(1.7, 1.7), (2.5, 1.3)])
def test_resize_align_corners_non_integer_scale_matches_torch(scales):
    """Regression: align_corners source coordinates use the output length, not scale * input length."""
    import torch
    from onnxkit.tensor import apply, const
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5)).astype(np.float32)
    size = [int(5 * s) for s in scales]
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.interpolate(xt, size=size, mode="bilinear", align_corners=True)
    g = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(np.float32)
    gt, = torch.autograd.grad(yt, xt, torch.tensor(g))
    xo = ok.tensor(x, requires_grad=True)
    yo = apply("Resize", [xo, None, const(np.array((1, 1) + scales, np.float32), "float32")],
               {"mode": "linear", "coordinate_transformation_mode": "align_corners"})
    go, = ok.grad(yo, [xo], grad_outputs=ok.tensor(g))
    np.testing.assert_allclose(go.numpy(), gt.numpy(), rtol=1e-4, atol=1e-5)
