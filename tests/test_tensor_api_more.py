"""More of torch's tensor API against torch: bitwise shifts, elementwise functions (erfc, logaddexp, xlogy,
sinc, fmax, frexp, gcd, ...), running reductions (cummax, logcumsumexp), NaN-ignoring reductions and
quantiles, splits and stacks, scatters (masked_scatter, index_put, scatter_reduce, diagonal_scatter),
products and distances (kron, tensordot, cross, cdist, det), searching (searchsorted, isin), im2col
(F.unfold/F.fold), grid_sample/affine_grid, windows and creation functions, torch's alternative entry points
(convolution, native_*, *_with_indices), in-place variants (value-preserving and shape-changing),
retain_grad and grad_fn. Rows are `fn(lib, *inputs)` run with lib=onnxkit and lib=torch; outputs (tuples
flattened) must agree in values, dtype and shape. Gradients are compared with torch and with float64 finite
differences; a subset is exported with a symbolic batch dim and run in onnxruntime at two batch sizes."""
import warnings

import numpy as np
import onnx
import pytest
import torch

import onnxkit as ok
from gradcheck import gradcheck

R = np.random.default_rng(7)
X = R.standard_normal((3, 5)).astype(np.float32)
Y = R.standard_normal((3, 5)).astype(np.float32)
X3 = R.standard_normal((2, 3, 4)).astype(np.float32)
V3 = R.standard_normal((4, 3)).astype(np.float32)
W3 = R.standard_normal((4, 3)).astype(np.float32)
SQ = (R.standard_normal((3, 3)) * 0.6).astype(np.float32)
P = R.uniform(0.05, 0.95, (3, 5)).astype(np.float32)
POS = R.uniform(0.1, 3.0, (3, 5)).astype(np.float32)
I = R.integers(-20, 20, (3, 4)).astype(np.int64)
I32 = R.integers(-9, 9, (3, 4)).astype(np.int32)
U8 = R.integers(0, 255, (3, 4)).astype(np.uint8)
SH = np.array([[0, 1, 2, 3], [4, 1, 0, 2], [3, 3, 1, 0]], np.int64)
NANS = np.array([[1.0, np.nan, 3.0, -1.0, np.nan, 5.0], [0.0, -2.0, 4.0, 4.0, 1.0, np.inf]], np.float32)
RUNS = np.array([[1, 1, 2, 2, 3, 1, 1], [1, 1, 2, 2, 3, 1, 2]], np.int64)
ZS = np.array([[0.0, -0.0, 1.5, -2.0], [0.0, 2.0, -1.0, 0.0]], np.float32)
SORTED = np.sort(R.standard_normal((2, 6)).astype(np.float32), 1)
IMG = R.standard_normal((2, 3, 5, 6)).astype(np.float32)
BIG = np.array([[-200.0, 0.0, 3.0, -50.0, 90.0]], np.float32)


def F(lib):
    return lib.nn.functional


def _to_lib(lib, a):
    if not isinstance(a, np.ndarray):
        return a
    return ok.tensor(a) if lib is ok else torch.tensor(a)


def _cols(L, x):  # the (N, C*k*k, L) columns of IMG for fold rows
    return F(L).unfold(x, (2, 3), stride=(1, 2), padding=1)


