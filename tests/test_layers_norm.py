"""Normalization layers against torch: parity rows (forward, gradients, export) in train and eval
mode, running statistics after train-mode calls, float64 finite differences, build-time errors."""
import numpy as np
import pytest
import torch

import onnxkit as ok
from onnxkit import nn
from onnxkit import ops as F
from gradcheck import gradcheck
from parity import Row, check_row, ids

TRAIN_EVAL = ("train", "eval")

ROWS = [
    Row("BatchNorm1d-2d", "BatchNorm1d", (4,), shapes=[(5, 4)], modes=TRAIN_EVAL),
    Row("BatchNorm1d-3d", "BatchNorm1d", (3,), shapes=[(4, 3, 6)], modes=TRAIN_EVAL),
    Row("BatchNorm1d-noaffine", "BatchNorm1d", (3,), {"affine": False}, shapes=[(4, 3, 5)], modes=TRAIN_EVAL),
    Row("BatchNorm1d-eps-momentum", "BatchNorm1d", (3,), {"eps": 1e-2, "momentum": 0.5}, shapes=[(6, 3)],
        modes=TRAIN_EVAL),
    Row("BatchNorm2d", "BatchNorm2d", (3,), shapes=[(2, 3, 4, 5)], modes=TRAIN_EVAL),
    Row("BatchNorm2d-momentum-None", "BatchNorm2d", (3,), {"momentum": None}, shapes=[(2, 3, 4, 4)],
        modes=TRAIN_EVAL),
    Row("BatchNorm2d-no-running-stats", "BatchNorm2d", (3,), {"track_running_stats": False},
        shapes=[(2, 3, 4, 4)], modes=TRAIN_EVAL),
    Row("BatchNorm2d-noaffine-norunning", "BatchNorm2d", (2,), {"affine": False, "track_running_stats": False},
        shapes=[(3, 2, 3, 3)], modes=TRAIN_EVAL),
    Row("BatchNorm3d", "BatchNorm3d", (2,), shapes=[(2, 2, 3, 3, 4)], modes=TRAIN_EVAL),
    Row("BatchNorm2d-nobias", "BatchNorm2d", (3,), {"bias": False}, shapes=[(2, 3, 3, 4)], modes=TRAIN_EVAL),
    Row("InstanceNorm1d", "InstanceNorm1d", (3,), shapes=[(2, 3, 7)], modes=TRAIN_EVAL),
    Row("InstanceNorm1d-affine", "InstanceNorm1d", (3,), {"affine": True}, shapes=[(2, 3, 7)], modes=TRAIN_EVAL),
    Row("InstanceNorm1d-unbatched", "InstanceNorm1d", (3,), {"affine": True}, modes=TRAIN_EVAL,
        make_inputs=lambda rng, batch: [rng.standard_normal((3, 7)).astype(np.float32)], dynamic_batch=False),
    Row("InstanceNorm2d", "InstanceNorm2d", (3,), {"eps": 1e-3}, shapes=[(2, 3, 4, 5)], modes=TRAIN_EVAL),
    Row("InstanceNorm2d-running", "InstanceNorm2d", (3,), {"affine": True, "track_running_stats": True},
        shapes=[(2, 3, 4, 4)], modes=TRAIN_EVAL),
    Row("InstanceNorm2d-running-momentum-None", "InstanceNorm2d", (3,),
        {"track_running_stats": True, "momentum": None}, shapes=[(2, 3, 3, 4)], modes=TRAIN_EVAL),
    Row("InstanceNorm3d", "InstanceNorm3d", (2,), {"affine": True}, shapes=[(2, 2, 3, 3, 3)], modes=TRAIN_EVAL),
    Row("InstanceNorm1d-affine-nobias", "InstanceNorm1d", (3,), {"affine": True, "bias": False,
                                                                "track_running_stats": True},
        shapes=[(2, 3, 5)], modes=TRAIN_EVAL),
    Row("LayerNorm-last", "LayerNorm", (6,), shapes=[(3, 6)]),
    Row("LayerNorm-2dims", "LayerNorm", ((4, 5),), shapes=[(2, 3, 4, 5)]),
    Row("LayerNorm-noaffine", "LayerNorm", (5,), {"elementwise_affine": False, "eps": 1e-3}, shapes=[(2, 4, 5)]),
    Row("LayerNorm-nobias", "LayerNorm", (5,), {"bias": False}, shapes=[(2, 4, 5)]),
    Row("GroupNorm", "GroupNorm", (2, 6), shapes=[(2, 6, 3, 3)]),
    Row("GroupNorm-1group", "GroupNorm", (1, 4), shapes=[(2, 4, 5)]),
    Row("GroupNorm-per-channel", "GroupNorm", (4, 4), {"eps": 1e-3}, shapes=[(3, 4, 2, 3)]),
    Row("GroupNorm-noaffine", "GroupNorm", (3, 6), {"affine": False}, shapes=[(2, 6, 4)]),
    Row("GroupNorm-nobias", "GroupNorm", (2, 4), {"bias": False}, shapes=[(2, 4, 3)]),
    Row("LocalResponseNorm-odd", "LocalResponseNorm", (3,), shapes=[(2, 6, 4, 4)]),
    Row("LocalResponseNorm-even", "LocalResponseNorm", (2,), {"alpha": 0.1, "beta": 0.5, "k": 2.0},
        shapes=[(2, 5, 3, 3)]),
    Row("LocalResponseNorm-3d-big-window", "LocalResponseNorm", (7,), {"alpha": 0.01}, shapes=[(2, 4, 6)]),
    Row("LocalResponseNorm-5d", "LocalResponseNorm", (4,), shapes=[(2, 5, 2, 3, 3)]),
]


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_parity(row):
    check_row(row)


