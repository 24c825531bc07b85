"""torch's everyday tensor API against torch: selection, sorting, masks, repetition, diagonals,
aliases and host-side sampling. Rows are `fn(lib, *inputs)` run once with lib=onnxkit on
ok.tensor inputs and once with lib=torch on torch tensors; outputs (tuples flattened) must agree in
values, dtype and shape. Gradients are compared with torch and with float64 finite differences, and a
subset is exported with a symbolic batch dim and run in onnxruntime at two batch sizes."""
import numpy as np
import onnx
import pytest
import torch

import onnxkit as ok
from gradcheck import gradcheck

R = np.random.default_rng(0)
X = R.standard_normal((3, 5)).astype(np.float32)
X3 = R.standard_normal((2, 3, 4)).astype(np.float32)
XO = R.standard_normal((5, 7)).astype(np.float32)
X64 = R.standard_normal((4, 3))
V = R.standard_normal(7).astype(np.float32)
SQ = R.standard_normal((4, 4)).astype(np.float32)
I = R.integers(0, 5, (4, 6)).astype(np.int64)
I32 = R.integers(-3, 3, (3, 4)).astype(np.int32)
EMPTY = np.zeros((0, 4), np.float32)
TIES = np.array([[1, 3, 1, 3, 2], [0, 0, 0, 1, 1]], np.float32)
NANS = np.array([[2.0, np.nan, 1.0, -np.inf], [np.nan, 0.5, np.inf, 0.5]], np.float32)
ZEROS = np.array([[1.5, 0.0, 2.0, -1.0], [0.0, 0.0, 3.0, 0.5], [2.0, -0.5, 1.0, 0.25]], np.float32)
IDX = np.array([2, 0, 4, 1, 0, 3, 3], np.int64)
MASK = X > 0
ROWMASK = np.array([True, False, True])
B1 = R.standard_normal((2, 3, 4)).astype(np.float32)
B2 = R.standard_normal((2, 4, 5)).astype(np.float32)
M34 = R.standard_normal((3, 4)).astype(np.float32)
M45 = R.standard_normal((4, 5)).astype(np.float32)
SRC35 = R.standard_normal((3, 5)).astype(np.float32)
SRC32 = R.standard_normal((3, 2)).astype(np.float32)
SCALAR = np.array(0.3, np.float32)


def F(lib):
    return lib.nn.functional


def _to_lib(lib, a):
    if not isinstance(a, np.ndarray):
        return a
    return ok.tensor(a) if lib is ok else torch.tensor(a)


