"""Dropout family: parity rows where torch is deterministic (eval mode, p=0, p=1), and statistical
tests of the train-mode masks (rate, scale, fresh mask per call, gradient through the same mask,
reproducibility from ok.manual_seed, whole-channel masks, alpha dropout's moments)."""
import collections

import numpy as np
import pytest

import onnxkit as ok
from onnxkit import nn
from onnxkit import ops as F
from parity import Row, check_row, ids

ROWS = [
    Row("Dropout-eval", "Dropout", (0.5,), shapes=[(4, 6)], modes=("eval",)),
    Row("Dropout-p0-train", "Dropout", (0.0,), shapes=[(4, 6)], modes=("train",)),
    Row("Dropout-p1-train", "Dropout", (1.0,), shapes=[(4, 6)], modes=("train",)),
    Row("Dropout1d-eval", "Dropout1d", (0.3,), shapes=[(2, 3, 5)], modes=("eval",)),
    Row("Dropout1d-p0-train", "Dropout1d", (0.0,), shapes=[(2, 3, 5)], modes=("train",)),
    Row("Dropout2d-eval", "Dropout2d", (0.3,), shapes=[(2, 3, 4, 4)], modes=("eval",)),
    Row("Dropout2d-p1-train", "Dropout2d", (1.0,), shapes=[(2, 3, 4, 4)], modes=("train",)),
    Row("Dropout3d-eval", "Dropout3d", (0.3,), shapes=[(2, 2, 2, 3, 3)], modes=("eval",)),
    Row("Dropout3d-p0-train", "Dropout3d", (0.0,), shapes=[(2, 2, 2, 3, 3)], modes=("train",)),
    Row("AlphaDropout-eval", "AlphaDropout", (0.2,), shapes=[(4, 5)], modes=("eval",)),
    Row("AlphaDropout-p0-train", "AlphaDropout", (0.0,), shapes=[(4, 5)], modes=("train",)),
    Row("AlphaDropout-p1-train", "AlphaDropout", (1.0,), shapes=[(4, 5)], modes=("train",)),
    Row("FeatureAlphaDropout-eval", "FeatureAlphaDropout", (0.2,), shapes=[(2, 3, 4)], modes=("eval",)),
    Row("FeatureAlphaDropout-p0-train", "FeatureAlphaDropout", (0.0,), shapes=[(2, 3, 4)], modes=("train",)),
]


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_parity(row):
    check_row(row)


ONES = np.ones((400, 250), np.float32)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_rate_and_scale(p):
    y = nn.Dropout(p)(ok.tensor(ONES)).numpy()
    assert abs((y == 0).mean() - p) < 0.01
    np.testing.assert_allclose(np.unique(y[y != 0]), [1 / (1 - p)], rtol=1e-6)


def test_masks_differ_between_calls():
    d = nn.Dropout(0.5)
    x = ok.tensor(ONES)
    a, b = d(x).numpy(), d(x).numpy()
    assert 0.4 < (a != b).mean() < 0.6


def test_gradient_uses_the_forward_mask():
    x = ok.tensor(ONES, requires_grad=True)
    y = nn.Dropout(0.4)(x)
    forward = y.numpy()
    g, = ok.grad(y.sum(), [x])
    np.testing.assert_array_equal(g.numpy(), forward)  # d(x * mask)/dx = mask, and x = 1
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), forward)


@pytest.mark.parametrize("cls,shape", [(nn.Dropout, (2, 3)), (nn.Dropout1d, (2, 3, 4)), (nn.Dropout2d, (2, 3, 4, 5)),
                                       (nn.Dropout3d, (2, 3, 2, 4, 5)), (nn.AlphaDropout, (2, 3)),
                                       (nn.FeatureAlphaDropout, (2, 3, 4))])
def test_eval_mode_is_identity(cls, shape):
    x = ok.tensor(np.ones(shape, np.float32))
    assert cls(0.5).eval()(x) is x


def test_manual_seed_reproduces_masks():
    d = nn.Dropout(0.5)
    ok.manual_seed(7)
    a = [d(ok.tensor(ONES)).numpy() for _ in range(2)]
    ok.manual_seed(7)
    b = [d(ok.tensor(ONES)).numpy() for _ in range(2)]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


