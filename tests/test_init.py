"""nn.init against torch.nn.init: distributions of large draws (two-sample Kolmogorov-Smirnov and
bounds), exact values for the deterministic initializers and calculate_gain, torch's error messages,
and the default initialization of Linear and Bilinear."""
import math

import numpy as np
import pytest
import torch

import onnxkit as ok
from onnxkit import nn
from onnxkit.nn import init


def ks_statistic(a, b):
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    grid = np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(a, grid, "right") / a.size - np.searchsorted(b, grid, "right") / b.size))


def ks_limit(n, m, alpha=1e-3):
    return math.sqrt(-0.5 * math.log(alpha / 2)) * math.sqrt((n + m) / (n * m))


def draw_both(name, shape, kwargs):
    torch.manual_seed(0)
    t = torch.empty(shape)
    getattr(torch.nn.init, name)(t, **kwargs)
    o = nn.Parameter(np.zeros(shape, np.float32))
    assert getattr(init, name)(o, **kwargs) is o
    assert o.dtype == np.float32 and o.shape == shape and o.requires_grad
    return o.numpy(), t.numpy()


RANDOM = [  # (initializer, shape, kwargs, bound on |values| or None)
    ("uniform_", (256, 256), {"a": -2.0, "b": 3.0}, 3.0),
    ("normal_", (256, 256), {"mean": 1.0, "std": 2.0}, None),
    ("trunc_normal_", (256, 256), {}, 2.0),
    ("trunc_normal_", (256, 256), {"mean": 0.5, "std": 1.0, "a": -1.0, "b": 2.0}, 2.0),
    ("trunc_normal_", (128, 128), {"mean": 0.0, "std": 1.0, "a": 1.5, "b": 3.0}, 3.0),
    ("xavier_uniform_", (64, 32, 3, 3), {"gain": 2.0}, 2.0 * math.sqrt(6 / (288 + 576))),
    ("xavier_normal_", (64, 32, 3, 3), {}, None),
    ("kaiming_uniform_", (256, 512), {"a": math.sqrt(5)}, 1 / math.sqrt(512)),
    ("kaiming_uniform_", (64, 16, 5), {"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(6 / 320)),
    ("kaiming_uniform_", (128, 256), {"a": 0.2, "mode": "FAN_IN"}, math.sqrt(6 / (1.04 * 256))),
    ("kaiming_normal_", (256, 256), {}, None),
    ("kaiming_normal_", (64, 32, 3, 3), {"mode": "fan_out", "nonlinearity": "tanh"}, None),
    ("kaiming_normal_", (256, 128), {"nonlinearity": "selu"}, None),
    ("orthogonal_", (64, 128), {"gain": 2.0}, None),
    ("orthogonal_", (128, 64), {}, None),
    ("orthogonal_", (32, 4, 3, 3), {}, None),
    ("sparse_", (100, 300), {"sparsity": 0.3, "std": 0.05}, None),
]


@pytest.mark.parametrize("case", RANDOM, ids=[f"{c[0]}-{i}" for i, c in enumerate(RANDOM)])
def test_random_initializers_match_torch_distribution(case):
    name, shape, kwargs, bound = case
    o, t = draw_both(name, shape, kwargs)
    assert ks_statistic(o, t) < ks_limit(o.size, t.size), f"{name}: KS {ks_statistic(o, t):.4f}"
    np.testing.assert_allclose(o.std(), t.std(), rtol=0.03)
    if bound is not None:
        lo = kwargs.get("a", -bound) if name in ("uniform_", "trunc_normal_") else -bound
        assert lo - 1e-6 <= o.min() and o.max() <= bound + 1e-6
        assert o.max() > bound - 0.05 * (bound - lo)  # the range is used, not just respected


@pytest.mark.parametrize("shape,gain", [((64, 128), 2.0), ((128, 64), 1.0), ((32, 4, 3, 3), 0.5)])
def test_orthogonal_is_orthogonal(shape, gain):
    w = init.orthogonal_(ok.empty(*shape), gain=gain).numpy().reshape(shape[0], -1).astype(np.float64)
    small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    np.testing.assert_allclose(small, gain ** 2 * np.eye(small.shape[0]), atol=1e-5)


def test_sparse_zero_count_per_column_matches_torch():
    o, t = draw_both("sparse_", (40, 50), {"sparsity": 0.25})
    np.testing.assert_array_equal((o == 0).sum(0), (t == 0).sum(0))
    assert ((o == 0).sum(0) == 10).all()


EXACT = [  # (initializer, shape, args)
    ("constant_", (3, 4), (0.25,)),
    ("zeros_", (2, 3, 4), ()),
    ("ones_", (5,), ()),
    ("eye_", (3, 5), ()),
    ("eye_", (4, 2), ()),
    ("dirac_", (4, 2, 3), ()),
    ("dirac_", (6, 3, 3, 4), (2,)),
    ("dirac_", (4, 4, 3, 3, 3), (4,)),
    ("dirac_", (2, 5, 5, 5), ()),
]


@pytest.mark.parametrize("case", EXACT, ids=[f"{c[0]}-{i}" for i, c in enumerate(EXACT)])
def test_deterministic_initializers_exact(case):
    name, shape, args = case
    t = torch.full(shape, 7.0)
    getattr(torch.nn.init, name)(t, *args)
    o = ok.full(shape, 7.0)
    getattr(init, name)(o, *args)
    np.testing.assert_array_equal(o.numpy(), t.numpy())


GAINS = [("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None), ("conv_transpose1d", None),
         ("conv_transpose2d", None), ("conv_transpose3d", None), ("sigmoid", None), ("tanh", None),
         ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 1), ("selu", None)]


@pytest.mark.parametrize("nonlinearity,param", GAINS)
def test_calculate_gain_exact(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)


ERRORS = [  # (call on a library's init module and a tensor factory); the messages must equal torch's
    ("gain-unknown", lambda I, E: I.calculate_gain("swish")),
    ("gain-slope", lambda I, E: I.calculate_gain("leaky_relu", "x")),
    ("eye-3d", lambda I, E: I.eye_(E(2, 2, 2))),
    ("dirac-2d", lambda I, E: I.dirac_(E(2, 2))),
    ("dirac-groups", lambda I, E: I.dirac_(E(3, 2, 3), 2)),
    ("fan-1d", lambda I, E: I.xavier_uniform_(E(5))),
    ("mode", lambda I, E: I.kaiming_normal_(E(2, 3), mode="fan_avg")),
    ("orthogonal-1d", lambda I, E: I.orthogonal_(E(4))),
    ("sparse-3d", lambda I, E: I.sparse_(E(2, 2, 2), 0.5)),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors_match_torch(case):
    _, call = case
    with pytest.raises(ValueError) as want:
        call(torch.nn.init, torch.empty)
    with pytest.raises(ValueError) as got:
        call(init, ok.empty)
    assert str(got.value) == str(want.value)


def test_zero_element_kaiming_is_a_no_op():
    t = ok.empty(0, 3)
    with pytest.warns(UserWarning, match="zero-element"):
        assert init.kaiming_uniform_(t) is t


def test_seeding_generator_dtype_and_aliases():
    ok.manual_seed(3)
    a = init.normal_(ok.empty(4, 4)).numpy().copy()
    ok.manual_seed(3)
    np.testing.assert_array_equal(init.normal_(ok.empty(4, 4)).numpy(), a)
    g1 = init.uniform_(ok.empty(3), generator=np.random.default_rng(5)).numpy()
    g2 = init.uniform_(ok.empty(3), generator=np.random.default_rng(5)).numpy()
    np.testing.assert_array_equal(g1, g2)
    d = nn.Parameter(np.zeros((3, 3)))
    init.xavier_uniform_(d)
    assert d.dtype == np.float64 and d.numpy().any()
    with pytest.warns(FutureWarning, match="nn.init.xavier_uniform is now deprecated"):
        init.xavier_uniform(ok.empty(2, 2))


def test_init_replaces_a_pending_update():
    w = nn.Parameter(np.zeros((2, 2), np.float32))
    with ok.no_grad():
        w -= ok.tensor(np.ones((2, 2), np.float32))
    init.constant_(w, 4.0)
    np.testing.assert_array_equal(w.numpy(), np.full((2, 2), 4.0))


DEFAULTS = [  # (layer, args, parameter)
    ("Linear", (512, 256), "weight"),
    ("Linear", (512, 256), "bias"),
    ("Bilinear", (64, 32, 64), "weight"),
    ("Bilinear", (64, 32, 64), "bias"),
]


@pytest.mark.parametrize("case", DEFAULTS, ids=[f"{c[0]}-{c[2]}" for c in DEFAULTS])
def test_default_initialization_matches_torch(case):
    layer, args, pname = case
    torch.manual_seed(0)
    t = getattr(getattr(torch.nn, layer)(*args), pname).detach().numpy()
    o = getattr(getattr(nn, layer)(*args), pname).numpy()
    bound = 1 / math.sqrt(args[0])
    assert np.abs(o).max() <= bound and np.abs(t).max() <= bound
    assert ks_statistic(o, t) < ks_limit(o.size, t.size)
