"""Lazy layers (LazyConv*, LazyConvTranspose*, LazyBatchNorm*, LazyInstanceNorm*) and Fold/Unfold against
torch: the first call (or a loaded state dict) fixes the input size; the layer then is its plain counterpart
with torch's parameter names, shapes and init, and matches torch's outputs and gradients."""
import numpy as np
import onnx
import pytest
import torch

import onnxkit as ok
from onnxkit import nn

# (class name, constructor args, kwargs, input shape, modes)
ROWS = [
    ("LazyConv1d", (4, 3), {}, (2, 3, 9), ("train",)),
    ("LazyConv1d", (4, 3), {}, (3, 9), ("train",)),  # unbatched: channels from dim 0
    ("LazyConv2d", (4, 3), {"stride": 2, "bias": False, "padding": 1}, (2, 3, 7, 6), ("train",)),
    ("LazyConv2d", (6, 2), {"groups": 3, "padding_mode": "reflect", "padding": 1}, (2, 3, 5, 5), ("train",)),
    ("LazyConv3d", (2, (1, 2, 2)), {"dilation": (1, 2, 1)}, (1, 2, 3, 5, 4), ("train",)),
    ("LazyConvTranspose1d", (4, 3), {"stride": 2, "output_padding": 1}, (2, 3, 5), ("train",)),
    ("LazyConvTranspose2d", (4, 3), {"stride": 2, "groups": 1, "bias": False}, (2, 3, 4, 4), ("train",)),
    ("LazyConvTranspose3d", (2, 2), {"padding": 1}, (1, 2, 3, 4, 3), ("train",)),
    ("LazyBatchNorm1d", (), {}, (4, 5), ("train", "eval")),
    ("LazyBatchNorm1d", (), {"momentum": None}, (4, 3, 6), ("train", "eval")),
    ("LazyBatchNorm2d", (), {"eps": 1e-3}, (2, 3, 4, 4), ("train", "eval")),
    ("LazyBatchNorm2d", (), {"affine": False}, (2, 3, 4, 4), ("eval",)),
    ("LazyBatchNorm3d", (), {}, (2, 2, 3, 3, 2), ("train", "eval")),
    ("LazyInstanceNorm1d", (), {}, (2, 3, 6), ("train", "eval")),
    ("LazyInstanceNorm2d", (), {"affine": False, "track_running_stats": False}, (2, 3, 4, 4), ("train",)),
    ("LazyInstanceNorm2d", (1e-3, 0.2), {}, (2, 3, 4, 4), ("train", "eval")),
    ("LazyInstanceNorm3d", (), {"affine": True}, (1, 2, 3, 4, 3), ("train",)),
]


def _ids(rows):
    return [f"{r[0]}-{i}" for i, r in enumerate(rows)]


def _state_shapes(m):
    return [(k, tuple(np.shape(v))) for k, v in m.state_dict().items()]


@pytest.mark.parametrize("name,args,kwargs,shape,modes", ROWS, ids=_ids(ROWS))
def test_lazy_layer_matches_torch(name, args, kwargs, shape, modes):
    torch.manual_seed(0)
    tm = getattr(torch.nn, name)(*args, **kwargs)
    om = getattr(nn, name)(*args, **kwargs)
    assert om.has_uninitialized_params()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    tm(torch.tensor(x))
    om(ok.tensor(x))
    plain = name.replace("Lazy", "")
    assert type(om).__name__ == plain and isinstance(om, getattr(nn, plain)) and type(tm).__name__ == plain
    assert _state_shapes(om) == _state_shapes(tm)
    assert str(om) == str(tm)
    torch.manual_seed(1)
    fresh = getattr(torch.nn, name)(*args, **kwargs)
    fresh(torch.tensor(x))
    om.load_state_dict(fresh.state_dict())
    for mode in modes:
        fresh.train(mode == "train"), om.train(mode == "train")
        tx = torch.tensor(x, requires_grad=True)
        ty = fresh(tx)
        ox = ok.tensor(x, requires_grad=True)
        oy = om(ox)
        np.testing.assert_allclose(oy.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=f"{name} {mode}")
        g = np.random.default_rng(1).standard_normal(tuple(ty.shape)).astype(np.float32)
        params_t = [p for p in fresh.parameters()]
        params_o = [p for p in om.parameters()]
        tg = torch.autograd.grad(ty, [tx] + params_t, torch.tensor(g))
        og = ok.grad(oy, [ox] + params_o, grad_outputs=ok.tensor(g))
        for a, b in zip(og, tg):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4, err_msg=f"{name} {mode} grad")