# (id, fn(lib, *inputs), inputs)
ROWS = [
    # bitwise
    ("bitwise_and-method", lambda L, i, j: i.bitwise_and(j) | i.bitwise_or(3) ^ j.bitwise_xor(i), [I, SH]),
    ("bitwise_not-method", lambda L, i: i.bitwise_not(), [I]),
    ("bitwise_not-bool", lambda L, x: (x > 0).bitwise_not(), [X]),
    ("left_shift-int64", lambda L, i, s: L.bitwise_left_shift(i, s), [I[:, :4], SH]),
    ("right_shift-int64-neg", lambda L, i, s: L.bitwise_right_shift(i, s), [I[:, :4], SH]),
    ("shift-int32-scalar", lambda L, i: (i << 2) + (i >> 1), [I32]),
    ("shift-uint8", lambda L, u: u.bitwise_left_shift(1) + u.bitwise_right_shift(3), [U8]),
    ("shift-method-int32", lambda L, i: i.bitwise_right_shift(2), [I32]),
    # casts
    ("byte-char-short", lambda L, i: (i.byte(), i.char(), i.short()), [I32]),
    # elementwise
    ("deg2rad-rad2deg", lambda L, x: (L.deg2rad(x * 90), x.rad2deg()), [X]),
    ("deg2rad-int", lambda L, i: L.deg2rad(i), [I]),
    ("erfc", lambda L, x: L.erfc(x * 3), [X]),
    ("erfc-tail", lambda L: L.erfc(L.tensor([0.4, 0.6, 1.0, 2.5, 4.0, 6.0, 9.0, -1.0, -4.0])), []),
    ("erfc-f64", lambda L, x: (x * 3).erfc(), [X.astype(np.float64)]),
    ("float_power", lambda L, x, p: L.float_power(x, p), [POS, X]),
    ("float_power-scalar", lambda L, x: x.float_power(2), [X]),
    ("float_power-int", lambda L, i: L.float_power(i, 2), [I]),
    ("fmax-fmin-nan", lambda L, a, b: (L.fmax(a, b), L.fmin(a, b)), [NANS, NANS[::-1].copy()]),
    ("fmax-int", lambda L, i, j: i.fmax(j), [I, SH]),
    ("heaviside", lambda L, z, v: L.heaviside(z, v), [ZS, np.array([0.5, 0.25, 1.0, 3.0], np.float32)]),
    ("heaviside-int", lambda L, i: i.heaviside(L.tensor(7)), [I]),
    ("logaddexp", lambda L, x, y: L.logaddexp(x * 10, y), [X, Y]),
    ("logaddexp-big", lambda L, b: L.logaddexp(b, b.flip(1)), [BIG]),
    ("logaddexp-inf", lambda L: L.logaddexp(L.tensor([-np.inf, np.inf, -np.inf, 1.0]),
                                            L.tensor([-np.inf, np.inf, 2.0, -np.inf])), []),
    ("logaddexp2", lambda L, x, y: x.logaddexp2(y * 30), [X, Y]),
    ("logit", lambda L, p: L.logit(p), [P]),
    ("logit-eps", lambda L, x: x.logit(eps=0.1), [X]),
    ("positive", lambda L, x: L.positive(x) + x.positive(), [X]),
    ("signbit", lambda L, z: L.signbit(z), [ZS]),
    ("signbit-int", lambda L, i: i.signbit(), [I]),
    ("sinc", lambda L, z, x: (L.sinc(z), x.sinc()), [ZS, X]),
    ("sinc-int", lambda L, i: L.sinc(i), [I]),
    ("xlogy", lambda L, z, x: L.xlogy(z, x.abs()[:2, :4]), [ZS, X]),
    ("xlogy-nan", lambda L: L.xlogy(L.tensor([0.0, 0.0, 2.0]), L.tensor([np.nan, 0.0, 3.0])), []),
    ("xlogy-scalar", lambda L, p: p.xlogy(2), [P]),
    ("ldexp", lambda L, x, s: L.ldexp(x[:, :4], s), [X, SH]),
    ("rsub", lambda L, x, y: (L.rsub(x, y), L.rsub(x, 2, alpha=3)), [X, Y]),
    ("clone-detach", lambda L, x: (L.clone(x), L.detach(x * 2)), [X]),
    ("isreal", lambda L, x: L.isreal(x), [X]),
    # reductions
    ("aminmax", lambda L, x: L.aminmax(x), [X]),
    ("aminmax-dim", lambda L, x: x.aminmax(dim=1, keepdim=True), [X3]),
    ("cummax", lambda L, t: L.cummax(t, 1), [NANS]),
    ("cummin", lambda L, t: t.cummin(1), [NANS]),
    ("cummax-dim0", lambda L, x: x.cummax(0), [X3]),
    ("cummin-int-ties", lambda L, r: L.cummin(r, 1), [RUNS]),
    ("cummax-int-ties", lambda L, r: r.cummax(-1), [RUNS]),
    ("cummax-bool", lambda L, x: L.cummax(x > 0, 1), [X]),
    ("logcumsumexp", lambda L, x: L.logcumsumexp(x, 1), [X]),
    ("logcumsumexp-wide", lambda L, b: b.logcumsumexp(1), [BIG]),
    ("logcumsumexp-dim0", lambda L, x: L.logcumsumexp(x, 0), [X3]),
    ("nansum", lambda L, t: (L.nansum(t), t.nansum(1)), [NANS]),
    ("nansum-int", lambda L, i: L.nansum(i, 0), [I]),
    ("nanmean", lambda L, t: (L.nanmean(t), t.nanmean(0), L.nanmean(t, 1, keepdim=True)), [NANS]),
    ("var_mean", lambda L, x: L.var_mean(x, 1), [X]),
    ("std_mean", lambda L, x: L.std_mean(x, (0, 2), keepdim=True, correction=0), [X3]),
    ("std_mean-all-unbiased", lambda L, x: L.std_mean(x, False), [X]),
    # shape
    ("fliplr-flipud", lambda L, x: (L.fliplr(x), x.flipud()), [X3]),
    ("rot90", lambda L, x: (L.rot90(x), x.rot90(2), L.rot90(x, -1, (1, 2)), x.rot90(3, [2, 0]), L.rot90(x, 4)), [X3]),
    ("select", lambda L, x: (L.select(x, 1, -1), x.select(0, 1)), [X3]),
    ("split_with_sizes", lambda L, x: x.split_with_sizes([1, 3], 2), [X3]),
    ("tensor_split-sections", lambda L, x: L.tensor_split(x, 3, dim=1), [X]),
    ("tensor_split-indices", lambda L, x: x.tensor_split([1, 4, 2, 9], 1), [X]),
    ("tensor_split-tensor", lambda L, x: L.tensor_split(x, L.tensor([1, -1]), 2), [X3]),
    ("hsplit-vsplit-dsplit", lambda L, x: (L.hsplit(x, 3), x.vsplit([1]), L.dsplit(x, 2)), [X3]),
    ("hsplit-1d", lambda L, x: L.hsplit(x[0, 0], 2), [X3]),
    ("hstack-vstack", lambda L, x, y: (L.hstack([x, y]), L.vstack([x, y]), L.row_stack((x[0], y[1]))), [X, Y]),
    ("hstack-1d", lambda L, x: L.hstack([x[0], x[1]]), [X]),
    ("dstack-column_stack", lambda L, x, y: (L.dstack([x, y]), L.column_stack([x[0], y[1], x[2]])), [X, Y]),
    ("column_stack-2d", lambda L, x: L.column_stack([x, x[:, 0]]), [X]),
    ("atleast", lambda L, x: (L.atleast_1d(x[0, 0]), L.atleast_2d(x[0]), L.atleast_3d(x), L.atleast_3d(x[0]),
                              L.atleast_3d(x[0, 0]), L.atleast_2d(x[0, 0])), [X]),
    ("atleast-many", lambda L, x: L.atleast_2d(x[0], x[0, 0]) + L.atleast_1d([x, x[0, 0]]), [X]),
    ("broadcast_tensors", lambda L, x, y: L.broadcast_tensors(x[:, :1], y[0], L.tensor(2.0)), [X, Y]),
    ("meshgrid-ij", lambda L, a, b: L.meshgrid(a[0], b[:, 0], indexing="ij"), [X, Y]),
    ("meshgrid-xy", lambda L, a, b: L.meshgrid(a[0], b[:, 0], a[1, :2], indexing="xy"), [X, Y]),
    ("diff", lambda L, x: (L.diff(x), x.diff(2, 0), L.diff(x, dim=0, prepend=x[:1], append=x[-1:])), [X]),
    ("diff-int-scalar-prepend", lambda L, i: L.diff(i[0], prepend=L.tensor([5])), [I]),
    ("diff-bool", lambda L, x: (x > 0).diff(), [X]),
    ("unfold-windows", lambda L, x: (x.unfold(1, 2, 1), x.unfold(2, 3, 2), x.unfold(0, 2, 1)), [X3]),
    ("take", lambda L, x: L.take(x, L.tensor([[0, 7], [-1, 3]])), [X]),
    ("take-method", lambda L, x: x.take(L.tensor([5, -24])), [X3]),
    ("swapaxes", lambda L, x: L.swapaxes(x, 0, 2), [X3]),
    ("sum_to_size", lambda L, x: (x.sum_to_size(1, 3, 1), x.sum_to_size(4)), [X3]),
    ("diagflat", lambda L, x: (L.diagflat(x[:2, :2]), x[0].diagflat(-1)), [X]),
    # products and distances
    ("cross", lambda L, a, b: (L.cross(a, b), L.cross(a, b, dim=1)), [V3, W3]),
    ("cross-method-dim0", lambda L, a, b: a.T.cross(b.T, dim=0), [V3, W3]),
    ("kron", lambda L, a, b: (L.kron(a, b), a[0].kron(b)), [SQ, V3]),
    ("kron-3d", lambda L, x, s: L.kron(x, s), [X3[:, :2, :2], SQ]),
    ("inner", lambda L, x, y: (L.inner(x, y), x[0].inner(y[1]), L.inner(x, L.tensor(2.0))), [X, Y]),
    ("vdot-ger", lambda L, a, b: (L.vdot(a[0], b[0]), L.ger(a[0], b[1]), a[0].ger(b[0])), [V3, W3]),
    ("tensordot", lambda L, x, v: (L.tensordot(x, v, 1), L.tensordot(x, v, ([1], [1])),
                                   L.tensordot(x, x, dims=([1, 2], [1, 2]))), [X3, V3]),
    ("tensordot-0", lambda L, a, b: L.tensordot(a, b, 0), [SQ, V3]),
    ("matrix_power", lambda L, s: (L.matrix_power(s, 0), s.matrix_power(1), L.matrix_power(s, 6)), [SQ]),
    ("matrix_power-batch-int", lambda L, i: L.matrix_power(i[:, :3].reshape(1, 3, 3), 3), [SH]),
    ("dist", lambda L, x, y: (L.dist(x, y), x.dist(y, 1), L.dist(x, y, 3.5), L.dist(x, y, float("inf")),
                              L.dist(x, x, 0)), [X, Y]),
    ("cdist", lambda L, a, b: (L.cdist(a, b), L.cdist(a, b, p=1), L.cdist(a, b, 3.0), L.cdist(a, b, 0.0),
                               L.cdist(a, b, float("inf"))), [V3, W3[:3]]),
    ("cdist-batched", lambda L, x: L.cdist(x, x[:, :2]), [X3]),
    ("block_diag", lambda L, s, v: (L.block_diag(s, v, s[0], L.tensor(7.0)), L.block_diag(v)), [SQ, V3]),
    ("block_diag-int-float", lambda L, i, s: L.block_diag(i[:2, :2], s), [I, SQ]),
    ("cartesian_prod", lambda L, i: (L.cartesian_prod(i[0, :2], i[1], i[2, :3]), L.cartesian_prod(i[0])), [I]),
    ("addr", lambda L, s, a: (L.addr(s, a[0], a[1]), s.addr(a[0], a[2], beta=0.5, alpha=2)), [SQ, V3]),
    ("chain_matmul", lambda L, s, v: L.chain_matmul(v, s, s.T), [SQ, V3]),
    # searching, membership, runs
    ("searchsorted", lambda L, s, v: (L.searchsorted(s[0], v), L.searchsorted(s[0], v, right=True)), [SORTED, X]),
    ("searchsorted-nd", lambda L, s, v: (L.searchsorted(s, v[:2]), L.searchsorted(s, s, side="right")), [SORTED, X]),
    ("searchsorted-ties-int32", lambda L, r: L.searchsorted(L.tensor([1, 2, 2, 2, 5]), r, out_int32=True), [RUNS]),
    ("searchsorted-scalar", lambda L, s: L.searchsorted(s[0], 0.1), [SORTED]),
    ("searchsorted-sorter", lambda L, x: L.searchsorted(x[0], x[1], sorter=x[0].argsort()), [X]),
    ("searchsorted-nan", lambda L, s: L.searchsorted(s, L.tensor([np.nan, -np.inf, 3.0])),
     [np.array([1.0, 2, 3, np.nan], np.float32)]),
    ("bucketize", lambda L, x, s: (L.bucketize(x, s[0]), L.bucketize(x, s[0], right=True)), [X, SORTED]),
    ("bucketize-int", lambda L, r: L.bucketize(r, L.tensor([1, 2, 3]), out_int32=True), [RUNS]),
    ("isin", lambda L, r: (L.isin(r, L.tensor([2, 3])), L.isin(r, 1, invert=True)), [RUNS]),
    ("isin-float", lambda L, t: L.isin(t, L.tensor([1.0, np.nan, 4.0])), [NANS]),
    ("unique_consecutive", lambda L, r: L.unique_consecutive(r, return_inverse=True, return_counts=True), [RUNS]),
    ("unique_consecutive-dim", lambda L, r: r.unique_consecutive(return_counts=True, dim=1), [RUNS]),
    ("unique_consecutive-dim0", lambda L, r: L.unique_consecutive(r[[0, 0, 1]], return_inverse=True, dim=0), [RUNS]),
    ("unique_consecutive-float", lambda L, x: L.unique_consecutive(x.round()), [X]),
    # im2col
    ("unfold-im2col", lambda L, x: (F(L).unfold(x, 2), F(L).unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=2)),
     [IMG]),
    ("unfold-unbatched", lambda L, x: F(L).unfold(x[0], 3, padding=(1, 0)), [IMG]),
    ("fold", lambda L, x: F(L).fold(_cols(L, x), (5, 6), (2, 3), stride=(1, 2), padding=1), [IMG]),
    ("fold-stride", lambda L, c: F(L).fold(c, (5, 6), 2, stride=2), [R.standard_normal((2, 12, 6)).astype(np.float32)]),
    ("fold-unbatched", lambda L, c: F(L).fold(c, (4, 4), 2, dilation=2),
     [R.standard_normal((8, 4)).astype(np.float32)]),
    ("Fold-Unfold-modules", lambda L, x: L.nn.Fold((5, 6), 2)(L.nn.Unfold(2)(x)), [IMG]),
    # scatters
    ("masked_scatter", lambda L, x, y: (L.masked_scatter(x, x > 0, y * 10),
                                        x.masked_scatter(L.tensor([True, False] * 2 + [True]), y)),
     [X, Y]),
    ("put", lambda L, x: (L.put(x, L.tensor([0, -1, 5]), L.tensor([1.0, 2.0, 3.0])),
                          x.put(L.tensor([[0, 0], [5, 14]]), L.tensor([[1.0, 2.0], [3.0, 4.0]]), accumulate=True)), [X]),
    ("index_put", lambda L, x: (x.index_put((L.tensor([0, 2, 0]), L.tensor([1, 1, 1])), L.tensor([5.0, 6.0, 7.0]),
                                            accumulate=True), L.index_put(x, (L.tensor([0, 2]),), L.tensor(5.0))), [X]),
    ("index_put-bool", lambda L, x: x.index_put((x > 0,), L.tensor(0.0)), [X]),
    ("select_scatter", lambda L, x, y: (L.select_scatter(x, y[0, :3], 1, -1), x.select_scatter(y[1], 0, 0)), [X, Y]),
    ("slice_scatter", lambda L, x, y: (L.slice_scatter(x, y[:, :2], 1, 1, None, 2), x.slice_scatter(y[:2], start=1)),
     [X, Y]),
    ("diagonal_scatter", lambda L, x, y: (L.diagonal_scatter(x, y[0, :3], 1), x.diagonal_scatter(y[0, :2], -1)),
     [X, Y]),
    ("diagonal_scatter-3d", lambda L, x, y: L.diagonal_scatter(x, y[:2, :2].reshape(2, 2) * 0 + y[0, :2], -1, 1, 2),
     [X3, Y]),
    ("diag_embed", lambda L, x: (L.diag_embed(x), x.diag_embed(1, 0, 2), L.diag_embed(x[0], -2)), [X]),
    # quantiles, medians, modes
    ("quantile", lambda L, x: (L.quantile(x, 0.3), x.quantile(0.3, 1), L.quantile(x, L.tensor([0.1, 0.5, 1.0]), 0,
                                                                                   keepdim=True)), [X]),
    ("quantile-interpolations", lambda L, x: tuple(L.quantile(x, L.tensor([0.25, 0.4]), 1, interpolation=i)
                                                   for i in ("lower", "higher", "midpoint", "nearest", "linear")), [X]),
    ("quantile-keepdim-all", lambda L, x: L.quantile(x, 0.75, None, True, interpolation="nearest"), [X3]),
    ("quantile-nan", lambda L, t: (L.quantile(t, 0.3, 1), L.nanquantile(t, 0.3, 1)), [NANS]),
    ("nanquantile", lambda L, t: (L.nanquantile(t, L.tensor([0.0, 0.5, 0.9]), 1, interpolation="midpoint"),
                                  t.nanquantile(0.5)), [np.vstack([NANS, np.full((1, 6), np.nan, np.float32)])]),
    ("nanmedian", lambda L, t: (L.nanmedian(t), t.nanmedian(1), L.nanmedian(t, 0, True)),
     [np.vstack([NANS, np.full((1, 6), np.nan, np.float32)])]),
    ("nanmedian-int", lambda L, i: i.nanmedian(1), [I]),
    ("mode", lambda L, r: (L.mode(r), r.mode(0, True)), [RUNS]),
    ("mode-float", lambda L: L.mode(L.tensor([[3.0, 1, 3, 1, 2], [0, 0, 5, 5, 5]]), 1), []),
    # statistics, integrals, norms
    ("cov", lambda L, x: (L.cov(x), L.cov(x, correction=0), L.cov(x[0])), [X]),
    ("cov-weights", lambda L, x, w: (L.cov(x, fweights=L.tensor([1, 2, 1, 3, 1])),
                                     L.cov(x, aweights=w, fweights=L.tensor([1, 2, 1, 3, 1]))), [X, POS[0]]),
    ("corrcoef", lambda L, x: (L.corrcoef(x), x.T[:3].corrcoef()), [X]),
    ("pdist", lambda L, x: (L.pdist(x), F(L).pdist(x.T, 1), L.pdist(x, 3.0)), [X]),
    ("trapezoid", lambda L, y, x: (L.trapezoid(y), L.trapezoid(y, dx=0.5, dim=0), L.trapz(y, x[0]),
                                   L.trapezoid(y, x.cumsum(1))), [X, POS]),
    ("trapezoid-int", lambda L, i: L.trapezoid(i), [I]),
    ("cumulative_trapezoid", lambda L, y, x: (L.cumulative_trapezoid(y, x[0]), L.cumulative_trapezoid(y, dim=0, dx=2.0)),
     [X, POS]),
    ("frobenius_norm", lambda L, x: (L.frobenius_norm(x, (0, 1)), L.frobenius_norm(x, (1, 2), keepdim=True)), [X3]),
    ("norm_except_dim", lambda L, x: (L.norm_except_dim(x, 2, 1), L.norm_except_dim(x, 3, 0),
                                      L.norm_except_dim(x, 2, -1)), [X3]),
    ("renorm", lambda L, x: (L.renorm(x, 2, 0, 1.5), x.renorm(1, 1, 2.0), L.renorm(x, 3, 2, 0.5)), [X3]),
    ("histc", lambda L, x: (L.histc(x), x.histc(7, -1, 1), L.histc(x * 0 + 2, 4)), [X]),
    ("histogram", lambda L, x, w: (L.histogram(x, 3), L.histogram(x.flatten(), L.tensor([-2.0, -0.5, 0.0, 3.0]),
                                                                    weight=w.flatten(), density=True),
                                   x.histogram(4, range=(0.0, 3.0))), [X, POS]),
    ("combinations", lambda L, i: (L.combinations(i[0]), L.combinations(i[0], 3, with_replacement=True),
                                   L.combinations(i[0, :2], 3)), [I]),
    ("unravel_index", lambda L: L.unravel_index(L.tensor([[0, 7], [23, 13]]), (2, 3, 4)), []),
    ("vander", lambda L, x: (L.vander(x[0]), L.vander(x[0], 3, True)), [X]),
    ("vander-int", lambda L: L.vander(L.tensor([1, 2, 3]), 4, increasing=True), []),
    ("asarray", lambda L, x: (L.asarray([1.5, 2.0]), L.asarray([1, 2]), L.asarray(x, dtype=L.float64)), [X]),
    # torch's other entry points
    ("pools-with-indices", lambda L, x: (F(L).max_pool2d_with_indices(x, 2), F(L).adaptive_max_pool2d_with_indices(x, 3),
                                         L.max_pool1d_with_indices(x[0], 2, stride=1)), [IMG]),
    ("convolution", lambda L, x, w: (L.convolution(x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1),
                                     L.convolution(x, w.transpose(0, 1), None, [2, 2], [1, 1], [1, 1], True, [1, 1], 1)),
     [IMG, R.standard_normal((2, 3, 3, 3)).astype(np.float32)]),
    ("conv_tbc", lambda L, x, w, b: L.conv_tbc(x, w, b, 1), [R.standard_normal((5, 2, 3)).astype(np.float32),
                                                           R.standard_normal((3, 3, 2)).astype(np.float32),
                                                           R.standard_normal(2).astype(np.float32)]),
    ("constant_pad_nd", lambda L, x: L.constant_pad_nd(x, [1, 2, 0, 1], 3.0), [X3]),
    ("native_layer_norm", lambda L, x: L.native_layer_norm(x, [4], None, None, 1e-5), [X3]),
    ("native_channel_shuffle", lambda L, x: L.native_channel_shuffle(x[:, :2].repeat(1, 2, 1, 1), 2), [IMG]),
    ("feature_dropout-eval", lambda L, x: (L.feature_dropout(x, 0.5, False), L.native_dropout(x, 0.5, False)), [IMG]),
    ("F-inplace-activations", lambda L, x: (F(L).relu_(x * 1), F(L).elu_(x * 1, 0.5), F(L).selu_(x * 1),
                                            F(L).celu_(x * 1), F(L).leaky_relu_(x * 1, 0.2), F(L).hardtanh_(x * 1),
                                            F(L).threshold_(x * 1, 0.1, 2.0), F(L).rrelu_(x * 1)), [X]),
    ("affine_grid", lambda L, t, t3: (F(L).affine_grid(t, (2, 3, 4, 5), align_corners=False),
                                      F(L).affine_grid(t, (2, 1, 3, 1), align_corners=True),
                                      F(L).affine_grid(t3, (2, 3, 2, 4, 5), align_corners=False)),
     [R.standard_normal((2, 2, 3)).astype(np.float32), R.standard_normal((2, 3, 4)).astype(np.float32)]),
    # methods
    ("fill_diagonal_", lambda L, x: (x.clone().fill_diagonal_(-1.0), L.zeros(7, 3).fill_diagonal_(5, wrap=True),
                                     L.zeros(7, 3).fill_diagonal_(5), L.zeros(3, 3, 3).fill_diagonal_(2),
                                     L.zeros(2, 5, dtype=L.int64).fill_diagonal_(4)), [X]),
    ("apply_-map_-map2_", lambda L, x, y: (x.clone().apply_(lambda v: v * 2 + 1), x.clone().map_(y, lambda a, b: a - b),
                                            x.clone().map2_(y[:, :1], y[0], lambda a, b, c: a + b * c)), [X, Y]),
    ("new", lambda L, x, i: (x.new([1, 2]), x.new(), i.new(np.array([3, 4]))), [X, I]),
    ("inplace-scatters", lambda L, x, y: (x.clone().masked_scatter_(x > 0, y), x.clone().put_(L.tensor([1, 2]), y[0, :2]),
                                         x.clone().index_put_((L.tensor([0]), L.tensor([1])), L.tensor(9.0)),
                                         x.clone().renorm_(2, 0, 1.0)), [X, Y]),
    ("scatter_reduce", lambda L, x, i, s: tuple(L.scatter_reduce(x, 1, i, s, r, include_self=inc)
                                                for r in ("sum", "prod", "mean", "amax", "amin") for inc in (True, False)),
     [np.array([[1.0, 2, 3], [4, 5, 6]], np.float32), np.array([[0, 0], [1, 0]]),
      np.array([[10.0, 20, 30], [40, 50, 60]], np.float32)]),
    ("scatter_reduce-partial-int", lambda L, x, i, s: (x.scatter_reduce(0, i, s, "sum"),
                                                           x.scatter_reduce(0, i, s, "mean", include_self=False),
                                                           x.long().scatter_reduce(0, i, s.long() * 3 + 1, "mean")),
     [np.zeros((3, 3), np.float32), np.array([[0, 2], [0, 0]]), np.array([[10.0, 20, 30], [40, 50, 60]], np.float32)]),
    ("index_reduce", lambda L, x, s: (x.index_reduce(0, L.tensor([0, 2, 0]), s, "mean", include_self=False),
                                      L.index_reduce(x, 0, L.tensor([0, 2, 0]), s, "prod"),
                                      x.index_reduce(1, L.tensor([1, 1]), s, "amax")),
     [X[:3, :2].copy(), Y[:3, :2].copy()]),
    ("gcd-lcm", lambda L, a, b: (L.gcd(a, b), a.lcm(b), L.gcd(a.to(L.int32), L.tensor(6, dtype=L.int32)),
                                 L.gcd(a.to(L.int8), b.to(L.int8))),
     [np.array([0, 12, -18, 7, 101, -5, 2 ** 40 * 3]), np.array([0, -8, 24, 0, 46, 5, 2 ** 35 * 9])]),
    ("frexp", lambda L, x: L.frexp(x), [np.array([0, -0.0, 1, 8, 0.3, -5.5, np.inf, np.nan, 1e-40, 3e38, 2 ** -126,
                                                  1e-45], np.float32)]),
    ("frexp-f64", lambda L, x: x.frexp(), [np.array([1.7e308, 5e-324, -3.25, 0.1], np.float64)]),
    ("nonzero_static", lambda L, x: (L.nonzero_static(x > 0, size=6), x.nonzero_static(size=20, fill_value=7)), [X]),
    ("gradient", lambda L, x, c: (L.gradient(x), L.gradient(x, spacing=0.5, dim=1),
                                  L.gradient(x, spacing=[2.0], dim=[0], edge_order=2),
                                  L.gradient(x, spacing=(c,), dim=1), L.gradient(x[0], spacing=[c])),
     [X, np.sort(POS[0])]),
    ("native_group_norm", lambda L, x: L.native_group_norm(x, None, None, 2, 3, 4, 3, 1e-5), [X3]),
    ("float_power_", lambda L, x: x.double().float_power_(2), [X]),
    ("grid_sample", lambda L, x, g: tuple(F(L).grid_sample(x, g, m, p, a) for m in ("bilinear", "nearest")
                                          for p in ("zeros", "border", "reflection") for a in (False, True)),
     [IMG, R.uniform(-1.3, 1.3, (2, 4, 7, 2)).astype(np.float32)]),
    ("grid_sampler", lambda L, x, g: (L.grid_sampler(x, g, 0, 2, False), L.grid_sampler_2d(x, g, 1, 1, True)),
     [IMG, R.uniform(-1.3, 1.3, (2, 4, 7, 2)).astype(np.float32)]),
    ("det-slogdet-logdet", lambda L, a, b: (L.det(a), b.det(), L.slogdet(b), a.logdet(), L.det(a[0, :1, :1]),
                                            L.det(L.tensor([[1.0, 2, 3], [2, 4, 6], [1, 0, 1]])) + 1),
     [R.standard_normal((2, 4, 4)).astype(np.float32),
      R.standard_normal((3, 3)).astype(np.float32) + np.eye(3, dtype=np.float32)]),
    ("det-empty", lambda L: L.det(L.zeros(0, 0)), []),
    ("grid_sample-5d", lambda L, x, g: tuple(F(L).grid_sample(x, g, m, p, a) for m in ("bilinear", "nearest")
                                             for p in ("zeros", "border", "reflection") for a in (False, True)),
     [R.standard_normal((2, 3, 4, 5, 6)).astype(np.float32), R.uniform(-1.3, 1.3, (2, 3, 4, 2, 3)).astype(np.float32)]),
    ("grid_sampler_3d", lambda L, x, g: L.grid_sampler_3d(x, g, 0, 1, False),
     [R.standard_normal((1, 2, 3, 4, 5)).astype(np.float32), R.uniform(-1, 1, (1, 2, 2, 2, 3)).astype(np.float32)]),
    ("histogramdd", lambda L, p, w: (L.histogramdd(p, bins=[2, 3]), L.histogramdd(p, bins=2, range=[0.0, 1.0, 0.0, 2.0],
                                                                              weight=w, density=True),
                                     L.histogramdd(p, bins=[L.tensor([0.0, 1, 2]), L.tensor([0.0, 0.5, 3])]),
                                     L.histogramdd(p[:, :1], bins=3)),
     [np.array([[0.0, 0.0], [1, 1], [2, 0], [2, 2], [0.5, 1.5]], np.float32), np.arange(5, dtype=np.float32)]),
    ("i0", lambda L, x: (L.i0(x), (x * 10).i0(), L.i0(L.tensor([-20.0, -3.75, 0.0, 3.76, 40.0]))), [X]),
    ("fractional_max_pool", lambda L, x, u, x3, u3: (
        F(L).fractional_max_pool2d(x, 2, output_size=(4, 5), return_indices=True, _random_samples=u),
        F(L).fractional_max_pool2d(x, (3, 2), output_ratio=(0.5, 0.5), _random_samples=u),
        F(L).fractional_max_pool2d_with_indices(x[0], 3, output_size=7, _random_samples=u[:1]),
        F(L).fractional_max_pool3d(x3, 2, output_size=(4, 3, 5), return_indices=True, _random_samples=u3),
        F(L).fractional_max_pool3d_with_indices(x3, (2, 3, 2), output_ratio=(0.5, 0.5, 0.5), _random_samples=u3)),
     [R.standard_normal((2, 3, 9, 10)).astype(np.float32), R.random((2, 3, 2)).astype(np.float32),
      R.standard_normal((2, 2, 6, 7, 8)).astype(np.float32), R.random((2, 2, 3)).astype(np.float32)]),
    ("nextafter", lambda L, x, y: (L.nextafter(x, y), x.nextafter(y * 0)),
     [np.array([0, -0.0, 1, 1, -1, 0.5, 0.5, 3.3, 3.4028235e38, 1.1754944e-38, 1.1754944e-38, 1e-45, -1e-45, 1e-40,
                np.inf, -np.inf, np.nan, 2.0, 7.0, -0.25], np.float32),
      np.array([1, -1, 2, 0, -2, 0, 1, 0, np.inf, 0, 1, 0, 1, 1, 0, 1, 0, np.nan, 7.0, -1], np.float32)]),
    ("nextafter-f64", lambda L, x, y: L.nextafter(x, y),
     [np.array([0, 1, 0.5, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308, np.inf, -3.3]),
      np.array([-1, 0, 0, np.inf, 1, 0, 0, 5.0])]),
    ("segment_reduce", lambda L, d: tuple(L.segment_reduce(d, r, **kw) for r in ("sum", "mean", "max", "min", "prod")
                                          for kw in ({"lengths": L.tensor([1, 0, 3])},
                                                     {"lengths": L.tensor([2, 0, 2]), "initial": 10.0},
                                                     {"offsets": L.tensor([0, 1, 1, 4])})),
     [np.array([[1.0, 2], [3, 4], [5, 6], [7, 8]], np.float32)]),
    # hardshrink / prelu methods
    ("hardshrink-method", lambda L, x: x.hardshrink(0.3), [X]),
    ("prelu-method", lambda L, x: x.prelu(L.tensor([0.25])), [X]),
    # creation
    ("windows", lambda L: tuple(getattr(L, w)(n, p) for w in ("hann_window", "hamming_window", "blackman_window",
                                                              "bartlett_window", "kaiser_window")
                                for n in (0, 1, 2, 7, 8) for p in (True, False)), []),
    ("windows-args", lambda L: (L.hamming_window(9, False, 0.5, 0.3), L.kaiser_window(10, True, 5.0),
                                L.hann_window(6, dtype=L.float64), L.kaiser_window(7, False, 2.5)), []),
    ("logspace", lambda L: (L.logspace(0, 3, 4), L.logspace(-1, 2, 5, base=2), L.logspace(1, 0, 3, dtype=L.float64)), []),
    ("scalar_tensor", lambda L: (L.scalar_tensor(3), L.scalar_tensor(1.5, dtype=L.float64)), []),
    ("tril_triu_indices", lambda L: (L.tril_indices(3, 4), L.tril_indices(4, 3, 1), L.triu_indices(3, 5, -1),
                                     L.triu_indices(2, 2)), []),
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
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
def _sum_all(out):
    """One tensor from several outputs: sums of each, weighted differently."""
    outs = _flat(out)
    total = None
    for k, o in enumerate(outs):
        o = o.values if hasattr(o, "values") and not callable(o.values) else o
        term = (o * (k + 1)).sum()
        total = term if total is None else total + term
    return total


