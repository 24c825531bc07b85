"""Parity rows for the activation layers (torch.nn activations), float64 finite differences for
the composed ones, boundary gradients, RReLU's train-mode slopes and build-time errors."""
import numpy as np
import pytest
import torch

import onnxkit as ok
from onnxkit import nn
from gradcheck import gradcheck
from parity import Row, check_row, ids


def scaled(shape, scale, exact=()):
    """Normal inputs times `scale`, with the values in `exact` (torch's boundary points) planted."""
    def make(rng, n):
        x = (rng.standard_normal((n,) + tuple(shape)) * scale).astype(np.float32)
        flat = x.reshape(-1)
        flat[:len(exact)] = exact
        return [x]
    return make


BOUNDS4 = scaled((4, 5), 4.0, exact=(-3.0, 3.0, 0.0, 6.0, -1.0, 1.0))

ROWS = [
    Row("ReLU", "ReLU", shapes=[(3, 4)]),
    Row("ReLU-3d", "ReLU", shapes=[(3, 4, 2)]),
    Row("ReLU6", "ReLU6", make_inputs=BOUNDS4),
    Row("ELU", "ELU", shapes=[(3, 4)]),
    Row("ELU-alpha", "ELU", (0.5,), shapes=[(3, 4)]),
    Row("ELU-alpha-kw", "ELU", kwargs={"alpha": 2.0}, shapes=[(3, 4)]),
    Row("SELU", "SELU", make_inputs=scaled((6,), 2.0)),
    Row("CELU", "CELU", shapes=[(3, 4)]),
    Row("CELU-alpha", "CELU", kwargs={"alpha": 2.5}, make_inputs=scaled((6,), 3.0)),
    Row("GELU", "GELU", make_inputs=scaled((4, 5), 3.0)),
    Row("GELU-tanh", "GELU", kwargs={"approximate": "tanh"}, make_inputs=scaled((4, 5), 3.0)),
    Row("SiLU", "SiLU", make_inputs=scaled((4, 5), 3.0)),
    Row("Mish", "Mish", make_inputs=scaled((4, 5), 3.0)),
    Row("PReLU", "PReLU", shapes=[(3, 4)]),
    Row("PReLU-channels", "PReLU", (3,), shapes=[(2, 3, 4)]),
    Row("PReLU-channels-2d", "PReLU", (4,), shapes=[(5, 4)]),
    Row("PReLU-channels-4d", "PReLU", kwargs={"num_parameters": 3, "init": 0.1}, shapes=[(2, 3, 2, 2)]),
    Row("PReLU-init", "PReLU", kwargs={"init": -0.3}, shapes=[(2, 3, 4)]),
    Row("LeakyReLU", "LeakyReLU", make_inputs=scaled((4, 5), 1.0, exact=(0.0,))),
    Row("LeakyReLU-slope", "LeakyReLU", (0.2,), shapes=[(3, 4)]),
    Row("LeakyReLU-steep", "LeakyReLU", kwargs={"negative_slope": 1.5}, shapes=[(3, 4)]),
    Row("RReLU-eval", "RReLU", shapes=[(3, 4)]),
    Row("RReLU-eval-bounds", "RReLU", (0.1, 0.6), shapes=[(3, 4, 2)]),
    Row("RReLU-eval-kw", "RReLU", kwargs={"lower": 0.2, "upper": 0.25}, shapes=[(3, 4)]),
    Row("Threshold", "Threshold", (0.1, 20.0), make_inputs=scaled((4, 5), 1.0, exact=(0.1,))),
    Row("Threshold-neg", "Threshold", kwargs={"threshold": -0.5, "value": -1.0}, shapes=[(3, 4)]),
    Row("Hardtanh", "Hardtanh", make_inputs=BOUNDS4),
    Row("Hardtanh-bounds", "Hardtanh", (-2.0, 3.0), make_inputs=scaled((4, 5), 3.0, exact=(-2.0, 3.0))),
    Row("Hardtanh-kw", "Hardtanh", kwargs={"min_val": 0.0, "max_val": 0.5}, shapes=[(3, 4)]),
    Row("Hardsigmoid", "Hardsigmoid", make_inputs=BOUNDS4),
    Row("Hardswish", "Hardswish", make_inputs=BOUNDS4),
    Row("Hardshrink", "Hardshrink", make_inputs=scaled((4, 5), 1.0, exact=(0.5, -0.5))),
    Row("Hardshrink-lambd", "Hardshrink", (1.0,), shapes=[(3, 4)]),
    Row("Sigmoid", "Sigmoid", make_inputs=scaled((4, 5), 3.0)),
    Row("Tanh", "Tanh", make_inputs=scaled((4, 5), 3.0)),
    Row("LogSigmoid", "LogSigmoid", make_inputs=scaled((4, 5), 30.0)),
    Row("Softplus", "Softplus", make_inputs=scaled((4, 5), 3.0)),
    Row("Softplus-beta-threshold", "Softplus", (2.0, 1.0), make_inputs=scaled((4, 5), 1.0, exact=(0.5,))),
    Row("Softplus-large", "Softplus", kwargs={"beta": 0.5, "threshold": 5.0}, make_inputs=scaled((4, 5), 30.0)),
    Row("Softshrink", "Softshrink", make_inputs=scaled((4, 5), 1.0, exact=(0.5, -0.5))),
    Row("Softshrink-lambd", "Softshrink", (1.5,), make_inputs=scaled((4, 5), 2.0)),
    Row("Softsign", "Softsign", make_inputs=scaled((4, 5), 3.0)),
    Row("Tanhshrink", "Tanhshrink", shapes=[(3, 4)]),
    Row("Softmin", "Softmin", kwargs={"dim": 1}, shapes=[(3, 4)]),
    Row("Softmin-last", "Softmin", (-1,), shapes=[(2, 3, 4)]),
    Row("Softmax", "Softmax", kwargs={"dim": 1}, shapes=[(3, 4)]),
    Row("Softmax-dim0", "Softmax", (0,), shapes=[(3, 4)], dynamic_batch=False),
    Row("Softmax-3d", "Softmax", (-1,), shapes=[(2, 3, 4)]),
    Row("Softmax2d", "Softmax2d", shapes=[(2, 3, 2, 2)]),
    Row("Softmax2d-3d", "Softmax2d", shapes=[(3, 2, 4)], dynamic_batch=False),
    Row("LogSoftmax", "LogSoftmax", kwargs={"dim": 1}, shapes=[(3, 4)]),
    Row("LogSoftmax-3d", "LogSoftmax", (2,), shapes=[(2, 3, 4)]),
    Row("GLU", "GLU", shapes=[(3, 6)]),
    Row("GLU-dim", "GLU", (1,), shapes=[(2, 4, 3)]),
    Row("Sigmoid-train", "Sigmoid", shapes=[(3, 4)], modes=("train", "eval")),
    Row("ELU-train", "ELU", shapes=[(3, 4)], modes=("train", "eval")),
]


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_parity(row):
    check_row(row)