def test_lazy_init_follows_torch_init_distribution():
    """Materialized weights come from the plain layer's reset_parameters (kaiming uniform bounds)."""
    ok.manual_seed(0)
    m = nn.LazyConv2d(8, 3)
    m(ok.tensor(np.zeros((1, 5, 6, 6), np.float32)))
    w = m.weight.numpy()
    bound = 1 / np.sqrt(5 * 9)
    assert w.shape == (8, 5, 3, 3) and np.abs(w).max() <= bound and np.abs(w).max() > 0.5 * bound
    assert m.in_channels == 5 and not hasattr(m, "_lazy_args")
    ok.manual_seed(0)
    ref = nn.Conv2d(5, 8, 3)
    np.testing.assert_array_equal(ref.weight.numpy(), w)


def test_lazy_load_state_dict_before_first_call():
    conv = nn.Conv2d(6, 4, 3, groups=2)
    m = nn.LazyConv2d(4, 3, groups=2)
    m.load_state_dict(conv.state_dict())
    assert type(m) is nn.Conv2d and m.in_channels == 6
    np.testing.assert_array_equal(m.weight.numpy(), conv.weight.numpy())
    t = nn.LazyConvTranspose1d(3, 2)
    t.load_state_dict(nn.ConvTranspose1d(5, 3, 2).state_dict())
    assert t.in_channels == 5
    bn = nn.LazyBatchNorm1d()
    src = torch.nn.BatchNorm1d(7)
    src.running_mean.fill_(0.5)
    bn.load_state_dict(src.state_dict())
    assert type(bn) is nn.BatchNorm1d and bn.num_features == 7
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.5)
    with pytest.raises(RuntimeError, match="Missing key"):
        nn.LazyConv1d(2, 2).load_state_dict({})


def test_lazy_module_in_sequential_keeps_mode_and_exports():
    model = nn.Sequential(nn.LazyConv2d(4, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU())
    model.eval()
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 5)).astype(np.float32)
    y = model(ok.tensor(x))
    assert not model[0].training and not model[1].training
    assert [k for k in model.state_dict()] == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                               "1.running_var", "1.num_batches_tracked"]
    onnx_model = ok.export(model, [ok.Input("x", ("N", 3, 5, 5))])
    onnx.checker.check_model(onnx_model, full_check=True)
    out = ok.Session(onnx_model).run({"x": x})["output"]
    np.testing.assert_allclose(out, y.numpy(), rtol=1e-5, atol=1e-5)


def test_lazy_errors_name_the_layer():
    with pytest.raises(ok.nn.ShapeError, match="LazyConv2d"):
        nn.LazyConv2d(2, 2)(ok.tensor(np.zeros((3, 4), np.float32)))
    with pytest.raises(ok.nn.ShapeError, match="channel dim is known"):
        nn.LazyBatchNorm1d()(ok.Input("x", ("N", "C")))


@pytest.mark.parametrize("ctor,args,shape", [
    ("Unfold", ((2, 3),), (2, 3, 5, 6)),
    ("Unfold", (3, 1, 1, 2), (3, 5, 6)),
    ("Fold", ((5, 6), 2), (2, 8, 20)),
    ("Fold", ((4, 5), (2, 2), 1, 1, 2), (12, 9)),
])
def test_fold_unfold_modules_match_torch(ctor, args, shape):
    tm, om = getattr(torch.nn, ctor)(*args), getattr(nn, ctor)(*args)
    assert str(tm) == str(om)
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    tx, ox = torch.tensor(x, requires_grad=True), ok.tensor(x, requires_grad=True)
    ty, oy = tm(tx), om(ox)
    np.testing.assert_allclose(oy.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = np.random.default_rng(5).standard_normal(tuple(ty.shape)).astype(np.float32)
    tg, = torch.autograd.grad(ty, [tx], torch.tensor(g))
    og, = ok.grad(oy, [ox], grad_outputs=ok.tensor(g))
    np.testing.assert_allclose(og.numpy(), tg.numpy(), rtol=1e-4, atol=1e-5)


def test_unfold_module_exports_with_symbolic_batch():
    model = ok.export(nn.Unfold(2, stride=2), [ok.Input("x", ("N", 2, 4, 4))])
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(6).standard_normal((3, 2, 4, 4)).astype(np.float32)
    out = ok.Session(model).run({"x": x})["output"]
    np.testing.assert_allclose(out, torch.nn.functional.unfold(torch.tensor(x), 2, stride=2).numpy(), rtol=1e-6)