# (id, fn(lib, *inputs) -> one tensor (or a tuple, weighted and summed), inputs, indices to differentiate)
GRAD_ROWS = [
    ("deg2rad-rad2deg", lambda L, x: L.deg2rad(x) * x.rad2deg(), [X], [0]),
    ("erfc", lambda L, x: L.erfc(x * 2), [X], [0]),
    ("float_power", lambda L, x, p: L.float_power(x, p), [POS, X], [0, 1]),
    ("fmax-fmin", lambda L, a, b: (L.fmax(a, b), L.fmin(a, b)), [X, Y], [0, 1]),
    ("fmax-ties", lambda L, a, b: (L.fmax(a, b), L.fmin(a, b)), [X, X.copy()], [0, 1]),
    ("logaddexp", lambda L, x, y: L.logaddexp(x * 3, y), [X, Y], [0, 1]),
    ("logaddexp-ties", lambda L, x, y: L.logaddexp(x, y), [X, X.copy()], [0, 1]),
    ("logaddexp2", lambda L, x, y: L.logaddexp2(x, y * 4), [X, Y], [0, 1]),
    ("logit", lambda L, p: L.logit(p), [P], [0]),
    ("logit-eps", lambda L, p: p.logit(0.2), [P], [0]),
    ("sinc", lambda L, z: L.sinc(z), [ZS], [0]),
    ("sinc-dense", lambda L, x: (x + 3).sinc(), [X], [0]),
    ("xlogy", lambda L, z, y: L.xlogy(z, y), [ZS, np.abs(ZS[::-1]) + 0.5], [0, 1]),
    ("xlogy-zero-y", lambda L, z, y: L.xlogy(z, y), [ZS, np.abs(ZS)], [0]),
    ("xlogy-scalar", lambda L, x: L.xlogy(x, 3.0) + L.xlogy(2, x.abs()), [X], [0]),
    ("ldexp", lambda L, x: L.ldexp(x[:, :4], L.tensor(SH)), [X], [0]),
    ("rsub", lambda L, x, y: L.rsub(x, y, alpha=2), [X, Y], [0, 1]),
    ("clone", lambda L, x: L.clone(x) * x, [X], [0]),
    ("aminmax", lambda L, x: L.aminmax(x, dim=1), [X], [0]),
    ("cummax", lambda L, x: L.cummax(x, 1).values, [X], [0]),
    ("cummin-dim0", lambda L, x: x.cummin(0).values, [X3], [0]),
    ("logcumsumexp", lambda L, x: L.logcumsumexp(x * 3, 1), [X], [0]),
    ("logcumsumexp-wide", lambda L, b: b.logcumsumexp(1), [BIG], [0]),
    ("nansum-nanmean", lambda L, t: (L.nansum(t, 1), L.nanmean(t, 0)), [NANS], [0]),
    ("var_mean", lambda L, x: L.var_mean(x, 1), [X], [0]),
    ("std_mean", lambda L, x: L.std_mean(x, (0, 2), correction=0), [X3], [0]),
    ("rot90-flips", lambda L, x: (L.rot90(x, 1, (1, 2)), L.fliplr(x), x.flipud()), [X3], [0]),
    ("select-take", lambda L, x: (L.select(x, 2, 1), L.take(x, L.tensor([[0, 7], [-1, 7]]))), [X3], [0]),
    ("tensor_split", lambda L, x: L.tensor_split(x, [1, 3], 1), [X], [0]),
    ("hsplit-vsplit", lambda L, x: (L.hsplit(x, [2]), L.vsplit(x, [1])), [X3], [0]),
    ("stacks", lambda L, x, y: (L.hstack([x, y]), L.vstack([x, y[0]]), L.dstack([x, y]), L.column_stack([x[0], y[1]])),
     [X, Y], [0, 1]),
    ("atleast-broadcast", lambda L, x, y: (L.atleast_3d(x), L.broadcast_tensors(x[:, :1], y[0])), [X, Y], [0, 1]),
    ("meshgrid", lambda L, a, b: L.meshgrid(a, b, indexing="xy"), [X[0], Y[1]], [0, 1]),
    ("diff", lambda L, x, p: L.diff(x, 2, 1, prepend=p, append=p), [X, Y[:, :1]], [0, 1]),
    ("unfold-windows", lambda L, x: x.unfold(2, 2, 1), [X3], [0]),
    ("sum_to_size", lambda L, x: x.sum_to_size(2, 1, 4), [X3], [0]),
    ("cross", lambda L, a, b: L.cross(a, b, dim=1), [V3, W3], [0, 1]),
    ("kron", lambda L, a, b: L.kron(a, b), [SQ, V3], [0, 1]),
    ("inner-vdot", lambda L, x, y: (L.inner(x, y), L.vdot(x[0], y[0])), [X, Y], [0, 1]),
    ("tensordot", lambda L, x, v: L.tensordot(x, v, ([1], [1])), [X3, V3], [0, 1]),
    ("matrix_power", lambda L, s: L.matrix_power(s, 5), [SQ], [0]),
    ("dist", lambda L, x, y: (L.dist(x, y), L.dist(x, y, 1), L.dist(x, y, 3.0)), [X, Y], [0, 1]),
    ("dist-zero", lambda L, x, y: L.dist(x, y), [X, X.copy()], [0, 1]),
    ("cdist", lambda L, a, b: (L.cdist(a, b), L.cdist(a, b, p=1), L.cdist(a, b, p=3)), [V3, W3[:3]], [0, 1]),
    ("cdist-self", lambda L, a: L.cdist(a, a), [V3], [0]),
    ("block_diag-cartesian", lambda L, s, v: (L.block_diag(s, v), L.cartesian_prod(s[0], v[0])), [SQ, V3], [0, 1]),
    ("addr", lambda L, s, a, b: L.addr(s, a, b, beta=0.5, alpha=3), [SQ, V3[0], W3[0]], [0, 1, 2]),
    ("F.unfold", lambda L, x: F(L).unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=2), [IMG], [0]),
    ("F.fold", lambda L, c: F(L).fold(c, (5, 6), 2, stride=2), [R.standard_normal((2, 12, 6)).astype(np.float32)],
     [0]),
    ("masked_scatter", lambda L, x, y: L.masked_scatter(x, x > 0, y), [X, Y], [0, 1]),
    ("put", lambda L, x, v: (L.put(x, L.tensor([0, -1, 5]), v), x.put(L.tensor([0, 0, 5]), v, accumulate=True)),
     [X, Y[0, :3]], [0, 1]),
    ("index_put", lambda L, x, v: (x.index_put((L.tensor([0, 2, 0]), L.tensor([1, 1, 1])), v, accumulate=True),
                                   L.index_put(x, (L.tensor([0, 2]),), v[:1])), [X, Y[0, :3]], [0, 1]),
    ("scatters", lambda L, x, y: (L.select_scatter(x, y[0, :3], 1, -1), L.slice_scatter(x, y[:, :2], 1, 1, None, 2),
                                  L.diagonal_scatter(x, y[0, :3], 1), L.diag_embed(y, 1)), [X, Y], [0, 1]),
    ("quantile", lambda L, x: (L.quantile(x, 0.3, 1), L.quantile(x, L.tensor([0.1, 0.9]), 0, keepdim=True),
                               L.quantile(x, 0.5, interpolation="midpoint")), [X], [0]),
    ("nanquantile-nanmedian", lambda L, t: (L.nanquantile(t, 0.3, 1), L.nanmedian(t, 1).values, L.nanmedian(t)),
     [np.where(np.isnan(NANS), np.nan, NANS * 1.1 + np.arange(6)).astype(np.float32)], [0]),
    ("mode", lambda L, x: L.mode(x.round(), 1).values * x[:, 0], [X], [0]),
    ("cov-corrcoef", lambda L, x, w: (L.cov(x), L.cov(x, aweights=w), L.corrcoef(x)), [X, POS[0]], [0, 1]),
    ("pdist", lambda L, x: (L.pdist(x), L.pdist(x, 1)), [X], [0]),
    ("trapezoid", lambda L, y, x: (L.trapezoid(y, x), L.cumulative_trapezoid(y, x[0]), L.trapezoid(y, dx=0.3, dim=0)),
     [X, POS], [0, 1]),
    ("renorm-norms", lambda L, x: (L.renorm(x, 2, 0, 1.5), L.norm_except_dim(x, 2, 1), L.frobenius_norm(x, (1, 2))),
     [X3], [0]),
    ("combinations", lambda L, x: L.combinations(x[0], 2), [X], [0]),
    ("conv_tbc", lambda L, x, w, b: L.conv_tbc(x, w, b, 1), [R.standard_normal((5, 2, 3)).astype(np.float32),
                                                           R.standard_normal((3, 3, 2)).astype(np.float32),
                                                           R.standard_normal(2).astype(np.float32)], [0, 1, 2]),
    ("native_layer_norm", lambda L, x: L.native_layer_norm(x, [4], None, None, 1e-5)[0], [X3], [0]),
    ("affine_grid", lambda L, t: F(L).affine_grid(t, (2, 3, 4, 5), align_corners=False),
     [R.standard_normal((2, 2, 3)).astype(np.float32)], [0]),
    ("F-inplace-activation", lambda L, x: F(L).elu_(x * 1, 0.5) * 2, [X], [0]),
    ("scatter_reduce", lambda L, x, s: tuple(L.scatter_reduce(x, 1, L.tensor([[0, 0, 1], [1, 0, 1]]), s, r,
                                                              include_self=inc)
                                             for r in ("sum", "prod", "mean", "amax", "amin") for inc in (True, False)),
     [X[:2, :3].copy(), Y[:2, :3].copy()], [0, 1]),
    ("scatter_reduce-ties", lambda L, x: L.scatter_reduce(x * 0 + 1, 1, L.tensor([[0, 0, 0]]), x * 0 + 1, "amax"),
     [X[:1, :3].copy()], [0]),
    ("index_reduce", lambda L, x, s: L.index_reduce(x, 0, L.tensor([0, 2, 0]), s, "prod"), [X[:3, :2].copy(),
                                                                                           Y[:3, :2].copy()], [0, 1]),
    ("gradient", lambda L, x: (L.gradient(x), L.gradient(x, spacing=(L.tensor(np.sort(POS[0])),), dim=1)), [X], [0]),
    ("native_group_norm", lambda L, x: L.native_group_norm(x, None, None, 2, 3, 4, 3, 1e-5)[0], [X3], [0]),
    ("grid_sample", lambda L, x, g: tuple(F(L).grid_sample(x, g, "bilinear", p, a)
                                          for p in ("zeros", "border", "reflection") for a in (False, True)),
     [IMG, R.uniform(-1.3, 1.3, (2, 4, 7, 2)).astype(np.float32)], [0, 1]),
    ("grid_sample-nearest", lambda L, x, g: F(L).grid_sample(x, g, "nearest"),
     [IMG, R.uniform(-1.3, 1.3, (2, 4, 7, 2)).astype(np.float32)], [0]),
    ("det", lambda L, a: (L.det(a), L.slogdet(a)[1], L.det(a[0, :2, :2])),
     [R.standard_normal((2, 4, 4)).astype(np.float32)], [0]),
    ("grid_sample-5d", lambda L, x, g: (F(L).grid_sample(x, g, "bilinear", "zeros", False),
                                        F(L).grid_sample(x, g, "bilinear", "reflection", True)),
     [R.standard_normal((1, 2, 3, 4, 5)).astype(np.float32), R.uniform(-1.2, 1.2, (1, 2, 3, 2, 3)).astype(np.float32)],
     [0, 1]),
    ("i0", lambda L, x: L.i0(x * 3), [X], [0]),
    ("fractional_max_pool", lambda L, x, u: F(L).fractional_max_pool2d(x, 2, output_size=(4, 5), _random_samples=u),
     [R.standard_normal((2, 3, 9, 10)).astype(np.float32), R.random((2, 3, 2)).astype(np.float32)], [0]),
    ("segment_reduce", lambda L, d: tuple(L.segment_reduce(d, r, lengths=L.tensor([1, 0, 2]))
                                          for r in ("sum", "mean", "max", "min", "prod")), [X], [0]),
    ("hardshrink", lambda L, x: x.hardshrink(0.3), [X], [0]),
    ("normal", lambda L, m, s: L.normal(m, s).sum() * 0 + m.sum() + s.sum(), [X, POS], [0, 1]),
]