# (id, fn(lib, *inputs), inputs)
ROWS = [
    # masked_fill
    ("masked_fill", lambda L, x, m: x.masked_fill(m, -1.5), [X, MASK]),
    ("masked_fill-bcast-mask", lambda L, x, m: x.masked_fill(m, 7.0), [X, np.array([True, False, True, False, True])]),
    ("masked_fill-bcast-out", lambda L, x, m: L.masked_fill(x, m, 2.0), [V, np.ones((2, 1), bool)]),
    ("masked_fill-int-float-value", lambda L, i: i.masked_fill(i > 2, 2.7), [I]),
    ("masked_fill-0d-tensor-value", lambda L, x, m: x.masked_fill(m, L.tensor(9.0)), [X, MASK]),
    ("masked_fill-bool", lambda L, x, m: (x > 1).masked_fill(m, True), [X, ~MASK]),
    ("masked_fill-f64-neg-inf", lambda L, x: x.masked_fill(x < 0, float("-inf")), [X64]),
    ("masked_fill-empty", lambda L, e: e.masked_fill(e > 0, 1.0), [EMPTY]),
    # topk / sort / argsort / msort / kthvalue / median
    ("topk", lambda L, x: x.topk(2), [XO]),
    ("topk-dim0-smallest", lambda L, x: L.topk(x, 3, dim=0, largest=False), [XO]),
    ("topk-neg-dim-3d", lambda L, x: x.topk(2, -2), [X3]),
    ("topk-int", lambda L, x: (x * 100).long().topk(4), [XO]),
    ("topk-f64-k-all", lambda L, x: x.topk(3, dim=1), [X64]),
    ("topk-k0", lambda L, x: x.topk(0), [X]),
    ("topk-0d", lambda L, x: x.sum().topk(1), [X]),
    ("sort", lambda L, x: x.sort(), [XO]),
    ("sort-desc-dim0", lambda L, x: L.sort(x, dim=0, descending=True), [XO]),
    ("sort-stable-ties", lambda L, t: t.sort(stable=True), [TIES]),
    ("sort-stable-ties-desc", lambda L, t: t.sort(descending=True, stable=True), [TIES]),
    ("sort-nan-asc", lambda L, t: t.sort(stable=True), [NANS]),
    ("sort-nan-desc", lambda L, t: t.sort(descending=True, stable=True), [NANS]),
    ("sort-int32", lambda L, i: i.sort(dim=0, stable=True), [I32]),
    ("sort-bool", lambda L, x: (x > 0).sort(stable=True), [X]),
    ("sort-empty-dim", lambda L, e: e.sort(0), [EMPTY]),
    ("argsort", lambda L, x: x.argsort(), [XO]),
    ("argsort-desc-3d", lambda L, x: L.argsort(x, dim=1, descending=True), [X3]),
    ("msort", lambda L, x: L.msort(x), [XO]),
    ("kthvalue", lambda L, x: x.kthvalue(2), [XO]),
    ("kthvalue-dim0-keepdim", lambda L, x: L.kthvalue(x, 4, 0, keepdim=True), [XO]),
    ("median-all", lambda L, x: x.median(), [XO]),
    ("median-all-even", lambda L, x: L.median(x), [X3]),
    ("median-dim", lambda L, x: x.median(1), [XO]),
    ("median-dim-keepdim", lambda L, x: x.median(0, keepdim=True), [X3]),
    ("median-nan", lambda L, t: t.median(), [NANS]),
    ("median-nan-dim", lambda L, t: t.median(1), [NANS]),
    ("kthvalue-nan-largest", lambda L, t: t.kthvalue(3, 1), [NANS]),
    # unique
    ("unique", lambda L, i: L.unique(i), [I]),
    ("unique-inverse-counts", lambda L, i: L.unique(i, return_inverse=True, return_counts=True), [I]),
    ("unique-unsorted-arg", lambda L, i: i.unique(sorted=False), [I]),
    ("unique-float", lambda L, t: L.unique(t, return_counts=True), [TIES]),
    ("unique-dim0", lambda L, i: L.unique(i[:, :2], dim=0, return_inverse=True, return_counts=True), [I]),
    ("unique-dim1", lambda L, i: L.unique(i[:2] % 2, dim=1), [I]),
    ("unique-int32", lambda L, i: L.unique(i, return_inverse=True), [I32]),
    ("unique-bool", lambda L, x: L.unique(x > 0, return_counts=True), [X]),
    # tril / triu
    ("tril", lambda L, x: x.tril(), [XO]),
    ("tril-diag1", lambda L, x: L.tril(x, 1), [XO]),
    ("triu-diag-neg", lambda L, x: L.triu(x, diagonal=-2), [XO]),
    ("triu-3d", lambda L, x: x.triu(1), [X3]),
    ("tril-int", lambda L, i: i.tril(-1), [I]),
    ("triu-bool", lambda L, x: (x > 0).triu(), [X]),
    ("tril-int8", lambda L, i: i.to(L.int8).tril(), [I]),
    ("triu-beyond", lambda L, x: x.triu(10), [X]),
    # one_hot
    ("one_hot", lambda L, i: F(L).one_hot(i, 6), [I]),
    ("one_hot-infer", lambda L, i: F(L).one_hot(i), [IDX]),
    ("one_hot-computed-infer", lambda L, i: F(L).one_hot(i * 2), [IDX]),
    ("one_hot-empty", lambda L, i: F(L).one_hot(i[:0], 3), [IDX]),
    # normalize
    ("normalize", lambda L, x: F(L).normalize(x), [X]),
    ("normalize-p1-dim-last", lambda L, x: F(L).normalize(x, p=1, dim=-1), [X3]),
    ("normalize-p3-dim0", lambda L, x: F(L).normalize(x, 3.0, 0), [XO]),
    ("normalize-zero-row", lambda L, z: F(L).normalize(z * 0), [X]),
    ("normalize-f64", lambda L, x: F(L).normalize(x, dim=0), [X64]),
    # nonzero / argwhere / where(cond)
    ("nonzero", lambda L, x: x.nonzero(), [X]),
    ("nonzero-int-3d", lambda L, i: L.nonzero(i.reshape(2, 3, 4)), [I]),
    ("nonzero-bool", lambda L, x: (x > 0.5).nonzero(), [XO]),
    ("nonzero-as-tuple", lambda L, x: L.nonzero(x > 0, as_tuple=True), [X3]),
    ("nonzero-0d", lambda L, x: (x.sum() * 0 + 1).nonzero(), [X]),
    ("nonzero-0d-tuple", lambda L, x: L.nonzero(x.sum() * 0 + 1, as_tuple=True), [X]),
    ("nonzero-empty", lambda L, e: e.nonzero(), [EMPTY]),
    ("nonzero-f64", lambda L, x: L.nonzero(x > 0), [X64]),
    ("argwhere", lambda L, i: L.argwhere(i), [I]),
    ("where-cond-only", lambda L, i: L.where(i > 2), [I]),
    # boolean-mask indexing
    ("mask-2d", lambda L, x, m: x[m], [X, MASK]),
    ("mask-computed", lambda L, x: x[x > 0.3], [XO]),
    ("mask-rows", lambda L, x, m: x[m], [X, ROWMASK]),
    ("mask-rows-3d", lambda L, x: x[x.sum((1, 2)) > 0], [X3]),
    ("mask-numpy", lambda L, x: x[MASK], [X]),
    ("mask-numpy-rows", lambda L, x: x[ROWMASK], [X]),
    ("mask-list", lambda L, x: x[[True, False, True]], [X]),
    ("mask-dim1", lambda L, x: x[:, x[0] > 0], [X]),
    ("mask-ellipsis", lambda L, x: x[..., x[0, 0] > 0], [X3]),
    ("mask-3d-trailing", lambda L, x: x[:, x[0] > 0], [X3]),
    ("mask-with-slice", lambda L, x, m: x[m, 1:], [X, ROWMASK]),
    ("mask-with-int", lambda L, x: x[x[:, 0, 0] > -5, 1], [X3]),
    ("mask-with-none", lambda L, x, m: x[None, m], [X, ROWMASK]),
    ("mask-all-false", lambda L, x: x[x > 100], [X]),
    ("mask-int-tensor", lambda L, i: i[i > 2], [I]),
    ("masked_select", lambda L, x, m: x.masked_select(m), [X, MASK]),
    ("masked_select-bcast", lambda L, x, m: L.masked_select(x, m), [X, np.array([True, False, False, True, True])]),
    ("masked_select-3d", lambda L, x: L.masked_select(x, x < 0), [X3]),
    # repeat_interleave
    ("repeat_interleave-int", lambda L, x: x.repeat_interleave(2), [X]),
    ("repeat_interleave-int-dim", lambda L, x: x.repeat_interleave(3, dim=1), [X]),
    ("repeat_interleave-int-neg-dim", lambda L, x: L.repeat_interleave(x, 2, dim=-3), [X3]),
    ("repeat_interleave-tensor", lambda L, x: x.repeat_interleave(L.tensor([1, 0, 3]), dim=0), [X]),
    ("repeat_interleave-tensor-flat", lambda L, i: L.repeat_interleave(i[:2, :2], L.tensor([2, 0, 1, 3])), [I]),
    ("repeat_interleave-tensor-1elem", lambda L, x: x.repeat_interleave(L.tensor([2]), dim=1), [X]),
    ("repeat_interleave-repeats-only", lambda L, i: L.repeat_interleave(i[0]), [I]),
    ("repeat_interleave-zero", lambda L, x: x.repeat_interleave(0, dim=0), [X]),
    ("repeat_interleave-int64", lambda L, i: i.repeat_interleave(2, dim=0), [I]),
    # roll
    ("roll-flat", lambda L, x: x.roll(2), [X]),
    ("roll-dims", lambda L, x: L.roll(x, (1, -2), (0, 1)), [X]),
    ("roll-big-shift", lambda L, x: x.roll(13, -1), [X3]),
    ("roll-same-dim-twice", lambda L, x: x.roll((1, 2), (1, 1)), [X3]),
    ("roll-int", lambda L, i: L.roll(i, -1, 0), [I]),
    # bincount
    ("bincount", lambda L, i: L.bincount(i), [IDX]),
    ("bincount-weights", lambda L, i, w: i.bincount(w), [IDX, V]),
    ("bincount-int-weights", lambda L, i: L.bincount(i, i), [IDX]),
    ("bincount-minlength", lambda L, i: L.bincount(i, minlength=9), [IDX]),
    ("bincount-empty", lambda L, i: L.bincount(i[:0], minlength=3), [IDX]),
    # index_add / index_copy / index_fill
    ("index_add", lambda L, x, s: x.index_add(0, L.tensor([2, 0, 2]), s), [X, SRC35]),
    ("index_add-dim1-alpha", lambda L, x, s: L.index_add(x, 1, L.tensor([4, 4]), s, alpha=2),
     [X, SRC32]),
    ("index_copy", lambda L, x, s: x.index_copy(1, L.tensor([3, 0]), s), [X, SRC32]),
    ("index_fill", lambda L, x: x.index_fill(1, L.tensor([0, 3, 3]), -2.0), [X]),
    ("index_fill-neg-index", lambda L, x: L.index_fill(x, 0, L.tensor([-1]), 5.0), [X3]),
    ("index_fill-tensor-value", lambda L, i: i.index_fill(0, L.tensor([1]), L.tensor(7)), [I]),
    # diagonals
    ("diag-vec", lambda L, v: L.diag(v), [V]),
    ("diag-vec-k1", lambda L, v: v.diag(1), [V]),
    ("diag-vec-k-neg", lambda L, v: L.diag(v, -2), [V]),
    ("diag-vec-bool", lambda L, v: L.diag(v > 0, 1), [V]),
    ("diag-mat", lambda L, x: L.diag(x), [XO]),
    ("diag-mat-k", lambda L, x: x.diag(2), [XO]),
    ("diag-mat-k-neg", lambda L, x: x.diag(-3), [XO]),
    ("diagonal-3d", lambda L, x: L.diagonal(x, 1, 0, 2), [X3]),
    ("diagonal-neg-dims", lambda L, x: x.diagonal(-1, -1, -2), [X3]),
    ("diagonal-out-of-range", lambda L, x: x.diagonal(9), [X]),
    ("trace", lambda L, x: x.trace(), [XO]),
    ("trace-int", lambda L, i: L.trace(i), [I]),
    # cumprod / count_nonzero
    ("cumprod", lambda L, x: x.cumprod(1), [ZEROS]),
    ("cumprod-dim0", lambda L, x: L.cumprod(x, dim=0), [X3]),
    ("cumprod-int", lambda L, i: i.cumprod(-1), [I]),
    ("cumprod-bool", lambda L, x: (x > -1).cumprod(0), [X]),
    ("cumprod-dtype", lambda L, i: L.cumprod(i, 0, dtype=L.float64), [I]),
    ("count_nonzero", lambda L, z: z.count_nonzero(), [ZEROS]),
    ("count_nonzero-dim", lambda L, z: L.count_nonzero(z, dim=1), [ZEROS]),
    ("count_nonzero-dims", lambda L, i: L.count_nonzero(i.reshape(2, 3, 4), dim=(0, 2)), [I]),
    # products
    ("outer", lambda L, v, w: v.outer(w), [V, V[:4]]),
    ("addmm", lambda L, c, a, b: L.addmm(c, a, b, beta=0.5, alpha=2), [X[:, 0:1], M34, M45]),
    ("addmm-method", lambda L, c, a, b: c.addmm(a, b), [X, M34, M45]),
    ("addmm-beta0-nan", lambda L, c, a, b: L.addmm(c * float("nan"), a, b, beta=0), [X, M34, M45]),
    ("baddbmm", lambda L, c, a, b: L.baddbmm(c, a, b, alpha=0.5), [X, B1, B2]),
    ("baddbmm-method", lambda L, c, a, b: c.baddbmm(a, b, beta=2), [X[0], B1, B2]),
    ("addmv", lambda L, c, a, v: L.addmv(c, a, v, beta=3), [V[:3], M34, V[:4]]),
    ("addbmm", lambda L, c, a, b: L.addbmm(c, a, b), [X[:, :5], B1, B2]),
    # aliases and small compositions
    ("absolute", lambda L, x: x.absolute() + L.absolute(x), [X]),
    ("negative", lambda L, i: L.negative(i) * i.negative(), [I]),
    ("true_divide-int", lambda L, i: L.true_divide(i, 3), [I]),
    ("sub-alpha", lambda L, x, y: L.sub(x, y, alpha=2), [X, V[:5]]),
    ("add-alpha", lambda L, x, y: L.add(x, y, alpha=-0.5), [X, V[:5]]),
    ("subtract", lambda L, x, y: x.subtract(y, alpha=3), [X, V[:5]]),
    ("multiply", lambda L, i, x: L.multiply(i[:3, :5], x), [I, X]),
    ("divide-floor", lambda L, i: L.divide(i, 2, rounding_mode="floor") + i.divide(3, rounding_mode="trunc"), [I - 2]),
    ("divide", lambda L, x, y: x.divide(y), [X, V[:5]]),
    ("greater-less", lambda L, x: L.greater(x, 0.1) & x.less(0.5), [X]),
    ("greater_equal-less_equal", lambda L, i: i.greater_equal(2) ^ L.less_equal(i, 3), [I]),
    ("not_equal", lambda L, i: L.not_equal(i, 2), [I]),
    ("eq-method", lambda L, i: i.eq(3), [I]),
    ("clamp_min", lambda L, x: x.clamp_min(0.2), [X]),
    ("clamp_max", lambda L, x: L.clamp_max(x, -0.1), [X]),
    ("clamp_min-tensor", lambda L, x, v: L.clamp_min(x, v), [X, V[:5]]),
    ("exp2", lambda L, x: L.exp2(x), [X]),
    ("exp2-int", lambda L, i: i.exp2(), [I]),
    ("trunc", lambda L, x: (x * 3).trunc(), [X]),
    ("fix", lambda L, x: L.fix(x * 3), [X]),
    ("trunc-int", lambda L, i: L.trunc(i), [I]),
    ("frac", lambda L, x: (x * 3).frac(), [X]),
    ("fmod", lambda L, x: L.fmod(x * 4, 1.5), [X]),
    ("fmod-int", lambda L, i: (i - 2).fmod(3), [I]),
    ("fmod-tensor", lambda L, x, y: x.fmod(y), [X, V[:5]]),
    ("addcmul", lambda L, x, a, b: L.addcmul(x, a, b, value=0.5), [X, X * 2, V[:5]]),
    ("addcdiv", lambda L, x, a, b: x.addcdiv(a, b), [X, X * 2, V[:5]]),
    ("hypot", lambda L, x, y: L.hypot(x, y), [X, V[:5]]),
    ("copysign", lambda L, x, y: L.copysign(x, y), [X, np.array([1.0, -0.0, 0.0, -2.0, 3.0], np.float32)]),
    ("copysign-int", lambda L, i: i.copysign(-1), [I]),
    ("atan2", lambda L, y, x: L.atan2(y, x), [X, V[:5]]),
    ("atan2-zeros", lambda L, y, x: y.atan2(x), [np.array([0.0, -0.0, 0.0, -0.0, 1.0, -1.0, 0.0, -0.0], np.float32),
                                                np.array([0.0, 0.0, -0.0, -0.0, 0.0, -0.0, -1.0, -1.0], np.float32)]),
    ("atan2-int", lambda L, i: L.arctan2(i, i - 2), [I]),
    ("trig-methods", lambda L, x: x.tan() + x.atan() + x.sinh() + x.cosh() + x.asinh(), [X]),
    ("arc-methods", lambda L, x: (x * 0.5).asin() + (x * 0.5).arccos() + (x * 0.5).arctanh() + (x.abs() + 1).acosh(),
     [X]),
    ("sgn", lambda L, x: x.sgn(), [X]),
    ("isfinite", lambda L, t: L.isfinite(t), [NANS]),
    ("isfinite-int", lambda L, i: i.isfinite(), [I]),
    ("isposinf-isneginf", lambda L, t: L.isposinf(t) | t.isneginf(), [NANS]),
    ("nan_to_num", lambda L, t: L.nan_to_num(t), [NANS]),
    ("nan_to_num-values", lambda L, t: t.nan_to_num(nan=1.0, posinf=2.0, neginf=-3.0), [NANS]),
    ("isclose", lambda L, x, y: L.isclose(x, y), [X, X + 1e-6]),
    ("isclose-tol", lambda L, x, y: x.isclose(y, rtol=0.0, atol=0.05), [X, X + np.float32(0.04) * V[:5]]),
    ("isclose-nan-inf", lambda L, t: L.isclose(t, t, equal_nan=True), [NANS]),
    ("isclose-nan-unequal", lambda L, t: L.isclose(t, t), [NANS]),
    ("isclose-int", lambda L, i: L.isclose(i, i + 1, rtol=0.0, atol=1.0), [I]),
    ("type_as", lambda L, i, x: i.type_as(x), [I, X]),
    ("mT", lambda L, x: x.mT, [X3]),
    ("mH", lambda L, x: x.mH, [X]),
    ("ravel", lambda L, x: x.ravel(), [X3]),
    ("swapdims-moveaxis", lambda L, x: x.swapdims(0, 2).moveaxis(0, 1), [X3]),
    ("take_along_dim-method", lambda L, x: x.take_along_dim(x.argsort(1), 1), [X]),
    ("broadcast_to-method", lambda L, v: v.broadcast_to((2, 7)), [V]),
    ("new_zeros", lambda L, x: x.new_zeros(2, 3), [X64]),
    ("new_ones-tuple", lambda L, i: i.new_ones((3,)), [I]),
    ("new_full", lambda L, x: x.new_full((2, 2), 3.5), [X]),
    ("new_full-dtype", lambda L, x: x.new_full((2,), 3, dtype=L.int32), [X]),
    ("new_tensor", lambda L, i: i.new_tensor([1.7, 2.2]), [I]),
    ("new_empty-shape", lambda L, x: x.new_empty(4, 1) * 0, [X]),
]


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [o for item in out for o in _flat(item)]
    return [out]