# ----- float64 finite differences (ReferenceEvaluator) for the composed and custom-backward forms ------
F = ok.nn.functional
GRADCHECKS = {
    "gelu": lambda x: F.gelu(x),
    "gelu-tanh": lambda x: F.gelu(x, approximate="tanh"),
    "mish": F.mish,
    "silu": F.silu,
    "celu-float64": lambda x: F.celu(x, alpha=1.5),
    "softplus-beta-threshold": lambda x: F.softplus(x, beta=2.0, threshold=3.0),
    "logsigmoid": F.logsigmoid,
    "softshrink": lambda x: F.softshrink(x, 0.3),
    "hardtanh": lambda x: F.hardtanh(x, -0.7, 0.8),
    "tanhshrink": F.tanhshrink,
    "glu": lambda x: F.glu(x, 1),
}


# onnx.reference's Erf evaluates in float32 (np.vectorize(math.erf, otypes="f")), so differences through it
# carry ~1e-8/eps of noise: a looser atol there.
ATOL = {"gelu": 1e-4}


@pytest.mark.parametrize("name", list(GRADCHECKS))
def test_gradcheck(name):
    x = np.random.default_rng(3).standard_normal((2, 4)) * 1.5
    gradcheck(GRADCHECKS[name], [x], atol=ATOL.get(name, 1e-5))