@pytest.mark.parametrize("name,fn,inputs,wrt", GRAD_ROWS, ids=[r[0] for r in GRAD_ROWS])
def test_gradients_match_torch(name, fn, inputs, wrt):
    ts = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(inputs)]
    os_ = [ok.tensor(a, requires_grad=i in wrt) for i, a in enumerate(inputs)]
    ty = _sum_all(fn(torch, *ts))
    oy = _sum_all(fn(ok, *os_))
    tg = torch.autograd.grad(ty, [ts[i] for i in wrt])
    og = ok.grad(oy, [os_[i] for i in wrt])
    for i, a, b in zip(wrt, og, tg):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=f"{name}: grad of input {i}")


# ----- finite differences in float64 (onnx.reference) ----------------------------------------------
S = R.standard_normal((3, 4))
FD_ROWS = [
    ("logaddexp", lambda x, y: ok.logaddexp(x, y * 2), [S, S[::-1].copy()]),
    ("logcumsumexp", lambda x: x.logcumsumexp(1), [S]),
    ("cummax", lambda x: ok.cummax(x, 1).values * x, [S]),
    ("xlogy-sinc", lambda x, y: ok.xlogy(x, y * y + 0.5) + ok.sinc(x), [S, S[::-1].copy()]),
    ("fmax-logit", lambda x, y: ok.fmax(x, y) + ok.logit(ok.sigmoid(x), eps=0.2), [S, S[::-1] + 0.1]),
    ("cdist-dist", lambda a, b: ok.cdist(a, b) + ok.dist(a, b, 3), [S, S[::-1] + 0.5]),
    ("kron-cross", lambda a, b: ok.kron(a[:2, :2], b[:2, :3]).sum() + ok.cross(a[:, :3], b[:, :3], dim=1), [S, S * 2]),
    ("unfold-windows", lambda x: x.unfold(1, 2, 1) ** 2, [S]),
    ("vander-quantile", lambda x: ok.vander(x[0], 3) * 1.5 + ok.quantile(x, 0.4, 1), [S]),
    ("lerp-tensor-weight", lambda a, b: ok.lerp(a, b, ok.sigmoid(a)), [S, S[::-1] * 2]),
    ("det", lambda a: ok.det(a[:, :3] + ok.tensor(np.eye(3))) * ok.slogdet(a[:, 1:])[1], [S]),
]