def _torch_np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


@pytest.mark.parametrize("name,fn,inputs", ROWS, ids=[r[0] for r in ROWS])
def test_matches_torch(name, fn, inputs):
    got = _flat(fn(ok, *[_to_lib(ok, a) for a in inputs]))
    want = [_torch_np(w) for w in _flat(fn(torch, *[_to_lib(torch, a) for a in inputs]))]
    assert len(got) == len(want), f"{name}: {len(got)} outputs, torch gives {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        arr = g.numpy()
        assert arr.dtype == w.dtype, f"{name}[{k}]: dtype {arr.dtype}, torch gives {w.dtype}"
        assert g.dtype == arr.dtype, f"{name}[{k}]: declared dtype {g.dtype}, computed {arr.dtype}"
        assert arr.shape == w.shape, f"{name}[{k}]: shape {arr.shape}, torch gives {w.shape}"
        static = [(d, n) for d, n in zip(g.shape, arr.shape) if isinstance(d, int)]
        assert len(g.shape) == arr.ndim and all(d == n for d, n in static), f"{name}[{k}]: built shape {g.shape}"
        np.testing.assert_allclose(arr, w, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=f"{name}[{k}]")


# ----- gradients against torch ---------------------------------------------------------------------
def _first(out):
    return out[0] if isinstance(out, tuple) else out