FEATURE = [(nn.Dropout1d, (50, 40, 6), 2), (nn.Dropout1d, (40, 6), 1), (nn.Dropout2d, (20, 40, 3, 3), 2),
           (nn.Dropout2d, (20, 40, 3), 2), (nn.Dropout3d, (20, 40, 2, 2, 2), 2), (nn.Dropout3d, (40, 2, 3, 2), 1)]


@pytest.mark.parametrize("cls,shape,mask_dims", FEATURE, ids=[f"{c.__name__}-{len(s)}d" for c, s, _ in FEATURE])
def test_feature_dropout_zeroes_whole_channels(cls, shape, mask_dims):
    """The mask covers the first `mask_dims` dims (N, C; or C for unbatched input), as torch."""
    y = cls(0.5)(ok.tensor(np.ones(shape, np.float32))).numpy()
    channels = y.reshape(shape[:mask_dims] + (-1,))
    assert np.all(channels.min(-1) == channels.max(-1))  # constant per channel: kept (2.0) or dropped (0)
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.35 < (channels[..., 0] == 0).mean() < 0.65


def test_alpha_dropout_keeps_zero_mean_unit_variance():
    x = np.random.default_rng(0).standard_normal((500, 400)).astype(np.float32)
    y = nn.AlphaDropout(0.3)(ok.tensor(x)).numpy()
    assert abs(y.mean()) < 0.01 and abs(y.std() - 1) < 0.01


def test_alpha_dropout_dropped_value_and_gradient():
    p, alpha = 0.25, 1.7580993408473766
    a = 1 / np.sqrt((alpha ** 2 * p + 1) * (1 - p))
    x = ok.tensor(np.full((300, 200), 0.5, np.float32), requires_grad=True)
    y = nn.AlphaDropout(p)(x)
    v = y.numpy()
    kept = np.isclose(v, 0.5 * a + alpha * a * p)
    np.testing.assert_allclose(v[~kept], -alpha * a + alpha * a * p, rtol=1e-5)
    assert abs((~kept).mean() - p) < 0.01
    g, = ok.grad(y.sum(), [x])
    np.testing.assert_allclose(g.numpy(), np.where(kept, a, 0.0), rtol=1e-6)


def test_feature_alpha_dropout_drops_channels_to_one_value():
    y = nn.FeatureAlphaDropout(0.5)(ok.tensor(np.ones((30, 40, 5), np.float32))).numpy()
    assert np.allclose(y.min(-1), y.max(-1)) and len(np.unique(y.round(5))) == 2


def test_symbolic_shapes_draw_in_graph_with_a_host_seed():
    model = ok.export(nn.Dropout(0.5), [ok.Input("x", ("N", 8))], training=True)
    uniform = [n for n in model.graph.node if n.op_type == "RandomUniformLike"]
    assert len(uniform) == 1 and uniform[0].attribute[1].name == "seed"
    y = ok.Session(model).run({"x": np.ones((50, 8), np.float32)})["output"]
    assert set(np.unique(y)) == {0.0, 2.0}


def test_rand_like_static_is_a_fed_value():
    from onnxkit import random
    ok.manual_seed(3)
    u = random.rand_like(ok.tensor(np.zeros((3, 4), np.float64)))
    assert u.kind == "value" and u.dtype == np.float64 and 0 <= u.numpy().min() and u.numpy().max() < 1


@pytest.mark.parametrize("cls,shape", [(nn.Dropout1d, (2, 3, 4, 5)), (nn.Dropout3d, (2, 3, 4))])
def test_feature_dropout_rank_errors(cls, shape):
    with pytest.raises(nn.ShapeError, match=r"drop \(Dropout.d\): dropout.d: expected .D or .D input, got a .D input"):
        nn.Sequential(collections.OrderedDict(drop=cls(0.5)))(ok.tensor(np.ones(shape, np.float32)))


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_probability(p):
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(p)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(ok.tensor(ONES), p)