@pytest.mark.parametrize("name,fn,inputs", FD_ROWS, ids=[r[0] for r in FD_ROWS])
def test_finite_differences(name, fn, inputs):
    gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


# ----- export with a symbolic batch dim --------------------------------------------------------------
EXPORT_ROWS = [
    ("cummax", lambda L, x: L.cummax(x, 0), (3,), "float32"),
    ("logcumsumexp", lambda L, x: x.logcumsumexp(0), (3,), "float32"),
    ("nanmean", lambda L, x: L.nanmean(x.log(), 1), (4,), "float32"),
    ("shifts", lambda L, x: (x << 2) + (x >> 1), (3,), "int64"),
    ("diff-take", lambda L, x: (L.diff(x, dim=0), x.unfold(1, 2, 1)), (4,), "float32"),
    ("searchsorted", lambda L, x: L.searchsorted(L.tensor([0.0, 0.5, 1.0]), x), (3,), "float32"),
    ("isin", lambda L, x: L.isin(x, L.tensor([1, 3])), (3,), "int64"),
    ("cdist", lambda L, x: L.cdist(x, x), (4,), "float32"),
    ("logaddexp-erfc", lambda L, x: L.logaddexp(x, x.flip(1)) + L.erfc(x), (4,), "float32"),
    ("unique_consecutive", lambda L, x: L.unique_consecutive(x.flatten(), return_counts=True), (2,), "int64"),
    ("F.unfold", lambda L, x: F(L).unfold(x.reshape(x.shape[0], 1, 4, 4), 2), (16,), "float32"),
    ("grid_sample", lambda L, x: F(L).grid_sample(x.reshape(x.shape[0], 1, 3, 4), x.reshape(x.shape[0], 2, 3, 2).tanh(),
                                                  align_corners=False), (12,), "float32"),
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
    sess = ok.Session(model, device="cpu")
    rng = np.random.default_rng(3)
    for n in (2, 5):
        data = _batch(rng, n, feat, dtype)
        got = list(sess.run({"x": data}).values())
        want = [_torch_np(w) for w in _flat(fn(torch, torch.tensor(data)))]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape, f"{name} N={n}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=f"{name} at N={n}")


# ----- in-place variants -------------------------------------------------------------------------------
# (name, args, input): torch's `name_` on a copy of the input, compared with onnxkit's
INPLACE_ROWS = [
    ("absolute_", (), X), ("negative_", (), X), ("tan_", (), X * 0.5), ("sinh_", (), X), ("cosh_", (), X),
    ("asin_", (), P), ("arccos_", (), P), ("atanh_", (), P * 0.5), ("arcsinh_", (), X), ("acosh_", (), POS + 1),
    ("atan2_", (Y,), X), ("arctan2_", (Y,), X), ("sgn_", (), X), ("fix_", (), X * 3), ("exp2_", (), X),
    ("log2_", (), POS), ("log10_", (), POS), ("erfc_", (), X), ("deg2rad_", (), X), ("rad2deg_", (), X),
    ("sinc_", (), X), ("logit_", (0.1,), P), ("xlogy_", (POS,), X), ("hypot_", (Y,), X), ("ldexp_", (Y.round(),), X),
    ("heaviside_", (Y[:2, :4].copy(),), ZS), ("i0_", (), X),
    ("nextafter_", (Y,), X), ("cumsum_", (1,), X), ("cumprod_", (0,), X),
    ("multiply_", (Y,), X), ("divide_", (Y,), X), ("true_divide_", (2.0,), X), ("subtract_", (Y,), X),
    ("eq_", (0.0,), ZS), ("ne_", (Y,), X), ("lt_", (Y,), X), ("le_", (0.0,), X), ("gt_", (Y,), X), ("ge_", (0.1,), X),
    ("greater_", (Y,), X), ("greater_equal_", (Y,), X), ("less_", (Y,), X), ("less_equal_", (Y,), X),
    ("not_equal_", (0.0,), ZS), ("logical_and_", (Y,), X), ("logical_or_", (ZS,), ZS), ("logical_xor_", (Y,), X),
    ("bitwise_and_", (SH,), I), ("bitwise_or_", (SH,), I), ("bitwise_xor_", (SH,), I), ("bitwise_not_", (), I),
    ("bitwise_left_shift_", (SH,), I), ("bitwise_right_shift_", (SH,), I), ("gcd_", (SH,), I), ("lcm_", (SH,), I),
    ("scatter_reduce_", (1, SH % 4, I * 2, "amax"), I),
    ("index_reduce_", (0, np.array([1, 1]), Y[:2].copy(), "mean"), X),
    ("addmm_", (SQ, SQ.T.copy()), SQ), ("addmv_", (SQ, SQ[0]), SQ[1]), ("addr_", (SQ[0], SQ[1]), SQ),
    ("baddbmm_", (X3[:, :, :3], X3[:, :3].transpose(0, 2, 1).copy()[:, :3]), X3[:, :, :3].copy()),
    ("addbmm_", (X3, X3.transpose(0, 2, 1).copy()), SQ),
    ("index_copy_", (1, np.array([2, 0]), Y[:, :2].copy()), X),
]


@pytest.mark.parametrize("name,args,data", INPLACE_ROWS, ids=[r[0] for r in INPLACE_ROWS])
def test_inplace_variants(name, args, data):
    def lib_args(lib):
        return [(ok.tensor(a) if lib is ok else torch.tensor(a)) if isinstance(a, np.ndarray) else a for a in args]
    want = torch.tensor(data.copy())
    getattr(want, name)(*lib_args(torch))
    got = ok.tensor(data.copy())
    assert getattr(got, name)(*lib_args(ok)) is got
    assert got.dtype == want.numpy().dtype
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_inplace_variant_on_computed_tensor_records_gradient():
    x = ok.tensor(X, requires_grad=True)
    tx = torch.tensor(X, requires_grad=True)
    y, ty = x * 2 + 3, tx * 2 + 3
    y.sinc_(), ty.sinc_()
    g, = ok.grad((y * y).sum(), [x])
    tg, = torch.autograd.grad((ty * ty).sum(), [tx])
    np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-4, atol=1e-5)