# (id, fn(lib, *inputs) -> one tensor, inputs, indices of the inputs to differentiate)
GRAD_ROWS = [
    ("masked_fill", lambda L, x, m: x.masked_fill(m, 0.5), [X, MASK], [0]),
    ("masked_fill-tensor-value", lambda L, x, v: x.masked_fill(x > 0, v), [X, SCALAR], [0, 1]),
    ("topk", lambda L, x: x.topk(3).values, [XO], [0]),
    ("topk-smallest-dim0", lambda L, x: L.topk(x, 2, 0, largest=False).values, [XO], [0]),
    ("sort", lambda L, x: x.sort(dim=0).values, [XO], [0]),
    ("sort-desc", lambda L, x: x.sort(descending=True).values, [X3], [0]),
    ("kthvalue", lambda L, x: x.kthvalue(3, 0).values, [XO], [0]),
    ("median-dim", lambda L, x: x.median(1).values, [XO], [0]),
    ("median-all", lambda L, x: x.median(), [XO], [0]),
    ("tril", lambda L, x: x.tril(-1), [XO], [0]),
    ("triu-3d", lambda L, x: L.triu(x, 1), [X3], [0]),
    ("normalize", lambda L, x: F(L).normalize(x), [X], [0]),
    ("normalize-p1", lambda L, x: F(L).normalize(x, 1, -1), [X3], [0]),
    ("mask", lambda L, x, m: x[m], [X, MASK], [0]),
    ("mask-rows", lambda L, x: x[x[:, 0] > -0.5], [X], [0]),
    ("mask-dim1", lambda L, x: x[:, x[0] > 0], [X3], [0]),
    ("mask-dim2", lambda L, x: x[:, :, x[0, 0] > 0], [X3], [0]),
    ("mask-numpy", lambda L, x: x[MASK] * 2, [X], [0]),
    ("masked_select", lambda L, x, m: L.masked_select(x, m), [X, np.array([True, False, False, True, True])], [0]),
    ("repeat_interleave-int", lambda L, x: x.repeat_interleave(2, 1), [X], [0]),
    ("repeat_interleave-tensor", lambda L, x: x.repeat_interleave(L.tensor([2, 0, 1]), 0), [X], [0]),
    ("roll", lambda L, x: L.roll(x, (1, -2), (0, 1)), [X], [0]),
    ("roll-flat", lambda L, x: x.roll(4), [X3], [0]),
    ("cumprod-zeros", lambda L, x: x.cumprod(1), [ZEROS], [0]),
    ("cumprod-dim0", lambda L, x: x.cumprod(0), [X3], [0]),
    ("diag-vec", lambda L, v: L.diag(v, 1), [V], [0]),
    ("diag-mat", lambda L, x: x.diag(-1), [XO], [0]),
    ("diagonal", lambda L, x: x.diagonal(1, 0, 2), [X3], [0]),
    ("trace", lambda L, x: x.trace(), [XO], [0]),
    ("index_add", lambda L, x, s: x.index_add(0, L.tensor([2, 0, 2]), s, alpha=1.5),
     [X, R.standard_normal((3, 5)).astype(np.float32)], [0, 1]),
    ("index_copy", lambda L, x, s: x.index_copy(1, L.tensor([4, 1]), s), [X, SRC32], [0, 1]),
    ("index_fill", lambda L, x, v: x.index_fill(1, L.tensor([0, 3, 3]), v),
     [X, SCALAR], [0, 1]),
    ("atan2", lambda L, y, x: L.atan2(y, x), [X, V[:5]], [0, 1]),
    ("hypot", lambda L, x, y: x.hypot(y), [X, V[:5]], [0, 1]),
    ("copysign", lambda L, x, y: x.copysign(y), [X, V[:5]], [0]),
    ("fmod", lambda L, x, y: L.fmod(x * 3, y), [X, V[:5]], [0, 1]),
    ("frac", lambda L, x: (x * 3).frac(), [X], [0]),
    ("exp2", lambda L, x: x.exp2(), [X], [0]),
    ("addcmul", lambda L, x, a, b: x.addcmul(a, b, value=2), [X, X * 2, V[:5]], [0, 1, 2]),
    ("addcdiv", lambda L, x, a, b: L.addcdiv(x, a, b, value=-1), [X, X * 2, V[:5] + 3], [0, 1, 2]),
    ("baddbmm", lambda L, c, a, b: L.baddbmm(c, a, b, beta=0.5, alpha=2), [X, B1, B2], [0, 1, 2]),
    ("addmv", lambda L, c, a, v: c.addmv(a, v), [V[:3], M34, V[:4]], [0, 1, 2]),
    ("addbmm", lambda L, c, a, b: L.addbmm(c, a, b), [X[:, :5], B1, B2], [0, 1, 2]),
    ("outer", lambda L, v, w: L.outer(v, w), [V, V[:4]], [0, 1]),
    ("clamp_min", lambda L, x: x.clamp_min(0.1), [X], [0]),
    ("mT", lambda L, x: x.mT * 2, [X3], [0]),
    ("sub-alpha", lambda L, x, y: L.sub(x, y, alpha=3), [X, V[:5]], [0, 1]),
]