# ----- running statistics ------------------------------------------------------------------
STATS = [
    ("BatchNorm1d", {}, (6, 3)),
    ("BatchNorm2d", {"momentum": None}, (4, 3, 2, 3)),
    ("BatchNorm3d", {"momentum": 0.3}, (3, 2, 2, 2, 3)),
    ("InstanceNorm1d", {"track_running_stats": True}, (4, 3, 5)),
    ("InstanceNorm2d", {"track_running_stats": True, "momentum": 0.7, "affine": True}, (3, 3, 4, 2)),
]


@pytest.mark.parametrize("ctor,kwargs,shape", STATS, ids=[f"{c}-{k}" for c, k, _ in STATS])
def test_running_stats_follow_torch(ctor, kwargs, shape):
    """Three train-mode calls (the second and third built before any evaluation) give torch's
    running_mean, running_var and num_batches_tracked."""
    tm, om = getattr(torch.nn, ctor)(shape[1], **kwargs), getattr(nn, ctor)(shape[1], **kwargs)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(shape).astype(np.float32) * (k + 1) + k for k in range(3)]
    om(ok.tensor(xs[0])).numpy()
    outs = [om(ok.tensor(x)) for x in xs[1:]]
    for x in xs:
        tm(torch.tensor(x))
    outs[-1].numpy()
    for key, value in tm.state_dict().items():
        np.testing.assert_allclose(om.state_dict()[key], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("ctor,kwargs,shape", STATS[:3], ids=[f"{c}-{k}" for c, k, _ in STATS[:3]])
def test_running_stats_update_when_the_forward_is_built(ctor, kwargs, shape):
    """torch updates the statistics when the forward runs: reading them after train-mode calls whose
    results nothing evaluated, or running the layer in eval mode then, sees the updates; a reader built
    before an update keeps the old value."""
    tm, om = getattr(torch.nn, ctor)(shape[1], **kwargs), getattr(nn, ctor)(shape[1], **kwargs)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(shape).astype(np.float32) + k for k in range(3)]
    before = om.running_mean * 1.0
    om(ok.tensor(xs[0]))
    tm(torch.tensor(xs[0]))
    np.testing.assert_allclose(om.running_mean.numpy(), tm.running_mean.numpy(), rtol=1e-5, atol=1e-7)
    middle, torch_middle = om.running_var + 0.0, tm.running_var.clone()
    for x in xs[1:]:
        om(ok.tensor(x))
        tm(torch.tensor(x))
    om.eval(), tm.eval()
    np.testing.assert_allclose(om(ok.tensor(xs[0])).numpy(), tm(torch.tensor(xs[0])).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    for key, value in tm.state_dict().items():
        np.testing.assert_allclose(om.state_dict()[key], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
    np.testing.assert_array_equal(before.numpy(), np.zeros(shape[1]))
    np.testing.assert_allclose(middle.numpy(), torch_middle.numpy(), rtol=1e-5)


def test_a_long_statistics_pass_that_reads_nothing_matches_torch_in_few_runs():
    """40 train-mode calls whose outputs nobody evaluates (recalibrating the statistics): torch's
    running statistics, applied every CHAIN_LIMIT calls instead of holding 40 forwards."""
    from onnxkit import runtime
    tm, om = torch.nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    rng = np.random.default_rng(2)
    before = runtime.stats["run"]
    with ok.no_grad():
        for k in range(40):
            x = rng.standard_normal((8, 3)).astype(np.float32) + k * 0.1
            om(ok.tensor(x))
            tm(torch.tensor(x))
    from onnxkit.ops.norm import CHAIN_LIMIT
    assert runtime.stats["run"] - before == 40 // CHAIN_LIMIT  # applied along the way, not one 40-deep graph
    for key, value in tm.state_dict().items():
        np.testing.assert_allclose(om.state_dict()[key], value.numpy(), rtol=1e-4, atol=1e-5, err_msg=key)


def test_momentum_none_is_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None)
    batches = [np.random.default_rng(k).standard_normal((5, 2)).astype(np.float32) for k in range(4)]
    for b in batches:
        bn(ok.tensor(b)).numpy()
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([b.mean(0) for b in batches], 0), rtol=1e-5, atol=1e-6)
    assert bn.num_batches_tracked.numpy() == 4 and bn.num_batches_tracked.dtype == np.int64


