"""Every Tensor op against numpy: values, dtypes, shapes (broadcasting, promotion, symbolic dims)."""
import numpy as np
import pytest

import onnxkit as ok

R = np.random.default_rng(0)
A = R.standard_normal((3, 4)).astype(np.float32)
B = R.standard_normal((4,)).astype(np.float32)
C = R.standard_normal((2, 3, 4)).astype(np.float32)
P = np.abs(A) + 0.5
I = R.integers(-5, 5, (3, 4)).astype(np.int64)
J = R.integers(1, 4, (3, 4)).astype(np.int64)
M = R.standard_normal((4, 5)).astype(np.float32)
BM = R.standard_normal((2, 4, 5)).astype(np.float32)
SPECIAL = np.array([1.0, np.nan, -np.inf, 0.0, np.inf], np.float32)
FRAC = np.array([[0.5, 1.0], [-0.25, 0.0]], np.float32)  # nonzero fractions count as True in all/any
TINY = np.array([1e-9, -3e-8, 2e-7, 1e-6, -5e-5, 3e-4, 0.2, -0.45, 2.0], np.float32)  # log1p/expm1 precision
SCALAR = np.array(2.5, np.float32)

# (id, onnxkit fn, numpy fn, inputs)
ROWS = [
    ("add", lambda a, b: a + b, lambda a, b: a + b, [A, B]),
    ("radd-scalar", lambda a: 2 + a, lambda a: 2 + a, [A]),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, [A, B]),
    ("rsub", lambda a: 1.5 - a, lambda a: 1.5 - a, [A]),
    ("mul-bcast3d", lambda a, c: a * c, lambda a, c: a * c, [A, C]),
    ("div", lambda a, b: a / b, lambda a, b: a / b, [A, P]),
    ("rdiv", lambda a: 1.0 / a, lambda a: 1.0 / a, [P]),
    ("pow-scalar", lambda a: a ** 2, lambda a: a ** 2, [A]),
    ("pow-tensor", lambda a, b: a ** b, lambda a, b: a ** b, [P, A]),
    ("rpow", lambda a: 2.0 ** a, lambda a: 2.0 ** a, [A]),
    ("neg", lambda a: -a, lambda a: -a, [A]),
    ("matmul-2d", lambda a, m: a @ m, lambda a, m: a @ m, [A, M]),
    ("matmul-1d", lambda a, b: a @ b, lambda a, b: a @ b, [A, B]),
    ("matmul-batched", lambda c, m: c @ m, lambda c, m: c @ m, [C, BM]),
    # regression: onnxruntime fused Transpose + MatMul(matrix, vector) wrongly
    ("matmul-transposed-vector", lambda m, b: m.t() @ b, lambda m, b: m.T @ b, [M, B]),
    ("norm-empty-dim", lambda a: a.norm(dim=[]), lambda a: np.sqrt((a ** 2).sum()), [A]),
    ("mm", lambda a, m: a.mm(m), lambda a, m: a @ m, [A, M]),
    ("eq", lambda a, b: a == b, lambda a, b: a == b, [A, A]),
    ("lt", lambda a, b: a < b, lambda a, b: a < b, [A, B]),
    ("ge-scalar", lambda a: a >= 0, lambda a: a >= 0, [A]),
    ("ne", lambda a: a != 0.5, lambda a: a != 0.5, [A]),
    ("sum-all", lambda a: a.sum(), lambda a: a.sum(), [A]),
    ("sum-dim", lambda c: c.sum(dim=1), lambda c: c.sum(1), [C]),
    ("sum-keepdim", lambda c: ok.sum(c, dim=(0, 2), keepdim=True), lambda c: c.sum((0, 2), keepdims=True), [C]),
    ("sum-int", lambda i: i.sum(), lambda i: i.sum(), [I]),
    ("mean-dim", lambda c: c.mean(-1), lambda c: c.mean(-1), [C]),
    ("max-all", lambda a: a.max(), lambda a: a.max(), [A]),
    ("max-dim-values", lambda a: a.max(dim=1)[0], lambda a: a.max(1), [A]),
    ("max-dim-indices", lambda a: a.max(dim=1).indices, lambda a: a.argmax(1), [A]),
    ("max-elementwise", lambda a, b: ok.max(a, b), lambda a, b: np.maximum(a, b), [A, B]),
    ("min-keepdim", lambda a: a.min(0, keepdim=True).values, lambda a: a.min(0, keepdims=True), [A]),
    ("prod", lambda a: a.prod(1), lambda a: a.prod(1), [A]),
    ("argmax", lambda a: a.argmax(), lambda a: a.argmax(), [A]),
    ("clamp", lambda a: a.clamp(min=-0.5, max=0.5), lambda a: a.clip(-0.5, 0.5), [A]),
    ("clamp-min", lambda a: a.clamp(min=0), lambda a: np.maximum(a, 0), [A]),
    ("exp", lambda a: a.exp(), np.exp, [A]),
    ("log", lambda a: a.log(), np.log, [P]),
    ("sqrt", lambda a: a.sqrt(), np.sqrt, [P]),
    ("abs", lambda a: a.abs(), np.abs, [A]),
    ("reciprocal", lambda a: a.reciprocal(), lambda a: 1 / a, [P]),
    ("relu", lambda a: a.relu(), lambda a: np.maximum(a, 0), [A]),
    ("sigmoid", lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), [A]),
    ("tanh", lambda a: a.tanh(), np.tanh, [A]),
    ("softmax", lambda a: a.softmax(-1), lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True), [A]),
    ("log_softmax", lambda a: a.log_softmax(0), lambda a: a - np.log(np.exp(a).sum(0, keepdims=True)), [A]),
    ("reshape", lambda c: c.reshape(4, 6), lambda c: c.reshape(4, 6), [C]),
    ("view-neg", lambda c: c.view(-1, 4), lambda c: c.reshape(-1, 4), [C]),
    ("transpose", lambda c: c.transpose(0, 2), lambda c: c.transpose(2, 1, 0), [C]),
    ("permute", lambda c: c.permute(1, 2, 0), lambda c: c.transpose(1, 2, 0), [C]),
    ("t", lambda a: a.t(), lambda a: a.T, [A]),
    ("T", lambda c: c.T, lambda c: c.T, [C]),
    ("flatten", lambda c: c.flatten(), lambda c: c.reshape(-1), [C]),
    ("flatten-1", lambda c: c.flatten(1), lambda c: c.reshape(2, -1), [C]),
    ("squeeze", lambda c: c[:, :1].squeeze(1), lambda c: c[:, 0], [C]),
    ("unsqueeze", lambda a: a.unsqueeze(1), lambda a: a[:, None], [A]),
    ("expand", lambda b: b.expand(3, 4), lambda b: np.broadcast_to(b, (3, 4)), [B]),
    ("expand-neg", lambda a: a[:, :1].expand(-1, 5), lambda a: np.broadcast_to(a[:, :1], (3, 5)), [A]),
    ("idx-int", lambda c: c[1], lambda c: c[1], [C]),
    ("idx-neg-int", lambda c: c[-1, -2], lambda c: c[-1, -2], [C]),
    ("idx-slice-step", lambda c: c[:, ::2, 1:], lambda c: c[:, ::2, 1:], [C]),
    ("idx-neg-step", lambda c: c[::-1, ::-2], lambda c: c[::-1, ::-2], [C]),
    ("idx-neg-slice", lambda a: a[-2:, :-1], lambda a: a[-2:, :-1], [A]),
    ("idx-none-ellipsis", lambda c: c[None, ..., 1], lambda c: c[None, ..., 1], [C]),
    ("idx-int-array", lambda a: a[[2, 0, 2]], lambda a: a[[2, 0, 2]], [A]),
    ("idx-int-array-axis1", lambda c: c[:, [0, 2]], lambda c: c[:, [0, 2]], [C]),
    ("idx-two-arrays", lambda c: c[[0, 1], :, [1, 3]], lambda c: c[[0, 1], :, [1, 3]], [C]),
    ("idx-adjacent-arrays", lambda c: c[:, [0, 1], [1, 3]], lambda c: c[:, [0, 1], [1, 3]], [C]),
    ("idx-tensor", lambda a: a[ok.tensor(np.array([1, -1]))], lambda a: a[[1, -1]], [A]),
    ("cat", lambda a, b: ok.cat([a, a * 2], dim=0), lambda a, b: np.concatenate([a, a * 2], 0), [A, B]),
    ("cat-dim1", lambda a: ok.cat([a, a], 1), lambda a: np.concatenate([a, a], 1), [A]),
    ("stack", lambda a: ok.stack([a, a + 1], dim=1), lambda a: np.stack([a, a + 1], 1), [A]),
    ("split", lambda c: ok.split(c, 3, dim=2)[1], lambda c: c[:, :, 3:], [C]),
    ("split-sections", lambda c: c.split([1, 3], dim=2)[1], lambda c: c[:, :, 1:], [C]),
    ("chunk", lambda c: c.chunk(2, 1)[1], lambda c: c[:, 2:], [C]),
    ("where", lambda a, b: ok.where(a > 0, a, b), lambda a, b: np.where(a > 0, a, b), [A, B]),
    ("where-scalar", lambda a: ok.where(a > 0, a, 0.0), lambda a: np.where(a > 0, a, 0), [A]),
    ("astype", lambda a: a.astype("int64"), lambda a: a.astype(np.int64), [A * 3]),
    ("float", lambda i: i.float(), lambda i: i.astype(np.float32), [I]),
    ("long", lambda a: (a * 3).long(), lambda a: (a * 3).astype(np.int64), [A]),
    ("floordiv-int", lambda i, j: i // j, lambda i, j: i // j, [I, J]),
    ("remainder-int", lambda i, j: i % j, lambda i, j: i % j, [I, J]),
    ("remainder-float", lambda a: a % 0.7, lambda a: np.mod(a, np.float32(0.7)), [A]),
    ("gather", lambda a, j: a.gather(1, j % 4), lambda a, j: np.take_along_axis(a, j % 4, 1), [A, J]),
    ("cumsum", lambda a: a.cumsum(1), lambda a: a.cumsum(1), [A]),
    ("var", lambda a: a.var(1), lambda a: a.var(1, ddof=1), [A]),
    ("std-biased", lambda a: a.std(0, unbiased=False), lambda a: a.std(0), [A]),
    ("norm", lambda a: a.norm(), lambda a: np.sqrt((a ** 2).sum()), [A]),
    ("logsumexp", lambda a: a.logsumexp(1), lambda a: np.log(np.exp(a).sum(1)), [A]),
    ("repeat", lambda a: a.repeat(2, 1, 3), lambda a: np.tile(a, (2, 1, 3)), [A]),
    ("flip", lambda a: a.flip(0), lambda a: a[::-1], [A]),
    ("einsum", lambda a, m: ok.einsum("ij,jk->ik", a, m), lambda a, m: a @ m, [A, M]),
    # regressions: each row failed or gave a wrong number before its fix
    ("isnan-is-bool", lambda v: v.isnan(), np.isnan, [SPECIAL]),
    ("isinf-sum-int64", lambda v: v.isinf().sum(), lambda v: np.isinf(v).sum(), [SPECIAL]),
    ("all-float-fractions", lambda f: ok.all(f[0]), lambda f: np.all(f[0]), [FRAC]),
    ("any-float-dim", lambda f: f.any(1), lambda f: f.any(1), [FRAC]),
    ("and-int-bitwise", lambda i: i & 1, lambda i: i & 1, [I]),
    ("or-int-bitwise", lambda i, j: i | j, lambda i, j: i | j, [I, J]),
    ("rxor-int-bitwise", lambda i: 6 ^ i, lambda i: 6 ^ i, [I]),
    ("invert-int-bitwise", lambda i: ~i, lambda i: ~i, [I]),
    ("and-bool-logical", lambda a, b: (a > 0) & (b > 0), lambda a, b: (a > 0) & (b > 0), [A, B]),
    ("invert-bool", lambda a: ~(a > 0), lambda a: ~(a > 0), [A]),
    ("logical_or-floats", lambda f, a: ok.logical_or(f, a[:2, :2]), lambda f, a: np.logical_or(f, a[:2, :2]),
     [FRAC, A]),
    ("numpy-float32-scalar", lambda a: a * 0 + ok.exp(np.float32(2.5)), lambda a: a * 0 + np.exp(np.float32(2.5)), [A]),
    ("narrow-neg-start", lambda a: a.narrow(0, -2, 2), lambda a: a[-2:], [A]),
    ("var-legacy-unbiased-flag", lambda a: a.var(False), lambda a: a.var(), [A]),
    ("sum-0d-dim", lambda s: s.sum(0), lambda s: s, [SCALAR]),
    ("amax-0d-dim-keepdim", lambda s: s.amax(-1, keepdim=True), lambda s: s, [SCALAR]),
    ("argmax-all-keepdim", lambda a: a.argmax(keepdim=True), lambda a: np.reshape(a.argmax(), (1, 1)), [A]),
    ("max-numpy-int-dim", lambda a: a.max(np.int64(1)).values, lambda a: a.max(1), [A]),
    ("scatter-float64-numpy-src", lambda a: a.scatter(1, ok.tensor(np.array([[0], [2], [3]])), np.full((3, 1), 9.0)),
     lambda a: _scattered(a), [A]),
    ("to-other-tensor", lambda i, a: i.to(a), lambda i, a: i.astype(np.float32), [I, A]),
    ("bool-add-is-or", lambda a, b: (a > 0) + (b > 0), lambda a, b: (a > 0) | (b > 0), [A, B]),
    ("bool-mul-is-and", lambda a, b: (a > 0) * (b > 0), lambda a, b: (a > 0) & (b > 0), [A, B]),
]