@pytest.mark.parametrize("name,fn,inputs,wrt", GRAD_ROWS, ids=[r[0] for r in GRAD_ROWS])
def test_gradients_match_torch(name, fn, inputs, wrt):
    ts = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(inputs)]
    os_ = [ok.tensor(a, requires_grad=i in wrt) for i, a in enumerate(inputs)]
    ty = _first(fn(torch, *ts))
    oy = _first(fn(ok, *os_))
    g = np.random.default_rng(1).standard_normal(tuple(ty.shape)).astype(np.float32)
    tg = torch.autograd.grad(ty, [ts[i] for i in wrt], torch.tensor(g))
    og = ok.grad(oy, [os_[i] for i in wrt], grad_outputs=ok.tensor(g))
    for i, a, b in zip(wrt, og, tg):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=f"{name}: grad of input {i}")


# ----- finite differences in float64 (onnx.reference) ----------------------------------------------
S = R.standard_normal((3, 4))
FD_ROWS = [
    ("atan2", lambda y, x: ok.atan2(y, x), [S, S[::-1] + 0.3]),
    ("hypot", lambda x, y: ok.hypot(x, y), [S, S[::-1]]),
    ("cumprod", lambda x: x.cumprod(1), [S]),
    ("mask", lambda x: (x[x > 0.1] ** 3).sum(), [S]),
    ("masked_fill", lambda x: x.masked_fill(x < 0, 0.0) * x, [S]),
    ("sort", lambda x: x.sort(1, descending=True).values * ok.tensor(np.arange(4.0)), [S]),
    ("topk", lambda x: x.topk(2, 0).values, [S]),
    ("repeat_interleave-tensor", lambda x: (x.repeat_interleave(ok.tensor([1, 3, 0]), 0) ** 3).sum(), [S]),
    ("roll", lambda x: x.roll((1, 3), (0, 1)), [S]),
    ("diag", lambda x: ok.diag(x.diagonal(1), -1) @ ok.diag(x[0]), [S]),
    ("index_fill", lambda x: x.index_fill(1, ok.tensor([2, 0]), x[0, 0]), [S]),
    ("index_add", lambda x, s: x.index_add(1, ok.tensor([1, 1]), s), [S, S[:, :2] * 2]),
    ("normalize", lambda x: ok.nn.functional.normalize(x, dim=0), [S]),
    ("fmod-frac", lambda x, y: ok.fmod(x * 3, y + 2) + (x * 5).frac(), [S, S[::-1] ** 2]),
    ("tril", lambda x: (x @ x.T).tril(), [S]),
]