def test_prelu_gradcheck_weight():
    rng = np.random.default_rng(4)
    gradcheck(F.prelu, [rng.standard_normal((2, 3, 2)), np.array([0.1, -0.2, 0.3])])


# ----- boundaries: torch's gradient at the kink points ------------------------------------------
BOUNDARY = [("relu6", {}), ("hardtanh", {}), ("hardtanh", {"min_val": -2.0, "max_val": 3.0}), ("hardsigmoid", {}),
            ("hardswish", {}), ("hardshrink", {"lambd": 1.0}), ("softshrink", {"lambd": 1.0}),
            ("threshold", {"threshold": 1.0, "value": 5.0}), ("leaky_relu", {}), ("elu", {"alpha": 2.0}),
            ("celu", {"alpha": 2.0}), ("selu", {}), ("softplus", {"beta": 2.0, "threshold": 1.0}),
            ("rrelu", {}), ("relu", {})]


@pytest.mark.parametrize("name,kw", BOUNDARY, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BOUNDARY)])
def test_boundary_gradients(name, kw):
    v = np.array([-6.0, -3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 6.0], np.float32)
    tv = torch.tensor(v, requires_grad=True)
    tg, = torch.autograd.grad(getattr(torch.nn.functional, name)(tv, **kw).sum(), [tv])
    ov = ok.tensor(v, requires_grad=True)
    og, = ok.grad(getattr(F, name)(ov, **kw).sum(), [ov])
    np.testing.assert_allclose(og.numpy(), tg.numpy(), rtol=1e-6, atol=1e-7)


# ----- RReLU in train mode: fresh per-element slopes in [lower, upper), shared by forward and gradient --
def test_rrelu_train_slopes():
    ok.manual_seed(7)
    m = nn.RReLU(0.1, 0.3).train()
    x = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    xt = ok.tensor(x, requires_grad=True)
    y = m(xt)
    out = y.numpy()
    neg = x < 0
    np.testing.assert_array_equal(out[~neg], x[~neg])
    slope = out[neg] / x[neg]
    assert slope.min() >= 0.1 - 1e-6 and slope.max() <= 0.3 + 1e-6
    assert abs(slope.mean() - 0.2) < 0.01 and slope.std() > 0.04  # uniform on [0.1, 0.3): std 0.058
    g, = ok.grad(y.sum(), [xt])
    np.testing.assert_allclose(g.numpy()[neg], slope, rtol=1e-5)   # the forward's slopes
    np.testing.assert_array_equal(g.numpy()[~neg], 1.0)
    again = m(xt).numpy()
    assert not np.allclose(again[neg], out[neg])                       # a new draw per call
    ok.manual_seed(7)
    np.testing.assert_array_equal(nn.RReLU(0.1, 0.3)(ok.tensor(x)).numpy(), out)  # reproducible from the seed


def test_rrelu_train_export_symbolic_batch():
    """training=True export: slopes drawn in the graph for a symbolic batch, within [lower, upper)."""
    model = ok.export(nn.RReLU(0.2, 0.4), [ok.Input("x", ("N", 8))], training=True)
    x = -np.abs(np.random.default_rng(0).standard_normal((5, 8))).astype(np.float32) - 0.1
    y = ok.Session(model).run({"x": x})[model.graph.output[0].name]
    slope = y / x
    assert slope.min() >= 0.2 - 1e-6 and slope.max() <= 0.4 + 1e-6 and slope.std() > 0.01