# ----- retain_grad, predicates, random ---------------------------------------------------------------------
def test_retain_grad_keeps_non_leaf_gradients():
    x = ok.tensor(X, requires_grad=True)
    tx = torch.tensor(X, requires_grad=True)
    y, ty = x.exp() * 2, tx.exp() * 2
    assert not y.retains_grad and not x.retains_grad
    y.retain_grad(), ty.retain_grad()
    y.retain_grad()  # twice: still one gradient
    x.retain_grad()  # a no-op on leaves, as in torch
    assert y.retains_grad and not x.retains_grad and ty.retains_grad
    (y.sin() * 3).sum().backward()
    (ty.sin() * 3).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    z = y * y  # a second backward accumulates into the retained gradient, as torch's does
    z.sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy() + 2 * ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        ok.tensor(X).retain_grad()


def test_retain_grad_with_autograd_grad():
    x = ok.tensor(X, requires_grad=True)
    y = x * 3
    y.retain_grad()
    ok.grad((y * y).sum(), [x])
    np.testing.assert_allclose(y.grad.numpy(), 2 * 3 * X, rtol=1e-5)


def test_predicates():
    x, i, u = ok.tensor(X), ok.tensor(I), ok.tensor(U8)
    assert x.is_signed() and i.is_signed() and not u.is_signed() and not (x > 0).is_signed() and ok.is_signed(x)
    assert ok.is_same_size(x, ok.tensor(Y)) and not x.is_same_size(x[0])
    assert ok.is_nonzero(ok.tensor([1.5])) is True and ok.tensor(0).is_nonzero() is False
    with pytest.raises(RuntimeError, match="more than one value"):
        x.is_nonzero()
    with pytest.raises(RuntimeError, match="no values"):
        ok.is_nonzero(x[:0])
    assert x.is_cpu is True and x.is_inference() is False
    with pytest.raises(TypeError):
        ok.positive(x > 0)
    with pytest.raises(TypeError):
        ok.bitwise_left_shift(x, 1)