@pytest.mark.parametrize("name,fn,inputs", FD_ROWS, ids=[r[0] for r in FD_ROWS])
def test_finite_differences(name, fn, inputs):
    gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


# ----- export with a symbolic batch dim --------------------------------------------------------------
# (id, fn(lib, x), feature shape, input dtype); x's first dim is the symbolic "N"
EXPORT_ROWS = [
    ("topk", lambda L, x: x.topk(2, -1), (5,), "float32"),
    ("sort-symbolic-dim", lambda L, x: x.sort(0, descending=True), (3,), "float32"),
    ("argsort-ascending", lambda L, x: x.argsort(0), (3,), "float32"),
    ("masked_fill", lambda L, x: x.masked_fill(x < 0, -9.0), (4,), "float32"),
    ("tril", lambda L, x: x.tril(1), (4, 4), "float32"),
    ("mask-index", lambda L, x: x[x > 0], (3,), "float32"),
    ("mask-rows", lambda L, x: x[x.sum(1) > 0] * 2, (3,), "float32"),
    ("nonzero", lambda L, x: (x > 0).nonzero(), (3,), "float32"),
    ("unique", lambda L, x: L.unique(x, return_inverse=True, return_counts=True), (3,), "int64"),
    ("repeat_interleave-int", lambda L, x: x.repeat_interleave(2, dim=0), (3,), "float32"),
    ("repeat_interleave-tensor", lambda L, x: x[:, 1:].repeat_interleave(x[:, 0].clamp(0, 3), dim=0), (3,), "int64"),
    ("roll-symbolic", lambda L, x: x.roll((2, -1), (0, 1)), (3,), "float32"),
    ("one_hot", lambda L, x: F(L).one_hot(x, 5), (2,), "int64"),
    ("normalize", lambda L, x: F(L).normalize(x), (4,), "float32"),
    ("bincount", lambda L, x: L.bincount(x.flatten()), (2,), "int64"),
    ("cumprod-symbolic", lambda L, x: x.cumprod(0), (3,), "float32"),
    ("diag-symbolic", lambda L, x: L.diag(x[:, 0], 1) + L.diag(x[:, 1], -1), (2,), "float32"),
    ("sort-nan-key", lambda L, x: L.sort(x.log(), dim=0, stable=True), (3,), "float32"),
    ("index_fill-symbolic", lambda L, x: x.index_fill(0, L.tensor([0, -1]), 1.5), (3,), "float32"),
    ("index_add", lambda L, x: x.index_add(1, L.tensor([0, 0]), x[:, 1:]), (3,), "float32"),
    ("new_zeros-symbolic", lambda L, x: x.new_zeros(x.shape[0], 2) + x[:, :2], (3,), "float32"),
    ("masked_select", lambda L, x: L.masked_select(x, x > 0.5), (3,), "float32"),
    ("isclose", lambda L, x: L.isclose(x, x * 1.000001), (3,), "float32"),
    ("atan2", lambda L, x: L.atan2(x, x.flip(0)), (3,), "float32"),
]


def _batch(rng, n, feat, dtype):
    if dtype == "int64":
        return rng.integers(0, 5, (n,) + feat).astype(np.int64)
    return rng.standard_normal((n,) + feat).astype(np.float32)