def _scattered(a):
    """a with 9.0 written at columns 0, 2, 3 of its rows."""
    out = a.copy()
    np.put_along_axis(out, np.array([[0], [2], [3]]), 9.0, 1)
    return out


@pytest.mark.parametrize("name,fn,ref,inputs", ROWS, ids=[r[0] for r in ROWS])
def test_op_matches_numpy(name, fn, ref, inputs):
    out = fn(*[ok.tensor(x) for x in inputs])
    want = np.asarray(ref(*inputs))
    got = out.numpy()
    assert tuple(out.shape) == want.shape, f"{name}: build-time shape {out.shape} vs numpy {want.shape}"
    assert got.shape == want.shape
    if want.dtype == np.float64 and out.dtype == np.float32:
        want = want.astype(np.float32)
    assert out.dtype == got.dtype, f"{name}: declared dtype {out.dtype}, computed {got.dtype}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, numpy gives {want.dtype}"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,ref", [("log1p", np.log1p), ("expm1", np.expm1)])
def test_log1p_expm1_keep_relative_precision(name, ref):
    """Their point is tiny |x|, where log(1 + x) and exp(x) - 1 lose every digit; gradients as torch's."""
    x = ok.tensor(TINY, requires_grad=True)
    y = getattr(ok, name)(x)
    np.testing.assert_allclose(y.numpy(), ref(TINY), rtol=2e-6, atol=0)
    g, = ok.grad(y.sum(), [x])
    want = 1 / (1 + TINY.astype(np.float64)) if name == "log1p" else np.exp(TINY.astype(np.float64))
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-6)