def test_normal_and_randint_like_are_seeded_and_shaped():
    ok.manual_seed(3)
    a = ok.normal(2.0, 0.5, (4000,))
    ok.manual_seed(3)
    b = ok.normal(2.0, 0.5, size=(4000,))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a.dtype == np.float32 and abs(float(a.numpy().mean()) - 2.0) < 0.05 and abs(a.numpy().std() - 0.5) < 0.05
    m = ok.tensor(np.full((2, 3), 5.0))
    out = ok.normal(m, 0.001)
    assert out.dtype == np.float64 and out.shape == (2, 3) and np.allclose(out.numpy(), 5.0, atol=0.01)
    s = ok.normal(1.0, ok.tensor(np.zeros((3,), np.float32)))
    np.testing.assert_array_equal(s.numpy(), np.ones(3, np.float32))
    r = ok.randint_like(ok.tensor(I32), 3, 6)
    assert r.dtype == np.int32 and r.shape == (3, 4) and set(np.unique(r.numpy())) <= {3, 4, 5}
    r = ok.randint_like(ok.tensor(X), 4)
    assert r.dtype == np.float32 and set(np.unique(r.numpy())) <= {0.0, 1.0, 2.0, 3.0}
    with pytest.raises(TypeError, match="size"):
        ok.normal(0.0, 1.0)


def test_new_with_sizes_gives_zeros_of_the_dtype():
    x, i = ok.tensor(X), ok.tensor(I)
    assert x.new(2, 3).shape == (2, 3) and x.new(2, 3).dtype == np.float32 and i.new(4).dtype == np.int64
    assert x.new((2,)).shape == (2,) and not x.new(2, 3).numpy().any()


def test_range_is_inclusive_float32():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for args in [(1, 4), (0, 1, 0.3), (3, 0, -1)]:
            want = torch.range(*args)
            got = ok.range(*args).numpy()
            assert got.dtype == np.float32 and got.shape == tuple(want.shape)
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)