@pytest.mark.parametrize("name,fn,feat,dtype", EXPORT_ROWS, ids=[r[0] for r in EXPORT_ROWS])
def test_export_symbolic_batch(name, fn, feat, dtype):
    model = ok.export(lambda x: fn(ok, x), [ok.Input("x", ("N",) + feat, dtype)])
    onnx.checker.check_model(model, full_check=True)
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    sess = ok.Session(model, device="cpu")
    rng = np.random.default_rng(3)
    for n in (2, 5):
        data = _batch(rng, n, feat, dtype)
        got = list(sess.run({"x": data}).values())
        want = [_torch_np(w) for w in _flat(fn(torch, torch.tensor(data)))]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape, f"{name} N={n}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=f"{name} at N={n}")


def test_mask_index_exports_nonzero_gathernd():
    model = ok.export(lambda x: x[x > 0], [ok.Input("x", ("N", 3))])
    ops = [n.op_type for n in model.graph.node]
    assert {"NonZero", "Transpose", "GatherND"} <= set(ops)
    out = model.graph.output[0].type.tensor_type.shape.dim
    assert len(out) == 1 and out[0].dim_param and out[0].dim_param != "N"


def test_mask_index_gradient_in_exported_training_graph():
    """x[mask] differentiates through GatherND (ScatterND into zeros), also on a symbolic batch."""
    x = ok.Input("x", ("N", 3))
    w = ok.tensor(np.ones(3, np.float32), requires_grad=True)
    gw, = ok.grad(((x * w)[x > 0] ** 2).sum(), [w])
    model = ok.export(lambda t: gw, [x])
    onnx.checker.check_model(model, full_check=True)
    sess = ok.Session(model)
    for n in (4, 7):
        data = R.standard_normal((n, 3)).astype(np.float32)
        np.testing.assert_allclose(sess.run({"x": data})["output"], (2 * data ** 2 * (data > 0)).sum(0), rtol=1e-5)


# ----- Python results, properties and sampling ----------------------------------------------------------
def test_python_valued_results():
    x = ok.tensor(X)
    assert ok.allclose(x, x + 1e-7) is True and x.allclose(x + 1.0) is False
    assert ok.allclose(ok.tensor(NANS), ok.tensor(NANS), equal_nan=True) is True
    assert ok.equal(x, ok.tensor(X.copy())) is True and ok.equal(x, x[:2]) is False and x.equal(x + 1) is False
    assert x.numel() == 15 and ok.numel(x) == 15 and x.nelement() == 15
    assert x.element_size() == 4 and ok.tensor(I).element_size() == 8
    assert x.is_floating_point() and not ok.tensor(I).is_floating_point() and ok.is_floating_point(x)
    assert ok.is_tensor(x) and not ok.is_tensor(X)
    assert x.ndimension() == 2


def test_from_numpy_keeps_dtype_and_copies():
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    t = ok.from_numpy(a)
    assert t.dtype == np.int32 and t.shape == (2, 3)
    a[:] = 0
    np.testing.assert_array_equal(t.numpy(), np.arange(6).reshape(2, 3))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ok.from_numpy([1, 2])


def test_new_factories_are_leaves():
    x = ok.tensor(X)
    z = x.new_zeros(2, 3, requires_grad=True)
    assert z.requires_grad and z.is_leaf and z.dtype == np.float32
    s = ok.Input("s", ("N", 4)).new_ones(ok.Input("s", ("N", 4)).shape)
    assert str(s.shape[0]) == "N" and s.shape[1] == 4


def test_topk_sort_return_named_tuples():
    r = ok.tensor(XO).topk(2)
    assert r.values is r[0] and r.indices is r[1] and type(r).__name__ == "topk"
    s = ok.sort(ok.tensor(XO))
    values, indices = s
    assert s.values is values and type(s).__name__ == "sort"


def test_randperm_is_seeded():
    ok.manual_seed(5)
    a = ok.randperm(10).numpy()
    ok.manual_seed(5)
    b = ok.randperm(10)
    assert b.dtype == np.int64 and sorted(a) == list(range(10))
    np.testing.assert_array_equal(a, b.numpy())
    assert ok.randperm(4, dtype=ok.int32).dtype == np.int32
    assert ok.randperm(0).shape == (0,)


def test_multinomial_seeded_and_distributed():
    p = ok.tensor(np.array([[0.1, 0.0, 0.9], [0.5, 0.5, 0.0]], np.float32))
    ok.manual_seed(1)
    a = p.multinomial(2000, replacement=True).numpy()
    ok.manual_seed(1)
    b = ok.multinomial(p, 2000, replacement=True).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 2000) and a.dtype == np.int64
    assert not (a[0] == 1).any() and not (a[1] == 2).any()
    assert abs((a[0] == 2).mean() - 0.9) < 0.05 and abs((a[1] == 0).mean() - 0.5) < 0.05
    draws = ok.multinomial(ok.tensor(np.array([1.0, 2.0, 0.0, 4.0], np.float32)), 3).numpy()
    assert draws.shape == (3,) and sorted(draws) == [0, 1, 3]  # no replacement: each positive weight once
    tail = ok.multinomial(ok.tensor(np.array([1.0, 0.0], np.float32)), 2).numpy()
    np.testing.assert_array_equal(tail, [0, 1])  # zero-weight categories come last, as torch


def test_bernoulli_seeded():
    probs = ok.tensor(np.full((1000,), 0.25, np.float32))
    ok.manual_seed(2)
    a = probs.bernoulli()
    ok.manual_seed(2)
    b = ok.bernoulli(probs)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert abs(a.numpy().mean() - 0.25) < 0.05 and set(np.unique(a.numpy())) <= {0.0, 1.0}
    assert ok.bernoulli(ok.tensor(np.zeros(3, np.float32)), p=1.0).numpy().tolist() == [1.0, 1.0, 1.0]