def test_eval_mode_leaves_running_stats():
    bn = nn.BatchNorm2d(3).eval()
    bn(ok.tensor(np.ones((2, 3, 2, 2), np.float32))).numpy()
    assert bn.num_batches_tracked.numpy() == 0 and np.all(bn.running_var.numpy() == 1)


def test_train_mode_export_does_not_touch_running_stats():
    """A traced (export) call's update is never applied, and a later call does not continue from it."""
    bn = nn.BatchNorm1d(3)
    ok.export(bn, [ok.Input("x", ("N", 3))], training=True)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    bn.train()(ok.tensor(x)).numpy()
    assert bn.num_batches_tracked.numpy() == 1
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * x.mean(0), rtol=1e-5, atol=1e-7)


def test_state_dict_keys_and_export_names():
    assert list(nn.BatchNorm2d(3).state_dict()) == list(torch.nn.BatchNorm2d(3).state_dict())
    assert list(nn.InstanceNorm1d(3, track_running_stats=True).state_dict()) == \
        list(torch.nn.InstanceNorm1d(3, track_running_stats=True).state_dict())
    model = ok.export(nn.BatchNorm2d(3), [ok.Input("x", ("N", 3, 4, 4))])
    assert [n.op_type for n in model.graph.node] == ["BatchNormalization"]
    assert {i.name for i in model.graph.initializer} >= {"weight", "bias", "running_mean", "running_var"}


def test_train_mode_export_has_batch_statistics():
    model = ok.export(nn.BatchNorm1d(4), [ok.Input("x", ("N", 4))], training=True)
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    y = ok.Session(model).run({"x": x})["output"]
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-4, atol=1e-5)


# ----- float64 finite differences of the composed statistics ----------------------------------
GRADCHECKS = [
    ("batch_norm-train", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [(3, 2, 2), (2,), (2,)]),
    ("instance_norm", lambda x, w, b: F.instance_norm(x, weight=w, bias=b), [(2, 2, 3), (2,), (2,)]),
    ("group_norm", lambda x, w, b: F.group_norm(x, 2, w, b), [(2, 4, 2), (4,), (4,)]),
    ("layer_norm", lambda x, w, b: F.layer_norm(x, (3,), w, b), [(2, 3), (3,), (3,)]),
    ("local_response_norm", lambda x: F.local_response_norm(x, 2, alpha=0.5, k=1.5), [(1, 3, 2)]),
]


@pytest.mark.parametrize("name,fn,shapes", GRADCHECKS, ids=[g[0] for g in GRADCHECKS])
def test_gradcheck_float64(name, fn, shapes):
    rng = np.random.default_rng(0)
    gradcheck(fn, [rng.standard_normal(s) for s in shapes], eps=1e-5, atol=1e-6, rtol=1e-5)


# ----- build-time errors -------------------------------------------------------------------
ERRORS = [
    ("BatchNorm2d channels", lambda: nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(16))(
        ok.tensor(np.zeros((2, 3, 4, 4), np.float32))), r"1 \(BatchNorm2d\): expected 16 channels \(num_features\), got 8"),
    ("BatchNorm2d rank", lambda: nn.BatchNorm2d(3)(ok.tensor(np.zeros((2, 3, 4), np.float32))),
     r"BatchNorm2d: expected 4D input \(got 3D input\)"),
    ("BatchNorm1d one value per channel", lambda: nn.BatchNorm1d(3)(ok.tensor(np.zeros((1, 3), np.float32))),
     "Expected more than 1 value per channel when training"),
    ("InstanceNorm1d affine channels", lambda: nn.InstanceNorm1d(4, affine=True)(ok.tensor(np.zeros((2, 3, 5), np.float32))),
     r"expected 4 channels \(num_features\), got 3"),
    ("LayerNorm shape", lambda: nn.LayerNorm((4, 5))(ok.tensor(np.zeros((2, 5, 4), np.float32))),
     r"LayerNorm: expected input with trailing shape \(4, 5\)"),
    ("GroupNorm channels", lambda: nn.GroupNorm(2, 4)(ok.tensor(np.zeros((2, 6, 3), np.float32))),
     r"GroupNorm: expected input \(N, 4, ...\)"),
    ("LocalResponseNorm rank", lambda: nn.LocalResponseNorm(2)(ok.tensor(np.zeros((2, 6), np.float32))),
     "expected 3D or higher input"),
]


@pytest.mark.parametrize("name,build,match", ERRORS, ids=[e[0] for e in ERRORS])
def test_build_time_errors(name, build, match):
    with pytest.raises(nn.ShapeError, match=match):
        build()


def test_groupnorm_indivisible_channels_is_a_constructor_error():
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(4, 6)