# ----- type promotion follows torch ----------------------------------------------------------
PROMOTION = [
    (np.float32, np.float64, np.float64), (np.int64, np.float32, np.float32), (np.int32, np.int64, np.int64),
    (np.bool_, np.int64, np.int64), (np.float16, np.float32, np.float32), (np.uint8, np.int8, np.int16),
]


@pytest.mark.parametrize("a,b,want", PROMOTION)
def test_tensor_tensor_promotion(a, b, want):
    x = ok.tensor(np.ones(3, a)) + ok.tensor(np.ones(3, b))
    assert x.dtype == np.dtype(want)
    assert x.numpy().dtype == np.dtype(want)


@pytest.mark.parametrize("dtype,scalar,want", [
    (np.int64, 2.5, np.float32), (np.int32, 2, np.int32), (np.float16, 2.0, np.float16),
    (np.float32, 2, np.float32), (np.bool_, 1, np.int64), (np.float64, 1.0, np.float64)])
def test_scalar_promotion(dtype, scalar, want):
    x = ok.tensor(np.ones(3, dtype)) * scalar
    assert x.dtype == np.dtype(want)
    assert x.numpy().dtype == np.dtype(want)


def test_int_true_division_gives_float32():
    x = ok.tensor(np.array([3, 4])) / 2
    assert x.dtype == np.float32
    np.testing.assert_allclose(x.numpy(), [1.5, 2.0])