# ----- bad inputs -------------------------------------------------------------------------------------------
SYM = ok.Input("x", ("N", 3), "int64")
ERRORS = [
    ("masked_fill-int-mask", lambda: ok.tensor(X).masked_fill(ok.tensor(I[:3, :5]), 1.0), TypeError,
     "only supports boolean masks"),
    ("masked_fill-1d-value", lambda: ok.tensor(X).masked_fill(ok.tensor(MASK), ok.tensor(V)), ValueError,
     "0-dimensional value tensor"),
    ("tril-1d", lambda: ok.tril(ok.tensor(V)), ValueError, "at least 2 dimensions"),
    ("topk-k-too-large", lambda: ok.tensor(X).topk(6), ValueError, r"k=6 out of range for dim -1 of size 5"),
    ("kthvalue-k0", lambda: ok.tensor(X).kthvalue(0), ValueError, "out of range"),
    ("one_hot-symbolic", lambda: ok.nn.functional.one_hot(SYM), ValueError, "pass num_classes explicitly"),
    ("one_hot-out-of-range", lambda: ok.nn.functional.one_hot(ok.tensor(IDX), 3), ValueError,
     "smaller than num_classes"),
    ("one_hot-negative", lambda: ok.nn.functional.one_hot(ok.tensor(IDX - 1)), ValueError, "non-negative"),
    ("one_hot-float", lambda: ok.nn.functional.one_hot(ok.tensor(X)), TypeError, "int64"),
    ("one_hot-empty-infer", lambda: ok.nn.functional.one_hot(ok.tensor(IDX[:0])), ValueError, "empty tensor"),
    ("bincount-2d", lambda: ok.bincount(ok.tensor(I)), ValueError, "1-d non-negative integral"),
    ("bincount-negative", lambda: ok.bincount(ok.tensor(IDX - 3)), ValueError, "negative"),
    ("bincount-weights-length", lambda: ok.bincount(ok.tensor(IDX), ok.tensor(V[:3])), ValueError, "same length"),
    ("repeat_interleave-size", lambda: ok.tensor(X).repeat_interleave(ok.tensor([1, 2]), 0), ValueError,
     r"repeats.size\(0\) = 2 and input.size\(0\) = 3"),
    ("repeat_interleave-negative", lambda: ok.tensor(X).repeat_interleave(-1), ValueError, "can not be negative"),
    ("repeat_interleave-negative-tensor", lambda: ok.tensor(X).repeat_interleave(ok.tensor([1, -1, 1]), 0),
     ValueError, "can not be negative"),
    ("roll-align", lambda: ok.tensor(X).roll((1, 2), 0), ValueError, "shifts and dimensions must align"),
    ("roll-no-dims", lambda: ok.tensor(X).roll((1, 2)), ValueError, "shifts and dimensions must align"),
    ("mask-shape", lambda: ok.tensor(X)[ok.tensor(np.ones(4, bool))], IndexError,
     r"The shape of the mask \[4\] at index 0 does not match the shape of the indexed tensor \[3, 5\] at index 0"),
    ("mask-numpy-shape", lambda: ok.tensor(X)[:, np.ones(4, bool)], IndexError, "does not match the shape"),
    ("mask-0d", lambda: ok.tensor(X)[ok.tensor(np.bool_(True))], IndexError, "0-d boolean index"),
    ("mask-too-many", lambda: ok.tensor(V)[np.ones((7, 1), bool)], IndexError, "too many indices"),
    ("mT-1d", lambda: ok.tensor(V).mT, ValueError, "only supported on matrices"),
    ("diagonal-same-dims", lambda: ok.tensor(X3).diagonal(0, 1, 1), ValueError, "cannot be identical"),
    ("diagonal-symbolic", lambda: ok.Input("s", ("N", 3)).diagonal(), ValueError, "must be static"),
    ("diag-3d", lambda: ok.diag(ok.tensor(X3)), ValueError, "1-D or 2-D"),
    ("trace-3d", lambda: ok.tensor(X3).trace(), ValueError, "expected a matrix"),
    ("index_add-shape", lambda: ok.tensor(X).index_add(0, ok.tensor([0, 1]), ok.tensor(X)), ValueError,
     "does not match input"),
    ("index_fill-2d-index", lambda: ok.tensor(X).index_fill(0, ok.tensor(I), 1.0), ValueError, "should be a vector"),
    ("isclose-dtypes", lambda: ok.isclose(ok.tensor(X), ok.tensor(I[:3, :5])), TypeError, "does not match"),
    ("hypot-int", lambda: ok.hypot(ok.tensor(I), ok.tensor(I)), TypeError, "floating-point"),
    ("frac-int", lambda: ok.tensor(I).frac(), TypeError, "floating-point"),
    ("multinomial-too-many", lambda: ok.multinomial(ok.tensor(V.__abs__()), 8), ValueError,
     "without replacement"),
    ("multinomial-negative", lambda: ok.multinomial(ok.tensor(V), 1), ValueError, "element < 0"),
    ("multinomial-zero-sum", lambda: ok.multinomial(ok.tensor(np.zeros(3, np.float32)), 1, True), ValueError,
     "sum of probabilities"),
    ("multinomial-symbolic", lambda: ok.multinomial(ok.Input("p", ("N", 3)), 1), ValueError,
     "depends on a graph input"),
    ("randperm-negative", lambda: ok.randperm(-1), ValueError, "non-negative"),
    ("where-one-branch", lambda: ok.where(ok.tensor(MASK), ok.tensor(X)), TypeError, "both x and y"),
    ("normalize-out", lambda: ok.nn.functional.normalize(ok.tensor(X), out=ok.tensor(X)), ValueError, "out="),
]


@pytest.mark.parametrize("what,call,exc,match", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_inputs_raise_clearly(what, call, exc, match):
    with pytest.raises(exc, match=match):
        call()