INPLACE = [("ReLU", ()), ("ReLU6", ()), ("ELU", (0.5,)), ("SELU", ()), ("CELU", (2.0,)), ("SiLU", ()), ("Mish", ()),
           ("LeakyReLU", (0.2,)), ("Threshold", (0.1, 3.0)), ("Hardtanh", (-0.5, 0.5)), ("Hardsigmoid", ()),
           ("Hardswish", ())]


@pytest.mark.parametrize("name,args", INPLACE, ids=[n for n, _ in INPLACE])
def test_inplace_accepted_and_ignored(name, args):
    """torch mutates its input; onnxkit graphs are pure and return the same values."""
    x = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32) * 3
    tx = torch.tensor(x)
    ty = getattr(torch.nn, name)(*args, inplace=True)(tx)
    m = getattr(nn, name)(*args, inplace=True)
    assert m.inplace is True
    np.testing.assert_allclose(m(ok.tensor(x)).numpy(), ty.numpy(), rtol=1e-5, atol=1e-6)


def test_module_defaults_match_torch():
    for name in ["ELU", "CELU", "LeakyReLU", "Softplus", "Hardshrink", "Softshrink", "GELU", "RReLU", "Hardtanh",
                 "GLU", "Softmax", "PReLU"]:
        tm, om = getattr(torch.nn, name)(), getattr(nn, name)()
        for attr in ("alpha", "negative_slope", "beta", "threshold", "lambd", "approximate", "lower", "upper",
                     "min_val", "max_val", "dim", "num_parameters", "inplace"):
            if hasattr(tm, attr):
                assert getattr(om, attr) == getattr(tm, attr), f"{name}.{attr}"
    assert nn.PReLU(3).state_dict()["weight"].tolist() == pytest.approx([0.25] * 3)
    assert list(nn.PReLU().state_dict()) == list(torch.nn.PReLU().state_dict())


def test_gelu_is_composed_from_erf():
    """The exported GELU uses Erf (gradient rule exists), not the opset-20 Gelu op."""
    model = ok.export(nn.GELU(), [ok.Input("x", ("N", 4))])
    assert {n.op_type for n in model.graph.node} >= {"Erf"} and "Gelu" not in {n.op_type for n in model.graph.node}


# ----- build-time errors ---------------------------------------------------------------------------
def test_error_hardtanh_bounds():
    with pytest.raises(ValueError, match="max_val"):
        nn.Hardtanh(1.0, -1.0)


def test_error_prelu_channels_names_layer():
    model = nn.Sequential(nn.Linear(4, 4), nn.PReLU(3))
    with pytest.raises(nn.ShapeError, match=r"^1 \(PReLU\): .*3 parameters and 4 channels"):
        model(ok.tensor(np.zeros((2, 4), np.float32)))


def test_error_glu_odd_dim():
    with pytest.raises(nn.ShapeError, match="GLU: .*must be even, but dimension 1 is size 5"):
        nn.GLU(1)(ok.tensor(np.zeros((2, 5), np.float32)))


def test_error_softmax2d_rank():
    with pytest.raises(nn.ShapeError, match="expected input to be 3D or 4D, got 2D"):
        nn.Softmax2d()(ok.tensor(np.zeros((2, 5), np.float32)))


def test_error_gelu_approximate():
    with pytest.raises(ValueError, match="'none' or 'tanh'"):
        nn.GELU("fast")(ok.tensor(np.zeros((2, 5), np.float32)))


def test_error_celu_alpha_zero():
    with pytest.raises(ValueError, match="alpha"):
        F.celu(ok.tensor(np.zeros((2,), np.float32)), alpha=0.0)


def test_error_rrelu_bounds():
    with pytest.raises(ValueError, match="lower bound"):
        nn.RReLU(0.5, 0.1)


def test_error_unknown_argument():
    with pytest.raises(TypeError):
        nn.ELU(alpha=1.0, slope=2.0)
