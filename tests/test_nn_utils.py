"""onnxkit.nn.utils against torch.nn.utils: weight_norm / remove_weight_norm, spectral_norm /
remove_spectral_norm (forward, gradients, buffers after the power iteration, export) and
parameters_to_vector / vector_to_parameters."""
import numpy as np
import onnx
import pytest
import torch

import onnxkit as ok
from onnxkit import nn
from onnxkit.nn import utils

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.nn.utils.weight_norm is deprecated there


def _pair(ctor, args, wrap_torch, wrap_ok):
    torch.manual_seed(0)
    tm = wrap_torch(getattr(torch.nn, ctor)(*args))
    om = wrap_ok(getattr(nn, ctor)(*args))
    om.load_state_dict(tm.state_dict())
    return tm, om


def _check(tm, om, x, mode):
    """Forward, gradients w.r.t. input and parameters, and the state after the call, as torch."""
    tm.train(mode == "train"), om.train(mode == "train")
    xt, xo = torch.tensor(x, requires_grad=True), ok.tensor(x, requires_grad=True)
    yt, yo = tm(xt), om(xo)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    g = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(np.float32)
    names = [n for n, _ in tm.named_parameters()]
    assert names == [n for n, _ in om.named_parameters()]
    gt = torch.autograd.grad(yt, [xt] + list(tm.parameters()), torch.tensor(g))
    go = ok.grad(yo, [xo] + list(om.parameters()), grad_outputs=ok.tensor(g))
    for name, a, b in zip(["input"] + names, go, gt):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4, err_msg=f"grad {name}")
    assert list(om.state_dict()) == list(tm.state_dict())
    for key, value in tm.state_dict().items():
        np.testing.assert_allclose(om.state_dict()[key], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=key)


def _check_export(tm, om, x):
    tm.eval(), om.eval()
    model = ok.export(om, [ok.Input("x", ("N",) + x.shape[1:])])
    onnx.checker.check_model(model, full_check=True)
    x2 = np.concatenate([x, x[:1]])
    with torch.no_grad():
        want = tm(torch.tensor(x2)).numpy()
    np.testing.assert_allclose(ok.Session(model).run({"x": x2})["output"], want, rtol=1e-4, atol=1e-5)


WEIGHT_NORM = [
    ("Linear", (5, 3), {}, (4, 5)),
    ("Linear-dim1", (5, 3), {"dim": 1}, (4, 5)),
    ("Linear-dimNone", (5, 3), {"dim": None}, (4, 5)),
    ("Conv2d", (2, 4, 3), {}, (2, 2, 5, 5)),
    ("Conv1d-bias", (2, 3, 2), {"name": "bias"}, (2, 2, 6)),
]


@pytest.mark.parametrize("ctor,args,kwargs,shape", WEIGHT_NORM, ids=[w[0] for w in WEIGHT_NORM])
def test_weight_norm_matches_torch(ctor, args, kwargs, shape):
    tm, om = _pair(ctor.split("-")[0], args, lambda m: torch.nn.utils.weight_norm(m, **kwargs),
                   lambda m: utils.weight_norm(m, **kwargs))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    _check(tm, om, x, "train")
    _check_export(tm, om, x)


def test_remove_weight_norm_folds_back():
    tm, om = _pair("Linear", (5, 3), torch.nn.utils.weight_norm, utils.weight_norm)
    torch.nn.utils.remove_weight_norm(tm), utils.remove_weight_norm(om)
    assert list(om.state_dict()) == list(tm.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(om.weight.numpy(), tm.weight.detach().numpy(), rtol=1e-6)
    assert isinstance(om.weight, nn.Parameter) and not om._forward_pre_hooks
    with pytest.raises(ValueError, match="weight_norm of 'weight' not found"):
        utils.remove_weight_norm(om)


SPECTRAL = [
    ("Linear", (5, 3), {}, (4, 5), "train"),
    ("Linear-eval", (5, 3), {}, (4, 5), "eval"),
    ("Linear-3iters", (6, 4), {"n_power_iterations": 3, "eps": 1e-6}, (2, 6), "train"),
    ("Conv2d", (3, 4, 3), {}, (2, 3, 5, 5), "train"),
    ("ConvTranspose2d", (3, 2, 3), {}, (2, 3, 4, 4), "train"),
    ("Conv1d-dim1", (3, 4, 2), {"dim": 1}, (2, 3, 5), "train"),
]


@pytest.mark.parametrize("ctor,args,kwargs,shape,mode", SPECTRAL, ids=[s[0] for s in SPECTRAL])
def test_spectral_norm_matches_torch(ctor, args, kwargs, shape, mode):
    """In train mode the power iteration's u and v land in the buffers when the result is evaluated,
    and the gradient graph sees the same u and v as the forward."""
    tm, om = _pair(ctor.split("-")[0], args, lambda m: torch.nn.utils.spectral_norm(m, **kwargs),
                   lambda m: utils.spectral_norm(m, **kwargs))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    _check(tm, om, x, mode)
    _check(tm, om, x * 2, mode)  # a second step continues from the updated u, v
    _check_export(tm, om, x)


def test_remove_spectral_norm():
    tm, om = _pair("Linear", (4, 3), torch.nn.utils.spectral_norm, utils.spectral_norm)
    torch.nn.utils.remove_spectral_norm(tm), utils.remove_spectral_norm(om)
    assert list(om.state_dict()) == list(tm.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(om.weight.numpy(), tm.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="spectral_norm of 'weight' not found"):
        utils.remove_spectral_norm(om)


def test_hooks_cannot_be_registered_twice():
    with pytest.raises(RuntimeError, match="two weight_norm hooks"):
        utils.weight_norm(utils.weight_norm(nn.Linear(2, 2)))
    with pytest.raises(RuntimeError, match="two spectral_norm hooks"):
        utils.spectral_norm(utils.spectral_norm(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="n_power_iterations"):
        utils.spectral_norm(nn.Linear(2, 2), n_power_iterations=0)


def test_parameters_to_vector_and_back():
    tm, om = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    om.load_state_dict({k: torch.tensor(v) for k, v in tm.state_dict().items()})
    v = utils.parameters_to_vector(tm.parameters())
    np.testing.assert_array_equal(v.numpy(), torch.nn.utils.parameters_to_vector(om.parameters()).detach().numpy())
    new = np.arange(8, dtype=np.float32)
    utils.vector_to_parameters(ok.tensor(new), tm.parameters())
    np.testing.assert_array_equal(tm.weight.numpy(), new[:6].reshape(2, 3))
    np.testing.assert_array_equal(tm.bias.numpy(), new[6:])


def test_vector_to_parameters_checks():
    with pytest.raises(TypeError, match="expected an onnxkit Tensor"):
        utils.vector_to_parameters(np.zeros(8, np.float32), nn.Linear(3, 2).parameters())
    with pytest.raises(ValueError, match="8 elements"):
        utils.vector_to_parameters(ok.tensor(np.zeros(7, np.float32)), nn.Linear(3, 2).parameters())


def test_vector_roundtrip_is_differentiable():
    x = ok.tensor(np.ones(3, np.float32), requires_grad=True)
    w = nn.Parameter(np.full((2, 3), 2.0, np.float32))
    v = utils.parameters_to_vector([w, x])
    g, = ok.grad((v * v).sum(), [x])
    np.testing.assert_array_equal(g.numpy(), [2.0, 2.0, 2.0])
