"""Creation ops, reshapes and slices sized by symbolic dims: they export with those dims kept symbolic,
pass the full ONNX checker and match torch at two different (N, T)."""
import math

import numpy as np
import onnx
import pytest

import onnxkit as ok

torch = pytest.importorskip("torch", reason="torch is the test oracle: pip install torch==2.13.0 (test extra)")

R = np.random.default_rng(0)
PE = R.standard_normal((16, 8)).astype(np.float32)        # a buffer longer than any T fed below
PE3 = R.standard_normal((1, 16, 8)).astype(np.float32)
SIZES = [(2, 3), (4, 7)]                                  # (N, T) fed to every exported graph

# (id, fn(L, x) written once for L = onnxkit and L = torch, expected output dims (None: some symbolic))
ROWS = [
    ("cat-zeros", lambda L, x: L.cat([x, L.zeros(x.size(0), x.size(1), 4)], -1), ("N", "T", 12)),
    ("cat-zeros-time", lambda L, x: L.cat([x, L.zeros(x.size(0), 2, 8)], 1), None),
    ("zeros-of-shape", lambda L, x: L.zeros(x.shape) + x, ("N", "T", 8)),
    ("ones", lambda L, x: x + L.ones(x.size(0), x.size(1), 8), ("N", "T", 8)),
    ("ones-size-kw", lambda L, x: x * L.ones(size=(x.size(0), x.size(1), 1)), ("N", "T", 8)),
    ("ones-dtype-device", lambda L, x: L.ones(x.size(0), 1, 1, dtype=L.float32, device="cpu") * x, ("N", "T", 8)),
    ("full", lambda L, x: x + L.full((x.size(0), 1, 8), 2.5), ("N", "T", 8)),
    ("full-int", lambda L, x: L.full((x.size(0), x.size(1)), 3), ("N", "T")),
    ("full-bool", lambda L, x: L.full((x.size(0), x.size(1)), True), ("N", "T")),
    ("empty-shape", lambda L, x: L.empty(x.size(0), x.size(1)).fill_(1.5), ("N", "T")),
    ("zeros-like", lambda L, x: L.zeros_like(x) + x, ("N", "T", 8)),
    ("ones-like-dtype", lambda L, x: L.ones_like(x, dtype=L.int64), ("N", "T", 8)),
    ("full-like", lambda L, x: L.full_like(x, 7.0) - x, ("N", "T", 8)),
    ("empty-like", lambda L, x: L.empty_like(x).fill_(0.0) + x, ("N", "T", 8)),
    ("arange", lambda L, x: x * L.arange(x.size(1)).view(1, -1, 1), ("N", "T", 8)),
    ("arange-start", lambda L, x: x * L.arange(1, x.size(1) + 1).view(1, -1, 1), ("N", "T", 8)),
    ("arange-step", lambda L, x: x + L.arange(0, 2 * x.size(1), 2).view(1, -1, 1), None),
    ("arange-float", lambda L, x: L.arange(0.0, x.size(1), 0.5), None),
    ("arange-dtype", lambda L, x: L.arange(x.size(0), dtype=L.float32), ("N",)),
    ("eye", lambda L, x: L.eye(x.size(1)) @ x, ("N", "T", 8)),
    ("eye-rect", lambda L, x: L.eye(x.size(1), 3), ("T", 3)),
    ("linspace", lambda L, x: L.linspace(-1, 2, x.size(1)).view(1, -1, 1) * x, ("N", "T", 8)),
    ("causal-mask", lambda L, x: L.full((x.size(1), x.size(1)), float("-inf")).triu(1), ("T", "T")),
    ("view", lambda L, x: x.view(x.size(0), -1), None),
    ("reshape-heads", lambda L, x: x.reshape(x.size(0), x.size(1), 2, -1).transpose(1, 2), ("N", 2, "T", 4)),
    ("slice-buffer", lambda L, x: x + L.tensor(PE)[:x.size(1)], ("N", "T", 8)),
    ("slice-buffer-2d", lambda L, x: x + L.tensor(PE3)[:, :x.size(1)], ("N", "T", 8)),
    ("slice-from-dim", lambda L, x: x[:, x.size(1) - 1:], ("N", 1, 8)),
    ("slice-dim-both", lambda L, x: L.tensor(PE)[x.size(1) - 2:x.size(1)] * 2, (2, 8)),  # T - (T - 2) is 2
    ("narrow", lambda L, x: x.narrow(1, 0, x.size(1) - 1), None),
]