def test_named_results_and_errors():
    r = ok.aminmax(ok.tensor(X), dim=0)
    assert r.min is r[0] and r.max is r[1] and type(r).__name__ == "aminmax"
    c = ok.cummax(ok.tensor(X), 1)
    assert c.values is c[0] and c.indices.dtype == np.int64
    with pytest.raises(NotImplementedError, match="inverse"):
        ok.matrix_power(ok.tensor(SQ), -1)
    with pytest.raises(RuntimeError, match="size"):
        ok.tensor(X).unfold(1, 9, 1)
    with pytest.raises(ValueError, match="divisible"):
        ok.hsplit(ok.tensor(X), 2)
    with pytest.raises(ValueError, match="indexing"):
        ok.meshgrid(ok.tensor(X[0]), indexing="yx")
    with pytest.raises(ok.nn.ShapeError, match="sliding blocks"):
        ok.nn.functional.fold(ok.tensor(np.zeros((1, 4, 5), np.float32)), (3, 3), 2)


def test_gumbel_softmax_samples_and_straight_through():
    ok.manual_seed(0)
    logits = ok.tensor(np.log(np.array([[0.1, 0.2, 0.7]] * 4000, np.float32)), requires_grad=True)
    soft = ok.nn.functional.gumbel_softmax(logits, tau=0.5)
    s = soft.numpy()
    assert s.shape == (4000, 3) and np.allclose(s.sum(1), 1, atol=1e-5)
    freq = np.bincount(s.argmax(1), minlength=3) / 4000  # argmax of Gumbel-perturbed logits ~ softmax(logits)
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7], atol=0.03)
    hard = ok.nn.functional.gumbel_softmax(logits[:5], hard=True)
    h = hard.numpy()
    assert set(np.unique(h)) <= {0.0, 1.0} and (h.sum(1) == 1).all()
    g, = ok.grad((hard * ok.tensor(np.arange(3, dtype=np.float32))).sum(), [logits])
    assert np.abs(g.numpy()[:5]).sum() > 0 and not np.abs(g.numpy()[5:]).any()


def test_native_dropout_and_feature_dropout_in_training():
    ok.manual_seed(1)
    x = ok.tensor(np.ones((200, 50), np.float32))
    out, mask = ok.native_dropout(x, 0.3, True)
    o, m = out.numpy(), mask.numpy()
    assert m.dtype == np.bool_ and abs(m.mean() - 0.7) < 0.02
    np.testing.assert_allclose(o, m / 0.7, rtol=1e-6)
    f = ok.feature_dropout(ok.tensor(np.ones((8, 300, 2, 2), np.float32)), 0.5, True).numpy()
    assert (f.reshape(8, 300, 4).std(-1) == 0).all() and set(np.unique(f)) <= {0.0, 2.0}


def test_host_drawn_fills_and_samplers():
    ok.manual_seed(2)
    x = ok.tensor(np.zeros((3000,), np.float32))
    assert set(np.unique(x.random_(3, 6).numpy())) == {3.0, 4.0, 5.0}
    assert set(np.unique(ok.tensor(np.zeros(500, np.int64)).random_(4).numpy())) == {0, 1, 2, 3}
    assert np.median(x.cauchy_(2.0, 0.5).numpy()) == pytest.approx(2.0, abs=0.1)
    assert np.median(np.log(x.log_normal_(1.0, 0.5).numpy())) == pytest.approx(1.0, abs=0.1)
    geo = x.geometric_(0.25).numpy()
    assert geo.min() >= 1 and geo.mean() == pytest.approx(4.0, rel=0.1)
    p = ok.poisson(ok.tensor(np.full(4000, 3.0, np.float32)))
    assert p.dtype == np.float32 and p.numpy().mean() == pytest.approx(3.0, rel=0.05)
    b = ok.binomial(ok.tensor(np.full(4000, 10.0, np.float32)), ok.tensor(np.full(4000, 0.3, np.float32)))
    assert b.dtype == np.float32 and b.numpy().max() <= 10 and b.numpy().mean() == pytest.approx(3.0, rel=0.05)


def test_detach_in_place():
    w = ok.tensor(X, requires_grad=True)
    y = w * 2
    assert y.detach_() is y and not y.requires_grad
    np.testing.assert_allclose(y.numpy(), X * 2)
    leaf = ok.tensor(X, requires_grad=True)
    leaf.detach_()
    assert not leaf.requires_grad
    assert ok.tensor(X).output_nr == 0 and ok.tensor(X).volatile is False


@pytest.mark.parametrize("name,args,rows", [("t_", (), 2), ("transpose_", (0, 1), 2), ("swapaxes_", (1, 0), 2),
                                            ("swapdims_", (0, 1), 2), ("unsqueeze_", (1,), 2), ("squeeze_", (), 1),
                                            ("squeeze_", (0,), 1)])
def test_shape_changing_inplace(name, args, rows):
    data = X[:rows, :3].copy()
    got, want = ok.tensor(data.copy()), torch.tensor(data.copy())
    assert getattr(got, name)(*args) is got
    getattr(want, name)(*args)
    assert got.shape == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    x, tx = ok.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    y, ty = x * 2, tx * 2
    z, tz = y * 1, ty * 1  # read before the change: keeps the old shape
    getattr(y, name)(*args), getattr(ty, name)(*args)
    w = np.arange(np.prod(ty.shape), dtype=np.float32).reshape(tuple(ty.shape))
    g, = ok.grad((y * ok.tensor(w)).sum() + z.sum(), [x])
    tg, = torch.autograd.grad((ty * torch.tensor(w)).sum() + tz.sum(), [tx])
    np.testing.assert_allclose(g.numpy(), tg.numpy())
    with pytest.raises(RuntimeError, match="leaf"):
        getattr(ok.tensor(data, requires_grad=True), name)(*args)


def test_grad_fn():
    x = ok.tensor(X, requires_grad=True)
    y = (x * 2).exp()
    assert x.grad_fn is None and ok.tensor(X).exp().grad_fn is None
    assert y.grad_fn.name() == "ExpBackward0"
    (mul_fn, _), = y.grad_fn.next_functions
    assert mul_fn.name() == "MulBackward0"
    leaf_fn = mul_fn.next_functions[0][0]
    assert leaf_fn.variable is x and leaf_fn.name().endswith("AccumulateGrad")
    assert ok.atan2(x, x).grad_fn.name() == "Atan2Backward"


def test_fractional_max_pool_draws_its_offsets():
    x = ok.tensor(R.standard_normal((2, 3, 11, 11)).astype(np.float32))
    ok.manual_seed(4)
    a = ok.nn.functional.fractional_max_pool2d(x, 2, output_ratio=(0.5, 0.5)).numpy()
    ok.manual_seed(4)
    b = ok.nn.functional.fractional_max_pool2d(x, 2, output_ratio=(0.5, 0.5)).numpy()
    assert a.shape == (2, 3, 5, 5)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="output_size or an output_ratio"):
        ok.nn.functional.fractional_max_pool2d(x, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nextafter_and_frexp_are_exact(dtype):
    fi = np.finfo(dtype)
    x = np.array([0, 1, 1, -1, 0.5, 0.5, 3.3, -3.3, fi.max, fi.max, fi.tiny, fi.tiny, fi.smallest_subnormal,
                  fi.smallest_subnormal * 7, np.inf, -np.inf, 2.0, 7.0, -0.25, -0.25], dtype)
    y = np.array([1, 2, 0, -2, 0, 1, 0, 0, np.inf, 0, 0, 1, 1, 0, 0, 1, 3.0, 7.0, 0, -1], dtype)
    got = ok.nextafter(ok.tensor(x), ok.tensor(y)).numpy()
    np.testing.assert_array_equal(got, torch.nextafter(torch.tensor(x), torch.tensor(y)).numpy())
    m, e = ok.frexp(ok.tensor(x))
    tm, te = torch.frexp(torch.tensor(x))
    np.testing.assert_array_equal(m.numpy(), tm.numpy())
    np.testing.assert_array_equal(e.numpy(), te.numpy())


def test_gcd_lcm_are_exact_for_large_int64():
    a = np.array([2 ** 40 * 3, 2 ** 50 + 2 ** 20, 1_000_000_007 * 97, -(2 ** 62)], np.int64)
    b = np.array([2 ** 35 * 9, 2 ** 21, 1_000_000_007 * 89, 2 ** 61 * 3 // 3], np.int64)
    np.testing.assert_array_equal(ok.gcd(ok.tensor(a), ok.tensor(b)).numpy(),
                                  torch.gcd(torch.tensor(a), torch.tensor(b)).numpy())
    np.testing.assert_array_equal(ok.lcm(ok.tensor(a[:2]), ok.tensor(b[:2])).numpy(),
                                  torch.lcm(torch.tensor(a[:2]), torch.tensor(b[:2])).numpy())