def test_python_data_defaults_like_torch():
    assert ok.tensor([1.0, 2.0]).dtype == np.float32
    assert ok.tensor([1, 2]).dtype == np.int64
    assert ok.tensor(np.zeros(2)).dtype == np.float64
    assert ok.randn(2, 3).dtype == np.float32 and ok.randn(2, 3).shape == (2, 3)


def test_factories():
    np.testing.assert_array_equal(ok.arange(5).numpy(), np.arange(5))
    assert ok.arange(0, 1, 0.25).dtype == np.float32
    np.testing.assert_array_equal(ok.eye(3).numpy(), np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(ok.full((2, 2), 7).numpy(), np.full((2, 2), 7))
    np.testing.assert_array_equal(ok.zeros(2, 3).numpy(), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(ok.ones((2, 3)).numpy(), np.ones((2, 3), np.float32))
    r = ok.rand(1000).numpy()
    assert 0 <= r.min() and r.max() < 1
    ok.manual_seed(3)
    a = ok.randn(4).numpy()
    ok.manual_seed(3)
    np.testing.assert_array_equal(a, ok.randn(4).numpy())


@pytest.mark.parametrize("args,size", [((10, (3,)), (3,)), ((5, 10, (2, 2)), (2, 2)), ((4,), None)])
def test_randint_takes_torchs_forms(args, size):
    """randint(high, size) and randint(low, high, size), as torch; a missing size is an error."""
    if size is None:
        with pytest.raises(TypeError, match="needs a size"):
            ok.randint(*args)
        return
    v = ok.randint(*args).numpy()
    low, high = (0, args[0]) if len(args) == 2 else args[:2]
    assert v.shape == size and v.dtype == np.int64 and low <= v.min() and v.max() < high


def test_tensor_copies_its_data():
    """Evaluation is lazy: changing the source array after ok.tensor() must not change results."""
    src = np.ones(3, np.float32)
    y = ok.tensor(src) * 2
    src[:] = 100
    np.testing.assert_array_equal(y.numpy(), [2, 2, 2])


def test_detach_sees_a_pending_update():
    w = ok.tensor(np.ones(2, np.float32))
    with ok.no_grad():
        w -= ok.tensor(np.ones(2, np.float32)) * 3
    np.testing.assert_array_equal(w.detach().numpy(), [-2, -2])


def test_augmented_assignment_on_a_computed_tensor_exports():
    """`h += x` inside a traced forward (ResNet's `out += identity`) stays in the graph."""
    def fn(t):
        h = t * 2
        h += t
        return h
    data = R.standard_normal((3, 4)).astype(np.float32)
    _, out = _run_export(fn, [ok.Input("x", ("N", 4))], {"x": data})
    np.testing.assert_allclose(out, data * 3, rtol=1e-6)


# ----- symbolic dims -------------------------------------------------------------------------
def _run_export(fn, inputs, feeds):
    model = ok.export(fn, inputs)
    sess = ok.Session(model)
    return model, sess.run(feeds)["output"]


def test_symbolic_dims_print_and_compare():
    x = ok.Input("x", ("N", 4))
    n = x.shape[0]
    assert str(n) == "N" and repr(x.shape) == "(N, 4)"
    assert n == ok.Input("y", ("N", 2)).shape[0]
    assert str(n * 4) == "4*N"
    assert str(0 - n) == "(0)-(N)" and (0 + n) is n and (1 * n) is n and str(1 // n) == "(1)//(N)"
    assert (x * 2).shape[0] == n
    assert (x @ ok.tensor(M)).shape[1] == 5
    assert str(x.repeat(2, 1).repeat(3, 1).shape[0]) == "6*N"  # canonical, comparable with other 6*N


def test_dim_arithmetic_values():
    """0 - N is -N (it used to come back as N); reductions over a symbolic batch keep torch's rank."""
    def fn(t):
        return t.sum(0) * (0 - t.shape[0]), t.var(), t.std(0)
    data = R.standard_normal((6, 4)).astype(np.float32)
    model = ok.export(fn, [ok.Input("x", ("N", 4))])
    neg, var, std = ok.Session(model).run({"x": data}).values()
    np.testing.assert_allclose(neg, data.sum(0) * -6, rtol=1e-5)
    assert var.shape == () and std.shape == (4,)
    np.testing.assert_allclose(var, data.var(ddof=1), rtol=1e-5)
    np.testing.assert_allclose(std, data.std(0, ddof=1), rtol=1e-5)


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_view_with_symbolic_batch(batch):
    x = ok.Input("x", ("N", 3, 4))
    data = R.standard_normal((batch, 3, 4)).astype(np.float32)
    model, out = _run_export(lambda t: t.view(t.shape[0], -1) * 2, [x], {"x": data})
    np.testing.assert_allclose(out, data.reshape(batch, -1) * 2)
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 12


def test_reshape_with_dim_arithmetic():
    x = ok.Input("x", ("B", 3, 4))

    def fn(t):
        b, h, w = t.shape
        return t.reshape(b * h, w).sum(1).reshape(b, h)
    data = R.standard_normal((5, 3, 4)).astype(np.float32)
    _, out = _run_export(fn, [x], {"x": data})
    np.testing.assert_allclose(out, data.sum(2), rtol=1e-5, atol=1e-5)


def test_symbolic_dim_as_value_lowers_to_shape():
    x = ok.Input("x", ("N", 4))
    data = R.standard_normal((6, 4)).astype(np.float32)
    model, out = _run_export(lambda t: t.sum(0) / t.shape[0], [x], {"x": data})
    assert any(n.op_type == "Shape" for n in model.graph.node)
    np.testing.assert_allclose(out, data.mean(0), rtol=1e-5, atol=1e-6)


def test_broadcast_symbolic_with_one():
    x = ok.Input("x", ("N", 1))
    y = x + ok.tensor(B)
    assert y.shape == (x.shape[0], 4)


# ----- build-time errors name both shapes ------------------------------------------------------
def test_broadcast_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(3,\)|\(3, 4\) and \(3\)"):
        ok.tensor(A) + ok.tensor(np.ones(3, np.float32))


def test_matmul_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 4\)"):
        ok.tensor(A) @ ok.tensor(A)


def test_reshape_mismatch():
    with pytest.raises(ValueError, match="invalid for input of shape"):
        ok.tensor(A).view(5, -1)


def test_index_out_of_range():
    with pytest.raises(IndexError, match="out of bounds"):
        ok.tensor(A)[3]
    with pytest.raises(IndexError, match="too many indices"):
        ok.tensor(A)[0, 0, 0]


BUILD_ERRORS = [  # (what, call, exception, message): raised while building, naming what to fix
    ("linear-features", lambda: ok.linear(ok.tensor(A), ok.tensor(M), ok.tensor(np.ones(4, np.float32))),
     ValueError, r"input of shape \(3, 4\) has 4 features, but the weight of shape \(4, 5\) expects 5"),
    ("gemm-inner-dims", lambda: ok.ops.apply("Gemm", [ok.tensor(A), ok.tensor(A)]), ValueError,
     r"Gemm: A \(3, 4\) and B \(3, 4\) cannot be multiplied \(4 vs 3\)"),
    ("gemm-bias", lambda: ok.ops.apply("Gemm", [ok.tensor(A), ok.tensor(M), ok.tensor(np.ones(3, np.float32))]),
     ValueError, r"Gemm bias: shapes \(3, 5\) and \(3,\) are not broadcastable"),
    ("cat-0d", lambda: ok.cat([ok.tensor(SCALAR), ok.tensor(SCALAR)]), ValueError, "zero-dimensional"),
    ("cat-ranks", lambda: ok.cat([ok.tensor(A), ok.tensor(B)], 1), ValueError, r"same rank, got \(3, 4\) and \(4,\)"),
    ("gather-rank", lambda: ok.tensor(A).gather(1, ok.tensor(np.zeros(3, np.int64))), ValueError,
     "as many dims as the input"),
    ("flatten-order", lambda: ok.tensor(C).flatten(2, 1), ValueError, "start_dim 2 comes after end_dim 1"),
    ("narrow-range", lambda: ok.tensor(A).narrow(1, 2, 3), IndexError, "exceeds dim 1 of size 4"),
    ("float-and", lambda: ok.tensor(A) & ok.tensor(A), TypeError, "bool or integer"),
    ("bool-sub", lambda: (ok.tensor(A) > 0) - (ok.tensor(A) > 1), TypeError, "not supported on two bool tensors"),
    ("view-dtype", lambda: ok.tensor(A).view(np.int32), NotImplementedError, "reinterprets the bits"),
    ("div-mode", lambda: ok.div(ok.tensor(A), 2, rounding_mode="round"), ValueError, "rounding_mode"),
    ("dot-rank", lambda: ok.dot(ok.tensor(A), ok.tensor(B)), ValueError, r"dot: expected 1-D and 1-D"),
    ("split-zero", lambda: ok.split(ok.tensor(A), 0), ValueError, "must be positive"),
    ("chunk-symbolic", lambda: ok.chunk(ok.Input("x", ("N", 4)), 2), ValueError, "symbolic"),
    ("norm-nuc", lambda: ok.tensor(A).norm(p="nuc"), ValueError, "p='nuc' is not supported"),
    ("bool-ambiguous", lambda: bool(ok.tensor(A) > 0), RuntimeError, r"ambiguous"),
]


@pytest.mark.parametrize("what,call,exc,match", BUILD_ERRORS, ids=[e[0] for e in BUILD_ERRORS])
def test_build_time_errors(what, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_unbound_input_is_named():
    x = ok.Input("pixels", ("N", 4))
    with pytest.raises(ValueError, match="pixels"):
        (x * 2).numpy()


def test_item_and_conversions():
    t = ok.tensor(np.array([2.5], np.float32))
    assert t.item() == 2.5 and float(t) == 2.5
    assert ok.tensor(A).tolist() == A.tolist()
    np.testing.assert_array_equal(np.asarray(ok.tensor(A)), A)