def _out_dims(model, k=0):
    return tuple(d.dim_param or d.dim_value for d in model.graph.output[k].type.tensor_type.shape.dim)


@pytest.mark.parametrize("name,fn,shape", ROWS, ids=[r[0] for r in ROWS])
def test_symbolic_sizes_export_and_match_torch(name, fn, shape):
    model = ok.export(lambda x: fn(ok, x), [ok.Input("x", ("N", "T", 8))])
    onnx.checker.check_model(model, full_check=True)
    dims = _out_dims(model)
    if shape is None:
        assert any(isinstance(d, str) and d for d in dims), f"{name}: output lost its symbolic dims: {dims}"
    else:
        assert dims == shape
    sess = ok.Session(model)
    for n, t in SIZES:
        x = R.standard_normal((n, t, 8)).astype(np.float32)
        got = sess.run({"x": x})["output"]
        want = fn(torch, torch.from_numpy(x)).numpy()
        assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _positional_encoding(L, nn):
    """The PyTorch tutorial's PositionalEncoding, written once for onnxkit and torch."""
    class PositionalEncoding(nn.Module):
        def __init__(self, d_model, dropout=0.1, max_len=64):
            super().__init__()
            self.dropout = nn.Dropout(p=dropout)
            position = L.arange(max_len).unsqueeze(1)
            div_term = L.exp(L.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
            pe = L.zeros(max_len, 1, d_model)
            pe[:, 0, 0::2] = L.sin(position * div_term)
            pe[:, 0, 1::2] = L.cos(position * div_term)
            self.register_buffer("pe", pe)

        def forward(self, x):
            """x: (seq_len, batch, d_model)."""
            x = x + self.pe[:x.size(0)]
            return self.dropout(x)
    return PositionalEncoding(16)


def test_positional_encoding_exports_with_dynamic_sequence():
    mine, ref = _positional_encoding(ok, ok.nn), _positional_encoding(torch, torch.nn).eval()
    np.testing.assert_allclose(mine.state_dict()["pe"], ref.pe.numpy(), rtol=1e-5, atol=1e-6)
    model = ok.export(mine, [ok.Input("x", ("T", "N", 16))])
    onnx.checker.check_model(model, full_check=True)
    assert _out_dims(model) == ("T", "N", 16)
    sess = ok.Session(model)
    for t, n in [(3, 2), (9, 5)]:
        x = R.standard_normal((t, n, 16)).astype(np.float32)
        np.testing.assert_allclose(sess.run({"x": x})["output"], ref(torch.from_numpy(x)).numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_attention_block_with_dynamic_length():
    """Heads split with Dims, a causal mask and a zero-padded cat, all sized by the input."""
    w = R.standard_normal((8, 24)).astype(np.float32) * 0.3

    def attend(L, x):
        b, t, _ = x.shape
        q, k, v = (x @ L.tensor(w)).split(8, dim=-1)
        q, k, v = (z.view(b, t, 2, -1).transpose(1, 2) for z in (q, k, v))
        mask = L.full((t, t), float("-inf")).triu(1)
        att = L.softmax(q @ k.transpose(-2, -1) / 2.0 + mask, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, -1)
        return L.cat([y, L.zeros(b, t, 2)], -1)

    model = ok.export(lambda x: attend(ok, x), [ok.Input("x", ("N", "T", 8))])
    onnx.checker.check_model(model, full_check=True)
    assert _out_dims(model) == ("N", "T", 10)
    sess = ok.Session(model)
    for n, t in SIZES:
        x = R.standard_normal((n, t, 8)).astype(np.float32)
        np.testing.assert_allclose(sess.run({"x": x})["output"], attend(torch, torch.from_numpy(x)).numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_new_zeros_with_symbolic_size():
    x = ok.Input("x", ("N", "T", 8))
    model = ok.export(lambda t: ok.cat([t, t.new_zeros(t.size(0), t.size(1), 2)], -1), [x])
    assert _out_dims(model) == ("N", "T", 10)
    out = ok.Session(model).run({"x": np.ones((2, 3, 8), np.float32)})["output"]
    np.testing.assert_array_equal(out[..., 8:], 0)


# ----- concrete sizes keep the fast path: value leaves, no graph ------------------------------------
@pytest.mark.parametrize("make", [
    lambda: ok.zeros(2, 3), lambda: ok.ones((2, 3)), lambda: ok.empty([2, 3]), lambda: ok.full((2, 3), 1.5),
    lambda: ok.arange(6), lambda: ok.eye(3), lambda: ok.linspace(0, 1, 5), lambda: ok.randn(2, 3),
    lambda: ok.zeros_like(ok.tensor(np.ones((2, 3), np.float32)) * 2), lambda: ok.full_like(ok.ones(2), 3.0),
    lambda: ok.zeros(size=(2, 3)),
], ids=["zeros", "ones", "empty", "full", "arange", "eye", "linspace", "randn", "zeros_like", "full_like",
        "size-kw"])
def test_concrete_sizes_give_value_leaves(make):
    t = make()
    assert t.node is None and t.kind == "value"


def test_torch_keywords_and_dtypes_accepted():
    t = ok.zeros(2, 3, dtype=torch.float64, device="cpu", layout=torch.strided, pin_memory=False)
    assert t.dtype == np.float64 and t.shape == (2, 3)
    assert ok.ones(2, dtype="int32").dtype == np.int32
    assert ok.arange(5, dtype=torch.float32, device=torch.device("cpu")).dtype == np.float32
    assert ok.full((2,), 1, dtype=torch.float16).dtype == np.float16
    assert ok.zeros_like(t, device="cpu", memory_format=torch.preserve_format).dtype == np.float64
    assert ok.eye(2, dtype=torch.int64, device="cpu").dtype == np.int64
    np.testing.assert_array_equal(ok.full_like(t, 2, dtype=torch.int64).numpy(), np.full((2, 3), 2))


def test_random_creation_needs_concrete_size():
    x = ok.Input("x", ("N", "T", 8))
    with pytest.raises(ValueError, match=r"symbolic dim\(s\) N\b.*concrete size"):
        ok.randn(x.size(0), 4)
    with pytest.raises(ValueError, match=r"rand_like.*N, T"):
        ok.rand_like(x)
    with pytest.raises(ValueError, match=r"randn_like.*N, T"):
        ok.randn_like(x)
    with pytest.raises(ValueError, match="randint.*N"):
        ok.randint(0, 5, (x.size(0),))


def test_symbolic_size_cannot_be_a_grad_leaf():
    x = ok.Input("x", ("N", 4))
    with pytest.raises(ValueError, match="requires_grad"):
        ok.zeros(x.size(0), 4, requires_grad=True)


def test_symbolic_creation_evaluates_eagerly():
    """Dims of unknown size in define-by-run code (here from boolean-mask indexing) lower to Shape of the
    tensor, and the result evaluates without export."""
    a = ok.tensor(np.arange(6, dtype=np.float32))
    picked = a[a > 2.0]
    assert not isinstance(picked._shape[0], int)
    np.testing.assert_array_equal(ok.zeros(picked.size(0), 2).numpy(), np.zeros((3, 2), np.float32))
    np.testing.assert_array_equal(ok.arange(picked.size(0)).numpy(), np.arange(3))
    np.testing.assert_array_equal(ok.ones_like(picked).numpy(), np.ones(3, np.float32))
